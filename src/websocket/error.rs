//! What can go wrong at the hub's edges: its static settings, its Redis URL, and a message a
//! backend publishes on a Redis pub/sub channel or the message queue. Client-facing refusals are not errors of this
//! kind: they are `ProtocolError`s sent back as `Error` frames.

/// One error type for the hub's boundaries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration under `websocket.server` does not parse.
    #[error("websocket.server.{key}: {reason}")]
    Duration {
        key: &'static str,
        reason: crate::settings::DurationError,
    },
    /// A duration under `websocket.limits` does not parse.
    #[error("websocket.limits.{key}: {reason}")]
    LimitDuration {
        key: &'static str,
        reason: crate::settings::DurationError,
    },
    #[error("websocket.server.path `{0}` must start with '/'")]
    HubPath(String),
    #[error("websocket.integration.webhook.path `{0}` must start with '/' and differ from the hub path")]
    WebhookPath(String),
    /// A backend pub/sub channel named like the replicas' own fan-out channel.
    #[error("websocket.integration.redis_pubsub.channels: `{0}` is the hub's own fan-out channel")]
    PubsubChannelIsFanout(String),
    /// `integration.message_queue` is enabled but cannot be used as written.
    #[error("websocket.integration.message_queue: {0}")]
    MessageQueue(String),
    #[error("redis url: {0}")]
    RedisUrl(#[source] redis::RedisError),
    /// A message with a `type` on a backend pub/sub channel that is not a webhook event.
    #[error("{0}")]
    BackendMessage(#[source] serde_json::Error),
    /// A message from the message queue that is not a webhook body.
    #[error("{0}")]
    QueueMessage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
