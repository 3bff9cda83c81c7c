//! The status writer: after every publish, patch the status of each resource whose verdict
//! differs from what the API server holds. Only while this replica holds the Lease.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use tokio::sync::watch;

use super::status::{desired, now_rfc3339, with_health};
use crate::api::{GatewayRoute, GatewayUpstream, WebSocketChannel, FIELD_MANAGER};
use crate::compile::{Kind, StatusLookup, StatusView, Verdict};
use crate::upstream::Registry;

/// How many status patches may be in flight at once.
const CONCURRENCY: usize = 32;

/// Counters of the writer, for logs, tests and the churn benchmark.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub patches: std::sync::atomic::AtomicU64,
    /// Status patches of Gateway API objects.
    pub api_patches: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

/// Runs until `verdicts` closes. `leader` says whether this replica may write.
pub async fn run(
    client: Client,
    lookup: Arc<dyn StatusLookup>,
    mut verdicts: watch::Receiver<Arc<Vec<Verdict>>>,
    mut leader: watch::Receiver<bool>,
    stats: Arc<WriterStats>,
    health: Option<Arc<Registry>>,
) {
    let mut health_changes = health.as_ref().map(|r| r.health_changes());
    // What this replica last wrote per object, so that a patch racing its own watch event is
    // not sent twice. Cleared whenever leadership is (re)gained.
    let mut written: HashMap<String, StatusView> = HashMap::new();
    let mut retry = super::Retry::default();
    loop {
        tokio::select! {
            r = verdicts.changed() => if r.is_err() { return },
            r = leader.changed() => {
                if r.is_err() { return }
                written.clear();
            },
            _ = retry.due() => {},
            r = async {
                match health_changes.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => if r.is_err() { health_changes = None },
        }
        if !*leader.borrow_and_update() {
            continue;
        }
        let current = verdicts.borrow_and_update().clone();
        let failed = write_all(
            &client,
            &*lookup,
            health.as_deref(),
            &current,
            &mut written,
            &stats,
        )
        .await;
        retry.after(failed);
    }
}

/// Patches every changed status; true when some patch failed and should be retried.
async fn write_all(
    client: &Client,
    lookup: &dyn StatusLookup,
    health: Option<&Registry>,
    verdicts: &[Verdict],
    written: &mut HashMap<String, StatusView>,
    stats: &WriterStats,
) -> bool {
    let now = now_rfc3339();
    let mut todo = Vec::new();
    for v in verdicts {
        let live = match (v.kind, health) {
            (Kind::GatewayUpstream, Some(h)) => h
                .health_of(&format!("{}/{}", v.namespace, v.name))
                .and_then(|(healthy, total)| with_health(v, healthy, total)),
            _ => None,
        };
        let v = live.as_ref().unwrap_or(v);
        // The common case after every publish: nothing to write. Decided without copying.
        if lookup.satisfied(v) {
            continue;
        }
        let key = (v.kind, v.namespace.clone(), v.name.clone());
        let id = format!("{} {}/{}", v.kind, v.namespace, v.name);
        let current = lookup.status(v.kind, &v.namespace, &v.name);
        let want = desired(v, current.as_ref(), &now);
        if current.as_ref().is_some_and(|c| c.same_ignoring_time(&want))
            || written.get(&id).is_some_and(|w| w.same_ignoring_time(&want))
        {
            continue;
        }
        todo.push((key, id, want));
    }
    if todo.is_empty() {
        return false;
    }
    let n = todo.len();
    let results: Vec<_> = futures_util::stream::iter(todo)
        .map(|(key, id, want)| async move {
            let r = patch(client, key.0, &key.1, &key.2, &want).await;
            (id, want, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut failed = false;
    for (id, want, r) in results {
        match r {
            Ok(()) => {
                stats.patches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                written.insert(id, want);
            }
            // Deleted meanwhile: nothing to write.
            Err(kube::Error::Api(e)) if e.code == 404 => {
                written.remove(&id);
            }
            Err(e) => {
                stats.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(resource = %id, "status write failed: {e}");
                failed = true;
            }
        }
    }
    tracing::debug!(patches = n, failed, "status written");
    failed
}

async fn patch(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    want: &StatusView,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let body = Patch::Apply(want.apply_body(kind, name));
    match kind {
        Kind::GatewayRoute => {
            Api::<GatewayRoute>::namespaced(client.clone(), ns)
                .patch_status(name, &params, &body)
                .await?;
        }
        Kind::GatewayUpstream => {
            Api::<GatewayUpstream>::namespaced(client.clone(), ns)
                .patch_status(name, &params, &body)
                .await?;
        }
        Kind::WebSocketChannel => {
            Api::<WebSocketChannel>::namespaced(client.clone(), ns)
                .patch_status(name, &params, &body)
                .await?;
        }
    }
    Ok(())
}
