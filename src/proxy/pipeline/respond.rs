//! The respond phase: the answers the gateway makes itself (probes, refusals, a request
//! without a route), and the finishing of every routed answer: the route's CORS headers, the
//! request id, the count and the end of the span.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use super::route::RouteMiss;
use super::state::ProxyState;
use crate::middleware::cors;
use crate::proxy::body::Body;
use crate::proxy::client::PooledBody;
use crate::proxy::context::{Arrival, RequestCtx};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::X_REQUEST_ID;

impl ProxyState {
    /// The answer to a request that went no further than the route phase, counted; `path` is
    /// the one it was routed by.
    pub(super) fn unrouted(&self, arrival: &Arrival<'_>, miss: RouteMiss<'_>, path: &str) -> Response<Body> {
        let (method, request_id) = (&arrival.method, &arrival.request_id);
        let resp = match miss {
            RouteMiss::Preflight {
                route,
                status,
                headers,
            } => {
                let mut resp = if status.is_success() {
                    plain(status, "")
                } else {
                    error_response(
                        &ProxyError::Forbidden("origin not allowed by CORS".into()),
                        request_id,
                    )
                };
                resp.headers_mut().extend(headers);
                resp.headers_mut().insert(&X_REQUEST_ID, request_id.clone());
                self.count(Some(route), method, resp.status(), arrival.start);
                resp
            }
            RouteMiss::MethodNotAllowed { allow } => {
                let err = ProxyError::MethodNotAllowed {
                    method: method.to_string(),
                    allow,
                };
                self.count(None, method, err.status(), arrival.start);
                error_response(&err, request_id)
            }
            RouteMiss::NotFound => {
                let err = ProxyError::RouteNotFound {
                    method: method.to_string(),
                    path: path.to_string(),
                };
                self.count(None, method, err.status(), arrival.start);
                error_response(&err, request_id)
            }
        };
        if let Some(s) = &arrival.span {
            s.finish(resp.status());
        }
        resp
    }

    /// The answer to a routed request that failed.
    pub(super) fn error_answer(&self, ctx: &RequestCtx<'_>, err: &ProxyError) -> Response<Body> {
        if matches!(
            err,
            ProxyError::BadGateway(_)
                | ProxyError::UpstreamTimeout(_)
                | ProxyError::Unauthorized(_)
                | ProxyError::Forbidden(_)
                | ProxyError::NoBackend(_)
        ) {
            tracing::debug!(route = %ctx.route.id, request_id = ?ctx.arrival.request_id, "{err}");
        }
        error_response(err, &ctx.arrival.request_id)
    }

    /// The finishing of a routed request's answer (the upstream's, or the error's): the
    /// route's CORS headers, the count and the end of its span. (The request id goes on last,
    /// moved out of the arrival once nothing reads it: `set_request_id`.)
    pub(super) fn finish(&self, ctx: &RequestCtx<'_>, resp: &mut Response<Body>) {
        let (arrival, route) = (ctx.arrival, &ctx.route);
        if let Some(rules) = &route.cors {
            cors::decorate(rules, arrival.client.origin.as_ref(), fields_mut(resp));
        }
        self.count(Some(route), &arrival.method, resp.status(), arrival.start);
        if let Some(s) = &arrival.span {
            s.finish(resp.status());
        }
    }

    /// `/ready`: whether the first table is live (and the gateway is not draining).
    pub(super) fn readiness(&self) -> Response<Body> {
        if self.ready.load(Ordering::Acquire) {
            plain(StatusCode::OK, r#"{"status":"ready"}"#)
        } else {
            plain(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
        }
    }

    /// The JSON error for a request refused before routing, counted without a route.
    pub(super) fn refuse(&self, err: &ProxyError, request_id: &HeaderValue) -> Response<Body> {
        self.count_refused(err.status());
        error_response(err, request_id)
    }

    /// A 307 to `location` (a path and query) for a request sent to another spelling of its
    /// path (`server.paths.escaped_slashes: unescape_and_redirect`), counted without a route.
    /// 307 keeps the method and body, and is not remembered as 308 would be.
    pub(super) fn redirect(&self, location: &str, request_id: &HeaderValue) -> Response<Body> {
        let status = StatusCode::TEMPORARY_REDIRECT;
        self.count_refused(status);
        let mut resp = plain(status, "");
        if let Ok(v) = HeaderValue::from_str(location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp.headers_mut().insert(&X_REQUEST_ID, request_id.clone());
        resp
    }
}

/// The body of `resp` when the own client reads it.
fn pooled_mut(resp: &mut Response<Body>) -> Option<&mut PooledBody> {
    match resp.body_mut() {
        Either::Left(body) => body.pooled_mut(),
        Either::Right(_) => None,
    }
}

/// The response's fields, for editing: any still in wire form move into the map first (they
/// are only written as they are while nothing else changes).
pub(super) fn fields_mut(resp: &mut Response<Body>) -> &mut http::HeaderMap {
    if let Some(body) = pooled_mut(resp) {
        if let Some(wire) = body.take_wire_fields() {
            wire.append_to(resp.headers_mut());
        }
    }
    resp.headers_mut()
}

/// Sets the response's `X-Request-ID`: beside its fields in wire form when it has them so (its
/// map then stays empty), else in its map.
pub(super) fn set_request_id(resp: &mut Response<Body>, id: HeaderValue) {
    if let Some(body) = pooled_mut(resp) {
        if let Some(wire) = body.wire_fields_mut() {
            wire.request_id = Some(id);
            return;
        }
    }
    resp.headers_mut().insert(&X_REQUEST_ID, id);
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
