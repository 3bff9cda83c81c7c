//! The open connections of this process: slots up to `max_connections`, lookup by id, and the
//! connection gauges (`websocket_connections_total`, by state, and their durations).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::client::{ClientConnection, Opened};
use super::locks::lock;
use crate::telemetry::WsMetrics;

/// Connections by id, and the counts behind the statistics.
pub(crate) struct ConnectionRegistry {
    conns: Mutex<HashMap<String, Arc<ClientConnection>>>,
    active: AtomicUsize,
    next_seq: AtomicU64,
    max: usize,
    queue_capacity: usize,
    /// Prefix of every connection id: the replica's node id.
    node_id: String,
    metrics: WsMetrics,
    accepted: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
}

/// Totals since the start, for the statistics.
pub(crate) struct ConnectionTotals {
    pub accepted: u64,
    pub closed: u64,
    pub refused: u64,
}

impl ConnectionRegistry {
    pub(crate) fn new(max: usize, queue_capacity: usize, node_id: String, metrics: WsMetrics) -> Self {
        ConnectionRegistry {
            conns: Mutex::default(),
            active: AtomicUsize::new(0),
            next_seq: AtomicU64::new(1),
            max,
            queue_capacity,
            node_id,
            metrics,
            accepted: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Connections holding a slot (reserved or registered).
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Reserves a connection slot; `false` at `max_connections`.
    pub(crate) fn reserve(&self) -> bool {
        let max = self.max;
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts an upgrade refused for `reason`.
    pub(crate) fn refused(&self, reason: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .upgrades_refused_total
            .with_label_values(&[reason])
            .inc();
    }

    /// Registers a connection for a reserved slot.
    pub(crate) fn register(&self, opened: Opened) -> Arc<ClientConnection> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{seq}", self.node_id);
        let conn = Arc::new(ClientConnection::new(seq, id, opened, self.queue_capacity));
        lock(&self.conns).insert(conn.id.clone(), conn.clone());
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections.inc();
        self.metrics
            .connections_by_state
            .with_label_values(&["connected"])
            .inc();
        conn
    }

    /// Forgets a connection and frees its slot; `false` when it was gone already.
    pub(crate) fn remove(&self, conn: &ClientConnection) -> bool {
        if lock(&self.conns).remove(&conn.id).is_none() {
            return false;
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.closed.fetch_add(1, Ordering::Relaxed);
        let ws = &self.metrics;
        ws.connections.dec();
        let state = if conn.in_closing_state() {
            "closing"
        } else {
            "connected"
        };
        ws.connections_by_state.with_label_values(&[state]).dec();
        ws.connections_by_state.with_label_values(&["closed"]).inc();
        ws.connection_duration_seconds
            .observe(conn.connected_for().as_secs_f64());
        true
    }

    /// The writer started closing: the connection moves to `closing` in the state gauge.
    pub(crate) fn mark_closing(&self, conn: &ClientConnection) {
        if conn.enter_closing_state() {
            let g = &self.metrics.connections_by_state;
            g.with_label_values(&["connected"]).dec();
            g.with_label_values(&["closing"]).inc();
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<ClientConnection>> {
        lock(&self.conns).get(id).cloned()
    }

    /// Every registered connection, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<ClientConnection>> {
        let mut v: Vec<_> = lock(&self.conns).values().cloned().collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    pub(crate) fn totals(&self) -> ConnectionTotals {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionTotals {
            accepted: ld(&self.accepted),
            closed: ld(&self.closed),
            refused: ld(&self.refused),
        }
    }
}
