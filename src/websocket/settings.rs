//! The hub's static settings: `websocket.server`, the webhook and Redis, read from
//! `gateway.yaml`.

use std::time::Duration;

use super::error::{Error, Result};
use super::fanout::FANOUT_CHANNEL;
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
    pub fn from_config(cfg: &GatewayConfig) -> Result<Self> {
        let ws = &cfg.websocket;
        let dur =
            |key: &'static str, v: &str| parse_duration(v).map_err(|reason| Error::Duration { key, reason });
        let path = ws.server.path.trim().to_string();
        if !path.starts_with('/') {
            return Err(Error::HubPath(path));
        }
        let hook = &ws.integration.webhook;
        let webhook_path = hook.enabled.then(|| hook.path.trim().to_string());
        if let Some(p) = &webhook_path {
            if !p.starts_with('/') || *p == path {
                return Err(Error::WebhookPath(p.clone()));
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
        if let Some(c) = pubsub_channels.iter().find(|c| c.as_str() == FANOUT_CHANNEL) {
            return Err(Error::PubsubChannelIsFanout(c.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

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
