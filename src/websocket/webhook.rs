//! `POST /webhook/websocket`: backend services push to the hub (Bearer `WEBHOOK_AUTH_TOKEN`).
//!
//! `channel_broadcast` goes to every subscriber of a channel, `user_notification` to the target
//! user's connections subscribed to the channel, `event` to every channel whose `events` (or
//! the seed's `routing.service_events.mappings`) name it. The answer is `202 {"delivered": N}`
//! with N the deliveries on this replica; other replicas deliver through Redis. The same bodies
//! come from Redis pub/sub channels and from the message queue (`queue`), delivered locally.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{Error, Result};
use super::hub::Hub;
use crate::wire::json_error;

/// `from` of messages pushed through the webhook.
pub const WEBHOOK_SENDER: &str = "system";

/// What a backend service pushes, through the webhook or a Redis pub/sub channel.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WebhookEvent {
    ChannelBroadcast {
        channel: String,
        message: Value,
    },
    UserNotification {
        target_user: String,
        channel: String,
        message: Value,
    },
    Event {
        event: String,
        message: Value,
    },
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

impl Hub {
    /// Answers one webhook request.
    pub async fn webhook<B>(self: &Arc<Self>, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.method() != Method::POST {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the webhook takes POST",
                "",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let Some(expected) = self.settings.webhook_token.as_deref() else {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the webhook has no token configured (WEBHOOK_AUTH_TOKEN)",
                "",
            );
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .trim();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid webhook token is required",
                "",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let limit = self.settings.webhook_max_body;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    &format!("cannot read the body (limit {limit} bytes): {e}"),
                    "",
                )
            }
        };
        let event: WebhookEvent = match serde_json::from_slice(&body) {
            Ok(e) => e,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!(
                        "expected {{\"type\": \"channel_broadcast\" | \"user_notification\" | \"event\", ...}}: {e}"
                    ),
                    "",
                )
            }
        };
        self.webhook_called();
        let delivered = self.push_event(event, true);
        reply(StatusCode::ACCEPTED, json!({ "delivered": delivered }))
    }

    /// Delivers what a backend pushed; `share`: also through Redis to the other replicas.
    pub(crate) fn push_event(&self, event: WebhookEvent, share: bool) -> usize {
        match event {
            WebhookEvent::ChannelBroadcast { channel, message } => {
                self.publish_to(&channel, &message, WEBHOOK_SENDER, None, share)
            }
            WebhookEvent::UserNotification {
                target_user,
                channel,
                message,
            } => self.publish_to(&channel, &message, WEBHOOK_SENDER, Some(&target_user), share),
            WebhookEvent::Event { event, message } => {
                self.publish_event_to(&event, &message, WEBHOOK_SENDER, share)
            }
        }
    }

    /// A message a backend published on the Redis channel `name` (one of
    /// `integration.redis_pubsub.channels`). Every replica hears it, so it is delivered here
    /// only. The payload is a webhook body (`channel` defaults to `name`), any other JSON
    /// (broadcast as the message on channel `name`), or text (broadcast as a JSON string).
    pub(crate) fn deliver_backend_message(&self, name: &str, payload: &[u8]) -> Result<usize> {
        let mut value: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(payload).into_owned()),
        };
        let event = match value.as_object_mut() {
            Some(obj) if obj.contains_key("type") => {
                if !obj.contains_key("channel") {
                    obj.insert("channel".to_string(), Value::String(name.to_string()));
                }
                serde_json::from_value::<WebhookEvent>(value).map_err(Error::BackendMessage)?
            }
            _ => WebhookEvent::ChannelBroadcast {
                channel: name.to_string(),
                message: value,
            },
        };
        Ok(self.push_event(event, false))
    }

    /// A message from the message queue, with its routing key. Every replica's queue gets it,
    /// so it is delivered here only (never shared through Redis). The body is a webhook body;
    /// the routing key stands in for `event` when the body has none, and for `type: "event"`
    /// when the body has no `type` either.
    pub(crate) fn deliver_queue_message(&self, routing_key: &str, payload: &[u8]) -> Result<usize> {
        let mut value: Value = serde_json::from_slice(payload)
            .map_err(|e| Error::QueueMessage(format!("the body is not JSON: {e}")))?;
        let Some(obj) = value.as_object_mut() else {
            return Err(Error::QueueMessage("the body is not a JSON object".into()));
        };
        if !routing_key.is_empty() && !obj.contains_key("event") {
            let is_event = match obj.get("type") {
                None => true,
                Some(t) => t == "event",
            };
            if is_event {
                obj.insert("type".into(), Value::String("event".into()));
                obj.insert("event".into(), Value::String(routing_key.to_string()));
            }
        }
        let event = serde_json::from_value::<WebhookEvent>(value).map_err(|e| {
            Error::QueueMessage(format!(
                "expected {{\"type\": \"channel_broadcast\" | \"user_notification\" | \"event\", ...}}: {e}"
            ))
        })?;
        Ok(self.push_event(event, false))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
