//! Service discovery: which endpoint API the server has (EndpointSlice `discovery.k8s.io/v1`,
//! else `v1beta1`, else `v1/Endpoints`), its objects reduced to ready addresses and ports, and
//! those merged with the Service's ports into what `compile` reads.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;
use kube::Client;

use super::slices::{endpoints_info, slice_info, ServiceInfo};
use super::store::Store;
use super::watch::{self, Change};

/// Where endpoints of Services are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointsApi {
    /// `discovery.k8s.io/v1` EndpointSlice (Kubernetes 1.21+).
    SliceV1,
    /// `discovery.k8s.io/v1beta1` EndpointSlice (Kubernetes 1.17-1.24).
    SliceV1beta1,
    /// `v1` Endpoints (deprecated since 1.33, present everywhere before).
    Endpoints,
}

/// A `--endpoints-api` value that names no endpoint API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("endpoints API `{0}` must be auto, endpointslice, endpointslice-v1beta1 or endpoints")]
pub struct UnknownEndpointsApi(pub String);

impl EndpointsApi {
    /// Parses `--endpoints-api`: `auto` (None), `endpointslice`, `endpointslice-v1beta1`, `endpoints`.
    pub fn parse(s: &str) -> Result<Option<Self>, UnknownEndpointsApi> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "endpointslice" | "endpointslice-v1" => Ok(Some(EndpointsApi::SliceV1)),
            "endpointslice-v1beta1" => Ok(Some(EndpointsApi::SliceV1beta1)),
            "endpoints" => Ok(Some(EndpointsApi::Endpoints)),
            other => Err(UnknownEndpointsApi(other.to_string())),
        }
    }

    fn slice_resource(self) -> Option<ApiResource> {
        let version = match self {
            EndpointsApi::SliceV1 => "v1",
            EndpointsApi::SliceV1beta1 => "v1beta1",
            EndpointsApi::Endpoints => return None,
        };
        Some(ApiResource {
            group: "discovery.k8s.io".into(),
            version: version.into(),
            api_version: format!("discovery.k8s.io/{version}"),
            kind: "EndpointSlice".into(),
            plural: "endpointslices".into(),
        })
    }
}

/// Asks the server which endpoint API it serves, retrying until it answers.
pub async fn discover(client: &Client) -> EndpointsApi {
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match probe(client).await {
            Ok(api) => {
                tracing::info!("service endpoints come from {api:?}");
                return api;
            }
            Err(e) => {
                tracing::warn!("API discovery failed, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

async fn probe(client: &Client) -> Result<EndpointsApi, kube::Error> {
    for (gv, api) in [
        ("discovery.k8s.io/v1", EndpointsApi::SliceV1),
        ("discovery.k8s.io/v1beta1", EndpointsApi::SliceV1beta1),
    ] {
        match client.list_api_group_resources(gv).await {
            Ok(list) if list.resources.iter().any(|r| r.name == "endpointslices") => return Ok(api),
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(EndpointsApi::Endpoints)
}

/// Watches one Service and its endpoints until aborted. `synced` turns true once each has
/// been listed.
pub async fn watch_service(
    client: Client,
    api: EndpointsApi,
    ns: String,
    name: String,
    store: Arc<Store>,
    synced: [Arc<AtomicBool>; 2],
) {
    let key = format!("{ns}/{name}");
    let [svc_synced, ep_synced] = synced;
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let services = {
        let store = store.clone();
        let key = key.clone();
        watch::run(
            Api::<Service>::namespaced(client.clone(), &ns),
            by_name.clone(),
            format!("Service {key}"),
            svc_synced,
            move |c| {
                let latest = match c {
                    Change::Upsert(s) => Some(s),
                    Change::Delete(_) => None,
                    Change::Resync(list) => list.into_iter().next(),
                };
                store.set_service(&key, latest.as_ref().map(ServiceInfo::from_service));
            },
        )
    };
    let endpoints = async move {
        match api.slice_resource() {
            Some(ar) => {
                let label = format!("kubernetes.io/service-name={name}");
                watch::run(
                    Api::<DynamicObject>::namespaced_with(client, &ns, &ar),
                    watcher::Config::default().labels(&label),
                    format!("EndpointSlices of {key}"),
                    ep_synced,
                    move |c| {
                        let named =
                            |o: &DynamicObject| (o.metadata.name.clone().unwrap_or_default(), slice_info(o));
                        let change = match c {
                            Change::Upsert(o) => Change::Upsert(named(&o)),
                            Change::Delete(o) => Change::Delete(named(&o)),
                            Change::Resync(list) => Change::Resync(list.iter().map(named).collect()),
                        };
                        store.apply_slices(&key, change)
                    },
                )
                .await
            }
            None => {
                watch::run(
                    Api::<Endpoints>::namespaced(client, &ns),
                    by_name,
                    format!("Endpoints {key}"),
                    ep_synced,
                    move |c| {
                        let list = match c {
                            Change::Upsert(e) => endpoints_info(&e),
                            Change::Delete(_) => Vec::new(),
                            Change::Resync(list) => list.first().map(endpoints_info).unwrap_or_default(),
                        };
                        store.apply_slices(&key, Change::Resync(list))
                    },
                )
                .await
            }
        }
    };
    tokio::join!(services, endpoints);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_api_flag() {
        assert_eq!(EndpointsApi::parse("auto"), Ok(None));
        assert_eq!(
            EndpointsApi::parse("endpoints"),
            Ok(Some(EndpointsApi::Endpoints))
        );
        assert!(EndpointsApi::parse("nope").is_err());
    }
}
