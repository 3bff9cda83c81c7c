//! `websocket.integration.message_queue.url_secret_ref`: the AMQP URL read from a Secret's
//! key. A missing Secret, key or a value that is no AMQP URL becomes a problem in the table
//! (logged when it is published), never a failure; the value itself is never shown.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::routing::SecretUrl;
use crate::settings::SecretKeyRef;

/// The key read when `url_secret_ref.key` names none.
pub const DEFAULT_KEY: &str = "url";

/// Reads the URL `r` points at from `secrets`.
pub fn resolve(r: &SecretKeyRef, secrets: &[Secret]) -> SecretUrl {
    let ns = r.namespace.as_deref().unwrap_or("default");
    let key = r.key.as_deref().unwrap_or(DEFAULT_KEY);
    let origin = format!("Secret {ns}/{} (url_secret_ref)", r.name);
    let found = secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(r.name.as_str())
            && s.metadata.namespace.as_deref().unwrap_or("default") == ns
    });
    let Some(secret) = found else {
        return SecretUrl::Problem(format!("{origin} does not exist"));
    };
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return SecretUrl::Problem(format!("{origin} has no key `{key}`"));
    };
    let Ok(url) = std::str::from_utf8(&value.0) else {
        return SecretUrl::Problem(format!("{origin} key `{key}` is not UTF-8"));
    };
    let url = url.trim();
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return SecretUrl::Problem(format!(
            "{origin} key `{key}` must start with amqp:// or amqps://"
        ));
    }
    SecretUrl::Ready(Arc::from(url))
}
