//! Kubernetes mode: watch GatewayRoute, GatewayUpstream and WebSocketChannel (all namespaces or
//! the `--namespace` list), with `gateway_api.enabled` also the Gateway API's GatewayClasses,
//! Gateways, HTTPRoutes, ReferenceGrants and the labels of Namespaces, plus only the
//! Services/EndpointSlices and Secrets the configuration refers to, and publish snapshots
//! through the shared `Publisher`.
//!
//! Watchers feed one `Store`; a single publish loop turns the store into a `Snapshot` after a
//! short coalescing delay, starts and stops the watches of referenced Services and Secrets, and
//! hands the verdicts and the Gateway API status to the status writer.
//!
//! The Gateway API CRDs are installed apart from Gatehouse's: while the API server does not
//! serve them (404) they count as empty, nothing waits for them, and they are looked for again
//! every 30 s (`watch::run_optional`).

mod endpoints;
mod gateway_api;
mod slices;
mod store;
mod watch;

pub use endpoints::{EndpointsApi, UnknownEndpointsApi};
pub use slices::{ServiceInfo, SliceInfo};
pub use store::{Dependency, Store};
pub use watch::{Absence, Change};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::watch as channel;
use tokio::task::JoinHandle;

use super::Publisher;
use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::api::RoutePolicy;
use crate::api::{GatewayRoute, GatewayUpstream, WebSocketChannel};
use crate::compile::gateway_api::ApiStatus;
use crate::compile::Verdict;
use crate::settings::GatewayConfig;
use gateway_api::ApiTracked;
use store::Tracked;

/// How long changes are gathered before one compile (the requests of one `kubectl apply` of
/// a few objects arrive within it).
const COALESCE: Duration = Duration::from_millis(2);
/// While changes stream in (one arrived while the last table was being compiled), the next
/// compile waits this many times as long as the last publish took (counted from its end):
/// with 10,000 objects streaming in, publishing then takes at most a ninth of a core instead
/// of recompiling the whole table every `COALESCE` (on a machine shared with the API server,
/// that CPU is what the API server needs to take the writes). A change that finds the
/// publisher idle (the table before it was live when it came) waits only `COALESCE`.
const BUSY_FACTOR: u32 = 8;
/// The longest a change waits because of `BUSY_FACTOR`.
const MAX_GATHER: Duration = Duration::from_secs(1);
/// How long a publish waits for newly referenced Services/Secrets to be listed.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(2);

/// What Kubernetes mode watches.
#[derive(Clone, Debug, Default)]
pub struct KubeOptions {
    /// Watch only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Namespace of Secrets the static config names without one.
    pub home_namespace: String,
    /// Force an endpoints API instead of discovering it.
    pub endpoints_api: Option<EndpointsApi>,
}

/// The running watchers. Dropping it stops them.
pub struct KubeSource {
    pub store: Arc<Store>,
    /// The verdicts of the last published table (for the status writer).
    pub verdicts: channel::Receiver<Arc<Vec<Verdict>>>,
    /// The Gateway API status of the last published table (for the status writer).
    pub gateway_status: channel::Receiver<Arc<Vec<ApiStatus>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Secrets the static configuration refers to, and the Service of `gateway_api.service`.
pub fn config_secrets(cfg: &GatewayConfig, home: &str) -> Vec<Dependency> {
    let refs = [
        cfg.auth.jwt.as_ref().and_then(|j| j.secret_ref.as_ref()),
        cfg.server
            .tls
            .as_ref()
            .and_then(|t| t.default_certificate.as_ref()?.secret_ref.as_ref()),
        Some(&cfg.websocket)
            .filter(|ws| ws.enabled && ws.integration.message_queue.enabled)
            .and_then(|ws| ws.integration.message_queue.url_secret_ref.as_ref()),
    ];
    let secrets = refs
        .into_iter()
        .flatten()
        .filter(|r| !r.name.is_empty())
        .map(|r| {
            Dependency::Secret(
                r.namespace.clone().unwrap_or_else(|| home.to_string()),
                r.name.clone(),
            )
        });
    // The Service whose address Gateways report.
    let service = Some(&cfg.gateway_api)
        .filter(|g| g.enabled)
        .and_then(|g| g.service.as_ref())
        .filter(|s| !s.name.is_empty())
        .map(|s| {
            let ns = s.namespace.clone().filter(|n| !n.is_empty());
            Dependency::Service(ns.unwrap_or_else(|| home.to_string()), s.name.clone())
        });
    secrets.chain(service).collect()
}

/// Starts watching and publishing. Returns at once; the first table is published when every
/// watch has listed its objects.
pub fn start(
    client: Client,
    cfg: &GatewayConfig,
    opts: KubeOptions,
    publisher: Arc<Publisher>,
) -> KubeSource {
    let store = Arc::new(Store::default());
    let mut tasks = Vec::new();
    let mut synced = Vec::new();
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    for scope in &scopes {
        tasks.push(spawn_crd::<GatewayRoute>(&client, scope, &store, &mut synced));
        tasks.push(spawn_crd::<GatewayUpstream>(&client, scope, &store, &mut synced));
        tasks.push(spawn_crd::<WebSocketChannel>(&client, scope, &store, &mut synced));
    }
    if cfg.gateway_api.enabled {
        tasks.extend(spawn_gateway_api(&client, &scopes, &store, &mut synced));
    }
    let (tx, rx) = channel::channel(Arc::new(Vec::new()));
    let (status_tx, status_rx) = channel::channel(Arc::new(Vec::new()));
    let extra = config_secrets(cfg, &opts.home_namespace);
    tasks.push(tokio::spawn(publish_loop(
        client,
        store.clone(),
        publisher,
        Outputs {
            verdicts: tx,
            gateway_status: status_tx,
        },
        synced,
        extra,
        opts.endpoints_api,
    )));
    KubeSource {
        store,
        verdicts: rx,
        gateway_status: status_rx,
        tasks,
    }
}

/// Watches GatewayClasses (cluster-wide) and, in every scope, Gateways, HTTPRoutes,
/// ReferenceGrants and the Namespace labels.
fn spawn_gateway_api(
    client: &Client,
    scopes: &[Option<String>],
    store: &Arc<Store>,
    synced: &mut Vec<Arc<AtomicBool>>,
) -> Vec<JoinHandle<()>> {
    let where_ = match scopes {
        [None] => "all namespaces".to_string(),
        list => format!(
            "namespaces {}",
            list.iter().flatten().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    tracing::info!(
        "watching the Gateway API: GatewayClasses, and Gateways, HTTPRoutes, ReferenceGrants \
         (v1beta1), RoutePolicies and Namespace labels in {where_}"
    );
    let said = Arc::new(AtomicBool::new(false));
    // RoutePolicy is Gatehouse's own CRD: an older installation may lack it.
    let policy_said = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![spawn_api::<GatewayClass>(client, &None, store, synced, &said)];
    for scope in scopes {
        tasks.push(spawn_api::<Gateway>(client, scope, store, synced, &said));
        tasks.push(spawn_api::<HTTPRoute>(client, scope, store, synced, &said));
        tasks.push(spawn_api::<ReferenceGrant>(client, scope, store, synced, &said));
        tasks.push(spawn_api::<RoutePolicy>(
            client,
            scope,
            store,
            synced,
            &policy_said,
        ));
        tasks.push(spawn_namespaces(client, scope, store, synced, &said));
    }
    tasks
}

/// Says once (per start) that the Gateway API is not installed; each kind that is not permitted
/// says so once.
fn report_absence(reported: Arc<AtomicBool>) -> impl Fn(Absence, &str) {
    let forbidden = AtomicBool::new(false);
    move |why, what| match why {
        Absence::NotServed if !reported.swap(true, Ordering::AcqRel) => tracing::info!(
            "the Gateway API is not installed ({what}: the API server does not serve it): no \
             Gateway API objects until its CRDs are; looking again every {}s",
            watch::ABSENT_RETRY.as_secs()
        ),
        Absence::Forbidden if !forbidden.swap(true, Ordering::AcqRel) => tracing::warn!(
            "cannot list {what}: forbidden by RBAC (grant get, list and watch); counted as none, \
             asking again every {}s",
            watch::ABSENT_RETRY.as_secs()
        ),
        _ => tracing::debug!("{what} still not available: {why:?}"),
    }
}

fn scope_name(scope: &Option<String>) -> String {
    scope
        .as_deref()
        .map_or("all namespaces".to_string(), |n| format!("namespace {n}"))
}

fn spawn_api<K: ApiTracked>(
    client: &Client,
    scope: &Option<String>,
    store: &Arc<Store>,
    synced: &mut Vec<Arc<AtomicBool>>,
    reported: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let api = K::api(client, scope.as_deref());
    let flag = Arc::new(AtomicBool::new(false));
    synced.push(flag.clone());
    let store = store.clone();
    let scope = scope.clone().filter(|_| !K::CLUSTER);
    let what = if K::CLUSTER {
        format!("{} (cluster-scoped)", K::NAME)
    } else {
        format!("{} in {}", K::NAME, scope_name(&scope))
    };
    let report = report_absence(reported.clone());
    tokio::spawn(async move {
        let on = move |c| store.apply_api::<K>(c, scope.as_deref());
        watch::run_optional(api, watcher::Config::default(), what, flag, on, report).await
    })
}

/// Namespaces (their labels, for `allowedRoutes.namespaces.selector`): every one, or the one of
/// `scope` by name.
fn spawn_namespaces(
    client: &Client,
    scope: &Option<String>,
    store: &Arc<Store>,
    synced: &mut Vec<Arc<AtomicBool>>,
    reported: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let config = match scope {
        Some(ns) => watcher::Config::default().fields(&format!("metadata.name={ns}")),
        None => watcher::Config::default(),
    };
    let flag = Arc::new(AtomicBool::new(false));
    synced.push(flag.clone());
    let store = store.clone();
    let scope = scope.clone();
    let what = match &scope {
        Some(ns) => format!("Namespace {ns}"),
        None => "Namespaces".to_string(),
    };
    let report = report_absence(reported.clone());
    tokio::spawn(async move {
        let on = move |c| store.apply_namespaces(c, scope.as_deref());
        watch::run_optional(api, config, what, flag, on, report).await
    })
}

fn spawn_crd<K: Tracked>(
    client: &Client,
    scope: &Option<String>,
    store: &Arc<Store>,
    synced: &mut Vec<Arc<AtomicBool>>,
) -> JoinHandle<()> {
    let api: Api<K> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let flag = Arc::new(AtomicBool::new(false));
    synced.push(flag.clone());
    let store = store.clone();
    let scope = scope.clone();
    let what = format!("{} in {}", K::KIND, scope_name(&scope));
    tokio::spawn(async move {
        watch::run(api, watcher::Config::default(), what, flag, move |c| {
            store.apply(c, scope.as_deref())
        })
        .await
    })
}

/// A watch of something the configuration refers to.
struct Dep {
    task: JoinHandle<()>,
    synced: Vec<Arc<AtomicBool>>,
}

impl Dep {
    fn synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }
}

/// Starts watches for new references and stops those no longer referenced. True if any started.
fn reconcile_deps(
    client: &Client,
    api: EndpointsApi,
    store: &Arc<Store>,
    deps: &mut BTreeMap<Dependency, Dep>,
    wanted: &BTreeSet<Dependency>,
) -> bool {
    let gone: Vec<Dependency> = deps.keys().filter(|d| !wanted.contains(*d)).cloned().collect();
    for d in gone {
        if let Some(dep) = deps.remove(&d) {
            dep.task.abort();
        }
        store.forget(&d);
        tracing::debug!(?d, "no longer referenced: stopped watching");
    }
    let mut started = false;
    let new: Vec<Dependency> = wanted
        .iter()
        .filter(|d| !deps.contains_key(*d))
        .cloned()
        .collect();
    for d in new {
        started = true;
        let dep = match &d {
            Dependency::Secret(ns, name) => {
                let flag = Arc::new(AtomicBool::new(false));
                let key = format!("{ns}/{name}");
                let store = store.clone();
                let api: Api<Secret> = Api::namespaced(client.clone(), ns);
                let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
                let what = format!("Secret {key}");
                let task = tokio::spawn(watch::run(api, config, what, flag.clone(), move |c| {
                    store.apply_secret(&key, c)
                }));
                Dep {
                    task,
                    synced: vec![flag],
                }
            }
            Dependency::Service(ns, name) => {
                let flags = [Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))];
                let task = tokio::spawn(endpoints::watch_service(
                    client.clone(),
                    api,
                    ns.clone(),
                    name.clone(),
                    store.clone(),
                    flags.clone(),
                ));
                Dep {
                    task,
                    synced: flags.to_vec(),
                }
            }
        };
        deps.insert(d, dep);
    }
    started
}

/// Where the publish loop hands what the status writer needs.
struct Outputs {
    verdicts: channel::Sender<Arc<Vec<Verdict>>>,
    gateway_status: channel::Sender<Arc<Vec<ApiStatus>>>,
}

async fn publish_loop(
    client: Client,
    store: Arc<Store>,
    publisher: Arc<Publisher>,
    out: Outputs,
    primaries: Vec<Arc<AtomicBool>>,
    extra: Vec<Dependency>,
    forced: Option<EndpointsApi>,
) {
    let api = match forced {
        Some(a) => a,
        None => endpoints::discover(&client).await,
    };
    let mut deps: BTreeMap<Dependency, Dep> = BTreeMap::new();
    let mut first = true;
    // When the last publish ended, how long it took, and whether changes came during it.
    let mut last_end = Instant::now();
    let mut last_cost = Duration::ZERO;
    let mut busy = false;
    loop {
        store.changed.notified().await;
        let paced = if busy {
            last_end + (last_cost * BUSY_FACTOR).min(MAX_GATHER)
        } else {
            last_end
        };
        tokio::time::sleep_until((Instant::now() + COALESCE).max(paced).into()).await;
        if !primaries.iter().all(|s| s.load(Ordering::Acquire)) {
            continue;
        }
        let wanted = store.references(&extra);
        if reconcile_deps(&client, api, &store, &mut deps, &wanted) {
            // Let new watches list first, so that a new reference does not flap to "not found".
            let deadline = Instant::now() + DEPENDENCY_WAIT;
            while !deps.values().all(Dep::synced) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let started = Instant::now();
        let (snapshot, seen) = store.snapshot();
        let p = publisher.clone();
        let published = tokio::task::spawn_blocking(move || p.publish(snapshot, seen, false)).await;
        last_end = Instant::now();
        last_cost = last_end - started;
        let Ok(published) = published else {
            continue;
        };
        // Busy: the next change was already there before this table went live.
        busy = store.pending_since().is_some_and(|t| t < published.live_at);
        if published.swapped || first {
            first = false;
            out.gateway_status.send_replace(published.gateway_status);
            out.verdicts.send_replace(published.verdicts);
        }
    }
}
