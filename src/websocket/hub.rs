//! The hub of one gateway process: it joins the connection registry, the live channels and
//! the courier, and carries out what clients, the webhook, the admin API and other replicas
//! ask of it. Policies are read from the live routing table on every decision, so a changed
//! `WebSocketChannel` applies to the next Subscribe or Broadcast.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::access;
use super::auth::TokenVerifier;
use super::channels::Channels;
use super::client::{ClientConnection, Opened};
use super::delivery::{Courier, Delivery};
use super::fanout::Fanout;
use super::history::HistoryBounds;
use super::protocol::{self, ProtocolError};
use super::registry::ConnectionRegistry;
use super::settings::HubSettings;
use crate::routing::channels::{ChannelPolicy, RatePolicy};
use crate::routing::TableHandle;
use crate::telemetry::Metrics;

/// Message totals since the start, for the statistics.
#[derive(Default)]
pub(crate) struct MessageTotals {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub received: AtomicU64,
    pub webhook_calls: AtomicU64,
}

/// The WebSocket hub of one gateway process.
pub struct Hub {
    pub settings: HubSettings,
    pub(crate) table: TableHandle,
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) metrics: Metrics,
    pub(crate) connections: ConnectionRegistry,
    pub(crate) channels: Channels,
    pub(crate) courier: Courier,
    /// Distinguishes this replica on the Redis fan-out channel.
    pub node_id: String,
    pub(crate) fanout: OnceLock<Fanout>,
    stopping: AtomicBool,
    pub(crate) messages: MessageTotals,
    pub(crate) started: Instant,
}

impl Hub {
    pub fn new(
        settings: HubSettings,
        table: TableHandle,
        verifier: Arc<dyn TokenVerifier>,
        metrics: Metrics,
    ) -> Self {
        let mut node = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut node);
        let node_id: String = node.iter().map(|b| format!("{b:02x}")).collect();
        Hub {
            connections: ConnectionRegistry::new(
                settings.max_connections,
                settings.queue_capacity,
                node_id.clone(),
                metrics.ws.clone(),
            ),
            channels: Channels::new(
                metrics.ws.clone(),
                settings.limits.max_channels,
                HistoryBounds {
                    max_bytes: settings.limits.history_max_bytes.unwrap_or(usize::MAX),
                    max_total_bytes: settings.limits.history_max_total_bytes.unwrap_or(usize::MAX),
                    max_age: settings.limits.history_max_age,
                },
            ),
            courier: Courier::new(metrics.ws.clone()),
            settings,
            table,
            verifier,
            metrics,
            node_id,
            fanout: OnceLock::new(),
            stopping: AtomicBool::new(false),
            messages: MessageTotals::default(),
            started: Instant::now(),
        }
    }

    pub fn policy(&self, channel: &str) -> Arc<ChannelPolicy> {
        self.table.load().channels.policy(channel)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn active(&self) -> usize {
        self.connections.active()
    }

    /// Reserves a connection slot; `false` at `max_connections`.
    pub(crate) fn reserve(&self) -> bool {
        self.connections.reserve()
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.connections.refused(reason);
    }

    /// Registers a connection for a reserved slot.
    pub(crate) fn register(&self, opened: Opened) -> Arc<ClientConnection> {
        self.connections.register(opened)
    }

    /// Forgets a connection: its subscriptions, its registry entry and its slot.
    pub(crate) fn unregister(&self, conn: &Arc<ClientConnection>) {
        for channel in conn.take_subscriptions() {
            self.channels.remove_subscriber(&channel, conn.seq);
        }
        self.connections.remove(conn);
    }

    /// The writer started closing: the connection moves to `closing` in the state gauge.
    pub(crate) fn mark_closing(&self, conn: &ClientConnection) {
        self.connections.mark_closing(conn);
    }

    /// Sends `d` to `conn` (queued behind what it already has); a full queue drops the
    /// connection as a slow consumer.
    pub(crate) fn send(&self, conn: &ClientConnection, d: Delivery) -> bool {
        self.courier.send(conn, d)
    }

    pub(crate) fn count_sent(&self, n: u64) {
        self.courier.count_sent(n);
    }

    pub(crate) fn count_received(&self, conn: &ClientConnection, len: usize) {
        conn.counted_received();
        self.messages.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.ws.messages_received_total.inc();
        self.metrics
            .ws
            .message_size_bytes
            .with_label_values(&["in"])
            .observe(len as f64);
    }

    pub(crate) fn error_to(&self, conn: &ClientConnection, e: &ProtocolError) {
        self.send(conn, Delivery::Frame(protocol::error(e)));
    }

    /// Publishes `message` on `channel` here and, with Redis, on every other replica.
    /// `target`: only that user's connections receive it. Returns local deliveries.
    pub fn publish(&self, channel: &str, message: &Value, from: &str, target: Option<&str>) -> usize {
        self.publish_to(channel, message, from, target, true)
    }

    /// `publish`; `share`: also hand the frame to the other replicas (and to persistence).
    pub(crate) fn publish_to(
        &self,
        channel: &str,
        message: &Value,
        from: &str,
        target: Option<&str>,
        share: bool,
    ) -> usize {
        let policy = self.policy(channel);
        let frame = protocol::broadcast(channel, message, from, &protocol::now_rfc3339());
        self.metrics
            .ws
            .message_size_bytes
            .with_label_values(&["out"])
            .observe(frame.len() as f64);
        self.messages.published.fetch_add(1, Ordering::Relaxed);
        let target: Option<Arc<str>> = target.map(Arc::from);
        let n = self.deliver(channel, &frame, target.as_ref(), policy.message_history);
        if let Some(f) = self.fanout.get().filter(|_| share) {
            // What no channel's history may keep in memory is not kept in Redis either.
            let fits = frame.len() <= self.settings.limits.history_max_bytes.unwrap_or(usize::MAX);
            let persist = policy
                .persistence
                .filter(|_| fits)
                .map(|ttl| (policy.message_history, ttl));
            f.publish(channel, &frame, target.as_deref(), persist);
        }
        n
    }

    /// A frame published on another replica.
    pub(crate) fn deliver_remote(&self, channel: &str, frame: Utf8Bytes, target: Option<&str>) -> usize {
        let policy = self.policy(channel);
        let target: Option<Arc<str>> = target.map(Arc::from);
        self.deliver(channel, &frame, target.as_ref(), policy.message_history)
    }

    fn deliver(&self, channel: &str, frame: &Utf8Bytes, target: Option<&Arc<str>>, history: u32) -> usize {
        let delivered = self
            .channels
            .deliver(&self.courier, channel, frame, target, history);
        self.messages
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Subscribes `conn` to `channel`: checks the policy, answers `subscribed`, replays the
    /// history (from Redis for persistent channels when it answers), then live messages.
    pub(crate) async fn subscribe(
        &self,
        conn: &Arc<ClientConnection>,
        channel: &str,
    ) -> Result<(), ProtocolError> {
        let policy = self.policy(channel);
        let identity = conn.identity();
        access::may_subscribe(
            &policy,
            identity.as_deref(),
            conn.origin.as_deref(),
            self.settings.anonymous_allowed(),
        )?;
        if conn.is_subscribed(channel) {
            self.send(conn, Delivery::Frame(protocol::subscribed(channel)));
            return Ok(());
        }
        if let Some(max) = self
            .settings
            .limits
            .max_subscriptions
            .filter(|m| conn.subscription_count() >= *m)
        {
            return Err(ProtocolError::new(
                "too_many_subscriptions",
                format!("a connection may subscribe to at most {max} channels; unsubscribe from one first"),
            ));
        }
        let stored = match (policy.persistence, policy.message_history, self.fanout.get()) {
            (Some(_), n, Some(f)) if n > 0 => f.history(channel, n).await,
            _ => None,
        };
        let user = identity.as_ref().map(|i| i.user_id.as_str());
        self.channels
            .subscribe(&self.courier, conn, channel, &policy, user, stored)
    }

    /// Drops expired history and the channels left with nothing, as of `now`; returns how many
    /// channels went. [`Hub::start`] runs it every [`Hub::sweep_interval`].
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        self.channels.sweep(now)
    }

    /// How often expired history is looked for: a quarter of `history_max_age`, within 1 s
    /// and 1 min (channels without history go with their last subscriber anyway).
    pub(crate) fn sweep_interval(&self) -> Duration {
        let age = self
            .settings
            .limits
            .history_max_age
            .unwrap_or(Duration::from_secs(240));
        (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub(crate) fn unsubscribe(&self, conn: &ClientConnection, channel: &str) {
        if conn.remove_subscription(channel) {
            self.channels.remove_subscriber(channel, conn.seq);
        }
        self.send(conn, Delivery::Frame(protocol::unsubscribed(channel)));
    }

    /// Client Broadcast: subscribed, allowed to publish, and within the channel's rate
    /// (`rate_ok` takes a token from the connection's bucket for this channel).
    pub(crate) fn client_broadcast(
        &self,
        conn: &ClientConnection,
        channel: &str,
        message: &Value,
        rate_ok: impl FnOnce(&RatePolicy) -> bool,
    ) -> Result<usize, ProtocolError> {
        if !conn.is_subscribed(channel) {
            return Err(ProtocolError::new(
                "not_subscribed",
                format!("subscribe to `{channel}` before broadcasting on it"),
            ));
        }
        let policy = self.policy(channel);
        let identity = conn.identity();
        let roles = identity.as_ref().map(|i| i.roles.as_slice()).unwrap_or_default();
        access::may_broadcast(&policy, channel, roles, rate_ok)?;
        let from = identity.as_ref().map_or("anonymous", |i| i.user_id.as_str());
        // On a user-specific channel a client's message goes to that user's own connections.
        let target = if policy.user_specific {
            identity.as_ref().map(|i| i.user_id.as_str())
        } else {
            None
        };
        Ok(self.publish(channel, message, from, target))
    }

    /// Every channel an event is routed to; returns local deliveries.
    pub fn publish_event(&self, event: &str, message: &Value, from: &str) -> usize {
        self.publish_event_to(event, message, from, true)
    }

    pub(crate) fn publish_event_to(&self, event: &str, message: &Value, from: &str, share: bool) -> usize {
        let channels = self.table.load().channels.channels_for_event(event).to_vec();
        channels
            .iter()
            .map(|c| self.publish_to(c, message, from, None, share))
            .sum()
    }

    pub(crate) fn webhook_called(&self) {
        self.messages.webhook_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection(&self, id: &str) -> Option<Arc<ClientConnection>> {
        self.connections.get(id)
    }

    /// Every open connection, oldest first.
    pub fn connections(&self) -> Vec<Arc<ClientConnection>> {
        self.connections.list()
    }

    /// Sends a direct message to one connection (admin API). `None`: no such connection.
    pub fn send_direct(&self, id: &str, message: &Value, from: &str) -> Option<bool> {
        let conn = self.connection(id)?;
        let frame = protocol::direct(message, from, &protocol::now_rfc3339());
        Some(self.send(&conn, Delivery::Frame(frame)))
    }

    /// Closes one connection with 1000 (admin API).
    pub fn disconnect(&self, id: &str) -> bool {
        match self.connection(id) {
            Some(c) => {
                c.close(CloseCode::Normal, "closed by an administrator");
                true
            }
            None => false,
        }
    }

    /// SIGTERM: refuse new upgrades, close every connection with 1001, and wait (up to
    /// `grace`) until all are gone.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        let conns = self.connections();
        if conns.is_empty() {
            return;
        }
        tracing::info!(connections = conns.len(), "closing WebSocket connections (1001)");
        for c in &conns {
            c.close(CloseCode::Away, "server shutting down");
        }
        let deadline = Instant::now() + grace;
        while self.active() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for c in self.connections() {
            c.cancel.cancel();
        }
    }
}
