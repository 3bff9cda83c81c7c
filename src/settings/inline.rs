//! The seed's inline `routes:` and `upstreams:`, turned into the same resources as the CRDs.

use serde::Deserialize;

use crate::api::{
    CircuitBreaker, GatewayRoute, GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec, HealthCheck,
    LoadBalancer, Retries, RouteRateLimit, RouteTls, ServiceRef,
};

/// Namespace given to resources declared inline in `gateway.yaml`.
pub const INLINE_NAMESPACE: &str = "default";

/// One entry of the seed's `routes:` list (snake_case).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineRoute {
    pub name: Option<String>,
    pub hosts: Vec<String>,
    pub path: String,
    pub methods: Vec<String>,
    pub upstream: Option<String>,
    /// `websocket`: the route is the WebSocket hub.
    pub handler: Option<String>,
    pub auth_required: bool,
    pub required_roles: Vec<String>,
    pub required_permissions: Vec<String>,
    pub timeout: Option<String>,
    pub rate_limit: Option<InlineRateLimit>,
    pub cors: Option<super::CorsConfig>,
    pub rewrite_prefix: Option<String>,
    pub websocket: bool,
    pub tls: Option<InlineTls>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineRateLimit {
    pub requests: u64,
    pub window: Option<String>,
    pub key: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineTls {
    pub secret_name: String,
}

/// One entry of the seed's `upstreams:` map (snake_case).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineUpstream {
    pub discovery: Discovery,
    pub endpoints: Vec<String>,
    pub protocol: Option<String>,
    pub load_balancer: Option<InlineLoadBalancer>,
    pub health_check: Option<InlineHealthCheck>,
    pub circuit_breaker: Option<InlineCircuitBreaker>,
    pub retries: Option<InlineRetries>,
    pub connect_timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Discovery {
    /// `Static` or `Kubernetes`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub endpoints: Vec<String>,
    pub service: Option<String>,
    pub port: Option<yaml_serde::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineLoadBalancer {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub hash_on: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineHealthCheck {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineCircuitBreaker {
    pub failure_threshold: Option<u32>,
    pub timeout: Option<String>,
    pub success_threshold: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InlineRetries {
    pub attempts: u32,
    pub retry_on: Vec<String>,
}

impl InlineRoute {
    /// True for the seed's `handler: "websocket"` entry, which mounts the hub.
    pub fn is_hub(&self) -> bool {
        self.handler
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case("websocket"))
    }

    /// The route as a `GatewayRoute` named `name` in the inline namespace.
    pub fn to_resource(&self, name: &str) -> GatewayRoute {
        let spec = GatewayRouteSpec {
            hosts: self.hosts.clone(),
            path: self.path.clone(),
            methods: self.methods.clone(),
            upstream: self.upstream.clone().unwrap_or_default(),
            timeout: self.timeout.clone(),
            auth_required: self.auth_required,
            required_roles: self.required_roles.clone(),
            required_permissions: self.required_permissions.clone(),
            rate_limit: self.rate_limit.as_ref().map(|r| RouteRateLimit {
                requests: r.requests,
                window: r.window.clone().unwrap_or_else(|| "60s".into()),
                key: r.key.clone(),
            }),
            cors: self.cors.as_ref().map(|c| c.to_policy()),
            rewrite_prefix: self.rewrite_prefix.clone(),
            websocket: self.websocket,
            tls: self.tls.as_ref().map(|t| RouteTls {
                secret_name: t.secret_name.clone(),
            }),
        };
        let mut r = GatewayRoute::new(name, spec);
        r.metadata.namespace = Some(INLINE_NAMESPACE.to_string());
        r
    }
}

impl InlineUpstream {
    /// The upstream as a `GatewayUpstream` named `name` in the inline namespace.
    pub fn to_resource(&self, name: &str) -> GatewayUpstream {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let mut endpoints = self.discovery.endpoints.clone();
        endpoints.extend(self.endpoints.iter().cloned());
        let service = self.discovery.service.as_ref().map(|svc| ServiceRef {
            name: svc.clone(),
            port: match &self.discovery.port {
                Some(yaml_serde::Value::Number(n)) => IntOrString::Int(n.as_i64().unwrap_or(0) as i32),
                Some(yaml_serde::Value::String(s)) => IntOrString::String(s.clone()),
                _ => IntOrString::Int(80),
            },
        });
        let spec = GatewayUpstreamSpec {
            service,
            endpoints,
            protocol: self.protocol.clone(),
            load_balancer: self.load_balancer.as_ref().map(|lb| LoadBalancer {
                type_: lb.type_.clone().unwrap_or_else(|| "RoundRobin".into()),
                hash_on: lb.hash_on.clone(),
            }),
            health_check: self.health_check.as_ref().map(|h| HealthCheck {
                path: h.path.clone(),
                interval: h.interval.clone(),
                timeout: h.timeout.clone(),
                healthy_threshold: h.healthy_threshold,
                unhealthy_threshold: h.unhealthy_threshold,
            }),
            circuit_breaker: self.circuit_breaker.as_ref().map(|c| CircuitBreaker {
                failure_threshold: c.failure_threshold,
                timeout: c.timeout.clone(),
                success_threshold: c.success_threshold,
            }),
            retries: self.retries.as_ref().map(|r| Retries {
                attempts: r.attempts,
                retry_on: r.retry_on.clone(),
            }),
            connect_timeout: self.connect_timeout.clone(),
            tls: None,
        };
        let mut u = GatewayUpstream::new(name, spec);
        u.metadata.namespace = Some(INLINE_NAMESPACE.to_string());
        u
    }
}

/// A DNS-label name for an inline route: its methods and path, e.g. `get-post-api-v1-users`.
pub fn inline_route_name(route: &InlineRoute) -> String {
    let mut name = String::new();
    for part in route
        .methods
        .iter()
        .map(String::as_str)
        .chain(route.path.split(['/', '{', '}', '*', '_', '.']))
    {
        let part: String = part
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if part.is_empty() {
            continue;
        }
        if !name.is_empty() {
            name.push('-');
        }
        name.push_str(&part.to_ascii_lowercase());
    }
    if name.is_empty() {
        name.push_str("root");
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}
