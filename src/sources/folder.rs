//! Standalone mode: resources from the inline config and every `*.yaml`/`*.yml` under a folder
//! (multi-document), watched so that changes apply live.
//!
//! Besides Gatehouse's kinds and `v1/Secret`, the folder holds the Gateway API's GatewayClass,
//! Gateway, HTTPRoute and ReferenceGrant (`gateway.networking.k8s.io/v1` or `v1beta1`) and
//! `v1/Namespace` objects for their labels. Every namespace an object of the folder lives in
//! exists, and each carries the label `kubernetes.io/metadata.name` as on a cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde::de::DeserializeOwned;

use super::Publisher;
use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant, GATEWAY_GROUP};
use crate::api::{GatewayRoute, GatewayUpstream, WebSocketChannel, API_VERSION};
use crate::compile::Snapshot;
use crate::settings::{inline_route_name, GatewayConfig, INLINE_NAMESPACE};

/// A document that could not become a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    /// `file.yaml#2` (documents count from 1) or `gateway.yaml routes[3]`.
    pub origin: String,
    /// `GatewayRoute default/name` when that much could be read.
    pub resource: Option<String>,
    pub message: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "rejected {r} ({}): {}", self.origin, self.message),
            None => write!(f, "rejected {}: {}", self.origin, self.message),
        }
    }
}

/// A snapshot and what could not be loaded into it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub problems: Vec<LoadProblem>,
    /// Notes that are not problems (ignored kinds, the hub route).
    pub notes: Vec<String>,
}

/// The inline `routes:`/`upstreams:` of the config as resources.
pub fn load_inline(cfg: &GatewayConfig, into: &mut Loaded) {
    let mut names = BTreeSet::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        if r.is_hub() {
            into.notes.push(format!(
                "ok       inline route {} -> WebSocket hub (served at websocket.server.path {})",
                r.path, cfg.websocket.server.path
            ));
            continue;
        }
        let base = r.name.clone().unwrap_or_else(|| inline_route_name(r));
        let mut name = base.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let mut res = r.to_resource(&name);
        // Inline routes keep file order as their age, for conflict resolution.
        res.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(i as i64).unwrap_or_default(),
        ));
        into.snapshot.routes.push(res);
    }
    for (name, u) in &cfg.upstreams {
        into.snapshot.upstreams.push(u.to_resource(name));
    }
}

/// Every resource under `dir`, in path order.
pub fn load_dir(dir: &Path, into: &mut Loaded) {
    let mut files = Vec::new();
    if let Err(e) = collect_files(dir, &mut files) {
        into.problems.push(LoadProblem {
            origin: dir.display().to_string(),
            resource: None,
            message: format!("cannot read the resources folder: {e}"),
        });
        return;
    }
    files.sort();
    let mut seen = BTreeSet::new();
    for file in files {
        let shown = file.strip_prefix(dir).unwrap_or(&file).display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                into.problems.push(LoadProblem {
                    origin: shown,
                    resource: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        load_text(&text, &shown, &mut seen, into);
    }
}

/// Parses one file's documents into `into`.
pub fn load_text(text: &str, origin: &str, seen: &mut BTreeSet<String>, into: &mut Loaded) {
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let origin = format!("{origin}#{}", i + 1);
        let value = match <yaml_serde::Value as serde::Deserialize>::deserialize(doc) {
            Ok(yaml_serde::Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                into.problems.push(LoadProblem {
                    origin,
                    resource: None,
                    message: format!("invalid YAML: {e}"),
                });
                // A syntax error ends the stream of documents in this file.
                break;
            }
        };
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let namespace = value
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(|v| v.as_str())
            .unwrap_or(INLINE_NAMESPACE)
            .to_string();
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            if kind.is_empty() {
                into.problems.push(LoadProblem {
                    origin,
                    resource: None,
                    message: "not a resource: no kind".into(),
                });
            } else {
                into.problems.push(LoadProblem {
                    origin,
                    resource: Some(kind),
                    message: "metadata.name is required".into(),
                });
            }
            continue;
        };
        let gateway_api = api_version
            .strip_prefix(GATEWAY_GROUP)
            .is_some_and(|v| v == "/v1" || v == "/v1beta1");
        let cluster_scoped = matches!(
            (kind.as_str(), api_version.as_str()),
            ("Namespace", "v1") | ("GatewayClass", _)
        );
        let id = if cluster_scoped {
            format!("{kind} {name}")
        } else {
            format!("{kind} {namespace}/{name}")
        };
        let ours = api_version == API_VERSION;
        let known = matches!(
            (ours, kind.as_str(), api_version.as_str()),
            (
                true,
                "GatewayRoute" | "GatewayUpstream" | "WebSocketChannel" | "RoutePolicy",
                _
            ) | (_, "Secret" | "Namespace", "v1")
        ) || (gateway_api
            && matches!(
                kind.as_str(),
                "GatewayClass" | "Gateway" | "HTTPRoute" | "ReferenceGrant"
            ));
        if !known {
            if api_version.starts_with("gatehouse.dev/") || api_version.starts_with(GATEWAY_GROUP) {
                into.problems.push(LoadProblem {
                    origin,
                    resource: Some(id),
                    message: if api_version.starts_with(GATEWAY_GROUP) {
                        format!(
                            "unsupported apiVersion/kind {api_version}/{kind} (expected \
                             GatewayClass, Gateway, HTTPRoute or ReferenceGrant of \
                             {GATEWAY_GROUP}/v1 or v1beta1)"
                        )
                    } else {
                        format!("unsupported apiVersion/kind {api_version}/{kind} (expected {API_VERSION})")
                    },
                });
            } else {
                into.notes
                    .push(format!("ignored  {id} ({origin}): not a Gatehouse resource"));
            }
            continue;
        }
        if !seen.insert(id.clone()) {
            into.problems.push(LoadProblem {
                origin,
                resource: Some(id),
                message: "declared twice; this copy is ignored".into(),
            });
            continue;
        }
        let res = match kind.as_str() {
            "GatewayRoute" => decode::<GatewayRoute>(value, &namespace).map(|r| into.snapshot.routes.push(r)),
            "GatewayUpstream" => {
                decode::<GatewayUpstream>(value, &namespace).map(|u| into.snapshot.upstreams.push(u))
            }
            "WebSocketChannel" => {
                decode::<WebSocketChannel>(value, &namespace).map(|c| into.snapshot.channels.push(c))
            }
            "RoutePolicy" => decode::<crate::api::RoutePolicy>(value, &namespace)
                .map(|p| into.snapshot.gateway_api.policies.push(p)),
            "Secret" => decode_secret(value, &namespace).map(|s| into.snapshot.secrets.push(s)),
            "Namespace" => decode_cluster::<k8s_openapi::api::core::v1::Namespace>(value).map(|n| {
                let labels = n.metadata.labels.unwrap_or_default();
                into.snapshot.gateway_api.namespaces.insert(name.clone(), labels);
            }),
            "GatewayClass" => {
                decode_cluster::<GatewayClass>(value).map(|c| into.snapshot.gateway_api.classes.push(c))
            }
            "Gateway" => {
                decode::<Gateway>(value, &namespace).map(|g| into.snapshot.gateway_api.gateways.push(g))
            }
            "HTTPRoute" => decode::<HTTPRoute>(value, &namespace)
                .map(|r| into.snapshot.gateway_api.routes.push(Arc::new(r))),
            _ => {
                decode::<ReferenceGrant>(value, &namespace).map(|g| into.snapshot.gateway_api.grants.push(g))
            }
        };
        if let Err(e) = res {
            into.problems.push(LoadProblem {
                origin,
                resource: Some(id),
                message: e.to_string(),
            });
        }
    }
}

trait HasMeta {
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
}
impl<K: kube::Resource> HasMeta for K {
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        kube::Resource::meta_mut(self)
    }
}

/// A document that names a kind the folder holds but does not decode as one.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("invalid spec: {0}")]
    Spec(yaml_serde::Error),
    #[error("stringData must map strings to strings")]
    StringData,
}

fn decode<T: DeserializeOwned + HasMeta>(
    value: yaml_serde::Value,
    namespace: &str,
) -> Result<T, DecodeError> {
    let mut obj: T = yaml_serde::from_value(value).map_err(DecodeError::Spec)?;
    obj.meta_mut().namespace = Some(namespace.to_string());
    Ok(obj)
}

/// A cluster-scoped object: no namespace.
fn decode_cluster<T: DeserializeOwned + HasMeta>(value: yaml_serde::Value) -> Result<T, DecodeError> {
    let mut obj: T = yaml_serde::from_value(value).map_err(DecodeError::Spec)?;
    obj.meta_mut().namespace = None;
    Ok(obj)
}

fn decode_secret(mut value: yaml_serde::Value, namespace: &str) -> Result<Secret, DecodeError> {
    // `stringData` is write-only sugar in Kubernetes; fold it into `data` as the API server does.
    let string_data = value.as_mapping_mut().and_then(|m| m.remove("stringData"));
    let mut secret: Secret = decode(value, namespace)?;
    if let Some(yaml_serde::Value::Mapping(map)) = string_data {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err(DecodeError::StringData);
            };
            data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
        }
    }
    Ok(secret)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // editor swap files, ..data symlinks of mounted ConfigMaps
        }
        if entry.file_type()?.is_dir() || path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Everything standalone mode is configured with, read now.
pub fn load_all(cfg: &GatewayConfig, dir: Option<&Path>) -> Loaded {
    let mut loaded = Loaded::default();
    load_inline(cfg, &mut loaded);
    if let Some(dir) = dir {
        load_dir(dir, &mut loaded);
    }
    let api = &mut loaded.snapshot.gateway_api;
    if !cfg.gateway_api.enabled {
        let n = api.classes.len() + api.gateways.len() + api.routes.len() + api.grants.len();
        if n > 0 {
            loaded.notes.push(format!(
                "ignored  {n} Gateway API object(s): gateway_api.enabled is false"
            ));
        }
        *api = Default::default();
    } else {
        namespaces_exist(api);
    }
    loaded
}

/// Every namespace an object lives in exists, and every namespace carries the label
/// `kubernetes.io/metadata.name` (as the API server sets it since Kubernetes 1.21).
fn namespaces_exist(api: &mut crate::compile::GatewayApiObjects) {
    let used: Vec<String> = api
        .gateways
        .iter()
        .map(|g| &g.metadata)
        .chain(api.routes.iter().map(|r| &r.metadata))
        .chain(api.grants.iter().map(|g| &g.metadata))
        .filter_map(|m| m.namespace.clone())
        .collect();
    for ns in used {
        api.namespaces.entry(ns).or_default();
    }
    for (name, labels) in api.namespaces.iter_mut() {
        labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| name.clone());
    }
}

/// Publishes the folder now and after every change under it, until the process ends.
/// Returns once the first table is live.
pub async fn watch(
    cfg: Arc<GatewayConfig>,
    dir: Option<PathBuf>,
    publisher: Arc<Publisher>,
) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    use notify::Watcher;

    let publish = {
        let cfg = cfg.clone();
        let dir = dir.clone();
        let publisher = publisher.clone();
        move |seen: Instant| {
            let loaded = load_all(&cfg, dir.as_deref());
            for p in &loaded.problems {
                tracing::warn!("{p}");
            }
            publisher.publish(loaded.snapshot, seen, !loaded.problems.is_empty());
        }
    };
    let first = publish.clone();
    tokio::task::spawn_blocking(move || first(Instant::now()))
        .await
        .ok();

    let Some(dir) = dir else {
        return Ok(tokio::spawn(async {}));
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(Instant::now());
            }
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::Recursive)?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher; // dropped when this task ends
        while let Some(seen) = rx.recv().await {
            // Let a burst of events (an editor's write + rename, `cp -r`) settle.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
            loop {
                match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                    Ok(Some(_)) if tokio::time::Instant::now() < deadline => continue,
                    Ok(None) => return,
                    _ => break,
                }
            }
            let publish = publish.clone();
            let _ = tokio::task::spawn_blocking(move || publish(seen)).await;
        }
    }))
}

#[cfg(test)]
mod tests;
