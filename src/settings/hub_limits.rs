//! `websocket.limits`: how much the WebSocket hub keeps for its clients. Every bound has a
//! default; `0` (or `0s`) turns that one bound off.

use serde::Deserialize;

/// The `websocket.limits` section (see docs/security.md, "The WebSocket hub").
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebSocketLimits {
    /// Channels one connection may be subscribed to at once (`too_many_subscriptions`).
    pub max_subscriptions_per_connection: usize,
    /// Channels this process keeps at once, with subscribers or history (`too_many_channels`).
    pub max_channels: usize,
    /// Bytes of history one channel keeps (its oldest messages go first).
    pub history_max_bytes: usize,
    /// Bytes of history all channels keep together; beyond it a message is delivered, not kept.
    pub history_max_total_bytes: usize,
    /// How long a message stays in a channel's history.
    pub history_max_age: String,
    /// How long a connection without a token has to send `Auth` when the hub admits no
    /// anonymous clients.
    pub auth_timeout: String,
    /// Client frames per second per connection, sustained (`rate_limited`).
    pub messages_per_second: u32,
    /// Client frames a connection may send at once before `messages_per_second` applies.
    pub message_burst: u32,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            max_subscriptions_per_connection: 100,
            max_channels: 10_000,
            history_max_bytes: 1024 * 1024,
            history_max_total_bytes: 64 * 1024 * 1024,
            history_max_age: "5m".into(),
            auth_timeout: "10s".into(),
            messages_per_second: 20,
            message_burst: 100,
        }
    }
}
