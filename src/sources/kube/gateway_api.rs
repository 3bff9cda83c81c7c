//! The Gateway API part of the watch cache: GatewayClasses, Gateways, HTTPRoutes and
//! ReferenceGrants, kept whole with their status (the compiler keeps other controllers' route
//! parents and a Gateway's current address, the status writer compares with it), and the
//! labels of Namespaces. A change of status (or of bookkeeping) alone is not a change: our
//! own status writes never trigger a recompile.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::{Client, Resource};

use super::watch::Change;
use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::api::RoutePolicy;
use crate::compile::gateway_api::ApiKind;
use crate::compile::GatewayApiObjects;

/// Labels of a Namespace.
pub type Labels = BTreeMap<String, String>;

/// Objects by (namespace, name).
pub type Refs = BTreeSet<(String, String)>;

/// The cache. Keys are `namespace/name`, or the name of a GatewayClass.
#[derive(Default)]
pub struct GatewayApiCache {
    classes: BTreeMap<String, Arc<GatewayClass>>,
    gateways: BTreeMap<String, Arc<Gateway>>,
    routes: BTreeMap<String, Arc<HTTPRoute>>,
    grants: BTreeMap<String, Arc<ReferenceGrant>>,
    policies: BTreeMap<String, Arc<RoutePolicy>>,
    namespaces: BTreeMap<String, Labels>,
}

/// A Gateway API kind the cache holds.
pub trait ApiTracked:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
    /// The kind's name, for logs.
    const NAME: &'static str;
    /// Cluster-scoped (GatewayClass): watched once, whatever namespaces the gateway watches.
    const CLUSTER: bool;
    fn objects(cache: &mut GatewayApiCache) -> &mut BTreeMap<String, Arc<Self>>;
    /// Equal in everything but status.
    fn same_but_status(&self, other: &Self) -> bool;
    /// The API of the kind in `scope` (None: all namespaces, or cluster-scoped).
    fn api(client: &Client, scope: Option<&str>) -> Api<Self>;
}

macro_rules! tracked {
    ($kind:ty, $name:literal, $field:ident) => {
        impl ApiTracked for $kind {
            const NAME: &'static str = $name;
            const CLUSTER: bool = false;
            fn objects(cache: &mut GatewayApiCache) -> &mut BTreeMap<String, Arc<Self>> {
                &mut cache.$field
            }
            fn same_but_status(&self, other: &Self) -> bool {
                self.spec == other.spec && self.metadata == other.metadata
            }
            fn api(client: &Client, scope: Option<&str>) -> Api<Self> {
                match scope {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => Api::all(client.clone()),
                }
            }
        }
    };
}

tracked!(Gateway, "Gateway", gateways);
tracked!(HTTPRoute, "HTTPRoute", routes);
tracked!(ReferenceGrant, "ReferenceGrant", grants);
tracked!(RoutePolicy, "RoutePolicy", policies);

impl ApiTracked for GatewayClass {
    const NAME: &'static str = "GatewayClass";
    const CLUSTER: bool = true;
    fn objects(cache: &mut GatewayApiCache) -> &mut BTreeMap<String, Arc<Self>> {
        &mut cache.classes
    }
    fn same_but_status(&self, other: &Self) -> bool {
        self.spec == other.spec && self.metadata == other.metadata
    }
    fn api(client: &Client, _: Option<&str>) -> Api<Self> {
        Api::all(client.clone())
    }
}

fn key<K: ApiTracked>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    if K::CLUSTER {
        name
    } else {
        format!("{}/{name}", meta.namespace.as_deref().unwrap_or_default())
    }
}

/// Whether the key of an object is in the scope a watcher covers.
fn in_scope(key: &str, scope: Option<&str>) -> bool {
    scope.is_none_or(|ns| key.split('/').next() == Some(ns))
}

impl GatewayApiCache {
    /// Applies a change; true when it changes more than status, or completes a (re)list.
    /// `scope`: the namespace the watcher covers (None: all; ignored for cluster-scoped kinds).
    pub fn apply<K: ApiTracked>(&mut self, change: Change<K>, scope: Option<&str>) -> bool {
        let scope = if K::CLUSTER { None } else { scope };
        let objs = K::objects(self);
        let put = |objs: &mut BTreeMap<String, Arc<K>>, obj: K| {
            let k = key(&obj);
            let changed = objs.get(&k).is_none_or(|old| !old.same_but_status(&obj));
            objs.insert(k, Arc::new(obj));
            changed
        };
        match change {
            Change::Upsert(obj) => put(objs, obj),
            Change::Delete(obj) => objs.remove(&key(&obj)).is_some(),
            Change::Resync(list) => {
                let keep: BTreeSet<String> = list.iter().map(key).collect();
                objs.retain(|k, _| !in_scope(k, scope) || keep.contains(k));
                for obj in list {
                    put(objs, obj);
                }
                // A completed (re)list is news even when nothing changed: it may be the first.
                true
            }
        }
    }

    /// Applies a change to Namespaces (only their labels count); true when labels changed or
    /// a (re)list completed. `only`: the one namespace a watcher by name covers (None: all).
    pub fn apply_namespaces(&mut self, change: Change<Namespace>, only: Option<&str>) -> bool {
        let name = |n: &Namespace| n.metadata.name.clone().unwrap_or_default();
        let labels = |n: &Namespace| n.metadata.labels.clone().unwrap_or_default();
        match change {
            Change::Upsert(n) => self.namespaces.insert(name(&n), labels(&n)) != Some(labels(&n)),
            Change::Delete(n) => self.namespaces.remove(&name(&n)).is_some(),
            Change::Resync(list) => {
                let fresh: BTreeMap<String, Labels> = list.iter().map(|n| (name(n), labels(n))).collect();
                let before = std::mem::take(&mut self.namespaces);
                let (mut kept, old): (BTreeMap<_, _>, BTreeMap<_, _>) = before
                    .into_iter()
                    .partition(|(k, _)| only.is_some_and(|o| o != k.as_str()));
                drop(old);
                kept.extend(fresh);
                self.namespaces = kept;
                // As for the other kinds: a completed (re)list is news.
                true
            }
        }
    }

    /// What the objects refer to: Services of HTTPRoute backendRefs and Secrets of Gateway
    /// listeners' certificateRefs, each as (namespace, name), the namespace defaulting to the
    /// referring object's.
    pub fn references(&self) -> (Refs, Refs) {
        let mut services = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        for r in self.routes.values() {
            let own = r.metadata.namespace.clone().unwrap_or_default();
            let refs = r.spec.rules.iter().flat_map(|rule| &rule.backend_refs);
            for b in refs {
                let core = b.group.as_deref().unwrap_or_default().is_empty();
                let service = b.kind.as_deref().unwrap_or("Service") == "Service";
                if core && service && !b.name.is_empty() {
                    let ns = b.namespace.clone().unwrap_or_else(|| own.clone());
                    services.insert((ns, b.name.clone()));
                }
            }
        }
        for g in self.gateways.values() {
            let own = g.metadata.namespace.clone().unwrap_or_default();
            let refs = g
                .spec
                .listeners
                .iter()
                .filter_map(|l| l.tls.as_ref())
                .flat_map(|t| &t.certificate_refs);
            for c in refs {
                let core = c.group.as_deref().unwrap_or_default().is_empty();
                let secret = c.kind.as_deref().unwrap_or("Secret") == "Secret";
                if core && secret && !c.name.is_empty() {
                    let ns = c.namespace.clone().unwrap_or_else(|| own.clone());
                    secrets.insert((ns, c.name.clone()));
                }
            }
        }
        (services, secrets)
    }

    /// The objects as the snapshot carries them.
    pub fn objects(&self) -> GatewayApiObjects {
        GatewayApiObjects {
            classes: self.classes.values().map(|o| (**o).clone()).collect(),
            gateways: self.gateways.values().map(|o| (**o).clone()).collect(),
            // Shared, not copied: thousands of them.
            routes: self.routes.values().cloned().collect(),
            grants: self.grants.values().map(|o| (**o).clone()).collect(),
            policies: self.policies.values().map(|o| (**o).clone()).collect(),
            namespaces: self.namespaces.clone(),
        }
    }

    /// The object as last seen by the watch, shared: a new version (of its status too) is a
    /// new `Arc`, so that holding one and comparing pointers tells whether it changed since.
    pub fn object(
        &self,
        kind: ApiKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let key = match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        fn erase<T: Send + Sync + 'static>(o: &Arc<T>) -> Arc<dyn Any + Send + Sync> {
            o.clone()
        }
        match kind {
            ApiKind::GatewayClass => self.classes.get(name).map(erase),
            ApiKind::Gateway => self.gateways.get(&key).map(erase),
            ApiKind::HTTPRoute => self.routes.get(&key).map(erase),
            ApiKind::RoutePolicy => self.policies.get(&key).map(erase),
        }
    }

    /// The status the API server holds for an object, as last seen by the watch (`Null` when
    /// it has none); None when the object is not known.
    pub fn status(&self, kind: ApiKind, namespace: Option<&str>, name: &str) -> Option<serde_json::Value> {
        let key = match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        let status = match kind {
            ApiKind::GatewayClass => self.classes.get(name).map(|o| &o.status),
            ApiKind::Gateway => self.gateways.get(&key).map(|o| &o.status),
            ApiKind::HTTPRoute => self.routes.get(&key).map(|o| &o.status),
            ApiKind::RoutePolicy => {
                return self.policies.get(&key).map(|o| {
                    o.status
                        .as_ref()
                        .and_then(|s| serde_json::to_value(s).ok())
                        .unwrap_or_default()
                })
            }
        };
        status.map(|s| s.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
