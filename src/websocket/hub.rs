//! The hub's state: open connections, channels with their subscribers and history, and
//! delivery. Policies are read from the live routing table on every decision, so a changed
//! `WebSocketChannel` applies to the next Subscribe or Broadcast.
//!
//! Delivery never waits on a client: each connection has a bounded queue (its [`Outbox`]), a
//! full queue marks the connection as a slow consumer and drops it
//! (`websocket_slow_consumers_disconnected_total`). A broadcast is encoded once, queued for
//! every subscriber in order, then written by a few tasks that each take a share of the
//! subscribers, straight to their sockets.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::auth::{Identity, TokenVerifier};
use super::fanout::Fanout;
use super::outbox::{self, Outbox, Pushed};
use super::protocol::{self, ProtocolError};
use super::settings::HubSettings;
use crate::routing::channels::ChannelPolicy;
use crate::routing::TableHandle;
use crate::telemetry::Metrics;

/// What the hub sends to one connection.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Utf8Bytes),
    /// History replay: one queue slot however long it is.
    Batch(Vec<Utf8Bytes>),
}

/// Subscribers written by one task after a broadcast.
const WRITE_SHARE: usize = 256;

/// One message kept for replay; `target` set for messages meant for one user.
#[derive(Clone, Debug)]
pub struct Entry {
    pub frame: Utf8Bytes,
    pub target: Option<Arc<str>>,
}

impl Entry {
    fn visible_to(&self, user: Option<&str>) -> bool {
        self.target.as_deref().is_none_or(|t| Some(t) == user)
    }
}

/// One WebSocket connection as the hub sees it.
pub struct Conn {
    pub seq: u64,
    pub id: String,
    pub peer: SocketAddr,
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    pub connected_at: SystemTime,
    started: Instant,
    identity: ArcSwapOption<Identity>,
    subscriptions: Mutex<BTreeSet<String>>,
    pub(crate) out: Outbox,
    pub(crate) cancel: CancellationToken,
    received: AtomicU64,
    last_rx_ms: AtomicU64,
    last_activity_ms: AtomicU64,
    closing: AtomicBool,
    pub(crate) close_sent: AtomicBool,
    pub(crate) reader_done: AtomicBool,
    in_closing_state: AtomicBool,
}

impl Conn {
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity.load_full()
    }

    pub(crate) fn set_identity(&self, id: Identity) {
        self.identity.store(Some(Arc::new(id)));
    }

    fn user_is(&self, user: &str) -> bool {
        self.identity.load().as_ref().is_some_and(|i| i.user_id == user)
    }

    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).iter().cloned().collect()
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        lock(&self.subscriptions).contains(channel)
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A frame arrived (any kind): the peer is alive.
    pub(crate) fn touch_rx(&self) {
        self.last_rx_ms.store(self.ms(), Ordering::Relaxed);
    }

    /// A data frame went either way: the connection is not idle.
    pub(crate) fn touch_activity(&self) {
        self.last_activity_ms.store(self.ms(), Ordering::Relaxed);
    }

    pub(crate) fn counted_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes what the socket takes now (see [`Outbox::write_now`]); returns messages written.
    pub(crate) fn write_now(&self) -> u64 {
        let n = self.out.write_now();
        if n > 0 {
            self.touch_activity();
        }
        n
    }

    pub(crate) fn last_rx_ms(&self) -> u64 {
        self.last_rx_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.ms()
    }

    pub(crate) fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Asks the writer to close with `code`; drops the connection when its queue is full.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.close_with(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_string()),
        }));
    }

    pub(crate) fn close_with(&self, frame: Option<CloseFrame>) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.out.request_close(frame);
    }

    fn json(&self) -> Value {
        let identity = self.identity();
        json!({
            "id": self.id,
            "user_id": identity.as_ref().map(|i| i.user_id.clone()),
            "roles": identity.as_ref().map(|i| i.roles.clone()).unwrap_or_default(),
            "authenticated": identity.is_some(),
            "remote_addr": self.peer.to_string(),
            "origin": self.origin,
            "user_agent": self.user_agent,
            "connected_at": humantime::format_rfc3339_seconds(self.connected_at).to_string(),
            "connected_seconds": self.started.elapsed().as_secs(),
            "idle_seconds": self.last_activity().elapsed().as_secs(),
            "state": if self.is_closing() { "closing" } else { "connected" },
            "subscriptions": self.subscriptions(),
            "messages_sent": self.out.sent(),
            "messages_received": self.received.load(Ordering::Relaxed),
            "queued": self.out.queued(),
        })
    }
}

#[derive(Default)]
struct Channel {
    subs: RwLock<HashMap<u64, Arc<Conn>>>,
    history: Mutex<VecDeque<Entry>>,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
    slow: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    received: AtomicU64,
    webhook_calls: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// The WebSocket hub of one gateway process.
pub struct Hub {
    pub settings: HubSettings,
    pub(crate) table: TableHandle,
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) metrics: Metrics,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    channels: RwLock<HashMap<String, Arc<Channel>>>,
    active: AtomicUsize,
    next_seq: AtomicU64,
    /// Distinguishes this replica on the Redis fan-out channel.
    pub node_id: String,
    pub(crate) fanout: OnceLock<Fanout>,
    stopping: AtomicBool,
    stats: Stats,
    started: Instant,
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
        Hub {
            settings,
            table,
            verifier,
            metrics,
            conns: Mutex::default(),
            channels: RwLock::default(),
            active: AtomicUsize::new(0),
            next_seq: AtomicU64::new(1),
            node_id: node.iter().map(|b| format!("{b:02x}")).collect(),
            fanout: OnceLock::new(),
            stopping: AtomicBool::new(false),
            stats: Stats::default(),
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
        self.active.load(Ordering::Acquire)
    }

    /// Reserves a connection slot; `false` at `max_connections`.
    pub(crate) fn reserve(&self) -> bool {
        let max = self.settings.max_connections;
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .ws
            .upgrades_refused_total
            .with_label_values(&[reason])
            .inc();
    }

    /// Registers a connection for a reserved slot.
    pub(crate) fn register(
        &self,
        peer: SocketAddr,
        origin: Option<String>,
        user_agent: Option<String>,
        identity: Option<Identity>,
    ) -> Arc<Conn> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            seq,
            id: format!("{}-{seq}", self.node_id),
            peer,
            origin,
            user_agent,
            connected_at: SystemTime::now(),
            started: Instant::now(),
            identity: ArcSwapOption::new(identity.map(Arc::new)),
            subscriptions: Mutex::default(),
            out: Outbox::new(self.settings.queue_capacity),
            cancel: CancellationToken::new(),
            received: AtomicU64::new(0),
            last_rx_ms: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close_sent: AtomicBool::new(false),
            reader_done: AtomicBool::new(false),
            in_closing_state: AtomicBool::new(false),
        });
        lock(&self.conns).insert(conn.id.clone(), conn.clone());
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.metrics.ws.connections.inc();
        self.metrics
            .ws
            .connections_by_state
            .with_label_values(&["connected"])
            .inc();
        conn
    }

    /// Forgets a connection: its subscriptions, its registry entry and its slot.
    pub(crate) fn unregister(&self, conn: &Arc<Conn>) {
        let subs = std::mem::take(&mut *lock(&conn.subscriptions));
        for channel in subs {
            self.remove_subscriber(&channel, conn.seq);
        }
        if lock(&self.conns).remove(&conn.id).is_none() {
            return;
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
        let ws = &self.metrics.ws;
        ws.connections.dec();
        let state = if conn.in_closing_state.load(Ordering::Acquire) {
            "closing"
        } else {
            "connected"
        };
        ws.connections_by_state.with_label_values(&[state]).dec();
        ws.connections_by_state.with_label_values(&["closed"]).inc();
        ws.connection_duration_seconds
            .observe(conn.started.elapsed().as_secs_f64());
    }

    /// Sends `out` to `conn` (queued behind what it already has); a full queue drops the
    /// connection as a slow consumer.
    pub(crate) fn send(&self, conn: &Conn, out: Outgoing) -> bool {
        let queued = self.queue(conn, out);
        if queued {
            self.count_sent(conn.write_now());
        }
        queued
    }

    /// Queues `out` for `conn` without writing it yet (see [`Conn::write_now`]).
    fn queue(&self, conn: &Conn, out: Outgoing) -> bool {
        let (bytes, messages) = match out {
            Outgoing::Frame(t) => (outbox::text(&t), 1),
            Outgoing::Batch(list) => (outbox::texts(&list), list.len() as u32),
        };
        match conn.out.push(bytes, messages) {
            Pushed::Queued => true,
            Pushed::Full => {
                self.slow_consumer(conn);
                false
            }
            Pushed::Closed => false,
        }
    }

    pub(crate) fn count_sent(&self, n: u64) {
        if n > 0 {
            self.metrics.ws.messages_sent_total.inc_by(n);
        }
    }

    /// Writes the queued frames of `conns` to their sockets: inline for a few, else shared
    /// among tasks so that both a big fan-out and the caller keep moving.
    fn write_out(&self, conns: Vec<Arc<Conn>>) {
        if conns.len() <= WRITE_SHARE / 4 || tokio::runtime::Handle::try_current().is_err() {
            let n = conns.iter().map(|c| c.write_now()).sum();
            self.count_sent(n);
            return;
        }
        let mut rest = conns.into_iter();
        loop {
            let share: Vec<Arc<Conn>> = rest.by_ref().take(WRITE_SHARE).collect();
            if share.is_empty() {
                break;
            }
            let counter = self.metrics.ws.messages_sent_total.clone();
            // Unconstrained: these writes never wait, and tokio's cooperative budget (128
            // operations per poll) would otherwise turn the later half of a share into
            // "would block" and hand it to each connection's writer task.
            tokio::spawn(tokio::task::unconstrained(async move {
                let n: u64 = share.iter().map(|c| c.write_now()).sum();
                if n > 0 {
                    counter.inc_by(n);
                }
            }));
        }
    }

    fn slow_consumer(&self, conn: &Conn) {
        if !conn.cancel.is_cancelled() {
            conn.cancel.cancel();
            self.stats.slow.fetch_add(1, Ordering::Relaxed);
            self.metrics.ws.slow_consumers_total.inc();
            tracing::info!(connection = %conn.id, "dropping a WebSocket client whose send queue is full");
        }
    }

    pub(crate) fn count_received(&self, conn: &Conn, len: usize) {
        conn.counted_received();
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.ws.messages_received_total.inc();
        self.metrics
            .ws
            .message_size_bytes
            .with_label_values(&["in"])
            .observe(len as f64);
    }

    pub(crate) fn error_to(&self, conn: &Conn, e: &ProtocolError) {
        self.send(conn, Outgoing::Frame(protocol::error(e)));
    }

    fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        read(&self.channels).get(name).cloned()
    }

    fn channel_or_create(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = self.channel(name) {
            return c;
        }
        write(&self.channels).entry(name.to_string()).or_default().clone()
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
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let target: Option<Arc<str>> = target.map(Arc::from);
        let n = self.deliver(channel, &frame, target.as_ref(), policy.message_history);
        if let Some(f) = self.fanout.get().filter(|_| share) {
            let persist = policy.persistence.map(|ttl| (policy.message_history, ttl));
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
        let ch = if history > 0 {
            self.channel_or_create(channel)
        } else {
            match self.channel(channel) {
                Some(c) => c,
                None => return 0,
            }
        };
        let mut delivered = 0usize;
        let mut slow = Vec::new();
        let bytes = outbox::text(frame);
        let mut queued = Vec::new();
        {
            let subs = read(&ch.subs);
            if history > 0 {
                let mut h = lock(&ch.history);
                h.push_back(Entry {
                    frame: frame.clone(),
                    target: target.cloned(),
                });
                while h.len() > history as usize {
                    h.pop_front();
                }
            }
            for conn in subs.values() {
                if let Some(t) = target {
                    if !conn.user_is(t) {
                        continue;
                    }
                }
                match conn.out.push(bytes.clone(), 1) {
                    Pushed::Queued => {
                        delivered += 1;
                        queued.push(conn.clone());
                    }
                    Pushed::Full => slow.push(conn.clone()),
                    Pushed::Closed => {}
                }
            }
        }
        self.write_out(queued);
        for c in slow {
            self.slow_consumer(&c);
        }
        self.stats
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Subscribes `conn` to `channel`: checks the policy, answers `subscribed`, replays the
    /// history (from Redis for persistent channels when it answers), then live messages.
    pub(crate) async fn subscribe(&self, conn: &Arc<Conn>, channel: &str) -> Result<(), ProtocolError> {
        let policy = self.policy(channel);
        let identity = conn.identity();
        self.admit(&policy, identity.as_deref(), conn.origin.as_deref())?;
        if conn.is_subscribed(channel) {
            self.send(conn, Outgoing::Frame(protocol::subscribed(channel)));
            return Ok(());
        }
        let stored = match (policy.persistence, policy.message_history, self.fanout.get()) {
            (Some(_), n, Some(f)) if n > 0 => f.history(channel, n).await,
            _ => None,
        };
        let user = identity.as_ref().map(|i| i.user_id.as_str());
        let ch = self.channel_or_create(channel);
        let count = {
            let mut subs = write(&ch.subs);
            if subs.len() >= policy.max_subscribers as usize {
                return Err(ProtocolError::new(
                    "channel_full",
                    format!(
                        "channel `{channel}` has its maximum of {} subscribers",
                        policy.max_subscribers
                    ),
                ));
            }
            // Queued under the lock, so that no live message overtakes the answer and the
            // replay; written once the subscription is recorded.
            if !self.queue(conn, Outgoing::Frame(protocol::subscribed(channel))) {
                return Ok(());
            }
            let replay: Vec<Utf8Bytes> = match stored {
                Some(entries) => entries
                    .iter()
                    .filter(|e| e.visible_to(user))
                    .map(|e| e.frame.clone())
                    .collect(),
                None => lock(&ch.history)
                    .iter()
                    .filter(|e| e.visible_to(user))
                    .map(|e| e.frame.clone())
                    .collect(),
            };
            let keep = policy.message_history as usize;
            let replay = replay[replay.len().saturating_sub(keep)..].to_vec();
            if !replay.is_empty() && !self.queue(conn, Outgoing::Batch(replay)) {
                return Ok(());
            }
            subs.insert(conn.seq, conn.clone());
            subs.len()
        };
        lock(&conn.subscriptions).insert(channel.to_string());
        self.count_sent(conn.write_now());
        self.metrics
            .ws
            .channel_subscribers
            .with_label_values(&[channel])
            .set(count as i64);
        Ok(())
    }

    fn admit(
        &self,
        policy: &ChannelPolicy,
        identity: Option<&Identity>,
        origin: Option<&str>,
    ) -> Result<(), ProtocolError> {
        match identity {
            None if policy.require_auth || !self.settings.anonymous_allowed() => {
                return Err(ProtocolError::new(
                    "unauthorized",
                    "authenticate first: connect with ?token= or send Auth",
                ))
            }
            None if !policy.required_roles.is_empty() => {
                return Err(ProtocolError::new(
                    "unauthorized",
                    "this channel needs an authenticated user",
                ))
            }
            Some(id) if !policy.may_subscribe(&id.roles) => {
                return Err(ProtocolError::new(
                    "forbidden",
                    format!(
                        "this channel needs one of the roles {}",
                        policy.required_roles.join(", ")
                    ),
                ))
            }
            _ => {}
        }
        if !policy.allows_origin(origin) {
            return Err(ProtocolError::new(
                "forbidden",
                format!("origin {} may not use this channel", origin.unwrap_or_default()),
            ));
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&self, conn: &Conn, channel: &str) {
        let was = lock(&conn.subscriptions).remove(channel);
        if was {
            self.remove_subscriber(channel, conn.seq);
        }
        self.send(conn, Outgoing::Frame(protocol::unsubscribed(channel)));
    }

    fn remove_subscriber(&self, channel: &str, seq: u64) {
        let Some(ch) = self.channel(channel) else { return };
        let left = {
            let mut subs = write(&ch.subs);
            subs.remove(&seq);
            subs.len()
        };
        let gauge = &self.metrics.ws.channel_subscribers;
        if left == 0 {
            let _ = gauge.remove_label_values(&[channel]);
            let mut all = write(&self.channels);
            if read(&ch.subs).is_empty() && lock(&ch.history).is_empty() {
                all.remove(channel);
            }
        } else {
            gauge.with_label_values(&[channel]).set(left as i64);
        }
    }

    /// Client Broadcast: subscribed, allowed to publish, and within the channel's rate
    /// (`rate_ok` takes a token from the connection's bucket for this channel).
    pub(crate) fn client_broadcast(
        &self,
        conn: &Conn,
        channel: &str,
        message: &Value,
        rate_ok: impl FnOnce(&crate::routing::channels::RatePolicy) -> bool,
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
        if !policy.may_publish(roles) {
            return Err(ProtocolError::new(
                "forbidden",
                format!(
                    "publishing on `{channel}` needs one of the roles {}",
                    policy.publish_roles.join(", ")
                ),
            ));
        }
        if let Some(rate) = &policy.rate_limit {
            if !rate_ok(rate) {
                return Err(ProtocolError::new(
                    "rate_limited",
                    format!(
                        "more than {} messages per minute (burst {}) on `{channel}`",
                        rate.per_minute, rate.burst
                    ),
                ));
            }
        }
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
        self.stats.webhook_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection(&self, id: &str) -> Option<Arc<Conn>> {
        lock(&self.conns).get(id).cloned()
    }

    pub fn connections(&self) -> Vec<Arc<Conn>> {
        let mut v: Vec<_> = lock(&self.conns).values().cloned().collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    pub fn connection_json(&self, id: &str) -> Option<Value> {
        self.connection(id).map(|c| c.json())
    }

    pub fn connections_json(&self) -> Value {
        let list: Vec<Value> = self.connections().iter().map(|c| c.json()).collect();
        json!({"connections": list, "total": list.len()})
    }

    /// Sends a direct message to one connection (admin API). `None`: no such connection.
    pub fn send_direct(&self, id: &str, message: &Value, from: &str) -> Option<bool> {
        let conn = self.connection(id)?;
        let frame = protocol::direct(message, from, &protocol::now_rfc3339());
        Some(self.send(&conn, Outgoing::Frame(frame)))
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

    /// Channels with local subscribers or history, and every configured channel.
    pub fn channels_json(&self) -> Value {
        let table = self.table.load();
        let mut out: std::collections::BTreeMap<String, Value> = Default::default();
        for (name, ch) in read(&self.channels).iter() {
            let p = table.channels.policy(name);
            out.insert(
                name.clone(),
                channel_json(name, &p, read(&ch.subs).len(), lock(&ch.history).len()),
            );
        }
        for (name, p) in table.channels.configured() {
            out.entry(name.to_string())
                .or_insert_with(|| channel_json(name, p, 0, 0));
        }
        let list: Vec<Value> = out.into_values().collect();
        json!({"channels": list, "total": list.len()})
    }

    pub fn statistics_json(&self) -> Value {
        let s = &self.stats;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (channels, subscriptions) = {
            let all = read(&self.channels);
            let subs: usize = all.values().map(|c| read(&c.subs).len()).sum();
            (all.values().filter(|c| !read(&c.subs).is_empty()).count(), subs)
        };
        let conns = self.connections();
        let authenticated = conns.iter().filter(|c| c.identity().is_some()).count();
        json!({
            "node_id": self.node_id,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "connections": {
                "active": conns.len(),
                "authenticated": authenticated,
                "anonymous": conns.len() - authenticated,
                "max": self.settings.max_connections,
                "accepted_total": ld(&s.accepted),
                "closed_total": ld(&s.closed),
                "refused_total": ld(&s.refused),
                "slow_consumers_disconnected_total": ld(&s.slow),
            },
            "channels": {"active": channels, "subscriptions": subscriptions},
            "messages": {
                "received_total": ld(&s.received),
                "published_total": ld(&s.published),
                "delivered_total": ld(&s.delivered),
                "webhook_calls_total": ld(&s.webhook_calls),
            },
            "redis": self.fanout.get().map(|f| f.status_json()).unwrap_or(json!({"configured": false})),
        })
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

    /// The writer started closing: the connection moves to `closing` in the state gauge.
    pub(crate) fn mark_closing(&self, conn: &Conn) {
        if !conn.in_closing_state.swap(true, Ordering::AcqRel) {
            let g = &self.metrics.ws.connections_by_state;
            g.with_label_values(&["connected"]).dec();
            g.with_label_values(&["closing"]).inc();
        }
    }
}

fn channel_json(name: &str, p: &ChannelPolicy, subscribers: usize, history: usize) -> Value {
    json!({
        "name": name,
        "subscribers": subscribers,
        "history": history,
        "policy": {
            "source": p.source.to_string(),
            "max_subscribers": p.max_subscribers,
            "message_history": p.message_history,
            "require_auth": p.require_auth,
            "user_specific": p.user_specific,
            "required_roles": p.required_roles,
            "publish_roles": p.publish_roles,
            "allowed_origins": p.allowed_origins,
            "rate_limit": p.rate_limit.as_ref().map(|r| json!({"messages_per_minute": r.per_minute, "burst": r.burst})),
            "persistence_ttl_seconds": p.persistence.map(|d| d.as_secs()),
        },
    })
}
