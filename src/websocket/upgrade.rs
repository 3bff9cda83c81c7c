//! The upgrade on the hub path: the method, the upgrade headers, the origin, the token and a
//! free slot are checked in that order, each refusal a JSON error; then `101`, and the
//! connection's task starts (see `connection`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::client::Opened;
use super::connection;
use super::hub::Hub;
use super::request::{is_websocket_upgrade, query_param};
use crate::wire::json_error;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_error(status, code, message, "")
}

impl Hub {
    /// Answers a request on the hub path: `101` and a new connection, or a JSON refusal.
    pub fn upgrade<B>(self: &Arc<Self>, peer: SocketAddr, mut req: Request<B>) -> Response<Full<Bytes>> {
        if self.is_stopping() {
            self.refused("shutting_down");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the gateway is shutting down",
            );
        }
        if req.method() != Method::GET {
            let mut r = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the WebSocket endpoint takes GET upgrades",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        let h = req.headers();
        if !is_websocket_upgrade(h) {
            let mut r = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this is the WebSocket endpoint: send an HTTP/1.1 `Upgrade: websocket` request",
            );
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            return r;
        }
        if h.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            let mut r = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "bad_request",
                "Sec-WebSocket-Version must be 13",
            );
            r.headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return r;
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Sec-WebSocket-Key is missing",
            );
        };
        let accept = derive_accept_key(key.as_bytes());
        let origin = h
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !self
            .table
            .load()
            .channels
            .origin_allowed_anywhere(origin.as_deref())
        {
            self.refused("origin");
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this origin may not open WebSocket connections",
            );
        }
        let token = req
            .uri()
            .query()
            .and_then(|q| query_param(q, "token"))
            .filter(|t| !t.is_empty())
            .or_else(|| {
                h.get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| t.trim().to_string())
            });
        let identity = match token {
            Some(t) => match self.verifier.verify(&t) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.refused("unauthorized");
                    let mut r = refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string());
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                    return r;
                }
            },
            None => None,
        };
        if !self.reserve() {
            self.refused("max_connections");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                &format!(
                    "the gateway holds its maximum of {} WebSocket connections",
                    self.settings.max_connections
                ),
            );
        }
        let user_agent = h
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect());
        let conn = self.register(Opened {
            peer,
            origin,
            user_agent,
            identity,
        });
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => connection::run(&hub, &conn, upgraded).await,
                Err(e) => tracing::debug!(connection = %conn.id, "WebSocket upgrade failed: {e}"),
            }
            hub.unregister(&conn);
        });
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let rh = resp.headers_mut();
        rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}
