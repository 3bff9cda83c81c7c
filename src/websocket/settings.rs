//! The hub's static settings: `websocket.server`, `websocket.limits`, the webhook and Redis,
//! read from `gateway.yaml`.

use std::time::Duration;

use super::error::{Error, Result};
use super::fanout::FANOUT_CHANNEL;
use crate::settings::{parse_duration, GatewayConfig, WebSocketLimits};

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
    /// `integration.message_queue` when enabled.
    pub message_queue: Option<QueueSettings>,
    pub limits: HubLimits,
}

/// `integration.message_queue`, checked: a RabbitMQ exchange the hub consumes from.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSettings {
    /// With its credentials: never log it, log [`QueueSettings::shown_url`]. `None` when it
    /// comes from a Secret (`url_secret_ref`): the intake then reads it from the live table.
    pub url: Option<String>,
    pub exchange: String,
    /// `topic`, `direct`, `fanout` or `headers`.
    pub exchange_type: String,
    pub binding_key: String,
    pub prefetch: u16,
}

impl QueueSettings {
    fn from_config(q: &crate::settings::MessageQueueConfig) -> Result<Option<Self>> {
        if !q.enabled {
            return Ok(None);
        }
        let bad = |why: String| Err(Error::MessageQueue(why));
        if !q.type_.trim().eq_ignore_ascii_case("rabbitmq") {
            return bad(format!("type `{}` is not supported (only `rabbitmq`)", q.type_));
        }
        // A Secret reference wins over `url`; its value is checked when the table is compiled.
        let url = match &q.url_secret_ref {
            Some(r) if r.name.trim().is_empty() => return bad("url_secret_ref.name is required".into()),
            Some(_) => None,
            None => {
                let url = q.url.as_deref().map(str::trim).unwrap_or_default();
                if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                    return bad(format!(
                        "url `{}` must start with amqp:// or amqps://",
                        redact_url(url)
                    ));
                }
                Some(url.to_string())
            }
        };
        let exchange = q.exchange.trim();
        if exchange.is_empty() || exchange.starts_with("amq.") {
            return bad(format!(
                "exchange `{exchange}` must be set and not start with `amq.`"
            ));
        }
        let exchange_type = q.exchange_type.trim().to_ascii_lowercase();
        if !["topic", "direct", "fanout", "headers"].contains(&exchange_type.as_str()) {
            return bad(format!(
                "exchange_type `{exchange_type}` is not an AMQP exchange type"
            ));
        }
        Ok(Some(QueueSettings {
            url,
            exchange: exchange.to_string(),
            exchange_type,
            binding_key: q.binding_key.trim().to_string(),
            prefetch: q.prefetch.max(1),
        }))
    }

    /// The URL with its password replaced by `***`, for logs and the admin API.
    pub fn shown_url(&self) -> String {
        self.url
            .as_deref()
            .map_or_else(|| "(from url_secret_ref)".into(), redact_url)
    }
}

/// `scheme://user:***@host...`: the password of a URL hidden (the URL as it is without one).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// `websocket.limits`: what the hub keeps for its clients. `None` turns a bound off.
#[derive(Clone, Debug, PartialEq)]
pub struct HubLimits {
    pub max_subscriptions: Option<usize>,
    pub max_channels: Option<usize>,
    pub history_max_bytes: Option<usize>,
    pub history_max_total_bytes: Option<usize>,
    pub history_max_age: Option<Duration>,
    /// Applies only when the hub admits no anonymous clients.
    pub auth_timeout: Option<Duration>,
    /// Client frames per connection: `(per second, burst)`.
    pub message_rate: Option<(u32, u32)>,
}

impl HubLimits {
    /// Reads `websocket.limits`; `0` and `0s` turn a bound off.
    pub fn from_config(l: &WebSocketLimits) -> Result<Self> {
        let dur = |key: &'static str, v: &str| {
            parse_duration(v)
                .map(|d| (!d.is_zero()).then_some(d))
                .map_err(|reason| Error::LimitDuration { key, reason })
        };
        let some = |n: usize| (n > 0).then_some(n);
        Ok(HubLimits {
            max_subscriptions: some(l.max_subscriptions_per_connection),
            max_channels: some(l.max_channels),
            history_max_bytes: some(l.history_max_bytes),
            history_max_total_bytes: some(l.history_max_total_bytes),
            history_max_age: dur("history_max_age", &l.history_max_age)?,
            auth_timeout: dur("auth_timeout", &l.auth_timeout)?,
            message_rate: (l.messages_per_second > 0)
                .then(|| (l.messages_per_second, l.message_burst.max(1))),
        })
    }
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
            message_queue: QueueSettings::from_config(&ws.integration.message_queue)?,
            limits: HubLimits::from_config(&ws.limits)?,
        })
    }

    /// Whether a connection without a token may use channels that do not require auth.
    pub fn anonymous_allowed(&self) -> bool {
        !self.require_auth || self.allow_anonymous
    }

    /// How long a connection without a token has to send `Auth`: `None` when the hub admits
    /// anonymous clients or `auth_timeout` is `0s`.
    pub fn auth_deadline(&self) -> Option<Duration> {
        self.limits.auth_timeout.filter(|_| !self.anonymous_allowed())
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
        // The seed has no `websocket.limits`: every bound has its default.
        assert_eq!(
            s.limits,
            HubLimits {
                max_subscriptions: Some(100),
                max_channels: Some(10_000),
                history_max_bytes: Some(1024 * 1024),
                history_max_total_bytes: Some(64 * 1024 * 1024),
                history_max_age: Some(Duration::from_secs(300)),
                auth_timeout: Some(Duration::from_secs(10)),
                message_rate: Some((20, 100)),
            }
        );
        assert_eq!(s.auth_deadline(), Some(Duration::from_secs(10)));
        // The seed's message_queue block is disabled.
        assert_eq!(s.message_queue, None);
    }

    #[test]
    fn message_queue_is_read_checked_and_its_password_never_shown() {
        let yaml = "websocket:\n  integration:\n    message_queue:\n      enabled: true\n      type: rabbitmq\n      url: \"amqp://app:${MQ_PASS}@rabbitmq:5672/%2f\"\n      exchange: websocket_events\n      future_key: accepted\n";
        let cfg = GatewayConfig::from_yaml_str(yaml, &|k| (k == "MQ_PASS").then(|| "s3cret".to_string()))
            .expect("loads");
        let q = HubSettings::from_config(&cfg)
            .expect("valid")
            .message_queue
            .expect("enabled");
        assert_eq!(q.url.as_deref(), Some("amqp://app:s3cret@rabbitmq:5672/%2f"));
        assert_eq!(
            (
                q.exchange.as_str(),
                q.exchange_type.as_str(),
                q.binding_key.as_str()
            ),
            ("websocket_events", "topic", "#")
        );
        assert_eq!(q.shown_url(), "amqp://app:***@rabbitmq:5672/%2f");
        assert_eq!(redact_url("amqp://rabbitmq:5672"), "amqp://rabbitmq:5672");
        // An empty section, as before it was typed, is accepted and off.
        let empty =
            GatewayConfig::from_yaml_str("websocket:\n  integration:\n    message_queue:\n", &|_| None)
                .expect("loads");
        assert_eq!(
            HubSettings::from_config(&empty).expect("valid").message_queue,
            None
        );
        assert_eq!(redact_url("amqps://u@h/v"), "amqps://u:***@h/v");
        for (bad, says) in [
            ("type: kafka\n      url: amqp://h", "type `kafka`"),
            ("url: redis://u:pw@h", "url `redis://u:***@h`"),
            ("url: amqp://h\n      exchange: amq.topic", "exchange `amq.topic`"),
            ("url: amqp://h\n      exchange_type: ring", "exchange_type `ring`"),
        ] {
            let yaml =
                format!("websocket:\n  integration:\n    message_queue:\n      enabled: true\n      {bad}\n");
            let cfg = GatewayConfig::from_yaml_str(&yaml, &|_| None).expect("loads");
            let e = HubSettings::from_config(&cfg).expect_err(bad).to_string();
            assert!(
                e.starts_with("websocket.integration.message_queue: ") && e.contains(says),
                "{e}"
            );
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn a_url_secret_ref_wins_over_url_and_needs_a_name() {
        let yaml = "websocket:\n  integration:\n    message_queue:\n      enabled: true\n      url: \"redis://not-checked\"\n      url_secret_ref: {name: mq, key: url}\n";
        let cfg = GatewayConfig::from_yaml_str(yaml, &|_| None).expect("loads");
        let r = cfg
            .websocket
            .integration
            .message_queue
            .url_secret_ref
            .clone()
            .expect("read");
        assert_eq!((r.name.as_str(), r.key.as_deref()), ("mq", Some("url")));
        let q = HubSettings::from_config(&cfg)
            .expect("valid")
            .message_queue
            .expect("enabled");
        assert_eq!(q.url, None);
        assert!(!q.shown_url().contains("redis"), "{}", q.shown_url());
        let yaml = "websocket:\n  integration:\n    message_queue:\n      enabled: true\n      url_secret_ref: {key: url}\n";
        let cfg = GatewayConfig::from_yaml_str(yaml, &|_| None).expect("loads");
        let e = HubSettings::from_config(&cfg).expect_err("no name").to_string();
        assert!(e.contains("url_secret_ref.name"), "{e}");
    }

    #[test]
    fn limits_are_read_and_zero_turns_one_off() {
        let yaml = "websocket:\n  server: {allow_anonymous: true}\n  limits:\n    max_channels: 0\n    history_max_age: 0s\n    auth_timeout: 3s\n    messages_per_second: 5\n    message_burst: 0\n";
        let cfg = GatewayConfig::from_yaml_str(yaml, &|_| None).expect("loads");
        let s = HubSettings::from_config(&cfg).expect("valid");
        assert_eq!(s.limits.max_channels, None);
        assert_eq!(s.limits.history_max_age, None);
        assert_eq!(s.limits.max_subscriptions, Some(100));
        assert_eq!(s.limits.auth_timeout, Some(Duration::from_secs(3)));
        assert_eq!(s.auth_deadline(), None, "anonymous clients need no deadline");
        assert_eq!(s.limits.message_rate, Some((5, 1)));
        let bad = GatewayConfig::from_yaml_str("websocket:\n  limits: {auth_timeout: soon}\n", &|_| None)
            .expect("loads");
        let e = HubSettings::from_config(&bad).expect_err("a bad duration");
        assert!(
            e.to_string().starts_with("websocket.limits.auth_timeout: "),
            "{e}"
        );
    }
}
