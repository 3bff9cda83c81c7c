//! The own client's keep-alive connections: a map of idle ones per `host:port`, swept for
//! age and for being closed by their peer, and the connection a request takes from it.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How often idle pooled connections are checked for age and for being closed by the peer.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Bytes read from an upstream at a time.
pub(super) const READ_CHUNK: usize = 16 * 1024;

pub(super) type Map = HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>;

/// Idle connections by `host:port`.
pub(super) struct Pool {
    pub(super) idle: Mutex<Map>,
    pub(super) max_idle_per_host: usize,
    pub(super) idle_timeout: Duration,
}

pub(super) struct Idle {
    conn: Box<UpstreamConn>,
    /// Sweeps survived while idle: the pool's clock, so that a request reads no time.
    sweeps: u32,
}

/// A connection taken from the pool (or just made) for one exchange; boxed, so that it moves
/// between the pool, the exchange and the response body as a pointer.
pub(super) struct UpstreamConn {
    pub(super) io: TcpStream,
    /// What was read and not yet taken: the rest of a head, the body.
    pub(super) buf: BytesMut,
    /// `host:port`, the pool's key.
    pub(super) key: Arc<str>,
    pub(super) pool: Weak<Pool>,
    /// Bounds each exchange; made with the connection's first deadline and then kept.
    pub(super) timer: Option<Pin<Box<Sleep>>>,
    /// The request head being sent (and a small body with it), kept for the next one.
    pub(super) out: Vec<u8>,
}

impl UpstreamConn {
    /// A new connection to `key` (`host:port`), which goes back to `pool` when done.
    pub(super) fn new(io: TcpStream, key: &str, pool: &Arc<Pool>) -> Box<Self> {
        Box::new(UpstreamConn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            key: Arc::from(key),
            pool: Arc::downgrade(pool),
            timer: None,
            out: Vec::new(),
        })
    }

    /// Back to the pool, when the exchange left it clean.
    pub(super) fn release(mut self: Box<Self>) {
        if !self.buf.is_empty() {
            return; // bytes past the response: the upstream is not speaking HTTP/1.1 to us
        }
        if let Some(pool) = self.pool.upgrade() {
            self.buf.clear();
            if self.out.capacity() > 4 * 1024 {
                self.out = Vec::new();
            }
            pool.put(self);
        }
    }
}

impl Pool {
    /// An empty pool, swept every `SWEEP_EVERY` (when there is a runtime to do it) for as long
    /// as it lives.
    pub(super) fn start(idle_timeout: Duration, max_idle_per_host: usize) -> Arc<Self> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(Map::default()),
            max_idle_per_host,
            idle_timeout,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool);
            rt.spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    match weak.upgrade() {
                        Some(pool) => pool.sweep(),
                        None => return,
                    }
                }
            });
        }
        pool
    }

    pub(super) fn take(&self, key: &str) -> Option<Box<UpstreamConn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if is_quiet(&c.conn.io) {
                return Some(c.conn);
            }
        }
        None
    }

    pub(super) fn put(&self, conn: Box<UpstreamConn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = match idle.get_mut(&*conn.key) {
            Some(list) => list,
            None => idle.entry(conn.key.clone()).or_default(),
        };
        if list.len() < self.max_idle_per_host {
            list.push(Idle { conn, sweeps: 0 });
        }
    }

    /// Closes connections closed by their peer, and those idle for `idle_timeout` (give or
    /// take one sweep).
    fn sweep(&self) {
        let limit = (self.idle_timeout.as_millis() / SWEEP_EVERY.as_millis().max(1)).max(1) as u32;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain_mut(|c| {
                c.sweeps += 1;
                c.sweeps < limit && is_quiet(&c.conn.io)
            });
            !list.is_empty()
        });
    }
}

/// An idle connection must have nothing to read: end of stream means the peer closed it, and
/// bytes mean it is out of step. Costs no system call while the socket has had no event.
fn is_quiet(io: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
