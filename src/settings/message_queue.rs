//! `websocket.integration.message_queue`: a RabbitMQ exchange that feeds the WebSocket hub.
//! Keys this version does not know are accepted and ignored.

use serde::Deserialize;

/// The `websocket.integration.message_queue` section (see docs/websocket.md, "RabbitMQ").
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct MessageQueueConfig {
    /// Off by default: the section is then accepted and ignored.
    pub enabled: bool,
    /// The broker kind; only `rabbitmq` (AMQP 0-9-1) is supported.
    #[serde(rename = "type")]
    pub type_: String,
    /// `amqp://user:password@host:port/vhost` (or `amqps://`); `${VAR}` is substituted by the
    /// loader, so the credentials can come from the environment.
    pub url: Option<String>,
    /// A Kubernetes Secret's key holding the URL (credentials inside) instead of `url`; wins
    /// over `url` when both are set. Its namespace defaults to the gateway's own.
    pub url_secret_ref: Option<super::secret_ref::SecretKeyRef>,
    /// The exchange the hub binds its queue to; declared (durable) when missing.
    pub exchange: String,
    /// The exchange's type when the hub declares it: `topic` (default), `direct`, `fanout`.
    pub exchange_type: String,
    /// The binding key of each replica's queue: `#` (default) takes every message.
    pub binding_key: String,
    /// Unacknowledged messages the broker may send one replica at once.
    pub prefetch: u16,
}

impl Default for MessageQueueConfig {
    fn default() -> Self {
        MessageQueueConfig {
            enabled: false,
            type_: "rabbitmq".into(),
            url: None,
            url_secret_ref: None,
            exchange: "websocket_events".into(),
            exchange_type: "topic".into(),
            binding_key: "#".into(),
            prefetch: 256,
        }
    }
}
