//! The watch cache: the objects the watchers saw, stripped to what `compile` reads, plus the
//! status each CRD object has now (for the status writer). Status-only and bookkeeping-only
//! changes (resourceVersion, managedFields) do not count as changes, so our own status writes
//! never trigger a recompile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::gateway_api::{ApiTracked, GatewayApiCache};
use super::slices::{service_endpoints, ServiceInfo, SliceInfo};
use super::watch::Change;
use crate::api::{GatewayRoute, GatewayUpstream, WebSocketChannel};
use crate::compile::gateway_api::ApiKind;
use crate::compile::{satisfies, Kind, Snapshot, StatusLookup, StatusView, Verdict};

/// `namespace/name`.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.resource_version = None;
}

/// Objects of one CRD kind and their current status.
pub struct Objects<K> {
    objs: BTreeMap<String, K>,
    status: HashMap<String, StatusView>,
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Objects {
            objs: BTreeMap::new(),
            status: HashMap::new(),
        }
    }
}

/// A Gatehouse custom resource the store tracks.
pub trait Tracked:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    fn objects(inner: &mut Inner) -> &mut Objects<Self>;
    /// Removes the status from the object and returns it.
    fn take_status(&mut self) -> StatusView;
}

impl Tracked for GatewayRoute {
    const KIND: Kind = Kind::GatewayRoute;
    fn objects(inner: &mut Inner) -> &mut Objects<Self> {
        &mut inner.routes
    }
    fn take_status(&mut self) -> StatusView {
        let s = self.status.take().unwrap_or_default();
        StatusView {
            observed_generation: s.observed_generation,
            conditions: s.conditions,
            endpoints: None,
        }
    }
}

impl Tracked for GatewayUpstream {
    const KIND: Kind = Kind::GatewayUpstream;
    fn objects(inner: &mut Inner) -> &mut Objects<Self> {
        &mut inner.upstreams
    }
    fn take_status(&mut self) -> StatusView {
        let s = self.status.take().unwrap_or_default();
        StatusView {
            observed_generation: s.observed_generation,
            conditions: s.conditions,
            endpoints: s.endpoints,
        }
    }
}

impl Tracked for WebSocketChannel {
    const KIND: Kind = Kind::WebSocketChannel;
    fn objects(inner: &mut Inner) -> &mut Objects<Self> {
        &mut inner.channels
    }
    fn take_status(&mut self) -> StatusView {
        let s = self.status.take().unwrap_or_default();
        StatusView {
            observed_generation: s.observed_generation,
            conditions: s.conditions,
            endpoints: None,
        }
    }
}

/// What the store holds.
#[derive(Default)]
pub struct Inner {
    routes: Objects<GatewayRoute>,
    upstreams: Objects<GatewayUpstream>,
    channels: Objects<WebSocketChannel>,
    secrets: BTreeMap<String, Secret>,
    services: BTreeMap<String, ServiceInfo>,
    /// EndpointSlices (or Endpoints) by Service key, then by object name.
    slices: BTreeMap<String, BTreeMap<String, SliceInfo>>,
    /// GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants and Namespace labels.
    gateway_api: GatewayApiCache,
    /// When the oldest change not yet published was seen.
    first_change: Option<Instant>,
}

/// Something the configuration refers to and that is watched only while it does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// A Service and its EndpointSlices (or Endpoints): `namespace`, `name`.
    Service(String, String),
    Secret(String, String),
}

/// The shared watch cache.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
    /// Woken on every change that may alter the snapshot.
    pub changed: Notify,
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark(&self, inner: &mut Inner) {
        inner.first_change.get_or_insert_with(Instant::now);
        self.changed.notify_one();
    }

    /// Applies a change to a CRD kind. `scope` is the namespace the watcher covers (None: all).
    pub fn apply<K: Tracked>(&self, change: Change<K>, scope: Option<&str>) {
        let mut inner = self.lock();
        let objects = K::objects(&mut inner);
        let put = |objects: &mut Objects<K>, mut obj: K| {
            let key = key_of(obj.meta());
            let status = obj.take_status();
            strip_meta(obj.meta_mut());
            objects.status.insert(key.clone(), status);
            if objects.objs.get(&key) != Some(&obj) {
                objects.objs.insert(key, obj);
                true
            } else {
                false
            }
        };
        let dirty = match change {
            Change::Upsert(obj) => put(objects, obj),
            Change::Delete(obj) => {
                let key = key_of(obj.meta());
                objects.status.remove(&key);
                objects.objs.remove(&key).is_some()
            }
            Change::Resync(list) => {
                let keep: BTreeSet<String> = list.iter().map(|o| key_of(o.meta())).collect();
                let in_scope = |k: &str| scope.is_none_or(|ns| k.split('/').next() == Some(ns));
                objects.objs.retain(|k, _| !in_scope(k) || keep.contains(k));
                objects.status.retain(|k, _| !in_scope(k) || keep.contains(k));
                for obj in list {
                    put(objects, obj);
                }
                // A completed (re)list is news even when nothing changed: it may be the first.
                true
            }
        };
        if dirty {
            self.mark(&mut inner);
        }
    }

    /// Applies a change to a Gateway API kind. `scope` is the namespace the watcher covers
    /// (None: all). Status-only changes are kept but do not count as changes.
    pub fn apply_api<K: ApiTracked>(&self, change: Change<K>, scope: Option<&str>) {
        let strip = |mut o: K| {
            strip_meta(o.meta_mut());
            o
        };
        let change = match change {
            Change::Upsert(o) => Change::Upsert(strip(o)),
            Change::Delete(o) => Change::Delete(strip(o)),
            Change::Resync(list) => Change::Resync(list.into_iter().map(strip).collect()),
        };
        let mut inner = self.lock();
        if inner.gateway_api.apply(change, scope) {
            self.mark(&mut inner);
        }
    }

    /// Applies a change to Namespaces (their labels). `only`: the one namespace the watcher
    /// covers (None: all).
    pub fn apply_namespaces(
        &self,
        change: Change<k8s_openapi::api::core::v1::Namespace>,
        only: Option<&str>,
    ) {
        let mut inner = self.lock();
        if inner.gateway_api.apply_namespaces(change, only) {
            self.mark(&mut inner);
        }
    }

    /// The status the API server holds for a Gateway API object, as last seen by the watch
    /// (`Null` when it has none); None when the object is not known.
    pub fn api_status(
        &self,
        kind: ApiKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<serde_json::Value> {
        self.lock().gateway_api.status(kind, namespace, name)
    }

    /// The Gateway API object as last seen by the watch, shared (see `GatewayApiCache::object`).
    pub fn api_object(
        &self,
        kind: ApiKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        self.lock().gateway_api.object(kind, namespace, name)
    }

    /// Applies a change to the one Secret `key` (watched by name).
    pub fn apply_secret(&self, key: &str, change: Change<Secret>) {
        let latest = match change {
            Change::Upsert(s) => Some(s),
            Change::Delete(_) => None,
            Change::Resync(list) => list.into_iter().find(|s| key_of(&s.metadata) == key),
        };
        let mut inner = self.lock();
        let changed = match latest {
            Some(mut s) => {
                strip_meta(&mut s.metadata);
                if inner.secrets.get(key) != Some(&s) {
                    inner.secrets.insert(key.to_string(), s);
                    true
                } else {
                    false
                }
            }
            None => inner.secrets.remove(key).is_some(),
        };
        if changed {
            self.mark(&mut inner);
        }
    }

    /// Sets (or with None removes) what is known of the Service `key`.
    pub fn set_service(&self, key: &str, info: Option<ServiceInfo>) {
        let mut inner = self.lock();
        let changed = match info {
            Some(i) => inner.services.insert(key.to_string(), i.clone()) != Some(i),
            None => inner.services.remove(key).is_some(),
        };
        if changed {
            self.mark(&mut inner);
        }
    }

    /// Applies a change to the endpoint objects (slices or Endpoints) of the Service `key`.
    pub fn apply_slices(&self, key: &str, change: Change<(String, SliceInfo)>) {
        let mut inner = self.lock();
        let slices = inner.slices.entry(key.to_string()).or_default();
        let changed = match change {
            Change::Upsert((name, info)) => slices.insert(name, info.clone()) != Some(info),
            Change::Delete((name, _)) => slices.remove(&name).is_some(),
            Change::Resync(list) => {
                let fresh: BTreeMap<String, SliceInfo> = list.into_iter().collect();
                let changed = *slices != fresh;
                *slices = fresh;
                changed
            }
        };
        if changed {
            self.mark(&mut inner);
        }
    }

    /// Forgets what a dependency that is no longer referenced brought in.
    pub fn forget(&self, dep: &Dependency) {
        let mut inner = self.lock();
        let changed = match dep {
            Dependency::Secret(ns, name) => inner.secrets.remove(&format!("{ns}/{name}")).is_some(),
            Dependency::Service(ns, name) => {
                let key = format!("{ns}/{name}");
                inner.services.remove(&key).is_some() | inner.slices.remove(&key).is_some()
            }
        };
        if changed {
            self.mark(&mut inner);
        }
    }

    /// Services and Secrets the resources refer to, plus `extra` (Secrets of the static config):
    /// upstreams' Services and routes' TLS Secrets; HTTPRoute backendRefs of kind Service and
    /// Gateway listeners' certificateRefs.
    pub fn references(&self, extra: &[Dependency]) -> BTreeSet<Dependency> {
        let inner = self.lock();
        let mut out: BTreeSet<Dependency> = extra.iter().cloned().collect();
        for u in inner.upstreams.objs.values() {
            if let Some(svc) = u.spec.service.as_ref().filter(|s| !s.name.is_empty()) {
                let ns = u.metadata.namespace.clone().unwrap_or_default();
                out.insert(Dependency::Service(ns, svc.name.clone()));
            }
        }
        for r in inner.routes.objs.values() {
            if let Some(tls) = r.spec.tls.as_ref().filter(|t| !t.secret_name.is_empty()) {
                let ns = r.metadata.namespace.clone().unwrap_or_default();
                out.insert(Dependency::Secret(ns, tls.secret_name.clone()));
            }
        }
        let (services, secrets) = inner.gateway_api.references();
        out.extend(services.into_iter().map(|(ns, n)| Dependency::Service(ns, n)));
        out.extend(secrets.into_iter().map(|(ns, n)| Dependency::Secret(ns, n)));
        out
    }

    /// When the oldest change not yet taken into a snapshot was seen (None: there is none).
    pub fn pending_since(&self) -> Option<Instant> {
        self.lock().first_change
    }

    /// The snapshot to compile now, and when its oldest unpublished change was seen.
    pub fn snapshot(&self) -> (Snapshot, Instant) {
        let mut inner = self.lock();
        let seen = inner.first_change.take().unwrap_or_else(Instant::now);
        let services = inner
            .services
            .iter()
            .map(|(k, info)| (k.clone(), service_endpoints(info, inner.slices.get(k))))
            .collect();
        let snapshot = Snapshot {
            routes: inner.routes.objs.values().cloned().collect(),
            upstreams: inner.upstreams.objs.values().cloned().collect(),
            channels: inner.channels.objs.values().cloned().collect(),
            secrets: inner.secrets.values().cloned().collect(),
            services,
            gateway_api: inner.gateway_api.objects(),
        };
        (snapshot, seen)
    }
}

/// The status the API server holds for that object, as last seen by the watch.
fn held<'a>(inner: &'a Inner, kind: Kind, namespace: &str, name: &str) -> Option<&'a StatusView> {
    let key = format!("{namespace}/{name}");
    match kind {
        Kind::GatewayRoute => inner.routes.status.get(&key),
        Kind::GatewayUpstream => inner.upstreams.status.get(&key),
        Kind::WebSocketChannel => inner.channels.status.get(&key),
    }
}

impl StatusLookup for Store {
    fn status(&self, kind: Kind, namespace: &str, name: &str) -> Option<StatusView> {
        held(&self.lock(), kind, namespace, name).cloned()
    }

    fn satisfied(&self, v: &Verdict) -> bool {
        held(&self.lock(), v.kind, &v.namespace, &v.name).is_some_and(|c| satisfies(c, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Condition, GatewayRouteSpec, GatewayRouteStatus};

    fn route(ns: &str, name: &str, path: &str, rv: &str) -> GatewayRoute {
        let mut r = GatewayRoute::new(
            name,
            GatewayRouteSpec {
                path: path.into(),
                upstream: "u".into(),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some(ns.into());
        r.metadata.resource_version = Some(rv.into());
        r
    }

    #[test]
    fn status_only_changes_do_not_dirty_the_snapshot() {
        let store = Store::default();
        store.apply(Change::Upsert(route("a", "r", "/x", "1")), None);
        let _ = store.snapshot();
        let mut with_status = route("a", "r", "/x", "2");
        with_status.status = Some(GatewayRouteStatus {
            observed_generation: Some(1),
            conditions: vec![Condition::new("Accepted", true, "Accepted", "ok")],
        });
        store.apply(Change::Upsert(with_status), None);
        assert!(
            store.lock().first_change.is_none(),
            "status write must not count as a change"
        );
        let s = store.status(Kind::GatewayRoute, "a", "r").expect("status kept");
        assert_eq!(s.observed_generation, Some(1));
        store.apply(Change::Upsert(route("a", "r", "/y", "3")), None);
        assert!(store.lock().first_change.is_some());
    }

    #[test]
    fn resync_replaces_only_its_own_namespace() {
        let store = Store::default();
        store.apply(Change::Upsert(route("a", "r1", "/1", "1")), None);
        store.apply(Change::Upsert(route("b", "r2", "/2", "1")), None);
        store.apply(Change::Resync(vec![route("a", "r3", "/3", "1")]), Some("a"));
        let (snap, _) = store.snapshot();
        let names: Vec<_> = snap.routes.iter().map(|r| key_of(&r.metadata)).collect();
        assert_eq!(names, vec!["a/r3", "b/r2"]);
    }

    #[test]
    fn references_follow_upstreams_and_route_tls() {
        let store = Store::default();
        let mut r = route("a", "r", "/x", "1");
        r.spec.tls = Some(crate::api::RouteTls {
            secret_name: "cert".into(),
        });
        store.apply(Change::Upsert(r), None);
        let mut u = GatewayUpstream::new("u", Default::default());
        u.metadata.namespace = Some("a".into());
        u.spec.service = Some(crate::api::ServiceRef {
            name: "svc".into(),
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80),
        });
        store.apply(Change::Upsert(u), None);
        let refs = store.references(&[Dependency::Secret("home".into(), "jwt".into())]);
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            vec![
                Dependency::Service("a".into(), "svc".into()),
                Dependency::Secret("a".into(), "cert".into()),
                Dependency::Secret("home".into(), "jwt".into()),
            ]
        );
    }
}
