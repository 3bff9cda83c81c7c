//! Condition type, condition types and reasons: one place for the status vocabulary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Field manager used for server-side apply of status.
pub const FIELD_MANAGER: &str = "gatehouse";

/// A status condition, as in `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    // No schema default: Kubernetes 1.20 rejects an empty-string default in CRD schemas.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Condition types.
pub mod types {
    pub const ACCEPTED: &str = "Accepted";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const PROGRAMMED: &str = "Programmed";
    pub const READY: &str = "Ready";
}

/// Condition reasons.
pub mod reasons {
    pub const ACCEPTED: &str = "Accepted";
    pub const INVALID_PATH: &str = "InvalidPath";
    pub const CONFLICTED: &str = "Conflicted";
    /// The gateway's tenancy rules do not let the resource's namespace do what it asks.
    pub const NOT_PERMITTED: &str = "NotPermitted";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const UPSTREAM_NOT_FOUND: &str = "UpstreamNotFound";
    pub const UPSTREAM_NOT_ACCEPTED: &str = "UpstreamNotAccepted";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const INVALID_CERTIFICATE: &str = "InvalidCertificate";
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    pub const PROGRAMMED: &str = "Programmed";
    pub const NOT_PROGRAMMED: &str = "NotProgrammed";
    pub const ENDPOINTS_AVAILABLE: &str = "EndpointsAvailable";
    pub const NO_ENDPOINTS: &str = "NoEndpoints";
    pub const NO_HEALTHY_ENDPOINTS: &str = "NoHealthyEndpoints";
    pub const PENDING: &str = "Pending";
}

impl Condition {
    /// A condition without time or generation; those are stamped by whoever writes status.
    pub fn new(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}
