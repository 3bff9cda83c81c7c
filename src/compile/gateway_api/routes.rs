//! HTTPRoutes: which listeners each attaches to (parentRefs, kinds, namespaces, host names),
//! their rules compiled into table entries, and their status per parent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use http::HeaderName;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use super::filters;
use super::gateways::GatewayPlan;
use super::refs::{api_group, condition, intersect, object, reference_namespace, selects, valid_hostname};
use crate::api::gateway_api::{HTTPRoute, HTTPRouteRule, ParentReference, GATEWAY_GROUP};
use crate::routing::gateway::{GatewayRule, HeaderMatch, PathMatch, QueryMatch, WeightedBackend};
use crate::routing::{MethodSet, PathPattern};
use crate::upstream::{Endpoint, Protocol, Upstream};

/// One table entry of a route: a match of one of its rules.
pub(super) struct Entry {
    /// The rule's `name`, which a policy's `sectionName` may target.
    pub rule_name: Option<String>,
    pub pattern: PathPattern,
    pub methods: MethodSet,
    pub rule: Arc<GatewayRule>,
    /// Precedence among entries of the same path (lower first): method given, more header
    /// matches, more query matches; then (in the table) the route's age, namespace/name, rule
    /// and match order.
    pub rank: (u8, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>),
}

/// A route attached to one listener, with the host names it serves there.
pub(super) struct Attachment {
    pub gateway: usize,
    pub listener: usize,
    pub hosts: Vec<String>,
}

/// A route of ours, compiled. Shared with the next compile, which reuses it while the route is
/// the same object and nothing else it reads has changed.
pub(super) struct RoutePlan {
    pub route: Arc<HTTPRoute>,
    pub namespace: String,
    pub name: String,
    /// `namespace/name`, the id of its table routes.
    pub id: String,
    pub entries: Vec<Entry>,
    pub attachments: Vec<Attachment>,
    pub status: Arc<Value>,
}

/// What a compile of HTTPRoutes leaves for the next one: the plan of every route of ours, by
/// the route object it was made from, and the upstreams made for their Service backends.
#[derive(Default)]
pub struct RouteCache {
    /// By the address of the `HTTPRoute` (kept alive by the plan, so never reused meanwhile).
    plans: HashMap<usize, Arc<RoutePlan>>,
    made: BTreeMap<String, Arc<Upstream>>,
}

impl std::fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCache")
            .field("plans", &self.plans.len())
            .field("made", &self.made.len())
            .finish()
    }
}

fn address(route: &Arc<HTTPRoute>) -> usize {
    Arc::as_ptr(route) as usize
}

impl RouteCache {
    /// Whether `route` (this very object) was planned by the compile that left the cache.
    pub(super) fn planned(&self, route: &Arc<HTTPRoute>) -> bool {
        self.plans
            .get(&address(route))
            .is_some_and(|p| Arc::ptr_eq(&p.route, route))
    }
}

/// Where a route's backends come from.
pub(super) struct Backends<'s> {
    pub snapshot: &'s super::Snapshot,
    pub egress: Arc<crate::upstream::Egress>,
    /// The accepted GatewayUpstreams by `namespace/name` (backendRefs of kind
    /// `gatehouse.dev/GatewayUpstream`).
    pub upstreams: &'s BTreeMap<String, Arc<Upstream>>,
    /// Upstreams made so far, by key.
    pub made: BTreeMap<String, Arc<Upstream>>,
}

/// Compiles every route that names one of `gateways` as a parent, oldest first (the order is
/// their precedence among equals). `reuse`: the cache of the last compile, when everything but
/// the HTTPRoutes is as it was then; its plans of routes that are the same objects are reused
/// (their attachments counted again on the listeners).
pub(super) fn plan(
    routes: &[Arc<HTTPRoute>],
    gateways: &mut [GatewayPlan<'_>],
    backends: &mut Backends<'_>,
    controller: &str,
    reuse: Option<&RouteCache>,
) -> (Vec<Arc<RoutePlan>>, RouteCache) {
    // The namespace borrowed ("default" when unset): no allocation per comparison.
    fn age_key(r: &HTTPRoute) -> (&Option<Time>, &str, &Option<String>) {
        let m = &r.metadata;
        (
            &m.creation_timestamp,
            m.namespace.as_deref().unwrap_or("default"),
            &m.name,
        )
    }
    let mut sorted: Vec<&Arc<HTTPRoute>> = routes.iter().collect();
    sorted.sort_by(|a, b| age_key(a).cmp(&age_key(b)));
    if let Some(old) = reuse {
        backends.made = old.made.clone();
    }
    let mut out = Vec::new();
    for route in sorted {
        if let Some(p) = reuse.and_then(|c| c.plans.get(&address(route))) {
            if Arc::ptr_eq(&p.route, route) {
                for a in &p.attachments {
                    gateways[a.gateway].listeners[a.listener].attached += 1;
                }
                out.push(p.clone());
                continue;
            }
        }
        let namespace = route.metadata.namespace.as_deref().unwrap_or("default");
        let ours: Vec<(&ParentReference, usize)> = route
            .spec
            .parent_refs
            .iter()
            .filter(|p| {
                api_group(p.group.as_deref()) == GATEWAY_GROUP
                    && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
            })
            .filter_map(|p| {
                let gw_ns = p.namespace.as_deref().unwrap_or(namespace);
                let i = gateways
                    .iter()
                    .position(|g| g.namespace == gw_ns && g.name == p.name)?;
                Some((p, i))
            })
            .collect();
        if ours.is_empty() {
            continue;
        }
        let namespace = namespace.to_string();
        out.push(Arc::new(plan_route(
            route, namespace, &ours, gateways, backends, controller,
        )));
    }
    // Upstreams of Services no plan uses any more are dropped.
    let used: BTreeSet<&str> = out
        .iter()
        .flat_map(|p| &p.entries)
        .flat_map(|e| &e.rule.backends)
        .filter_map(|b| b.upstream.as_ref())
        .map(|u| u.key.as_str())
        .collect();
    backends.made.retain(|k, _| used.contains(k.as_str()));
    let cache = RouteCache {
        plans: out.iter().map(|p| (address(&p.route), p.clone())).collect(),
        made: backends.made.clone(),
    };
    (out, cache)
}

fn plan_route(
    route: &Arc<HTTPRoute>,
    namespace: String,
    parents: &[(&ParentReference, usize)],
    gateways: &mut [GatewayPlan<'_>],
    backends: &mut Backends<'_>,
    controller: &str,
) -> RoutePlan {
    let name = route.metadata.name.clone().unwrap_or_default();
    let g = route.metadata.generation;
    let mut plan = RoutePlan {
        route: route.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        id: format!("{namespace}/{name}"),
        entries: Vec::new(),
        attachments: Vec::new(),
        status: Arc::new(Value::Null),
    };
    // The spec itself: what the CRD's validation rules refuse, and what is not served.
    let compiled = compile_rules(route, &namespace, &name, backends);
    let mut parent_status = Vec::new();
    for &(p, gi) in parents {
        let gw = &mut gateways[gi];
        let mut conds = Vec::new();
        let accepted = match &compiled {
            Err(msg) => Err(("UnsupportedValue", msg.clone())),
            Ok(_) => {
                let labels = labels_of(&backends.snapshot.gateway_api.namespaces, &namespace);
                attach(route, &namespace, &labels, p, gw, gi, &mut plan.attachments)
            }
        };
        match &accepted {
            Ok(()) => conds.push(condition(
                "Accepted",
                true,
                "Accepted",
                "the route is attached",
                g,
            )),
            Err((reason, msg)) => conds.push(condition("Accepted", false, reason, msg, g)),
        }
        match &compiled {
            Ok((_, None)) => conds.push(condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "all references resolved",
                g,
            )),
            Ok((_, Some((reason, msg)))) => conds.push(condition("ResolvedRefs", false, reason, msg, g)),
            Err(_) => conds.push(condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "no references were checked",
                g,
            )),
        }
        let mut parent_ref = object([
            ("group", Value::from(GATEWAY_GROUP)),
            ("kind", Value::from("Gateway")),
            ("namespace", Value::from(gw.namespace.as_str())),
            ("name", Value::from(p.name.as_str())),
        ]);
        if let Some(s) = &p.section_name {
            parent_ref["sectionName"] = Value::from(s.as_str());
        }
        if let Some(port) = p.port {
            parent_ref["port"] = Value::from(port);
        }
        parent_status.push(object([
            ("parentRef", parent_ref),
            ("controllerName", Value::from(controller)),
            ("conditions", Value::Array(conds)),
        ]));
    }
    if let Ok((entries, _)) = compiled {
        plan.entries = entries;
    }
    // Other controllers' entries stay as they are (only they are copied).
    let others = route
        .status
        .as_ref()
        .and_then(|s| s.get("parents")?.as_array())
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) != Some(controller));
    let mut all: Vec<Value> = others.cloned().collect();
    all.extend(parent_status);
    plan.status = Arc::new(object([("parents", Value::Array(all))]));
    plan
}

/// Attaches the route to the listeners of `gw` that `p` names and that take it.
fn attach(
    route: &HTTPRoute,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    p: &ParentReference,
    gw: &mut GatewayPlan<'_>,
    gi: usize,
    out: &mut Vec<Attachment>,
) -> Result<(), (&'static str, String)> {
    if let Some((_, msg)) = &gw.refused {
        return Err(("NoMatchingParent", format!("the Gateway is not accepted: {msg}")));
    }
    let named: Vec<usize> = (0..gw.listeners.len())
        .filter(|&i| {
            let l = gw.listeners[i].spec;
            p.section_name.as_deref().is_none_or(|s| s == l.name) && p.port.is_none_or(|port| port == l.port)
        })
        .collect();
    if named.is_empty() {
        return Err((
            "NoMatchingParent",
            "no listener of the Gateway matches the parentRef's sectionName and port".into(),
        ));
    }
    let allowed: Vec<usize> = named
        .into_iter()
        .filter(|&i| {
            let l = &gw.listeners[i];
            l.accepts_routes()
                && l.takes_httproute
                && namespace_allowed(l.spec, &gw.namespace, namespace, labels)
        })
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            "the listeners do not allow HTTPRoutes from this namespace".into(),
        ));
    }
    let mut any = false;
    for i in allowed {
        let l = &mut gw.listeners[i];
        let hosts: Vec<String> = route
            .spec
            .hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let listener_host = l.hostname().map(str::to_ascii_lowercase);
        if let Some(hosts) = intersect(listener_host.as_deref(), &hosts) {
            l.attached += 1;
            any = true;
            out.push(Attachment {
                gateway: gi,
                listener: i,
                hosts,
            });
        }
    }
    if !any {
        return Err((
            "NoMatchingListenerHostname",
            "no listener host name intersects the route's hostnames".into(),
        ));
    }
    Ok(())
}

/// The labels of namespace `ns`; every namespace has `kubernetes.io/metadata.name` (set
/// automatically since Kubernetes 1.21, added here for older API servers and folders).
fn labels_of(all: &BTreeMap<String, BTreeMap<String, String>>, ns: &str) -> BTreeMap<String, String> {
    let mut labels = all.get(ns).cloned().unwrap_or_default();
    labels
        .entry("kubernetes.io/metadata.name".to_string())
        .or_insert_with(|| ns.to_string());
    labels
}

fn namespace_allowed(
    l: &crate::api::gateway_api::Listener,
    gw_ns: &str,
    route_ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let ns = l.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => ns
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| selects(s, labels)),
        "Same" => gw_ns == route_ns,
        _ => false,
    }
}

type Problem = (&'static str, String);

/// The route's entries and its first unresolved reference, or why the route cannot be served.
fn compile_rules(
    route: &HTTPRoute,
    namespace: &str,
    name: &str,
    backends: &mut Backends<'_>,
) -> Result<(Vec<Entry>, Option<Problem>), String> {
    for h in &route.spec.hostnames {
        if !valid_hostname(h) {
            return Err(format!("hostname {h:?} is not a valid host name"));
        }
    }
    let mut entries = Vec::new();
    let mut unresolved = None;
    for (ri, spec_rule) in route.spec.rules.iter().enumerate() {
        let rule = spec_rule;
        let (mut base, problem) = rule_action(rule, namespace, backends)?;
        if unresolved.is_none() {
            unresolved = problem;
        }
        base.source = format!("{namespace}/{name} rule {ri}");
        let default_match = [Default::default()];
        let matches = if rule.matches.is_empty() {
            &default_match[..]
        } else {
            &rule.matches[..]
        };
        for (mi, m) in matches.iter().enumerate() {
            let path = m.path.clone().unwrap_or_default();
            let value = path.value.clone().unwrap_or_else(|| "/".into());
            filters::check_path(&value)?;
            let (pattern, path_match) = match path.type_.as_deref().unwrap_or("PathPrefix") {
                "Exact" => (
                    PathPattern::literal(&value, false),
                    PathMatch::Exact(value.clone()),
                ),
                "PathPrefix" => (
                    PathPattern::literal(&value, true),
                    PathMatch::Prefix(value.trim_end_matches('/').to_string()),
                ),
                other => return Err(format!("path match type {other} is not served")),
            };
            if matches!(path_match, PathMatch::Exact(_)) && uses_prefix_replacement(rule) {
                return Err("ReplacePrefixMatch needs a PathPrefix match".into());
            }
            let methods = match &m.method {
                None => MethodSet::ALL,
                Some(x) => MethodSet::parse(&[x]).map_err(|e| e.to_string())?,
            };
            let mut headers: Vec<HeaderMatch> = Vec::new();
            for h in &m.headers {
                if h.type_.as_deref().unwrap_or("Exact") != "Exact" {
                    return Err("header matches of type RegularExpression are not served".into());
                }
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("{:?} is not a header name", h.name))?;
                if !headers.iter().any(|x| x.name == name) {
                    headers.push(HeaderMatch {
                        name,
                        value: h.value.clone(),
                    });
                }
            }
            let mut query: Vec<QueryMatch> = Vec::new();
            for q in &m.query_params {
                if q.type_.as_deref().unwrap_or("Exact") != "Exact" {
                    return Err("query matches of type RegularExpression are not served".into());
                }
                if !query.iter().any(|x| x.name == q.name) {
                    query.push(QueryMatch {
                        name: q.name.clone(),
                        value: q.value.clone(),
                    });
                }
            }
            let rank = (
                u8::from(m.method.is_none()),
                std::cmp::Reverse(headers.len()),
                std::cmp::Reverse(query.len()),
            );
            let rule = GatewayRule {
                source: base.source.clone(),
                path: path_match,
                headers,
                query,
                request_headers: base.request_headers.clone(),
                response_headers: base.response_headers.clone(),
                redirect: base.redirect.clone(),
                rewrite: base.rewrite.clone(),
                backends: base.backends.clone(),
            };
            let _ = mi;
            entries.push(Entry {
                rule_name: spec_rule.name.clone(),
                pattern,
                methods,
                rule: Arc::new(rule),
                rank,
            });
        }
    }
    Ok((entries, unresolved))
}

fn uses_prefix_replacement(rule: &HTTPRouteRule) -> bool {
    rule.filters.iter().any(|f| {
        let p = f
            .request_redirect
            .as_ref()
            .and_then(|r| r.path.as_ref())
            .or(f.url_rewrite.as_ref().and_then(|r| r.path.as_ref()));
        p.is_some_and(|p| p.type_ == "ReplacePrefixMatch")
    })
}

/// A rule's filters and backends (shared by its matches).
fn rule_action(
    rule: &HTTPRouteRule,
    namespace: &str,
    backends: &mut Backends<'_>,
) -> Result<(GatewayRule, Option<Problem>), String> {
    let mut out = GatewayRule::default();
    for f in &rule.filters {
        filters::apply(f, &mut out)?;
    }
    if out.redirect.is_some() && out.rewrite.is_some() {
        return Err("a rule cannot both redirect and rewrite".into());
    }
    let mut problem = None;
    for b in &rule.backend_refs {
        if !b.filters.is_empty() {
            return Err("filters on backendRefs are not served".into());
        }
        let weight = b.weight.unwrap_or(1).max(0) as u32;
        match backends.resolve(b, namespace) {
            Ok(u) => out.backends.push(WeightedBackend {
                upstream: Some(u),
                weight,
            }),
            Err(p) => {
                problem.get_or_insert(p);
                out.backends.push(WeightedBackend {
                    upstream: None,
                    weight,
                });
            }
        }
    }
    Ok((out, problem))
}

impl Backends<'_> {
    /// A backendRef to one of Gatehouse's own `GatewayUpstream`s (its endpoints, balancing,
    /// health checks, breaker and retries); its `port` is not used.
    fn gateway_upstream(
        &self,
        b: &crate::api::gateway_api::HTTPBackendRef,
        namespace: &str,
    ) -> Result<Arc<Upstream>, Problem> {
        let ns = reference_namespace(
            &self.snapshot.gateway_api.grants,
            (GATEWAY_GROUP, "HTTPRoute", namespace),
            b.namespace.as_deref(),
            (crate::api::GROUP, "GatewayUpstream", &b.name),
        )?;
        let key = format!("{ns}/{}", b.name);
        self.upstreams.get(&key).cloned().ok_or_else(|| {
            (
                "BackendNotFound",
                format!("GatewayUpstream {key} does not exist or is not accepted"),
            )
        })
    }

    /// The upstream of a backendRef, or why there is none (a ResolvedRefs reason).
    fn resolve(
        &mut self,
        b: &crate::api::gateway_api::HTTPBackendRef,
        namespace: &str,
    ) -> Result<Arc<Upstream>, Problem> {
        let group = b.group.as_deref().unwrap_or("");
        let kind = b.kind.as_deref().unwrap_or("Service");
        if group == crate::api::GROUP && kind == "GatewayUpstream" {
            return self.gateway_upstream(b, namespace);
        }
        if !group.is_empty() || kind != "Service" {
            return Err((
                "InvalidKind",
                format!("backendRef {group}/{kind} {} is not a Service", b.name),
            ));
        }
        let ns = reference_namespace(
            &self.snapshot.gateway_api.grants,
            (GATEWAY_GROUP, "HTTPRoute", namespace),
            b.namespace.as_deref(),
            ("", "Service", &b.name),
        )?;
        let Some(port) = b.port.and_then(|p| u16::try_from(p).ok()) else {
            return Err((
                "UnsupportedValue",
                format!("backendRef Service {ns}/{} needs a port", b.name),
            ));
        };
        let svc_key = format!("{ns}/{}", b.name);
        let Some(svc) = self.snapshot.services.get(&svc_key) else {
            return Err(("BackendNotFound", format!("Service {svc_key} does not exist")));
        };
        let key = format!("{svc_key}:{port}");
        if let Some(u) = self.made.get(&key) {
            return Ok(u.clone());
        }
        let ports: Vec<_> = svc.ports.iter().filter(|p| p.port == port).collect();
        if ports.is_empty() {
            return Err(("BackendNotFound", format!("Service {svc_key} has no port {port}")));
        }
        let mut endpoints = Vec::new();
        for p in ports {
            for a in &p.addresses {
                let host = if a.contains(':') {
                    format!("[{a}]")
                } else {
                    a.clone()
                };
                if let Ok(e) = Endpoint::parse(&format!("http://{host}:{}", p.target_port), Protocol::Http) {
                    endpoints.push(e);
                }
            }
        }
        let mut up = Upstream::new(
            key.clone(),
            Protocol::Http,
            endpoints,
            crate::upstream::Balancer::RoundRobin,
            None,
            None,
            None,
            None,
        );
        up.egress = self.egress.clone();
        let up = Arc::new(up);
        self.made.insert(key, up.clone());
        Ok(up)
    }
}
