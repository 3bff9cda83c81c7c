//! One request, top to bottom: gateway endpoints, route lookup, CORS, identity-header
//! stripping, endpoint choice, forwarding headers, the upstream call under the route timeout,
//! and the response with its metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::error::ProxyError;
use super::headers;
use crate::policy::cors;
use crate::routing::{Lookup, Route, TableHandle};
use crate::telemetry::Metrics;
use crate::upstream::Protocol;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<Incoming, Full<Bytes>>;

type HttpClient = Client<HttpConnector, Incoming>;

/// What every request of the proxy listener shares.
pub struct ProxyState {
    pub table: TableHandle,
    pub metrics: Metrics,
    /// True once the first table is live and the listeners are bound; false while draining.
    pub ready: Arc<AtomicBool>,
    pub max_body_size: u64,
    pub proto: &'static str,
    http1: HttpClient,
    h2c: HttpClient,
    /// The WebSocket hub, when `websocket.enabled`: it answers its own paths.
    hub: Option<Arc<crate::websocket::Hub>>,
}

impl ProxyState {
    pub fn new(
        table: TableHandle,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        connect_timeout: Duration,
        max_body_size: u64,
    ) -> Self {
        let connector = || {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_connect_timeout(Some(connect_timeout));
            c.set_keepalive(Some(Duration::from_secs(60)));
            c
        };
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector());
        let h2c = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(true)
            .build(connector());
        ProxyState {
            table,
            metrics,
            ready,
            max_body_size,
            proto: "http",
            http1,
            h2c,
            hub: None,
        }
    }

    /// Hands the hub's paths (`websocket.server.path`, the webhook) to `hub`.
    pub fn with_hub(mut self, hub: Arc<crate::websocket::Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    pub(super) fn count_upstream(&self, upstream: &str, status: &str) {
        self.metrics
            .upstream_requests_total
            .with_label_values(&[upstream, status])
            .inc();
    }

    /// Serves one request; never fails (errors become JSON responses).
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let request_id = headers::request_id(req.headers());
        match req.uri().path() {
            "/health" => return Ok(plain(StatusCode::OK, r#"{"status":"ok"}"#)),
            "/ready" => return Ok(self.readiness()),
            p if self.hub.as_ref().is_some_and(|h| h.claims(p)) => {
                if let Some(hub) = &self.hub {
                    return Ok(hub.handle(peer, req).await.map(Either::Right));
                }
            }
            _ => {}
        }
        let method = req.method().clone();
        let route = match self.route_for(&req, &method, &request_id, start) {
            Ok(route) => route,
            Err(resp) => return Ok(resp),
        };
        if route.websocket && crate::websocket::is_websocket_upgrade(req.headers()) {
            let resp = super::upgrade::tunnel(&self, &route, peer, req, &request_id)
                .await
                .unwrap_or_else(|err| error_response(&err, &request_id));
            self.count(&route.id, &method, resp.status(), start);
            return Ok(resp);
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        let mut resp = match self.forward(&route, peer, req, &request_id).await {
            Ok(resp) => resp,
            Err(err) => {
                if matches!(err, ProxyError::BadGateway(_) | ProxyError::UpstreamTimeout(_)) {
                    tracing::debug!(route = %route.id, request_id = ?request_id, "{err}");
                }
                error_response(&err, &request_id)
            }
        };
        if let Some(rules) = &route.cors {
            cors::decorate(rules, origin.as_ref(), resp.headers_mut());
        }
        resp.headers_mut().insert(&headers::X_REQUEST_ID, request_id);
        self.count(&route.id, &method, resp.status(), start);
        Ok(resp)
    }

    async fn forward(
        &self,
        route: &Route,
        peer: SocketAddr,
        req: Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        if let Some(len) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            if len > self.max_body_size {
                return Err(ProxyError::PayloadTooLarge {
                    limit: self.max_body_size,
                });
            }
        }
        let upstream = &route.upstream;
        let endpoint = upstream.pick().ok_or_else(|| {
            ProxyError::UpstreamUnavailable(format!("upstream {} has no endpoints", upstream.key))
        })?;

        let path = parts.uri.path();
        let rewritten = route.rewrite.as_ref().map(|r| r.apply(path));
        let pq = match (rewritten, parts.uri.query()) {
            (Some(p), Some(q)) => PathAndQuery::try_from(format!("{p}?{q}")),
            (Some(p), None) => PathAndQuery::try_from(p),
            (None, _) => Ok(parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))),
        }
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))?;
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(endpoint.scheme.clone());
        uri.authority = Some(endpoint.authority.clone());
        uri.path_and_query = Some(pq);
        parts.uri = Uri::from_parts(uri)
            .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream URI: {e}")))?;

        let h = &mut parts.headers;
        let client_host = h.get(header::HOST).cloned().or_else(|| {
            HeaderValue::from_str(parts.uri.authority().map(|a| a.as_str()).unwrap_or_default()).ok()
        });
        headers::strip_hop_by_hop(h);
        for name in &headers::USER_HEADERS {
            h.remove(name);
        }
        headers::add_forwarded(h, peer.ip(), self.proto, client_host.as_ref());
        h.insert(&headers::X_REQUEST_ID, request_id.clone());
        let tp = headers::traceparent(h, false);
        h.insert(&headers::TRACEPARENT, tp);
        h.insert(header::HOST, endpoint.host_header.clone());

        let client = match upstream.protocol {
            Protocol::H2c => {
                parts.version = Version::HTTP_2;
                &self.h2c
            }
            _ => {
                parts.version = Version::HTTP_11;
                &self.http1
            }
        };
        let call = client.request(Request::from_parts(parts, body));
        let result = match route.timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout(t))?,
            None => call.await,
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .upstream_requests_total
                    .with_label_values(&[upstream.key.as_str(), "error"])
                    .inc();
                return Err(ProxyError::BadGateway(if e.is_connect() {
                    format!("cannot connect to {}", endpoint.url)
                } else {
                    format!("{} failed: {}", endpoint.url, error_chain(&e))
                }));
            }
        };
        self.metrics
            .upstream_requests_total
            .with_label_values(&[upstream.key.as_str(), resp.status().as_str()])
            .inc();
        headers::strip_hop_by_hop(resp.headers_mut());
        Ok(resp.map(Either::Left))
    }

    /// The route for `req`, or the response the gateway gives instead (preflight, 404, 405).
    #[allow(clippy::result_large_err)]
    fn route_for(
        &self,
        req: &Request<Incoming>,
        method: &http::Method,
        request_id: &HeaderValue,
        start: Instant,
    ) -> Result<Arc<Route>, Response<Body>> {
        let table = self.table.load();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let path = req.uri().path();

        // A CORS preflight is answered here, for the route that the real request would take.
        if let Some(asked) = cors::preflight_method(method, req.headers()) {
            if let Lookup::Found(route) = table.lookup(host, path, &asked) {
                if let Some(rules) = &route.cors {
                    let (status, h) = cors::preflight(rules, req.headers());
                    let mut resp = if status.is_success() {
                        plain(status, "")
                    } else {
                        error_response(
                            &ProxyError::Forbidden("origin not allowed by CORS".into()),
                            request_id,
                        )
                    };
                    resp.headers_mut().extend(h);
                    resp.headers_mut()
                        .insert(&headers::X_REQUEST_ID, request_id.clone());
                    self.count(&route.id, method, resp.status(), start);
                    return Err(resp);
                }
            }
        }
        let err = match table.lookup(host, path, method) {
            Lookup::Found(route) => return Ok(route.clone()),
            Lookup::MethodNotAllowed(allow) => ProxyError::MethodNotAllowed {
                method: method.to_string(),
                allow: allow.allow_header(),
            },
            Lookup::NotFound => ProxyError::RouteNotFound {
                method: method.to_string(),
                path: path.to_string(),
            },
        };
        self.count("", method, err.status(), start);
        Err(error_response(&err, request_id))
    }

    fn readiness(&self) -> Response<Body> {
        if self.ready.load(Ordering::Acquire) {
            plain(StatusCode::OK, r#"{"status":"ready"}"#)
        } else {
            plain(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
        }
    }

    fn count(&self, route: &str, method: &http::Method, status: StatusCode, start: Instant) {
        self.metrics
            .http_requests_total
            .with_label_values(&[route, method.as_str(), status.as_str()])
            .inc();
        self.metrics
            .http_request_duration_seconds
            .with_label_values(&[route])
            .observe(start.elapsed().as_secs_f64());
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn error_response(err: &ProxyError, request_id: &HeaderValue) -> Response<Body> {
    err.to_response(request_id.to_str().unwrap_or_default())
        .map(Either::Right)
}

/// A small JSON (or empty) response made by the gateway.
pub fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(body.as_bytes()))));
    *resp.status_mut() = status;
    if !body.is_empty() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}
