//! Custom resource types (group `gatehouse.dev`, version `v1alpha1`) and the condition
//! vocabulary shared by `compile`, `gatehouse check` and the status writer.
//!
//! These are plain data: serde + schemars + `CustomResource`. Durations stay strings here and
//! are parsed by `compile`, so a bad duration becomes a verdict instead of a decode error.

mod channel;
mod conditions;
pub mod gateway_api;
mod policy;
mod route;
mod upstream;

pub use channel::*;
pub use conditions::*;
pub use policy::*;
pub use route::*;
pub use upstream::*;

use kube::CustomResourceExt;

/// API group of every Gatehouse resource.
pub const GROUP: &str = "gatehouse.dev";
/// API version of every Gatehouse resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "gatehouse.dev/v1alpha1";

/// All CRDs as multi-document YAML: what `gatehouse crds` prints and `crds/` holds.
pub fn crds_yaml() -> Result<String, yaml_serde::Error> {
    let mut out = String::new();
    for crd in [
        GatewayRoute::crd(),
        GatewayUpstream::crd(),
        WebSocketChannel::crd(),
        RoutePolicy::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(&crd)?);
    }
    Ok(out)
}

/// Schema helper: a list of conditions merged by `type` (server-side apply list-map).
pub(crate) fn conditions_schema(gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = gen.subschema_for::<Condition>();
    schemars::json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// Schema helper: a duration string such as `500ms`, `10s`, `5m`, `24h`.
pub(crate) fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$",
    })
}

/// Schema helper: an optional duration string.
pub(crate) fn opt_duration_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    duration_schema(g)
}
