//! One watch: list + watch with retries and backoff, reported as `Change`s. A lost API server
//! only delays changes: the store keeps the last objects and the table keeps serving.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// One change reported by a watcher.
#[derive(Debug)]
pub enum Change<K> {
    Upsert(K),
    Delete(K),
    /// The complete set of objects in the watcher's scope (after a (re)list).
    Resync(Vec<K>),
}

/// Exponential backoff with jitter, 250 ms to 3 s, so that a returning API server is caught up
/// within seconds.
pub struct RetryBackoff {
    next: Duration,
}

const MIN_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(3);

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff { next: MIN_DELAY }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        let jitter = rand::random_range(0.0..0.25);
        Some(base.mul_f64(1.0 + jitter))
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = MIN_DELAY;
    }
}

/// Watches `api` with `config` forever (until the task is aborted), calling `on` for every
/// change; `synced` turns true after the first complete list.
pub async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    what: String,
    synced: Arc<AtomicBool>,
    mut on: impl FnMut(Change<K>),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut stream = std::pin::pin!(watcher::watcher(api, config));
    let mut backoff = RetryBackoff::default();
    let mut buffer = Vec::new();
    let mut failing = false;
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            backoff.reset();
        }
        match event {
            Ok(Event::Init) => buffer.clear(),
            Ok(Event::InitApply(obj)) => buffer.push(obj),
            Ok(Event::InitDone) => {
                on(Change::Resync(std::mem::take(&mut buffer)));
                synced.store(true, Ordering::Release);
                if failing {
                    tracing::info!("watch of {what} is back");
                    failing = false;
                }
            }
            Ok(Event::Apply(obj)) => on(Change::Upsert(obj)),
            Ok(Event::Delete(obj)) => on(Change::Delete(obj)),
            // Expired resourceVersion (410, typical after an API server restart): the watcher
            // relists at once, no need to wait.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::debug!("watch of {what} expired, relisting: {status}");
            }
            Err(e) => {
                if let Some(delay) = backoff.next() {
                    tokio::time::sleep(delay).await;
                }
                if failing {
                    tracing::debug!("watch of {what} still failing: {e}");
                } else {
                    tracing::warn!(
                        "watch of {what} failed, retrying with backoff (serving the last table): {e}"
                    );
                    failing = true;
                }
            }
        }
    }
}
