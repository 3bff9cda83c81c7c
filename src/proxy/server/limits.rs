//! What every client connection of a listener is held to.

use std::time::Duration;

/// What every client connection of a listener is held to.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Largest request head, bytes.
    pub max_header_size: usize,
    /// How long an HTTP/1.1 connection may wait for the next request head to arrive whole:
    /// idle keep-alive connections and clients that send a head too slowly are closed after it.
    /// `None`: never.
    pub keepalive: Option<Duration>,
    /// How long writes to a client may stall (its connection full) before it is closed.
    /// `None`: no limit.
    pub send: Option<Duration>,
    /// How long an HTTP/2 connection may have no open stream before it is shut down (GOAWAY).
    /// `None`: never.
    pub h2_idle: Option<Duration>,
}

impl ConnLimits {
    /// For small internal servers (admin, metrics).
    pub fn internal(keepalive: Option<Duration>) -> Self {
        ConnLimits {
            max_header_size: 64 * 1024,
            keepalive,
            send: None,
            h2_idle: None,
        }
    }
}
