//! Getting frames to connections without waiting on any of them. A frame is queued on the
//! connection's outbox and written at once when its socket takes it; a full queue marks a slow
//! consumer, which is dropped (`websocket_slow_consumers_disconnected_total`). After a
//! broadcast, the subscribers' sockets are written by a few tasks that each take a share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::client::ClientConnection;
use super::outbox::{self, Pushed};
use crate::telemetry::WsMetrics;

/// What the hub sends to one connection.
#[derive(Debug)]
pub enum Delivery {
    Frame(Utf8Bytes),
    /// A history replay: one queue slot however long it is.
    Replay(Vec<Utf8Bytes>),
}

/// Subscribers written by one task after a broadcast.
const WRITE_SHARE: usize = 256;

/// Queues and writes frames for connections, and drops the slow ones.
pub(crate) struct Courier {
    metrics: WsMetrics,
    slow: AtomicU64,
}

impl Courier {
    pub(crate) fn new(metrics: WsMetrics) -> Self {
        Courier {
            metrics,
            slow: AtomicU64::new(0),
        }
    }

    /// Sends `d` to `conn` (queued behind what it already has); a full queue drops the
    /// connection as a slow consumer.
    pub(crate) fn send(&self, conn: &ClientConnection, d: Delivery) -> bool {
        let queued = self.queue(conn, d);
        if queued {
            self.count_sent(conn.write_now());
        }
        queued
    }

    /// Queues `d` for `conn` without writing it yet (see [`ClientConnection::write_now`]).
    pub(crate) fn queue(&self, conn: &ClientConnection, d: Delivery) -> bool {
        let (bytes, messages) = match d {
            Delivery::Frame(t) => (outbox::text(&t), 1),
            Delivery::Replay(list) => (outbox::texts(&list), list.len() as u32),
        };
        match conn.out.push(bytes, messages) {
            Pushed::Queued => true,
            Pushed::Full => {
                self.drop_slow(conn);
                false
            }
            Pushed::Closed => false,
        }
    }

    pub(crate) fn count_sent(&self, n: u64) {
        if n > 0 {
            self.metrics.messages_sent_total.inc_by(n);
        }
    }

    /// Writes the queued frames of `conns` to their sockets: inline for a few, else shared
    /// among tasks so that both a big fan-out and the caller keep moving.
    pub(crate) fn write_out(&self, conns: Vec<Arc<ClientConnection>>) {
        if conns.len() <= WRITE_SHARE / 4 || tokio::runtime::Handle::try_current().is_err() {
            let n = conns.iter().map(|c| c.write_now()).sum();
            self.count_sent(n);
            return;
        }
        let mut rest = conns.into_iter();
        loop {
            let share: Vec<Arc<ClientConnection>> = rest.by_ref().take(WRITE_SHARE).collect();
            if share.is_empty() {
                break;
            }
            let counter = self.metrics.messages_sent_total.clone();
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

    /// Drops a connection whose queue is full (once).
    pub(crate) fn drop_slow(&self, conn: &ClientConnection) {
        if !conn.cancel.is_cancelled() {
            conn.cancel.cancel();
            self.slow.fetch_add(1, Ordering::Relaxed);
            self.metrics.slow_consumers_total.inc();
            tracing::info!(connection = %conn.id, "dropping a WebSocket client whose send queue is full");
        }
    }

    /// Slow consumers dropped so far.
    pub(crate) fn slow_total(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }
}
