//! One WebSocket connection as the hub sees it: who it speaks for, what it subscribed to, its
//! outbox and cancel token, and the clocks and counters behind pings, the idle timeout, the
//! close handshake and the admin API.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::auth::Identity;
use super::locks::lock;
use super::outbox::Outbox;

/// One client connection of the hub.
pub struct ClientConnection {
    /// Unique in this process; orders connections and keys them in channels.
    pub seq: u64,
    /// `node-seq`, as the admin API names it.
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

/// Who opened a connection and from where.
pub(crate) struct Opened {
    pub peer: SocketAddr,
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    pub identity: Option<Identity>,
}

impl ClientConnection {
    /// A new connection whose outbox holds up to `queue_capacity` entries.
    pub(crate) fn new(seq: u64, id: String, opened: Opened, queue_capacity: usize) -> Self {
        ClientConnection {
            seq,
            id,
            peer: opened.peer,
            origin: opened.origin,
            user_agent: opened.user_agent,
            connected_at: SystemTime::now(),
            started: Instant::now(),
            identity: ArcSwapOption::new(opened.identity.map(Arc::new)),
            subscriptions: Mutex::default(),
            out: Outbox::new(queue_capacity),
            cancel: CancellationToken::new(),
            received: AtomicU64::new(0),
            last_rx_ms: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close_sent: AtomicBool::new(false),
            reader_done: AtomicBool::new(false),
            in_closing_state: AtomicBool::new(false),
        }
    }

    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity.load_full()
    }

    pub(crate) fn set_identity(&self, id: Identity) {
        self.identity.store(Some(Arc::new(id)));
    }

    /// Whether this connection is authenticated as `user`.
    pub(crate) fn user_is(&self, user: &str) -> bool {
        self.identity.load().as_ref().is_some_and(|i| i.user_id == user)
    }

    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).iter().cloned().collect()
    }

    /// Channels this connection is subscribed to.
    pub fn subscription_count(&self) -> usize {
        lock(&self.subscriptions).len()
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        lock(&self.subscriptions).contains(channel)
    }

    pub(crate) fn add_subscription(&self, channel: &str) {
        lock(&self.subscriptions).insert(channel.to_string());
    }

    /// Forgets one subscription; `false` when there was none.
    pub(crate) fn remove_subscription(&self, channel: &str) -> bool {
        lock(&self.subscriptions).remove(channel)
    }

    /// Forgets every subscription and returns them.
    pub(crate) fn take_subscriptions(&self) -> BTreeSet<String> {
        std::mem::take(&mut *lock(&self.subscriptions))
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How long the connection has been open.
    pub fn connected_for(&self) -> Duration {
        self.started.elapsed()
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

    /// Data messages received from the client.
    pub fn messages_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Data messages written to the client.
    pub fn messages_sent(&self) -> u64 {
        self.out.sent()
    }

    /// Outbox entries not yet written.
    pub fn queued(&self) -> usize {
        self.out.queued()
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

    /// The writer started closing; `true` the first time only.
    pub(crate) fn enter_closing_state(&self) -> bool {
        !self.in_closing_state.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn in_closing_state(&self) -> bool {
        self.in_closing_state.load(Ordering::Acquire)
    }
}
