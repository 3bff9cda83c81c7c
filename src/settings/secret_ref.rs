//! A reference to one key of a Kubernetes Secret, shared by the sections that read one
//! (`auth.jwt`, `server.tls.default_certificate`, `websocket.integration.message_queue`).

use serde::Deserialize;

/// A reference to a Kubernetes Secret (and optionally one key in it).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SecretKeyRef {
    pub name: String,
    pub namespace: Option<String>,
    pub key: Option<String>,
}
