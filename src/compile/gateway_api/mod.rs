//! The Gateway API front door: GatewayClasses, Gateways, HTTPRoutes and ReferenceGrants of a
//! snapshot compiled into the sockets of the Gateways (each with its own strict table of
//! routes) and the status of every object this gateway owns.
//!
//! Pure, as the rest of `compile`: the status is returned as the JSON to write (conditions
//! without `lastTransitionTime`, which the status writer fills in, keeping the time of a
//! condition whose status did not change).

mod filters;
mod gateways;
mod policy;
mod refs;
mod routes;
#[cfg(test)]
mod tests;

pub use routes::RouteCache;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::routing::{GatewayListeners, ListenerSocket, Route, RoutingTable, TableBuilder};
use crate::upstream::Upstream;

use super::Snapshot;
use refs::condition;

/// What the Gateway API part of `compile` is told by the static configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiOptions {
    /// The `controllerName` of the GatewayClasses this gateway takes.
    pub controller_name: String,
    /// The addresses Gateways are given, in order.
    pub pool: Vec<IpAddr>,
    /// Gateways behind one Service instead (`gateway_api.service`).
    pub shared: Option<SharedAddress>,
}

/// Every Gateway served on the pods' own addresses behind one Service, whose address they
/// report; a listener port belongs to the oldest Gateway that asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedAddress {
    /// `namespace/name` of the Service.
    pub service: String,
    /// Where the listeners are bound (`server.bind_address`).
    pub bind: IpAddr,
    /// The gateway's own ports (proxy, HTTPS, admin, metrics), which no listener may take.
    pub own_ports: Vec<(u16, &'static str)>,
}

/// The kinds whose status this part writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiKind {
    GatewayClass,
    Gateway,
    HTTPRoute,
    RoutePolicy,
}

impl std::fmt::Display for ApiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApiKind::GatewayClass => "GatewayClass",
            ApiKind::Gateway => "Gateway",
            ApiKind::HTTPRoute => "HTTPRoute",
            ApiKind::RoutePolicy => "RoutePolicy",
        })
    }
}

/// The whole `status` one object should have.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiStatus {
    pub kind: ApiKind,
    /// `None` for GatewayClasses (cluster-scoped).
    pub namespace: Option<String>,
    pub name: String,
    /// The object's `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
    /// Shared with the compile that follows when the object's status did not change (the
    /// status writer passes over an unchanged status by pointer).
    pub status: Arc<serde_json::Value>,
}

/// What the Gateway API part adds to a compiled table.
#[derive(Debug, Default)]
pub struct GatewayApiCompiled {
    pub listeners: GatewayListeners,
    /// The upstreams of resolved backendRefs (bound by the registry with the table's own).
    pub upstreams: Vec<Arc<Upstream>>,
    pub status: Vec<ApiStatus>,
    /// What the next compile may reuse.
    pub cache: RouteCache,
}

/// The features GatewayClasses of ours report in `status.supportedFeatures` (sorted).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "HTTPRouteMethodMatching",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteResponseHeaderModification",
    "ReferenceGrant",
];

/// Compiles the snapshot's Gateway API objects. `shared` is the main table, whose verifier,
/// egress and channels the listener tables share. `prev`: the snapshot of the last compile and
/// the cache it left; its route plans are reused when nothing but HTTPRoutes changed.
pub fn compile(
    snapshot: &Snapshot,
    options: &super::CompileOptions,
    gw: &GatewayApiOptions,
    shared: &RoutingTable,
    prev: Option<(&Snapshot, &RouteCache)>,
) -> GatewayApiCompiled {
    let mut out = GatewayApiCompiled::default();
    let objects = &snapshot.gateway_api;

    // Classes: ours are those with our controller name.
    let mut classes = BTreeSet::new();
    for c in &objects.classes {
        if c.spec.controller_name != gw.controller_name {
            continue;
        }
        let name = c.metadata.name.clone().unwrap_or_default();
        let g = c.metadata.generation;
        let accepted = match &c.spec.parameters_ref {
            Some(p) => condition(
                "Accepted",
                false,
                "InvalidParameters",
                &format!(
                    "parametersRef {}/{} {}: this gateway takes no parameters",
                    p.group, p.kind, p.name
                ),
                g,
            ),
            None => {
                classes.insert(name.clone());
                condition(
                    "Accepted",
                    true,
                    "Accepted",
                    "Gatehouse serves the Gateways of this class",
                    g,
                )
            }
        };
        let features: Vec<Value> = SUPPORTED_FEATURES.iter().map(|f| json!({ "name": f })).collect();
        out.status.push(ApiStatus {
            kind: ApiKind::GatewayClass,
            namespace: None,
            name,
            generation: g,
            status: Arc::new(json!({ "conditions": [accepted], "supportedFeatures": features })),
        });
    }

    let mut plans = gateways::plan(&objects.gateways, &classes, gw, snapshot);
    let mut backends = routes::Backends {
        snapshot,
        egress: options.tenancy.egress.clone(),
        upstreams: &shared.upstreams,
        made: BTreeMap::new(),
    };
    let reuse = prev
        .filter(|(before, _)| same_route_inputs(before, snapshot))
        .map(|(_, cache)| cache);
    let (route_plans, cache) = routes::plan(
        &objects.routes,
        &mut plans,
        &mut backends,
        &gw.controller_name,
        reuse,
    );
    out.cache = cache;
    let policies = policy::Policies::new(&objects.policies);
    let default_cors = options
        .default_cors
        .as_ref()
        .and_then(|c| super::compile_cors(c).ok())
        .map(Arc::new);
    let ctx = TableContext {
        snapshot,
        options,
        shared,
        policies: &policies,
        default_cors,
    };

    for (gi, plan) in plans.iter().enumerate() {
        let Some(ip) = plan.address.filter(|_| plan.refused.is_none()) else {
            continue;
        };
        let mut ports: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (li, l) in plan.listeners.iter().enumerate() {
            if l.programmed() {
                ports.entry(l.spec.port as u16).or_default().push(li);
            }
        }
        for (port, lis) in ports {
            let table = listener_table(&ctx, plan, gi, &lis, &route_plans);
            out.listeners.sockets.push(ListenerSocket {
                addr: SocketAddr::new(ip, port),
                tls: plan.listeners[lis[0]].https,
                gateway: format!("{}/{}", plan.namespace, plan.name),
                table: Arc::new(table),
            });
        }
    }
    out.upstreams = backends.made.into_values().collect();

    for plan in &plans {
        out.status.push(ApiStatus {
            kind: ApiKind::Gateway,
            namespace: Some(plan.namespace.clone()),
            name: plan.name.clone(),
            generation: plan.generation,
            status: Arc::new(plan.status()),
        });
    }
    let targets = Attached {
        gateways: &plans,
        routes: &route_plans,
    };
    for (i, p) in policies.list.iter().enumerate() {
        out.status.push(ApiStatus {
            kind: ApiKind::RoutePolicy,
            namespace: Some(p.metadata.namespace.clone().unwrap_or_else(|| "default".into())),
            name: p.metadata.name.clone().unwrap_or_default(),
            generation: p.metadata.generation,
            status: Arc::new(policy::status(&policies, i, &targets, &gw.controller_name)),
        });
    }
    for r in &route_plans {
        out.status.push(ApiStatus {
            kind: ApiKind::HTTPRoute,
            namespace: Some(r.namespace.clone()),
            name: r.name.clone(),
            generation: r.route.metadata.generation,
            status: r.status.clone(),
        });
    }
    // Routes that no longer name a Gateway of ours lose our entries.
    for r in objects.routes.iter().filter(|r| !out.cache.planned(r)) {
        let parents = r
            .status
            .as_ref()
            .and_then(|s| s.get("parents")?.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mine =
            |p: &Value| p.get("controllerName").and_then(Value::as_str) == Some(gw.controller_name.as_str());
        if parents.iter().any(mine) {
            let others: Vec<Value> = parents.iter().filter(|p| !mine(p)).cloned().collect();
            out.status.push(ApiStatus {
                kind: ApiKind::HTTPRoute,
                namespace: Some(r.metadata.namespace.clone().unwrap_or_else(|| "default".into())),
                name: r.metadata.name.clone().unwrap_or_default(),
                generation: r.metadata.generation,
                status: Arc::new(json!({ "parents": others })),
            });
        }
    }
    out
}

/// Whether everything a route plan reads besides the route itself is as it was: classes and
/// Gateways (status aside: addresses and counts do not change a route's attachment),
/// ReferenceGrants, namespace labels, Secrets, Services and GatewayUpstreams.
fn same_route_inputs(a: &Snapshot, b: &Snapshot) -> bool {
    fn same<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| eq(a, b))
    }
    let (x, y) = (&a.gateway_api, &b.gateway_api);
    same(&x.classes, &y.classes, |a, b| {
        a.metadata == b.metadata && a.spec == b.spec
    }) && same(&x.gateways, &y.gateways, |a, b| {
        a.metadata == b.metadata && a.spec == b.spec
    }) && x.grants == y.grants
        && x.namespaces == y.namespaces
        && a.secrets == b.secrets
        && a.services == b.services
        && a.upstreams == b.upstreams
}

/// What every listener table of one compile shares.
struct TableContext<'a> {
    snapshot: &'a Snapshot,
    options: &'a super::CompileOptions,
    shared: &'a RoutingTable,
    policies: &'a policy::Policies<'a>,
    default_cors: Option<Arc<crate::routing::CorsRules>>,
}

/// The Gateways and routes of a compile, as policy targets.
struct Attached<'a, 'b> {
    gateways: &'a [gateways::GatewayPlan<'b>],
    routes: &'a [Arc<routes::RoutePlan>],
}

impl policy::Targets for Attached<'_, '_> {
    fn has_gateway(&self, ns: &str, name: &str) -> bool {
        self.gateways.iter().any(|g| g.namespace == ns && g.name == name)
    }

    fn route_gateways(&self, ns: &str, name: &str) -> Option<Vec<(String, String)>> {
        let r = self.routes.iter().find(|r| r.namespace == ns && r.name == name)?;
        let mut out: Vec<(String, String)> = Vec::new();
        for a in &r.attachments {
            let g = &self.gateways[a.gateway];
            let key = (g.namespace.clone(), g.name.clone());
            if !out.contains(&key) {
                out.push(key);
            }
        }
        Some(out)
    }
}

/// The strict table of one socket of a Gateway: the routes attached to its listeners `lis`.
fn listener_table(
    ctx: &TableContext<'_>,
    plan: &gateways::GatewayPlan<'_>,
    gi: usize,
    lis: &[usize],
    route_plans: &[Arc<routes::RoutePlan>],
) -> RoutingTable {
    let (snapshot, options, shared) = (ctx.snapshot, ctx.options, ctx.shared);
    let mut builder = TableBuilder::strict();
    let mut certs = crate::tls::StoreBuilder::new(&snapshot.secrets);
    for &li in lis {
        let l = &plan.listeners[li];
        let host = l.hostname().map(str::to_ascii_lowercase);
        if let Some(h) = &host {
            builder.claim_host(h, &plan.namespace);
        }
        if let Some((ns, name)) = &l.certificate {
            match &host {
                Some(h) => {
                    let _ = certs.add_route(ns, name, std::slice::from_ref(h));
                }
                None => certs.set_default(ns, name),
            }
        }
    }
    let mut items = Vec::new();
    for (ri, rp) in route_plans.iter().enumerate() {
        for a in rp
            .attachments
            .iter()
            .filter(|a| a.gateway == gi && lis.contains(&a.listener))
        {
            for (ei, e) in rp.entries.iter().enumerate() {
                items.push((e.rank, ri, ei, a));
            }
        }
    }
    items.sort_by_key(|(rank, ri, ei, _)| (*rank, *ri, *ei));
    let mut upstreams: BTreeMap<String, Arc<Upstream>> = BTreeMap::new();
    for (_, ri, ei, a) in items {
        let rp = &route_plans[ri];
        let e = &rp.entries[ei];
        let policy = ctx.policies.effective(
            (&rp.namespace, &rp.name, e.rule_name.as_deref()),
            (&plan.namespace, &plan.name, &plan.listeners[a.listener].spec.name),
        );
        let mut first = None;
        for b in &e.rule.backends {
            if let Some(u) = &b.upstream {
                upstreams.entry(u.key.clone()).or_insert_with(|| u.clone());
                first.get_or_insert_with(|| u.clone());
            }
        }
        let id = rp.id.clone();
        let route = Route {
            upstream: first.unwrap_or_else(|| Arc::new(Upstream::empty(id.clone()))),
            id,
            namespace: rp.namespace.clone(),
            name: rp.name.clone(),
            path: e.pattern.raw.clone(),
            hosts: a.hosts.clone(),
            methods: e.methods,
            timeout: policy.timeout.unwrap_or(options.default_timeout),
            auth: policy.auth.unwrap_or_default(),
            rate_limit: policy.rate_limit,
            cors: policy.cors.or_else(|| ctx.default_cors.clone()),
            rewrite: None,
            websocket: true,
            tls_secret: None,
            gateway: Some(e.rule.clone()),
            series: Default::default(),
        };
        builder.add(Arc::new(route), &e.pattern);
    }
    for u in upstreams.into_values() {
        builder.add_upstream(u);
    }
    let mut table = builder.build();
    table.auth = shared.auth.clone();
    table.egress = shared.egress.clone();
    table.channels = shared.channels.clone();
    table.tls = certs.build();
    table
}
