//! Static configuration: `gateway.yaml` in the seed format, `${ENV}` substitution, env overrides.
//!
//! Every section of the seed is typed here so that a typo in a value is an error with a path,
//! while keys that no capability reads yet are accepted and ignored.

mod gateway_api;
mod hub_limits;
mod idle;
mod inline;
mod message_queue;
mod model;
mod requests;
mod secret_ref;
mod tenancy;

pub use gateway_api::{AddressPoolError, GatewayApiConfig};
pub use hub_limits::WebSocketLimits;
pub use idle::IdleTimeouts;
pub use inline::{inline_route_name, InlineRoute, InlineUpstream, INLINE_NAMESPACE};
pub use message_queue::MessageQueueConfig;
pub use model::*;
pub use requests::*;
pub use tenancy::{StaticEndpoints, TenancyConfig, TenancyError};

use std::path::Path;

/// Errors loading the static configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration in {path}: {source}")]
    Parse { path: String, source: YamlError },
    #[error("invalid value for {var}: {message}")]
    Env { var: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// YAML that does not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// Not YAML at all.
    #[error(transparent)]
    Syntax(#[from] yaml_serde::Error),
    /// A value of the wrong type or shape, with the key path that holds it.
    #[error("{path}: {source}")]
    Field { path: String, source: yaml_serde::Error },
}

/// A duration that does not parse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration `{text}`: {source}")]
    Invalid {
        text: String,
        source: humantime::DurationError,
    },
}

impl GatewayConfig {
    /// Reads FILE, substitutes `${VAR}` / `${VAR:-default}` in string values and applies the
    /// `GATEWAY_*` environment overrides.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg =
            Self::from_yaml_str(&text, &|k| std::env::var(k).ok()).map_err(|source| Error::Parse {
                path: path.display().to_string(),
                source,
            })?;
        cfg.apply_env(&|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Built-in defaults plus the environment overrides.
    pub fn from_env() -> Result<Self> {
        let mut cfg = GatewayConfig::default();
        cfg.apply_env(&|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Parses YAML text with `${VAR}` substitution through `env`.
    /// Errors name the key path, e.g. `server.http_port: invalid type: ...`.
    pub fn from_yaml_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, YamlError> {
        let mut value: yaml_serde::Value = yaml_serde::from_str(text)?;
        if value.is_null() {
            return Ok(GatewayConfig::default());
        }
        substitute(&mut value, env);
        serde_path_to_error::deserialize(value).map_err(|e| YamlError::Field {
            path: e.path().to_string(),
            source: e.into_inner(),
        })
    }

    /// Applies the documented environment overrides.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        fn num<T: std::str::FromStr>(var: &'static str, v: String) -> Result<T> {
            v.trim().parse().map_err(|_| Error::Env {
                var,
                message: format!("`{v}` is not a number"),
            })
        }
        fn boolean(var: &'static str, v: String) -> Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::Env {
                    var,
                    message: format!("`{v}` is not a boolean"),
                }),
            }
        }
        if let Some(v) = env("GATEWAY_SERVER_HTTP_PORT") {
            self.server.http_port = num("GATEWAY_SERVER_HTTP_PORT", v)?;
        }
        if let Some(v) = env("GATEWAY_SERVER_HTTPS_PORT") {
            self.server.https_port = num("GATEWAY_SERVER_HTTPS_PORT", v)?;
        }
        if let Some(v) = env("GATEWAY_ADMIN_PORT") {
            self.server.admin_port = num("GATEWAY_ADMIN_PORT", v)?;
        }
        if let Some(v) = env("GATEWAY_METRICS_PORT") {
            self.server.metrics_port = num("GATEWAY_METRICS_PORT", v)?;
        }
        if let Some(v) = env("GATEWAY_BIND_ADDRESS") {
            self.server.bind_address = v;
        }
        if let Some(v) = env("GATEWAY_LOG_LEVEL") {
            self.observability.logging.level = v;
        }
        if let Some(v) = env("GATEWAY_LOG_FORMAT") {
            self.observability.logging.format = v;
        }
        if let Some(v) = env("GATEWAY_METRICS_ENABLED") {
            self.observability.metrics.prometheus_enabled = boolean("GATEWAY_METRICS_ENABLED", v)?;
        }
        if let Some(v) = env("GATEWAY_REDIS_URL") {
            self.middleware.rate_limiting.storage.url = Some(v.clone());
            self.websocket.redis_url = Some(v);
        }
        if let Some(v) = env("GATEWAY_WEBSOCKET_ENABLED") {
            self.websocket.enabled = boolean("GATEWAY_WEBSOCKET_ENABLED", v)?;
        }
        if let Some(v) = env("GATEWAY_WEBSOCKET_MAX_CONNECTIONS") {
            self.websocket.server.max_connections = num("GATEWAY_WEBSOCKET_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = env("GATEWAY_ADMIN_TOKEN") {
            self.admin.token = Some(v);
        }
        if let Some(v) = env("WEBHOOK_AUTH_TOKEN") {
            self.websocket.integration.webhook.auth_token = Some(v);
        }
        if let Some(v) = env("JWT_SECRET") {
            let jwt = self.auth.jwt.get_or_insert_with(|| JwtConfig {
                from_env_only: true,
                ..Default::default()
            });
            if jwt.secret.as_deref().is_none_or(str::is_empty) {
                jwt.secret = Some(v);
            }
        }
        self.tenancy
            .apply_env(env)
            .map_err(|(var, message)| Error::Env { var, message })?;
        Ok(())
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the document. An unset variable
/// without a default becomes the empty string (the seed's `${JWT_SECRET}` with no secret set).
fn substitute(value: &mut yaml_serde::Value, env: &dyn Fn(&str) -> Option<String>) {
    match value {
        yaml_serde::Value::String(s) if s.contains("${") => *s = expand(s, env),
        yaml_serde::Value::Sequence(items) => items.iter_mut().for_each(|v| substitute(v, env)),
        yaml_serde::Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| substitute(v, env)),
        yaml_serde::Value::Tagged(t) => substitute(&mut t.value, env),
        _ => {}
    }
}

/// Expands `${VAR}` / `${VAR:-default}` occurrences in one string.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match env(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(default.unwrap_or("")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Parses a duration such as `500ms`, `10s`, `5m`, `24h` or `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|source| DurationError::Invalid {
        text: s.to_string(),
        source,
    })
}

/// `config/gateway.yaml` when it exists: the documented default for `--config`.
pub fn default_config_path() -> Option<&'static Path> {
    let p = Path::new("config/gateway.yaml");
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests;
