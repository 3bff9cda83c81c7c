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
    follow(api, config, &what, &synced, &mut on, None).await;
}

/// How often an API that is not served (or not permitted) is asked again.
pub const ABSENT_RETRY: Duration = Duration::from_secs(30);

/// Why an optional API cannot be watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absence {
    /// 404: the API server does not serve the kind (its CRD is not installed).
    NotServed,
    /// 403: the gateway's RBAC does not let it list the kind.
    Forbidden,
}

/// Like `run`, for a kind the cluster may not have (a CRD installed separately): while listing
/// it answers 404 (or 403), the kind counts as empty — `on` gets an empty `Resync`, `synced`
/// turns true so that nothing waits for it — `report` is told why, and the list is tried again
/// every `ABSENT_RETRY`, so that installing the CRD later (or granting the RBAC) works.
pub async fn run_optional<K>(
    api: Api<K>,
    config: watcher::Config,
    what: String,
    synced: Arc<AtomicBool>,
    mut on: impl FnMut(Change<K>),
    report: impl Fn(Absence, &str),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut was_absent = false;
    loop {
        let ended = follow(
            api.clone(),
            config.clone(),
            &what,
            &synced,
            &mut on,
            Some(&mut was_absent),
        )
        .await;
        if let Some(why) = ended {
            // Once per absence: a completed list counts as a change.
            if !std::mem::replace(&mut was_absent, true) {
                on(Change::Resync(Vec::new()));
            }
            synced.store(true, Ordering::Release);
            report(why, &what);
            tokio::time::sleep(ABSENT_RETRY).await;
        }
    }
}

/// The 404 or 403 of a list or watch call.
fn absence(e: &watcher::Error) -> Option<Absence> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => match s.code {
            404 => Some(Absence::NotServed),
            403 => Some(Absence::Forbidden),
            _ => None,
        },
        _ => None,
    }
}

/// The watch loop. With `absent` (an optional kind: whether it was absent before), returns at
/// the first 404/403 (see `run_optional`); otherwise never.
async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &str,
    synced: &AtomicBool,
    on: &mut impl FnMut(Change<K>),
    mut absent: Option<&mut bool>,
) -> Option<Absence>
where
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
                if let Some(was) = absent.as_deref_mut() {
                    if std::mem::take(was) {
                        tracing::info!("{what} is served now: watching it");
                    }
                    tracing::debug!("listed {what}: {} object(s)", buffer.len());
                }
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
            Err(e) if absent.is_some() && absence(&e).is_some() => return absence(&e),
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
    None
}
