//! The controller side of Kubernetes mode: the Lease that picks one status writer among the
//! replicas, the writer that turns verdicts into status (server-side apply, only changes), and
//! the one that writes the Gateway API status the compiler gives (merge patch, only changes).

pub mod gateway_api;
pub mod lease;
pub mod status;
pub mod writer;

pub use gateway_api::{ApiStatusLookup, GatewayStatusFeed};
pub use lease::LeaseConfig;
pub use writer::WriterStats;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::compile::{StatusLookup, Verdict};

/// When a status writer tries its failed writes again: 500 ms after the first failed round,
/// doubling up to 10 s; never while every write went through.
#[derive(Default)]
struct Retry(Option<Duration>);

impl Retry {
    /// Returns when the next try is due (never, when there is nothing to try again).
    async fn due(&self) {
        match self.0 {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    }

    /// Records how a round went.
    fn after(&mut self, failed: bool) {
        self.0 = failed.then(|| {
            self.0.map_or(Duration::from_millis(500), |d| {
                (d * 2).min(Duration::from_secs(10))
            })
        });
    }
}

/// The running lease campaign and status writer.
pub struct Controller {
    pub leader: watch::Receiver<bool>,
    pub stats: Arc<WriterStats>,
    stop: watch::Sender<bool>,
    lease: JoinHandle<()>,
    writer: JoinHandle<()>,
    api_writer: Option<JoinHandle<()>>,
}

/// Starts campaigning for the Lease and writing status while holding it (with the live
/// endpoint health of `health` in upstream status, when given; the Gateway API status of
/// `gateway`, when given).
pub fn start(
    client: Client,
    lease: LeaseConfig,
    lookup: Arc<dyn StatusLookup>,
    verdicts: watch::Receiver<Arc<Vec<Verdict>>>,
    health: Option<Arc<crate::upstream::Registry>>,
    gateway: Option<GatewayStatusFeed>,
) -> Controller {
    let (leader_tx, leader_rx) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let stats = Arc::new(WriterStats::default());
    let lease = tokio::spawn(lease::run(client.clone(), lease, leader_tx, stop_rx));
    let api_writer = gateway.map(|feed| {
        tokio::spawn(gateway_api::run(
            client.clone(),
            feed,
            leader_rx.clone(),
            stats.clone(),
        ))
    });
    let writer = tokio::spawn(writer::run(
        client,
        lookup,
        verdicts,
        leader_rx.clone(),
        stats.clone(),
        health,
    ));
    Controller {
        leader: leader_rx,
        stats,
        stop,
        lease,
        writer,
        api_writer,
    }
}

impl Controller {
    /// Stops writing and releases the Lease so that another replica takes over at once.
    pub async fn shutdown(self) {
        self.writer.abort();
        if let Some(w) = &self.api_writer {
            w.abort();
        }
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.lease).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rounds_are_tried_again_sooner_then_later_and_success_stops_it() {
        let mut r = Retry::default();
        let mut seen = Vec::new();
        for _ in 0..7 {
            r.after(true);
            seen.push(r.0.unwrap().as_millis());
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        r.after(false);
        assert_eq!(r.0, None);
    }
}
