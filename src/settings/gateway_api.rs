//! `gateway_api`: the Kubernetes Gateway API front door (GatewayClass, Gateway, HTTPRoute,
//! ReferenceGrant of `gateway.networking.k8s.io`).
//!
//! Every Gateway of a class whose `controllerName` is `controller_name` is served on its own
//! address, taken from `addresses`: the address in the Gateway's `spec.addresses` when the pool
//! holds it, else the one its status already reports, else the first free one (oldest Gateway
//! first). With `service` (in a cluster), every Gateway is served on the pods' own addresses
//! instead, a listener port belonging to the oldest Gateway that asks for it, and reports the
//! address of that Service. Unknown keys are errors, as in `tenancy`.

use std::net::IpAddr;

use serde::Deserialize;

/// The `gateway_api` section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayApiConfig {
    /// Watch and serve the Gateway API resources (Kubernetes mode, when their CRDs are
    /// installed; standalone, from the resource folder). Default: true.
    pub enabled: bool,
    /// The `controllerName` of the GatewayClasses this gateway takes.
    pub controller_name: String,
    /// The address pool: single addresses (`127.0.1.1`) and ranges (`127.0.1.1-127.0.1.254`).
    /// Default: `127.0.1.1-127.0.1.254`, loopback addresses every Linux host can bind.
    pub addresses: Vec<String>,
    /// In a cluster: every Gateway is served on the pods' own addresses
    /// (`server.bind_address`, each listener on its own port) and reports the address of this
    /// Service, which sends the Gateways' listener ports to the pods; `addresses` is then not
    /// used. Default: none.
    pub service: Option<ServiceAddress>,
}

/// `gateway_api.service`: the Service in front of the pods whose address Gateways report.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceAddress {
    pub name: String,
    /// Default: the gateway's own namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Default for GatewayApiConfig {
    fn default() -> Self {
        GatewayApiConfig {
            enabled: true,
            controller_name: crate::api::gateway_api::GATEWAY_CONTROLLER.to_string(),
            addresses: vec!["127.0.1.1-127.0.1.254".to_string()],
            service: None,
        }
    }
}

/// A bad entry of `gateway_api.addresses`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gateway_api.addresses: {0:?} is not an IP address or a range FIRST-LAST of one family")]
pub struct AddressPoolError(pub String);

impl GatewayApiConfig {
    /// The pool, in order. At most 65,536 addresses are taken from one range.
    pub fn pool(&self) -> Result<Vec<IpAddr>, AddressPoolError> {
        let mut out = Vec::new();
        for entry in &self.addresses {
            let bad = || AddressPoolError(entry.clone());
            match entry.split_once('-') {
                None => out.push(entry.trim().parse().map_err(|_| bad())?),
                Some((a, b)) => {
                    let a: IpAddr = a.trim().parse().map_err(|_| bad())?;
                    let b: IpAddr = b.trim().parse().map_err(|_| bad())?;
                    match (a, b) {
                        (IpAddr::V4(a), IpAddr::V4(b)) if u32::from(a) <= u32::from(b) => {
                            let (a, b) = (u32::from(a), u32::from(b));
                            let end = b.min(a.saturating_add(65_535));
                            out.extend((a..=end).map(|n| IpAddr::V4(n.into())));
                        }
                        (IpAddr::V6(a), IpAddr::V6(b)) if u128::from(a) <= u128::from(b) => {
                            let (a, b) = (u128::from(a), u128::from(b));
                            let end = b.min(a.saturating_add(65_535));
                            out.extend((a..=end).map(|n| IpAddr::V6(n.into())));
                        }
                        _ => return Err(bad()),
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_reads_addresses_and_ranges() {
        let c = GatewayApiConfig {
            addresses: vec!["10.0.0.9".into(), "127.0.1.1-127.0.1.3".into()],
            ..GatewayApiConfig::default()
        };
        let pool: Vec<String> = c.pool().unwrap().iter().map(|a| a.to_string()).collect();
        assert_eq!(pool, ["10.0.0.9", "127.0.1.1", "127.0.1.2", "127.0.1.3"]);
        assert_eq!(GatewayApiConfig::default().pool().unwrap().len(), 254);
        for bad in ["x", "127.0.1.3-127.0.1.1", "127.0.0.1-::1"] {
            let c = GatewayApiConfig {
                addresses: vec![bad.into()],
                ..GatewayApiConfig::default()
            };
            assert!(c.pool().is_err(), "{bad}");
        }
    }
}
