//! The admin API (port 8081) and the metrics endpoint (port 9090).

mod websocket;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::routing::TableHandle;
use crate::telemetry::Metrics;
use crate::upstream::{Balancer, HashOn};
use crate::wire::json_error;

/// What the admin API reads.
pub struct AdminState {
    pub table: TableHandle,
    pub ready: Arc<AtomicBool>,
    /// `GATEWAY_ADMIN_TOKEN`; without one, only `/health` and `/ready` answer.
    pub token: Option<String>,
    /// `admin.allow_jwt`: a proxy JWT with the role `admin` is accepted too.
    pub allow_jwt: bool,
    /// The WebSocket hub, when enabled (`/admin/websocket/...`).
    pub websocket: Option<Arc<crate::websocket::Hub>>,
}

impl AdminState {
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path();
        match path {
            "/health" => return json_response(StatusCode::OK, json!({"status": "ok"})),
            "/ready" => {
                return if self.ready.load(Ordering::Acquire) {
                    json_response(StatusCode::OK, json!({"status": "ready"}))
                } else {
                    json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "not ready"}))
                }
            }
            _ => {}
        }
        match self.authorized(&req) {
            Access::Granted => {}
            Access::Denied => {
                let mut resp = json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    if self.allow_jwt {
                        "admin token or a JWT with the role admin required"
                    } else {
                        "admin token required"
                    },
                    "",
                );
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
            Access::Forbidden => {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the admin API requires the role admin",
                    "",
                );
            }
        }
        if path.starts_with("/admin/websocket/") {
            return websocket::handle(self.websocket.as_ref(), req).await;
        }
        match (req.method(), path) {
            (&Method::GET, "/admin/routes") => json_response(StatusCode::OK, self.routes()),
            (&Method::GET, "/admin/upstreams") => json_response(StatusCode::OK, self.upstreams()),
            _ => json_error(
                StatusCode::NOT_FOUND,
                "route_not_found",
                &format!("no admin endpoint {path}"),
                "",
            ),
        }
    }

    /// `GATEWAY_ADMIN_TOKEN`; with `admin.allow_jwt`, also a valid JWT (the proxy's key set)
    /// with the role `admin`.
    fn authorized<B>(&self, req: &Request<B>) -> Access {
        let Ok(given) = crate::auth::extract_token(req.headers(), None, false) else {
            return Access::Denied;
        };
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                return Access::Granted;
            }
        }
        if !self.allow_jwt {
            return Access::Denied;
        }
        let table = self.table.load();
        match table.auth.as_deref().map(|v| v.verify(given)) {
            Some(Ok(user)) if user.has_role(ADMIN_ROLE) => Access::Granted,
            Some(Ok(_)) => Access::Forbidden,
            _ => Access::Denied,
        }
    }

    fn routes(&self) -> serde_json::Value {
        let table = self.table.load();
        let routes: Vec<_> = table
            .routes()
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "namespace": r.namespace, "name": r.name, "path": r.path, "hosts": r.hosts,
                    "methods": if r.methods.is_all() { "*".to_string() } else { r.methods.allow_header() },
                    "upstream": r.upstream.key,
                    "timeout_ms": r.timeout.map(|t| t.as_millis() as u64),
                    "auth_required": r.auth.required, "required_roles": r.auth.roles,
                    "required_permissions": r.auth.permissions, "websocket": r.websocket,
                })
            })
            .collect();
        json!({ "routes": routes })
    }

    /// Each upstream with its endpoints' health and in-flight requests and its breaker state.
    fn upstreams(&self) -> serde_json::Value {
        let table = self.table.load();
        let ups: Vec<_> = table
            .upstreams
            .values()
            .map(|u| {
                let b = u.binding();
                let endpoints: Vec<_> = u
                    .endpoints
                    .iter()
                    .zip(&b.endpoints)
                    .map(|(e, s)| {
                        json!({
                            "url": e.url,
                            "healthy": s.is_healthy(),
                            "health": if s.is_healthy() { "healthy" } else { "unhealthy" },
                            "in_flight": s.in_flight(),
                        })
                    })
                    .collect();
                json!({
                    "id": u.key,
                    "balancer": balancer_name(&u.balancer),
                    "health_check": u.health_check.as_ref().map(|h| json!({
                        "path": h.path, "interval_ms": h.interval.as_millis() as u64,
                        "timeout_ms": h.timeout.as_millis() as u64,
                        "healthy_threshold": h.healthy_threshold, "unhealthy_threshold": h.unhealthy_threshold,
                    })),
                    "circuit_breaker": b.breaker.as_ref().map_or(json!(null), |br| json!({
                        "state": br.phase().as_str(),
                        "failure_threshold": br.policy().failure_threshold,
                        "timeout_ms": br.policy().open_for.as_millis() as u64,
                        "success_threshold": br.policy().success_threshold,
                    })),
                    "retries": u.retries.as_ref().map(|r| json!({"attempts": r.attempts, "retry_on": r.retry_on})),
                    "endpoints": endpoints,
                    "total": u.endpoints.len(),
                    "healthy": b.healthy_count(),
                })
            })
            .collect();
        json!({ "upstreams": ups })
    }
}

fn balancer_name(b: &Balancer) -> String {
    match b {
        Balancer::RoundRobin => "RoundRobin".into(),
        Balancer::LeastRequest => "LeastRequest".into(),
        Balancer::Random => "Random".into(),
        Balancer::ConsistentHash(HashOn::Ip) => "ConsistentHash(ip)".into(),
        Balancer::ConsistentHash(HashOn::Header(h)) => format!("ConsistentHash(header:{h})"),
        Balancer::ConsistentHash(HashOn::Claim(c)) => format!("ConsistentHash(claim:{c})"),
    }
}

/// The JWT role that opens the admin API.
pub const ADMIN_ROLE: &str = "admin";

enum Access {
    Granted,
    /// No or an invalid credential: 401.
    Denied,
    /// A valid JWT without the admin role: 403.
    Forbidden,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The metrics endpoint: Prometheus text at `path`, `/health` for probes.
pub fn metrics_response<B>(metrics: &Metrics, path: &str, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() == path {
        let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    } else if req.uri().path() == "/health" {
        json_response(StatusCode::OK, json!({"status": "ok"}))
    } else {
        json_error(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "metrics are served at the metrics path",
            "",
        )
    }
}
