//! A Service's endpoints as `compile` reads them: EndpointSlice and `v1/Endpoints` objects
//! reduced to ready addresses and ports, merged with the Service's ports.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::DynamicObject;
use serde::Deserialize;

use crate::compile::{ServiceEndpoints, ServicePort};

/// The ports of a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub ports: Vec<SvcPort>,
    /// Its load balancer's IPs and host names, else its cluster IPs.
    pub addresses: Vec<String>,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcPort {
    pub name: Option<String>,
    pub port: u16,
    /// A numeric targetPort (a named one is resolved by the endpoints).
    pub target: Option<u16>,
}

impl ServiceInfo {
    pub fn from_service(s: &Service) -> Self {
        let ports = s
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten())
            .filter_map(|p| {
                Some(SvcPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: u16::try_from(p.port).ok()?,
                    target: match &p.target_port {
                        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
                        Some(IntOrString::String(_)) => None,
                        None => u16::try_from(p.port).ok(),
                    },
                })
            })
            .collect();
        let balancer: Vec<String> = s
            .status
            .iter()
            .filter_map(|st| st.load_balancer.as_ref()?.ingress.as_ref())
            .flatten()
            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
            .filter(|a| !a.is_empty())
            .collect();
        let addresses = if balancer.is_empty() {
            let spec = s.spec.as_ref();
            let ips = spec.and_then(|sp| sp.cluster_ips.clone()).unwrap_or_default();
            let ips = if ips.is_empty() {
                spec.and_then(|sp| sp.cluster_ip.clone()).into_iter().collect()
            } else {
                ips
            };
            ips.into_iter().filter(|a| !a.is_empty() && a != "None").collect()
        } else {
            balancer
        };
        ServiceInfo { ports, addresses }
    }
}

/// One EndpointSlice (or one subset of an Endpoints object): ports and ready addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceInfo {
    pub ports: Vec<(Option<String>, u16)>,
    pub addresses: BTreeSet<String>,
}

#[derive(Deserialize)]
struct RawSlice {
    #[serde(rename = "addressType", default)]
    address_type: String,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    ports: Option<Vec<RawPort>>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    conditions: Option<RawConditions>,
}

#[derive(Deserialize)]
struct RawConditions {
    ready: Option<bool>,
}

#[derive(Deserialize)]
struct RawPort {
    name: Option<String>,
    port: Option<i32>,
}

/// An EndpointSlice of either version (the fields read here are the same in both).
pub fn slice_info(obj: &DynamicObject) -> SliceInfo {
    let Ok(raw) = serde_json::from_value::<RawSlice>(obj.data.clone()) else {
        return SliceInfo::default();
    };
    if raw.address_type == "FQDN" {
        return SliceInfo::default();
    }
    SliceInfo {
        ports: raw
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.name.filter(|n| !n.is_empty()), u16::try_from(p.port?).ok()?)))
            .collect(),
        // A nil `ready` means unknown, which consumers treat as ready.
        addresses: raw
            .endpoints
            .into_iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| e.addresses)
            .collect(),
    }
}

/// The subsets of a v1 Endpoints object; `notReadyAddresses` are left out.
pub fn endpoints_info(e: &Endpoints) -> Vec<(String, SliceInfo)> {
    e.subsets
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| {
            let info = SliceInfo {
                ports: s
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        Some((
                            p.name.clone().filter(|n| !n.is_empty()),
                            u16::try_from(p.port).ok()?,
                        ))
                    })
                    .collect(),
                addresses: s.addresses.iter().flatten().map(|a| a.ip.clone()).collect(),
            };
            (format!("subset-{i}"), info)
        })
        .collect()
}

/// Merges a Service's ports with its endpoints: one `ServicePort` per Service port and
/// endpoint port (a named targetPort may map to different numbers on different endpoints).
pub fn service_endpoints(
    info: &ServiceInfo,
    slices: Option<&BTreeMap<String, SliceInfo>>,
) -> ServiceEndpoints {
    let mut ports = Vec::new();
    for sp in &info.ports {
        let mut by_target: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        for slice in slices.into_iter().flat_map(|s| s.values()) {
            let matching = slice
                .ports
                .iter()
                .find(|(name, _)| name.as_deref() == sp.name.as_deref());
            if let Some((_, target)) = matching {
                by_target
                    .entry(*target)
                    .or_default()
                    .extend(slice.addresses.iter().cloned());
            }
        }
        by_target.retain(|_, a| !a.is_empty());
        if by_target.is_empty() {
            ports.push(ServicePort {
                name: sp.name.clone(),
                port: sp.port,
                target_port: sp.target.unwrap_or(sp.port),
                addresses: Vec::new(),
            });
        }
        for (target, addresses) in by_target {
            ports.push(ServicePort {
                name: sp.name.clone(),
                port: sp.port,
                target_port: target,
                addresses: addresses.into_iter().collect(),
            });
        }
    }
    ServiceEndpoints {
        ports,
        addresses: info.addresses.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ports: &[(Option<&str>, u16)], addrs: &[&str]) -> SliceInfo {
        SliceInfo {
            ports: ports.iter().map(|(n, p)| (n.map(str::to_string), *p)).collect(),
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn slices_are_merged_per_service_port_and_not_ready_endpoints_are_excluded() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "ns"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}
            ]
        }))
        .expect("slice");
        let slice = slice_info(&obj);
        assert_eq!(slice, info(&[(Some("http"), 8080)], &["10.0.0.1", "10.0.0.3"]));
        let svc = ServiceInfo {
            ports: vec![
                SvcPort {
                    name: Some("http".into()),
                    port: 80,
                    target: None,
                },
                SvcPort {
                    name: Some("admin".into()),
                    port: 81,
                    target: Some(9000),
                },
            ],
            addresses: Vec::new(),
        };
        let mut slices = BTreeMap::new();
        slices.insert("web-abc".to_string(), slice);
        slices.insert(
            "web-def".to_string(),
            info(&[(Some("http"), 8080)], &["10.0.0.9"]),
        );
        let se = service_endpoints(&svc, Some(&slices));
        assert_eq!(se.ports.len(), 2);
        assert_eq!(se.ports[0].port, 80);
        assert_eq!(se.ports[0].target_port, 8080);
        assert_eq!(se.ports[0].addresses, vec!["10.0.0.1", "10.0.0.3", "10.0.0.9"]);
        assert_eq!(se.ports[1].target_port, 9000);
        assert!(se.ports[1].addresses.is_empty());
    }

    #[test]
    fn endpoints_subsets_leave_out_not_ready_addresses() {
        let e: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}],
                "notReadyAddresses": [{"ip": "10.0.0.2"}],
                "ports": [{"port": 8080}]
            }]
        }))
        .expect("endpoints");
        let subsets = endpoints_info(&e);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].1, info(&[(None, 8080)], &["10.0.0.1"]));
    }

    #[test]
    fn a_service_is_reached_at_its_load_balancer_else_its_cluster_ips() {
        let svc = |v: serde_json::Value| ServiceInfo::from_service(&serde_json::from_value(v).unwrap());
        let cluster = svc(serde_json::json!({"metadata": {"name": "gw"},
            "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7", "fd00::7"]}}));
        assert_eq!(cluster.addresses, ["10.96.0.7", "fd00::7"]);
        let balanced = svc(serde_json::json!({"metadata": {"name": "gw"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7"},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "gw.example.com"}]}}}));
        assert_eq!(balanced.addresses, ["203.0.113.9", "gw.example.com"]);
        let headless = svc(serde_json::json!({"metadata": {"name": "gw"}, "spec": {"clusterIP": "None"}}));
        assert!(headless.addresses.is_empty());
    }
}
