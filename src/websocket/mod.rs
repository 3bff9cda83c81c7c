//! The WebSocket hub (SPEC §5): connections on `websocket.server.path`, channels with
//! policies from `WebSocketChannel` resources and `websocket.channels`, history, the backend
//! webhook, and fan-out across replicas through Redis.
//!
//! ```text
//!  client ──upgrade──> Hub::upgrade ──> Conn (reader + writer, bounded queue)
//!                         │                    ▲
//!  webhook / admin ──> Hub::publish ──> channel subscribers (local) ──> Redis PUBLISH ──> other replicas
//! ```
//!
//! Channel policies are compiled with the routing table (`RoutingTable::channels`), so a
//! changed resource applies through the same swap as routes.

pub mod auth;
mod connection;
pub mod fanout;
mod hub;
mod outbox;
pub mod protocol;
mod webhook;

pub use auth::{Identity, TokenVerifier};
pub use hub::{Conn, Hub};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;

use crate::settings::{parse_duration, GatewayConfig};

/// Messages a connection may have queued before it counts as a slow consumer.
pub const QUEUE_CAPACITY: usize = 256;

/// The hub's static settings (`websocket.server`, the webhook, Redis).
#[derive(Clone, Debug)]
pub struct HubSettings {
    pub path: String,
    /// `None`: the webhook is disabled.
    pub webhook_path: Option<String>,
    /// `None`: every webhook call is refused.
    pub webhook_token: Option<String>,
    pub webhook_max_body: usize,
    pub max_connections: usize,
    /// Zero: no idle timeout.
    pub idle_timeout: Duration,
    pub max_message_size: usize,
    /// Zero: no pings.
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub require_auth: bool,
    pub allow_anonymous: bool,
    pub queue_capacity: usize,
    pub redis_url: Option<String>,
    /// Redis pub/sub channels that backend services publish to
    /// (`integration.redis_pubsub.channels`); each feeds the hub channel of the same name.
    pub pubsub_channels: Vec<String>,
}

impl HubSettings {
    /// Reads `websocket` (and the body limit) from the static configuration.
    pub fn from_config(cfg: &GatewayConfig) -> Result<Self, String> {
        let ws = &cfg.websocket;
        let dur = |key: &str, v: &str| parse_duration(v).map_err(|e| format!("websocket.server.{key}: {e}"));
        let path = ws.server.path.trim().to_string();
        if !path.starts_with('/') {
            return Err(format!("websocket.server.path `{path}` must start with '/'"));
        }
        let hook = &ws.integration.webhook;
        let webhook_path = hook.enabled.then(|| hook.path.trim().to_string());
        if let Some(p) = &webhook_path {
            if !p.starts_with('/') || *p == path {
                return Err(format!(
                    "websocket.integration.webhook.path `{p}` must start with '/' and differ from the hub path"
                ));
            }
        }
        let redis_url = ws
            .redis_url
            .clone()
            .or_else(|| {
                ws.integration
                    .redis_pubsub
                    .enabled
                    .then(|| ws.integration.redis_pubsub.url.clone())
                    .flatten()
            })
            .filter(|u| !u.trim().is_empty());
        let pubsub = &ws.integration.redis_pubsub;
        let pubsub_channels: Vec<String> = if pubsub.enabled {
            pubsub
                .channels
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        if let Some(c) = pubsub_channels
            .iter()
            .find(|c| c.as_str() == fanout::FANOUT_CHANNEL)
        {
            return Err(format!(
                "websocket.integration.redis_pubsub.channels: `{c}` is the hub's own fan-out channel"
            ));
        }
        Ok(HubSettings {
            path,
            webhook_path,
            webhook_token: hook.auth_token.clone().filter(|t| !t.trim().is_empty()),
            webhook_max_body: usize::try_from(cfg.server.limits.max_body_size).unwrap_or(usize::MAX),
            max_connections: ws.server.max_connections,
            idle_timeout: dur("idle_timeout", &ws.server.idle_timeout)?,
            max_message_size: ws.server.max_message_size,
            ping_interval: dur("ping_interval", &ws.server.ping_interval)?,
            pong_timeout: dur("pong_timeout", &ws.server.pong_timeout)?,
            require_auth: ws.server.require_auth,
            allow_anonymous: ws.server.allow_anonymous,
            queue_capacity: QUEUE_CAPACITY,
            redis_url,
            pubsub_channels,
        })
    }

    /// Whether a connection without a token may use channels that do not require auth.
    pub fn anonymous_allowed(&self) -> bool {
        !self.require_auth || self.allow_anonymous
    }

    /// Paths the hub answers (the hub, the webhook), reserved from routes.
    pub fn paths(&self) -> Vec<String> {
        let mut v = vec![self.path.clone()];
        v.extend(self.webhook_path.clone());
        v
    }
}

impl Hub {
    /// Builds the hub and, when Redis is configured, starts its fan-out.
    pub fn start(
        settings: HubSettings,
        table: crate::routing::TableHandle,
        verifier: Arc<dyn TokenVerifier>,
        metrics: crate::telemetry::Metrics,
    ) -> Result<Arc<Hub>, String> {
        let url = settings.redis_url.clone();
        let unheard = url.is_none() && !settings.pubsub_channels.is_empty();
        let hub = Arc::new(Hub::new(settings, table, verifier, metrics));
        if let Some(url) = url {
            fanout::Fanout::start(&hub, &url)?;
        }
        if unheard {
            tracing::warn!("websocket.integration.redis_pubsub.channels are set but no Redis URL is: nothing will be heard on them");
        }
        Ok(hub)
    }

    /// Whether the proxy should hand a request for `path` to the hub.
    pub fn claims(&self, path: &str) -> bool {
        path == self.settings.path || self.settings.webhook_path.as_deref() == Some(path)
    }

    /// Serves a request the hub claimed: the webhook or an upgrade.
    pub async fn handle<B>(self: &Arc<Self>, peer: SocketAddr, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if self.settings.webhook_path.as_deref() == Some(req.uri().path()) {
            self.webhook(req).await
        } else {
            self.upgrade(peer, req)
        }
    }
}

/// `Connection: upgrade` and `Upgrade: websocket` (any case, any list position).
pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The percent-decoded value of `name` in a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_and_decoded() {
        assert_eq!(query_param("a=1&token=x.y.z", "token").as_deref(), Some("x.y.z"));
        assert_eq!(query_param("token=a%2Eb%3d", "token").as_deref(), Some("a.b="));
        assert_eq!(query_param("tokens=1", "token"), None);
        assert_eq!(query_param("token=%zz%4", "token").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn upgrade_headers_are_read_as_token_lists() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, Upgrade".parse().expect("value"));
        h.insert("upgrade", "WebSocket".parse().expect("value"));
        assert!(is_websocket_upgrade(&h));
        h.insert("upgrade", "h2c".parse().expect("value"));
        assert!(!is_websocket_upgrade(&h));
    }

    #[test]
    fn seed_settings_load() {
        let text = include_str!("../../tests/fixtures/gateway-websocket.yaml");
        let cfg =
            GatewayConfig::from_yaml_str(text, &|k| (k == "WEBHOOK_AUTH_TOKEN").then(|| "w".to_string()))
                .expect("seed loads");
        let s = HubSettings::from_config(&cfg).expect("valid");
        assert_eq!(s.path, "/ws");
        assert_eq!(s.webhook_path.as_deref(), Some("/webhook/websocket"));
        assert_eq!(s.webhook_token.as_deref(), Some("w"));
        assert_eq!(s.ping_interval, Duration::from_secs(30));
        assert_eq!(s.redis_url.as_deref(), Some("redis://redis:6379/1"));
        assert_eq!(s.pubsub_channels, ["events", "notifications", "alerts"]);
        assert!(!s.anonymous_allowed());
    }
}
