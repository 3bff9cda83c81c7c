//! Live state of one endpoint (health, requests in flight), shared by every table that lists
//! it and by its health check.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Live state of one endpoint.
#[derive(Debug)]
pub struct EndpointState {
    pub url: String,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

impl EndpointState {
    pub fn new(url: &str) -> EndpointState {
        EndpointState {
            url: url.to_string(),
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Returns true when the state changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// Requests sent and not yet answered (response headers).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// An in-flight request on an endpoint.
pub struct InFlight(Arc<EndpointState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
