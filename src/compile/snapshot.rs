//! The input of `compile` (plain data from a folder or the API server) and its verdicts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::api::{
    reasons, types, Condition, EndpointCounts, GatewayRoute, GatewayUpstream, WebSocketChannel,
};

/// Everything the gateway is configured with at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub routes: Vec<GatewayRoute>,
    pub upstreams: Vec<GatewayUpstream>,
    pub channels: Vec<WebSocketChannel>,
    pub secrets: Vec<Secret>,
    /// Discovered endpoints of Services, by `namespace/name`: every referenced Service that
    /// exists, with its ports, their ready addresses possibly none (exists, no ready
    /// endpoints). A Service that does not exist (or is not referenced) has no entry.
    pub services: BTreeMap<String, ServiceEndpoints>,
    /// The Gateway API objects (empty when `gateway_api` is off).
    pub gateway_api: GatewayApiObjects,
}

/// The Gateway API objects of a snapshot, with their status as last read (the status writer
/// keeps other controllers' entries and the times of unchanged conditions).
///
/// HTTPRoutes are shared with the watch cache (thousands of them): a snapshot costs a pointer
/// per route, an unchanged route compares equal by pointer, and the compile of a route that is
/// the same object as last time is reused (`gateway_api::RouteCache`).
#[derive(Clone, Debug, Default)]
pub struct GatewayApiObjects {
    pub classes: Vec<GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub routes: Vec<Arc<HTTPRoute>>,
    pub grants: Vec<ReferenceGrant>,
    /// Gatehouse's policies for HTTPRoutes and Gateways.
    pub policies: Vec<crate::api::RoutePolicy>,
    /// The labels of every namespace, by name (for `allowedRoutes.namespaces.selector`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl PartialEq for GatewayApiObjects {
    fn eq(&self, other: &Self) -> bool {
        let routes = self.routes.len() == other.routes.len()
            && self
                .routes
                .iter()
                .zip(&other.routes)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b);
        routes
            && self.classes == other.classes
            && self.gateways == other.gateways
            && self.grants == other.grants
            && self.policies == other.policies
            && self.namespaces == other.namespaces
    }
}

/// The ready addresses of one Service, per port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    pub ports: Vec<ServicePort>,
    /// Where clients reach the Service: its load balancer's IPs or host names, else its
    /// cluster IPs (what Gateways behind it report, `gateway_api.service`).
    pub addresses: Vec<String>,
}

/// One port of a Service and the ready addresses behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    /// The Service port (what `spec.service.port` names).
    pub port: u16,
    /// The endpoint port.
    pub target_port: u16,
    pub addresses: Vec<String>,
}

/// Kinds of resources that get verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    GatewayRoute,
    GatewayUpstream,
    WebSocketChannel,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::GatewayRoute => "GatewayRoute",
            Kind::GatewayUpstream => "GatewayUpstream",
            Kind::WebSocketChannel => "WebSocketChannel",
        })
    }
}

/// The compiler's judgement of one resource: the conditions its status should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub endpoints: Option<EndpointCounts>,
}

impl Verdict {
    pub fn new(kind: Kind, namespace: &str, name: &str, generation: Option<i64>) -> Self {
        Verdict {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            generation,
            conditions: Vec::new(),
            endpoints: None,
        }
    }

    /// Sets (or replaces) the condition of that type.
    pub fn set(&mut self, c: Condition) {
        match self.conditions.iter_mut().find(|x| x.type_ == c.type_) {
            Some(x) => *x = c,
            None => self.conditions.push(c),
        }
        self.conditions.sort_by_key(|c| rank(&c.type_));
    }

    /// `Accepted=False` with `reason`; routes also get `Programmed=False`.
    pub fn reject(&mut self, reason: &str, message: impl ToString) {
        let message = message.to_string();
        self.set(Condition::new(types::ACCEPTED, false, reason, message.clone()));
        if self.kind == Kind::GatewayRoute {
            self.set(Condition::new(
                types::PROGRAMMED,
                false,
                reasons::NOT_PROGRAMMED,
                "not in the routing table: the route is not accepted",
            ));
        }
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Accepted=False.
    pub fn is_rejected(&self) -> bool {
        self.condition(types::ACCEPTED).is_some_and(|c| !c.is_true())
    }

    /// Any condition False.
    pub fn has_problem(&self) -> bool {
        self.conditions.iter().any(|c| !c.is_true())
    }
}

impl fmt::Display for Verdict {
    /// `rejected GatewayRoute default/x: Accepted=False InvalidPath: path ...`, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.is_rejected() {
            "rejected"
        } else if self.has_problem() {
            "warning"
        } else {
            "ok"
        };
        write!(f, "{word:<8} {} {}/{}:", self.kind, self.namespace, self.name)?;
        for c in &self.conditions {
            write!(f, " {}={}", c.type_, c.status)?;
        }
        if let Some(e) = &self.endpoints {
            write!(f, " endpoints={}/{}", e.healthy, e.total)?;
        }
        for c in self.conditions.iter().filter(|c| !c.is_true()) {
            write!(f, " [{} {}: {}]", c.type_, c.reason, c.message)?;
        }
        if !self.has_problem() {
            if let Some(c) = self.condition(types::ACCEPTED) {
                if self.kind == Kind::WebSocketChannel {
                    write!(f, " ({})", c.message)?;
                }
            }
        }
        Ok(())
    }
}

fn rank(t: &str) -> u8 {
    match t {
        types::ACCEPTED => 0,
        types::RESOLVED_REFS => 1,
        types::PROGRAMMED => 2,
        types::READY => 3,
        _ => 4,
    }
}
