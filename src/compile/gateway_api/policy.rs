//! `RoutePolicy` attachment: which policy fields apply to each compiled HTTPRoute entry, and
//! the policies' status (per Gateway they reach).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::refs::condition;
use crate::api::gateway_api::GATEWAY_GROUP;
use crate::api::RoutePolicy;
use crate::auth::AuthPolicy;
use crate::routing::{CorsRules, RateLimitPolicy};
use crate::settings::parse_duration;

/// The fields of one policy, parsed. `None`: the policy does not set that field.
#[derive(Default)]
pub(super) struct Parts {
    pub timeout: Option<Option<Duration>>,
    pub auth: Option<AuthPolicy>,
    pub rate_limit: Option<RateLimitPolicy>,
    pub cors: Option<Arc<CorsRules>>,
}

/// What applies to one entry, field by field.
#[derive(Default)]
pub(super) struct Effective {
    pub timeout: Option<Option<Duration>>,
    pub auth: Option<AuthPolicy>,
    pub rate_limit: Option<RateLimitPolicy>,
    pub cors: Option<Arc<CorsRules>>,
}

/// A target key: namespace, kind, name, section.
type Target = (String, &'static str, String, Option<String>);

/// The policies of a snapshot, indexed by target.
pub(super) struct Policies<'a> {
    pub list: Vec<&'a RoutePolicy>,
    pub parts: Vec<Result<Parts, String>>,
    by_target: BTreeMap<Target, Vec<usize>>,
}

fn ns_of(p: &RoutePolicy) -> String {
    p.metadata.namespace.clone().unwrap_or_else(|| "default".into())
}

impl<'a> Policies<'a> {
    pub fn new(policies: &'a [RoutePolicy]) -> Self {
        let mut list: Vec<&RoutePolicy> = policies.iter().collect();
        list.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, ns_of(a), &a.metadata.name).cmp(&(
                &b.metadata.creation_timestamp,
                ns_of(b),
                &b.metadata.name,
            ))
        });
        let parts = list.iter().map(|p| parse(p)).collect();
        let mut by_target: BTreeMap<Target, Vec<usize>> = BTreeMap::new();
        for (i, p) in list.iter().enumerate() {
            for t in &p.spec.target_refs {
                let kind = match (t.group.as_str(), t.kind.as_str()) {
                    (GATEWAY_GROUP, "HTTPRoute") => "HTTPRoute",
                    (GATEWAY_GROUP, "Gateway") => "Gateway",
                    _ => continue,
                };
                by_target
                    .entry((ns_of(p), kind, t.name.clone(), t.section_name.clone()))
                    .or_default()
                    .push(i);
            }
        }
        Policies {
            list,
            parts,
            by_target,
        }
    }

    /// The fields for an entry of rule `rule` of HTTPRoute `route` on listener `listener` of
    /// Gateway `gateway` (namespace, name each).
    pub fn effective(&self, route: (&str, &str, Option<&str>), gateway: (&str, &str, &str)) -> Effective {
        let mut out = Effective::default();
        if self.by_target.is_empty() {
            return out;
        }
        let (rns, rname, rule) = route;
        let (gns, gname, listener) = gateway;
        let mut levels: Vec<Target> = Vec::with_capacity(4);
        if let Some(rule) = rule {
            levels.push((rns.into(), "HTTPRoute", rname.into(), Some(rule.to_string())));
        }
        levels.push((rns.into(), "HTTPRoute", rname.into(), None));
        levels.push((gns.into(), "Gateway", gname.into(), Some(listener.to_string())));
        levels.push((gns.into(), "Gateway", gname.into(), None));
        for level in &levels {
            for &i in self.by_target.get(level).into_iter().flatten() {
                let Ok(p) = &self.parts[i] else { continue };
                if out.timeout.is_none() {
                    out.timeout = p.timeout;
                }
                if out.auth.is_none() {
                    out.auth = p.auth.clone();
                }
                if out.rate_limit.is_none() {
                    out.rate_limit = p.rate_limit.clone();
                }
                if out.cors.is_none() {
                    out.cors = p.cors.clone();
                }
            }
        }
        out
    }
}

fn parse(p: &RoutePolicy) -> Result<Parts, String> {
    let s = &p.spec;
    if s.target_refs.is_empty() {
        return Err("targetRefs is empty".into());
    }
    let mut parts = Parts::default();
    if let Some(t) = &s.timeout {
        let d = parse_duration(t).map_err(|e| format!("timeout: {e}"))?;
        parts.timeout = Some((!d.is_zero()).then_some(d));
    }
    if s.auth_required.is_some() || !s.required_roles.is_empty() || !s.required_permissions.is_empty() {
        let any_rbac = !s.required_roles.is_empty() || !s.required_permissions.is_empty();
        parts.auth = Some(AuthPolicy {
            required: s.auth_required.unwrap_or(false) || any_rbac,
            roles: s.required_roles.clone(),
            permissions: s.required_permissions.clone(),
        });
    }
    if let Some(rl) = &s.rate_limit {
        let window = parse_duration(&rl.window).map_err(|e| format!("rateLimit.window: {e}"))?;
        if window.is_zero() || rl.requests == 0 {
            return Err("rateLimit needs requests > 0 and a window > 0".into());
        }
        parts.rate_limit = Some(RateLimitPolicy {
            requests: rl.requests,
            window,
            key: super::super::parse_rate_key(rl.key.as_deref()).map_err(|e| e.to_string())?,
        });
    }
    if let Some(c) = &s.cors {
        parts.cors = Some(Arc::new(
            super::super::compile_cors(c).map_err(|e| format!("cors: {e}"))?,
        ));
    }
    Ok(parts)
}

/// What the policy status needs to know about the objects targets name.
pub(super) trait Targets {
    /// Whether Gateway `ns/name` is one of ours.
    fn has_gateway(&self, ns: &str, name: &str) -> bool;
    /// The Gateways (namespace, name) HTTPRoute `ns/name` is attached to, or `None` when the
    /// route is not one of ours.
    fn route_gateways(&self, ns: &str, name: &str) -> Option<Vec<(String, String)>>;
}

/// The status of policy `i`.
pub(super) fn status(policies: &Policies<'_>, i: usize, targets: &dyn Targets, controller: &str) -> Value {
    let p = policies.list[i];
    let g = p.metadata.generation;
    let ns = ns_of(p);
    let mut ancestors = Vec::new();
    let mut push = |group: &str, kind: &str, ans: &str, name: &str, c: Value| {
        let entry = json!({
            "ancestorRef": {"group": group, "kind": kind, "namespace": ans, "name": name},
            "controllerName": controller,
            "conditions": [c],
        });
        if !ancestors.contains(&entry) {
            ancestors.push(entry);
        }
    };
    for t in &p.spec.target_refs {
        let problem = match &policies.parts[i] {
            Err(msg) => Some(("Invalid", msg.clone())),
            Ok(_) => None,
        };
        let found: Option<Vec<(String, String)>> = match (t.group.as_str(), t.kind.as_str()) {
            (GATEWAY_GROUP, "Gateway") => targets
                .has_gateway(&ns, &t.name)
                .then(|| vec![(ns.clone(), t.name.clone())]),
            (GATEWAY_GROUP, "HTTPRoute") => targets.route_gateways(&ns, &t.name),
            _ => {
                let c = condition(
                    "Accepted",
                    false,
                    "Invalid",
                    &format!(
                        "targetRefs: {}/{} is not an HTTPRoute or a Gateway",
                        t.group, t.kind
                    ),
                    g,
                );
                push(&t.group, &t.kind, &ns, &t.name, c);
                continue;
            }
        };
        match (found, problem) {
            (None, _) => {
                let c = condition(
                    "Accepted",
                    false,
                    "TargetNotFound",
                    &format!("{} {ns}/{} is not served by this gateway", t.kind, t.name),
                    g,
                );
                push(&t.group, &t.kind, &ns, &t.name, c);
            }
            (Some(gws), problem) => {
                let c = match &problem {
                    Some((reason, msg)) => condition("Accepted", false, reason, msg, g),
                    None => condition("Accepted", true, "Accepted", "the policy is in force", g),
                };
                if gws.is_empty() {
                    push(&t.group, &t.kind, &ns, &t.name, c.clone());
                }
                for (gns, gname) in gws {
                    push(GATEWAY_GROUP, "Gateway", &gns, &gname, c.clone());
                }
            }
        }
    }
    json!({ "ancestors": ancestors })
}
