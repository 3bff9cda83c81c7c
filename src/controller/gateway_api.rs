//! The Gateway API status writer: after every publish, write the `status` the compiler gave
//! each GatewayClass, Gateway and HTTPRoute to its `/status` subresource, when it differs
//! from what the API server holds (`lastTransitionTime` aside). Only while this replica holds
//! the Lease, as the writer of Gatehouse's own kinds.
//!
//! Each condition gets its `lastTransitionTime` here: the one the API server holds when that
//! condition's `status` did not change, now otherwise. The write is a JSON merge patch of
//! `status` (lists are replaced whole; top-level fields the compiler no longer sets are
//! removed). An HTTPRoute's `parents` of other controllers are taken from what the API server
//! holds at the time of writing, not from the compiler's (possibly older) copy.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::status::now_rfc3339;
use super::WriterStats;
use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, GATEWAY_GROUP};
use crate::api::FIELD_MANAGER;
use crate::compile::gateway_api::{ApiKind, ApiStatus};

/// How many status patches may be in flight at once.
const CONCURRENCY: usize = 32;

/// Where the writer reads the status the API server holds (the watch cache).
pub trait ApiStatusLookup: Send + Sync {
    /// The object's `status` as last seen (`Null` when it has none); None when the object is
    /// not known.
    fn api_status(&self, kind: ApiKind, namespace: Option<&str>, name: &str) -> Option<Value>;

    /// The object as last seen, shared: every new version (of its status too) is a new `Arc`.
    /// None when the object is not known.
    fn api_object(&self, kind: ApiKind, namespace: Option<&str>, name: &str) -> Option<Held>;
}

/// An object as the watch last saw it (compared by pointer only).
pub type Held = Arc<dyn std::any::Any + Send + Sync>;

impl ApiStatusLookup for crate::sources::kube::Store {
    fn api_status(&self, kind: ApiKind, namespace: Option<&str>, name: &str) -> Option<Value> {
        crate::sources::kube::Store::api_status(self, kind, namespace, name)
    }

    fn api_object(&self, kind: ApiKind, namespace: Option<&str>, name: &str) -> Option<Held> {
        crate::sources::kube::Store::api_object(self, kind, namespace, name)
    }
}

/// What the Gateway API status writer is fed.
pub struct GatewayStatusFeed {
    /// The status the API server holds.
    pub lookup: Arc<dyn ApiStatusLookup>,
    /// The status of every published table.
    pub status: watch::Receiver<Arc<Vec<ApiStatus>>>,
    /// Our `controllerName`: route parents of other controllers are theirs.
    pub controller_name: String,
}

/// What was last written to one object: the status asked for, and the status the API server
/// held before and after, so that the same content is never written twice while the watch
/// has not caught up (or when the API server stores it with defaults filled in). Dropped once
/// the watch shows the object holding it.
struct Written {
    want: Value,
    before: Option<Value>,
    after: Value,
}

/// An object found to hold the status the compiler gave it: that status (the compiler's
/// `Arc`, shared while the object's compile is reused) and the object as seen then. While
/// both are the same `Arc`s, nothing needs to be looked at again. Holding them keeps the
/// pointers from being reused.
struct Settled {
    status: Arc<Value>,
    object: Held,
}

/// What the writer remembers between rounds, by object (`id_of`).
#[derive(Default)]
struct Memory {
    written: HashMap<String, Written>,
    settled: HashMap<String, Settled>,
}

/// Runs until the status channel closes. `leader` says whether this replica may write.
pub async fn run(
    client: Client,
    mut feed: GatewayStatusFeed,
    mut leader: watch::Receiver<bool>,
    stats: Arc<WriterStats>,
) {
    let mut memory = Memory::default();
    let mut retry = super::Retry::default();
    loop {
        tokio::select! {
            r = feed.status.changed() => if r.is_err() { return },
            r = leader.changed() => {
                if r.is_err() { return }
                memory = Memory::default();
            },
            _ = retry.due() => {},
        }
        if !*leader.borrow_and_update() {
            continue;
        }
        let current = feed.status.borrow_and_update().clone();
        let failed = write_all(&client, &feed, &current, &mut memory, &stats).await;
        retry.after(failed);
    }
}

fn id_of(s: &ApiStatus) -> String {
    match &s.namespace {
        Some(ns) => format!("{} {ns}/{}", s.kind, s.name),
        None => format!("{} {}", s.kind, s.name),
    }
}

/// The status to write for `s` given what the API server holds (`held`, `Null` for none):
/// other controllers' route parents as held, transition times filled.
pub fn desired(s: &ApiStatus, held: Option<&Value>, controller: &str, now: &str) -> Value {
    let mut want = (*s.status).clone();
    if s.kind == ApiKind::HTTPRoute {
        if let Some(held) = held {
            keep_other_parents(&mut want, held, controller);
        }
    }
    stamp(&mut want, held, now);
    want
}

/// Patches every status that differs; true when some patch failed and should be retried.
/// An object whose compiled status and watched version are the same `Arc`s as when it was
/// last found settled is passed over without a look (thousands of routes, one changed).
async fn write_all(
    client: &Client,
    feed: &GatewayStatusFeed,
    statuses: &[ApiStatus],
    memory: &mut Memory,
    stats: &WriterStats,
) -> bool {
    let now = now_rfc3339();
    // Objects no longer in the table (deleted, or no longer ours) are forgotten.
    let ids: Vec<String> = statuses.iter().map(id_of).collect();
    let current: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    memory.written.retain(|id, _| current.contains(id.as_str()));
    memory.settled.retain(|id, _| current.contains(id.as_str()));
    let mut todo = Vec::new();
    for (s, id) in statuses.iter().zip(ids) {
        let object = feed.lookup.api_object(s.kind, s.namespace.as_deref(), &s.name);
        let unchanged = memory.settled.get(&id).is_some_and(|was| {
            Arc::ptr_eq(&was.status, &s.status)
                && object.as_ref().is_some_and(|o| Arc::ptr_eq(&was.object, o))
        });
        if unchanged {
            continue;
        }
        memory.settled.remove(&id);
        let held = feed.lookup.api_status(s.kind, s.namespace.as_deref(), &s.name);
        let want = desired(s, held.as_ref(), &feed.controller_name, &now);
        if held.as_ref().is_some_and(|h| holds(h, &want)) {
            memory.written.remove(&id);
            if let Some(object) = object {
                let status = s.status.clone();
                memory.settled.insert(id, Settled { status, object });
            }
            continue;
        }
        let again = memory.written.get(&id).is_some_and(|w| {
            same_ignoring_time(&w.want, &want) && (held == w.before || held.as_ref() == Some(&w.after))
        });
        if again {
            continue;
        }
        let body = patch_body(&want, held.as_ref());
        let target = (s.kind, s.namespace.clone(), s.name.clone());
        todo.push((target, id, want, held, body));
    }
    if todo.is_empty() {
        return false;
    }
    let n = todo.len();
    let results: Vec<_> = futures_util::stream::iter(todo)
        .map(|((kind, ns, name), id, want, held, body)| async move {
            let r = patch(client, kind, ns.as_deref(), &name, &body).await;
            (id, want, held, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut failed = false;
    for (id, want, before, r) in results {
        match r {
            Ok(after) => {
                stats.api_patches.fetch_add(1, Ordering::Relaxed);
                memory.written.insert(id, Written { want, before, after });
            }
            // Deleted meanwhile: nothing to write.
            Err(kube::Error::Api(e)) if e.code == 404 => {
                memory.written.remove(&id);
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(resource = %id, "status write failed: {e}");
                failed = true;
            }
        }
    }
    tracing::debug!(patches = n, failed, "Gateway API status written");
    failed
}

/// `{"status": want}`, with `null` for the top-level status fields the API server holds and
/// `want` no longer has (a merge patch keeps what it does not name).
fn patch_body(want: &Value, held: Option<&Value>) -> Value {
    let mut status = want.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(held)) = held {
        for k in held.keys() {
            status.entry(k.clone()).or_insert(Value::Null);
        }
    }
    let mut body = Map::new();
    body.insert("status".into(), Value::Object(status));
    Value::Object(body)
}

/// Sends the patch; the status the API server stored.
async fn patch(
    client: &Client,
    kind: ApiKind,
    ns: Option<&str>,
    name: &str,
    body: &Value,
) -> Result<Value, kube::Error> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let body = Patch::Merge(body);
    let ns = ns.unwrap_or_default();
    let status = match kind {
        ApiKind::GatewayClass => {
            Api::<GatewayClass>::all(client.clone())
                .patch_status(name, &params, &body)
                .await?
                .status
        }
        ApiKind::Gateway => {
            Api::<Gateway>::namespaced(client.clone(), ns)
                .patch_status(name, &params, &body)
                .await?
                .status
        }
        ApiKind::HTTPRoute => {
            Api::<HTTPRoute>::namespaced(client.clone(), ns)
                .patch_status(name, &params, &body)
                .await?
                .status
        }
        ApiKind::RoutePolicy => Api::<crate::api::RoutePolicy>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &body)
            .await?
            .status
            .and_then(|s| serde_json::to_value(s).ok()),
    };
    Ok(status.unwrap_or_default())
}

/// Whether the API server's `held` status already says what `want` says, transition times
/// aside: every field of `want` is there with the same value (the API server may add
/// defaults), lists have the same length, and no top-level field of `held` is missing from
/// `want` (the patch would remove it).
pub fn holds(held: &Value, want: &Value) -> bool {
    let extra = match (held, want) {
        (Value::Object(h), Value::Object(w)) => h.iter().any(|(k, v)| !v.is_null() && !w.contains_key(k)),
        _ => false,
    };
    !extra && covers(held, want)
}

/// `want` is contained in `held`, `lastTransitionTime` aside.
fn covers(held: &Value, want: &Value) -> bool {
    match (held, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, v)| {
            k == "lastTransitionTime"
                || match h.get(k) {
                    Some(hv) => covers(hv, v),
                    None => v.is_null(),
                }
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(h, w)| covers(h, w))
        }
        (h, w) => h == w,
    }
}

/// Equal but for `lastTransitionTime`.
fn same_ignoring_time(a: &Value, b: &Value) -> bool {
    covers(a, b) && covers(b, a)
}

/// How an element of a status list is matched with the one the API server holds: a listener
/// by `name`, a route parent by its `parentRef` (group and kind defaulted) and `controllerName`.
fn identity(v: &Value) -> Option<Value> {
    if let Some(r) = v.get("parentRef") {
        let field = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
        let group = r.get("group").and_then(Value::as_str).unwrap_or(GATEWAY_GROUP);
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("Gateway");
        return Some(Value::Array(vec![
            group.into(),
            kind.into(),
            field("namespace"),
            field("name"),
            field("sectionName"),
            field("port"),
            v.get("controllerName").cloned().unwrap_or(Value::Null),
        ]));
    }
    v.get("name").filter(|n| n.is_string()).cloned()
}

/// Fills `lastTransitionTime` of every condition in `want` (wherever it sits: the object, a
/// listener, a route parent): the held condition's of the same type when its `status` is the
/// same, else `now`.
pub fn stamp(want: &mut Value, held: Option<&Value>, now: &str) {
    match want {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let h = held.and_then(|h| h.get(k));
                if k == "conditions" {
                    stamp_conditions(v, h, now);
                } else {
                    stamp(v, h, now);
                }
            }
        }
        Value::Array(items) => {
            let held = held.and_then(Value::as_array);
            for item in items {
                let h = identity(item).and_then(|id| {
                    held.into_iter()
                        .flatten()
                        .find(|x| identity(x).as_ref() == Some(&id))
                });
                stamp(item, h, now);
            }
        }
        _ => {}
    }
}

fn stamp_conditions(conditions: &mut Value, held: Option<&Value>, now: &str) {
    let held = held.and_then(Value::as_array);
    for c in conditions.as_array_mut().into_iter().flatten() {
        let Some(c) = c.as_object_mut() else { continue };
        if c.get("lastTransitionTime")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
        {
            continue;
        }
        let previous = held
            .into_iter()
            .flatten()
            .find(|h| h.get("type") == c.get("type"))
            .filter(|h| h.get("status") == c.get("status"))
            .and_then(|h| h.get("lastTransitionTime"))
            .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()));
        let time = previous
            .cloned()
            .unwrap_or_else(|| Value::String(now.to_string()));
        c.insert("lastTransitionTime".into(), time);
    }
}

/// An HTTPRoute's `parents`: ours as the compiler says, then the other controllers' as the API
/// server holds them now.
pub fn keep_other_parents(want: &mut Value, held: &Value, controller: &str) {
    let ours = |p: &&Value| p.get("controllerName").and_then(Value::as_str) == Some(controller);
    let mut parents: Vec<Value> = want
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(ours)
        .cloned()
        .collect();
    let others = held
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    parents.extend(others.filter(|p| !ours(p)).cloned());
    if let Some(obj) = want.as_object_mut() {
        obj.insert("parents".into(), Value::Array(parents));
    }
}

#[cfg(test)]
mod tests;
