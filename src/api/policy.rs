//! `RoutePolicy`: the SPEC's route policies (JWT auth and RBAC, rate limit, CORS, timeout) for
//! Gateway API HTTPRoutes and Gateways, attached by `targetRefs` (policy attachment as the
//! Gateway API's GEP-713 describes it). A team that writes HTTPRoutes gets what a
//! GatewayRoute offers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, CorsPolicy, RouteRateLimit};

/// Policies for the HTTPRoutes and Gateways it targets (in its own namespace). Where several
/// apply to a request, each field comes from the most specific policy that sets it: an
/// HTTPRoute rule (`sectionName`), the HTTPRoute, a Gateway listener (`sectionName`), the
/// Gateway; among policies of the same target, the oldest.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "RoutePolicy",
    plural = "routepolicies",
    shortname = "rpol",
    namespaced,
    status = "RoutePolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicySpec {
    /// HTTPRoutes or Gateways (group `gateway.networking.k8s.io`) in the policy's namespace.
    pub target_refs: Vec<PolicyTargetRef>,
    /// Route timeout (`0s`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::opt_duration_schema")]
    pub timeout: Option<String>,
    /// Requests need a valid JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_required: Option<bool>,
    /// Any one of these roles (implies authRequired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_roles: Vec<String>,
    /// All of these permissions (implies authRequired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RouteRateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
}

/// A target of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    pub group: String,
    /// `HTTPRoute` or `Gateway`.
    pub kind: String,
    pub name: String,
    /// A rule name of the HTTPRoute, or a listener name of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `status`: per Gateway the policy reaches, whether it is in force there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicyStatus {
    #[serde(default)]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// One Gateway (or, when a target is missing, the target as written) and the conditions of
/// the policy there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: PolicyAncestorRef,
    pub controller_name: String,
    #[serde(default)]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The object a policy status entry is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}
