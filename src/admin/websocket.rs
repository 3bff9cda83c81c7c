//! The admin API's WebSocket endpoints (SPEC §6):
//! `GET /admin/websocket/connections`, `GET|DELETE /admin/websocket/connections/{id}`,
//! `POST /admin/websocket/connections/{id}/send`, `GET /admin/websocket/channels`,
//! `POST /admin/websocket/channels/{name}/broadcast`, `GET /admin/websocket/statistics`.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use super::json_response;
use crate::websocket::Hub;
use crate::wire::json_error;

/// `from` of messages sent through the admin API.
const ADMIN_SENDER: &str = "admin";
const MAX_BODY: usize = 1024 * 1024;

pub(super) async fn handle<B>(hub: Option<&Arc<Hub>>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(hub) = hub else {
        return json_error(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "the WebSocket hub is disabled (websocket.enabled)",
            "",
        );
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let rest = path.trim_start_matches("/admin/websocket/");
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| crate::websocket::query_param(&format!("v={s}"), "v").unwrap_or_default())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["connections"]) => json_response(StatusCode::OK, hub.connections_json()),
        (&Method::GET, ["connections", id]) => match hub.connection_json(id) {
            Some(c) => json_response(StatusCode::OK, c),
            None => no_connection(id),
        },
        (&Method::DELETE, ["connections", id]) => {
            if hub.disconnect(id) {
                json_response(StatusCode::OK, json!({"disconnected": id}))
            } else {
                no_connection(id)
            }
        }
        (&Method::POST, ["connections", id, "send"]) => {
            let id = id.to_string();
            let message = match message(req).await {
                Ok(m) => m,
                Err(r) => return r,
            };
            match hub.send_direct(&id, &message, ADMIN_SENDER) {
                Some(sent) => json_response(StatusCode::OK, json!({"sent": sent, "connection": id})),
                None => no_connection(&id),
            }
        }
        (&Method::GET, ["channels"]) => json_response(StatusCode::OK, hub.channels_json()),
        (&Method::POST, ["channels", name, "broadcast"]) => {
            let name = name.to_string();
            if name.len() > crate::websocket::protocol::MAX_CHANNEL_LEN || name.chars().any(char::is_control)
            {
                return json_error(StatusCode::BAD_REQUEST, "bad_request", "invalid channel name", "");
            }
            let message = match message(req).await {
                Ok(m) => m,
                Err(r) => return r,
            };
            let delivered = hub.publish(&name, &message, ADMIN_SENDER, None);
            json_response(StatusCode::OK, json!({"channel": name, "delivered": delivered}))
        }
        (&Method::GET, ["statistics"]) => json_response(StatusCode::OK, hub.statistics_json()),
        _ => json_error(
            StatusCode::NOT_FOUND,
            "route_not_found",
            &format!("no admin endpoint {method} {path}"),
            "",
        ),
    }
}

fn no_connection(id: &str) -> Response<Full<Bytes>> {
    json_error(
        StatusCode::NOT_FOUND,
        "connection_not_found",
        &format!("no WebSocket connection {id} on this replica"),
        "",
    )
}

/// The `message` of a `{"message": {...}}` body.
async fn message<B>(req: Request<B>) -> Result<Value, Response<Full<Bytes>>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the body: {e}"),
                "",
            )
        })?
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("the body is not JSON: {e}"),
            "",
        )
    })?;
    v.get("message").cloned().ok_or_else(|| {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"message\": {...}}",
            "",
        )
    })
}
