//! Gateways: which are ours, their addresses, and the judgement of each listener (protocol,
//! route kinds, certificates, conflicts). Routes are attached afterwards (`routes.rs`); the
//! Gateway's status is written once their counts are known.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Value};

use super::refs::{condition, object, reference_namespace, valid_hostname};
use crate::api::gateway_api::{Gateway, Listener, GATEWAY_GROUP};
use crate::tls as certs;

/// A Gateway of one of our classes, judged.
pub(super) struct GatewayPlan<'a> {
    pub gw: &'a Gateway,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    /// `Some`: why the Gateway is not accepted (reason, message).
    pub refused: Option<(&'static str, String)>,
    pub address: Option<IpAddr>,
    /// The addresses `status.addresses` reports when they are not `address` (a shared
    /// Service's).
    pub reported: Option<Vec<Value>>,
    /// Why no address could be given (reason, message).
    pub address_problem: Option<(&'static str, String)>,
    pub listeners: Vec<ListenerPlan<'a>>,
}

/// One listener, judged.
pub(super) struct ListenerPlan<'a> {
    pub spec: &'a Listener,
    /// The route kinds it takes (`HTTPRoute` or nothing).
    pub kinds: Vec<Value>,
    pub takes_httproute: bool,
    /// Accepted=False (reason, message).
    pub refused: Option<(&'static str, String)>,
    /// ResolvedRefs=False (reason, message).
    pub unresolved: Option<(&'static str, String)>,
    /// Conflicted=True (reason, message).
    pub conflicted: Option<(&'static str, String)>,
    /// The certificate Secret (namespace, name) of an HTTPS listener that resolved.
    pub certificate: Option<(String, String)>,
    pub https: bool,
    /// Routes attached to it (set by `routes.rs`).
    pub attached: u32,
}

impl ListenerPlan<'_> {
    /// Whether requests are served on it.
    pub fn programmed(&self) -> bool {
        self.refused.is_none() && self.unresolved.is_none() && self.conflicted.is_none()
    }

    /// Whether routes may attach to it.
    pub fn accepts_routes(&self) -> bool {
        self.refused.is_none() && self.conflicted.is_none()
    }

    pub fn hostname(&self) -> Option<&str> {
        self.spec.hostname.as_deref().filter(|h| !h.is_empty())
    }
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Judges every Gateway whose class is one of `classes`, oldest first, and gives each an
/// address from `pool`.
pub(super) fn plan<'a>(
    gateways: &'a [Gateway],
    classes: &BTreeSet<String>,
    options: &super::GatewayApiOptions,
    snapshot: &super::Snapshot,
) -> Vec<GatewayPlan<'a>> {
    let mut ours: Vec<&Gateway> = gateways
        .iter()
        .filter(|g| classes.contains(&g.spec.gateway_class_name))
        .collect();
    ours.sort_by(|a, b| {
        (
            &a.metadata.creation_timestamp,
            ns_of(&a.metadata),
            &a.metadata.name,
        )
            .cmp(&(
                &b.metadata.creation_timestamp,
                ns_of(&b.metadata),
                &b.metadata.name,
            ))
    });
    let mut plans: Vec<GatewayPlan<'a>> = ours.into_iter().map(|gw| judge(gw, snapshot)).collect();
    match &options.shared {
        Some(shared) => share_address(&mut plans, shared, snapshot),
        None => assign_addresses(&mut plans, &options.pool),
    }
    plans
}

/// Behind one Service: every accepted Gateway is bound on `shared.bind` and reports the
/// Service's addresses; each listener port belongs to the oldest Gateway that asks for it, and
/// none may take one of the gateway's own ports.
fn share_address(plans: &mut [GatewayPlan<'_>], shared: &super::SharedAddress, snapshot: &super::Snapshot) {
    let reported: Vec<Value> = snapshot
        .services
        .get(&shared.service)
        .map(|s| s.addresses.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let type_ = if a.parse::<IpAddr>().is_ok() {
                "IPAddress"
            } else {
                "Hostname"
            };
            json!({"type": type_, "value": a})
        })
        .collect();
    let mut owners: BTreeMap<u16, String> = BTreeMap::new();
    for p in plans.iter_mut().filter(|p| p.refused.is_none()) {
        let me = format!("{}/{}", p.namespace, p.name);
        for l in p.listeners.iter_mut().filter(|l| l.refused.is_none()) {
            let Ok(port) = u16::try_from(l.spec.port) else {
                continue;
            };
            if let Some((_, what)) = shared.own_ports.iter().find(|(own, _)| *own == port) {
                l.refused = Some((
                    "PortUnavailable",
                    format!("port {port} is the gateway's own {what} port"),
                ));
                continue;
            }
            match owners.get(&port) {
                Some(owner) if *owner != me => {
                    l.refused = Some((
                        "PortUnavailable",
                        format!(
                            "port {port} is served for the older Gateway {owner}: Gateways share the \
                             address of Service {}",
                            shared.service
                        ),
                    ))
                }
                _ => {
                    owners.insert(port, me.clone());
                }
            }
        }
        p.address = Some(shared.bind);
        if reported.is_empty() {
            p.address_problem = Some((
                "AddressNotAssigned",
                format!(
                    "Service {} has no address yet (served on the pods' own addresses meanwhile)",
                    shared.service
                ),
            ));
        }
        p.reported = Some(reported.clone());
    }
}

fn judge<'a>(gw: &'a Gateway, snapshot: &super::Snapshot) -> GatewayPlan<'a> {
    let namespace = ns_of(&gw.metadata);
    let name = gw.metadata.name.clone().unwrap_or_default();
    let mut refused = None;
    if let Some(p) = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        refused = Some((
            "InvalidParameters",
            format!(
                "infrastructure.parametersRef {}/{} {}: this gateway takes no parameters",
                p.group, p.kind, p.name
            ),
        ));
    }
    let mut listeners: Vec<ListenerPlan<'a>> = gw
        .spec
        .listeners
        .iter()
        .map(|l| judge_listener(l, &namespace, snapshot))
        .collect();
    mark_conflicts(&mut listeners);
    if refused.is_none() && gw.spec.listeners.is_empty() {
        refused = Some(("ListenersNotValid", "the Gateway has no listeners".to_string()));
    }
    GatewayPlan {
        gw,
        namespace,
        name,
        generation: gw.metadata.generation,
        refused,
        address: None,
        reported: None,
        address_problem: None,
        listeners,
    }
}

fn judge_listener<'a>(l: &'a Listener, namespace: &str, snapshot: &super::Snapshot) -> ListenerPlan<'a> {
    let mut p = ListenerPlan {
        spec: l,
        kinds: Vec::new(),
        takes_httproute: false,
        refused: None,
        unresolved: None,
        conflicted: None,
        certificate: None,
        https: l.protocol == "HTTPS",
        attached: 0,
    };
    if l.protocol != "HTTP" && l.protocol != "HTTPS" {
        p.refused = Some((
            "UnsupportedProtocol",
            format!("protocol {} is not served; HTTP and HTTPS are", l.protocol),
        ));
        return p;
    }
    // What the CRD's validation rules would refuse, for API servers that do not run them.
    if !(1..=65535).contains(&l.port) {
        p.refused = Some(("UnsupportedValue", format!("port {} is out of range", l.port)));
        return p;
    }
    if let Some(h) = l.hostname.as_deref().filter(|h| !h.is_empty()) {
        if !valid_hostname(h) {
            p.refused = Some((
                "UnsupportedValue",
                format!("hostname {h:?} is not a valid host name"),
            ));
            return p;
        }
    }
    match (&l.tls, p.https) {
        (Some(_), false) => {
            p.refused = Some((
                "UnsupportedValue",
                "tls must not be set on an HTTP listener".into(),
            ));
            return p;
        }
        (None, true) => {
            p.refused = Some(("UnsupportedValue", "an HTTPS listener needs tls".into()));
            return p;
        }
        (Some(t), true) if t.mode.as_deref().is_some_and(|m| m != "Terminate") => {
            p.refused = Some((
                "UnsupportedValue",
                "an HTTPS listener terminates TLS (mode Terminate)".into(),
            ));
            return p;
        }
        _ => {}
    }
    // Route kinds.
    match l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
        None => p.takes_httproute = true,
        Some(kinds) => {
            let mut bad = Vec::new();
            for k in kinds {
                if super::refs::api_group(k.group.as_deref()) == GATEWAY_GROUP && k.kind == "HTTPRoute" {
                    p.takes_httproute = true;
                } else {
                    bad.push(format!(
                        "{}/{}",
                        k.group.as_deref().unwrap_or(GATEWAY_GROUP),
                        k.kind
                    ));
                }
            }
            if !bad.is_empty() {
                p.unresolved = Some((
                    "InvalidRouteKinds",
                    format!("route kinds not served: {}; HTTPRoute is", bad.join(", ")),
                ));
            }
        }
    }
    if p.takes_httproute {
        p.kinds.push(json!({"group": GATEWAY_GROUP, "kind": "HTTPRoute"}));
    }
    if let (Some(tls), true) = (&l.tls, p.https) {
        if let Err(problem) = certificate(tls, namespace, snapshot, &mut p) {
            p.unresolved.get_or_insert(problem);
        }
    }
    p
}

/// Resolves the first certificate reference of an HTTPS listener.
fn certificate(
    tls: &crate::api::gateway_api::ListenerTls,
    namespace: &str,
    snapshot: &super::Snapshot,
    p: &mut ListenerPlan<'_>,
) -> Result<(), (&'static str, String)> {
    let Some(r) = tls.certificate_refs.first() else {
        return Err(("InvalidCertificateRef", "tls.certificateRefs is empty".into()));
    };
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err((
            "InvalidCertificateRef",
            format!("certificateRefs: {group}/{kind} is not a Secret"),
        ));
    }
    let ns = reference_namespace(
        &snapshot.gateway_api.grants,
        (GATEWAY_GROUP, "Gateway", namespace),
        r.namespace.as_deref(),
        ("", "Secret", &r.name),
    )?;
    let Some(secret) = certs::find_secret(&snapshot.secrets, ns, &r.name) else {
        return Err((
            "InvalidCertificateRef",
            format!("Secret {ns}/{} does not exist", r.name),
        ));
    };
    if let Err(e) = certs::load_server_cert(secret) {
        return Err(("InvalidCertificateRef", format!("Secret {ns}/{}: {e}", r.name)));
    }
    p.certificate = Some((ns.to_string(), r.name.clone()));
    Ok(())
}

/// Listeners that share a port with another protocol, or a port and host name with another
/// listener, or a name, are conflicted (all but the first of each).
fn mark_conflicts(listeners: &mut [ListenerPlan<'_>]) {
    let mut names = BTreeSet::new();
    let mut protocol_of: BTreeMap<i32, &str> = BTreeMap::new();
    let mut hosts: BTreeSet<(i32, String)> = BTreeSet::new();
    for l in listeners.iter_mut() {
        if l.refused.is_some() {
            continue;
        }
        if !names.insert(l.spec.name.clone()) {
            l.conflicted = Some((
                "ListenerConflict",
                format!("another listener is named {}", l.spec.name),
            ));
            continue;
        }
        let proto = *protocol_of.entry(l.spec.port).or_insert(l.spec.protocol.as_str());
        if proto != l.spec.protocol {
            l.conflicted = Some((
                "ProtocolConflict",
                format!("port {} is used by a listener of protocol {proto}", l.spec.port),
            ));
            continue;
        }
        let host = l.hostname().unwrap_or("").to_ascii_lowercase();
        if !hosts.insert((l.spec.port, host.clone())) {
            l.conflicted = Some((
                "HostnameConflict",
                format!("another listener on port {} has hostname {host:?}", l.spec.port),
            ));
        }
    }
}

/// Gives each accepted Gateway an address: one from `spec.addresses` when the pool holds it,
/// else the one its status reports (if still free), else the first free one.
fn assign_addresses(plans: &mut [GatewayPlan<'_>], pool: &[IpAddr]) {
    let in_pool: BTreeSet<IpAddr> = pool.iter().copied().collect();
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    // Asked for in spec.addresses.
    for p in plans.iter_mut().filter(|p| p.refused.is_none()) {
        if p.gw.spec.addresses.is_empty() {
            continue;
        }
        let wanted = p.gw.spec.addresses.iter().find_map(|a| {
            let t = a.type_.as_deref().unwrap_or("IPAddress");
            (t == "IPAddress")
                .then(|| a.value.parse::<IpAddr>().ok())
                .flatten()
        });
        match wanted {
            Some(ip) if in_pool.contains(&ip) && taken.insert(ip) => p.address = Some(ip),
            Some(ip) => {
                p.address_problem = Some((
                    "AddressNotUsable",
                    format!("address {ip} is not in gateway_api.addresses or is used by an older Gateway"),
                ))
            }
            None => {
                p.address_problem = Some((
                    "AddressNotUsable",
                    "spec.addresses names no IPAddress this gateway can serve".into(),
                ))
            }
        }
    }
    // Kept from the status.
    for p in plans
        .iter_mut()
        .filter(|p| p.refused.is_none() && p.gw.spec.addresses.is_empty())
    {
        let current = p.gw.status.as_ref().and_then(|s| {
            s.get("addresses")?
                .get(0)?
                .get("value")?
                .as_str()?
                .parse::<IpAddr>()
                .ok()
        });
        if let Some(ip) = current {
            if in_pool.contains(&ip) && taken.insert(ip) {
                p.address = Some(ip);
            }
        }
    }
    let mut free = pool.iter().filter(|ip| !taken.contains(ip));
    for p in plans
        .iter_mut()
        .filter(|p| p.refused.is_none() && p.address.is_none() && p.address_problem.is_none())
    {
        match free.next() {
            Some(ip) => p.address = Some(*ip),
            None => {
                p.address_problem = Some((
                    "AddressNotAssigned",
                    "every address of gateway_api.addresses is in use".into(),
                ))
            }
        }
    }
}

impl GatewayPlan<'_> {
    /// The Gateway's whole status.
    pub fn status(&self) -> Value {
        let g = self.generation;
        let valid = self.listeners.iter().filter(|l| l.refused.is_none()).count();
        let accepted = match &self.refused {
            Some((reason, msg)) => condition("Accepted", false, reason, msg, g),
            None if valid == 0 => condition(
                "Accepted",
                false,
                "ListenersNotValid",
                "no listener of the Gateway is valid",
                g,
            ),
            None if valid < self.listeners.len() => condition(
                "Accepted",
                true,
                "ListenersNotValid",
                "some listeners are not valid; see their conditions",
                g,
            ),
            None => condition("Accepted", true, "Accepted", "the Gateway is accepted", g),
        };
        let any_programmed = self.listeners.iter().any(|l| l.programmed());
        let programmed = if let Some((reason, msg)) = &self.address_problem {
            condition("Programmed", false, reason, msg, g)
        } else if self.refused.is_some() || valid == 0 {
            condition("Programmed", false, "Invalid", "the Gateway is not accepted", g)
        } else if !any_programmed {
            condition(
                "Programmed",
                false,
                "Invalid",
                "no listener of the Gateway is ready",
                g,
            )
        } else {
            condition("Programmed", true, "Programmed", "the Gateway is served", g)
        };
        let listeners = self
            .listeners
            .iter()
            .map(|l| l.status(g, self.address.is_some()))
            .collect();
        let mut status = object([
            ("conditions", Value::Array(vec![accepted, programmed])),
            ("listeners", Value::Array(listeners)),
        ]);
        match (&self.reported, self.address) {
            (Some(list), _) if !list.is_empty() => status["addresses"] = Value::Array(list.clone()),
            (Some(_), _) | (None, None) => {}
            (None, Some(ip)) => status["addresses"] = json!([{"type": "IPAddress", "value": ip.to_string()}]),
        }
        status
    }
}

impl ListenerPlan<'_> {
    fn status(&self, g: Option<i64>, has_address: bool) -> Value {
        let accepted = match &self.refused {
            Some((reason, msg)) => condition("Accepted", false, reason, msg, g),
            None => condition("Accepted", true, "Accepted", "the listener is accepted", g),
        };
        let resolved = match &self.unresolved {
            Some((reason, msg)) => condition("ResolvedRefs", false, reason, msg, g),
            None => condition("ResolvedRefs", true, "ResolvedRefs", "all references resolved", g),
        };
        let conflicted = match &self.conflicted {
            Some((reason, msg)) => condition("Conflicted", true, reason, msg, g),
            None => condition("Conflicted", false, "NoConflicts", "no conflicts", g),
        };
        let programmed = if self.programmed() && has_address {
            condition("Programmed", true, "Programmed", "the listener is served", g)
        } else if self.programmed() {
            condition("Programmed", false, "Pending", "the Gateway has no address", g)
        } else {
            condition(
                "Programmed",
                false,
                "Invalid",
                "the listener is not served; see its other conditions",
                g,
            )
        };
        object([
            ("name", Value::from(self.spec.name.as_str())),
            ("supportedKinds", Value::Array(self.kinds.clone())),
            ("attachedRoutes", Value::from(self.attached)),
            (
                "conditions",
                Value::Array(vec![accepted, resolved, conflicted, programmed]),
            ),
        ])
    }
}
