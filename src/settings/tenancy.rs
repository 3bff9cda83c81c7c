//! `tenancy`: what one namespace may claim when several share the gateway. Hosts and channel
//! names belong to the first namespace that claims them unless this section shares or pins
//! them; static endpoints are refused in Kubernetes mode except for the namespaces listed here.
//!
//! Unlike the seed's sections, unknown keys are errors here: a misspelt key of a security
//! setting would otherwise leave the default in force without a word.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `tenancy` section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Host (`shop.example.com`, `*.example.com`, or `*` for routes without hosts) -> the
    /// namespaces that may serve it (`*`: any). A listed host is served by those namespaces
    /// only, whoever claimed it first.
    pub hosts: BTreeMap<String, Vec<String>>,
    /// Channel name -> the namespaces whose `WebSocketChannel`s may declare it (`*`: any).
    pub channels: BTreeMap<String, Vec<String>>,
    pub static_endpoints: StaticEndpoints,
}

/// `tenancy.static_endpoints`: `GatewayUpstream`s that list endpoints instead of a Service.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StaticEndpoints {
    /// Kubernetes mode: the namespaces whose upstreams may list static endpoints (`*`: all).
    /// Default: none.
    pub namespaces: Vec<String>,
    /// Kubernetes mode: static endpoints may be private addresses (RFC 1918, `100.64.0.0/10`,
    /// `fc00::/7`), where Pods and Services of other namespaces live. Default: false.
    pub allow_private: bool,
    /// Kubernetes mode: loopback (the gateway's own Pod) may be dialled, for development
    /// clusters whose test upstreams run beside the gateway. Never the gateway's own ports.
    /// Default: false.
    pub allow_loopback: bool,
}

/// A `tenancy` value that cannot be right.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    #[error("tenancy.hosts: `{0}` is not a host name, a `*.` wildcard or `*`")]
    Host(String),
    #[error("tenancy.{key}: `{name}` lists no namespace (use `*` for any)")]
    Empty { key: &'static str, name: String },
    #[error("tenancy.{key}: `{name}` lists an empty namespace")]
    EmptyNamespace { key: &'static str, name: String },
}

/// `namespaces` as one environment variable: a comma list.
pub const STATIC_ENDPOINT_NAMESPACES_ENV: &str = "GATEWAY_STATIC_ENDPOINT_NAMESPACES";
/// `allow_loopback` as an environment variable.
pub const STATIC_ENDPOINTS_ALLOW_LOOPBACK_ENV: &str = "GATEWAY_STATIC_ENDPOINTS_ALLOW_LOOPBACK";

impl TenancyConfig {
    /// Checks the keys and lists (host syntax, no empty lists or names).
    pub fn check(&self) -> Result<(), TenancyError> {
        for (host, namespaces) in &self.hosts {
            if !is_host_pattern(host) {
                return Err(TenancyError::Host(host.clone()));
            }
            check_list("hosts", host, namespaces)?;
        }
        for (channel, namespaces) in &self.channels {
            check_list("channels", channel, namespaces)?;
        }
        if self
            .static_endpoints
            .namespaces
            .iter()
            .any(|n| n.trim().is_empty())
        {
            return Err(TenancyError::EmptyNamespace {
                key: "static_endpoints",
                name: "namespaces".into(),
            });
        }
        Ok(())
    }

    /// `GATEWAY_STATIC_ENDPOINT_NAMESPACES` (comma list, replaces the file's list) and
    /// `GATEWAY_STATIC_ENDPOINTS_ALLOW_LOOPBACK`. The error names the variable and says why.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        if let Some(v) = env(STATIC_ENDPOINT_NAMESPACES_ENV) {
            self.static_endpoints.namespaces = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = env(STATIC_ENDPOINTS_ALLOW_LOOPBACK_ENV) {
            self.static_endpoints.allow_loopback = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err((
                        STATIC_ENDPOINTS_ALLOW_LOOPBACK_ENV,
                        format!("`{v}` is not a boolean"),
                    ))
                }
            };
        }
        Ok(())
    }
}

fn check_list(key: &'static str, name: &str, namespaces: &[String]) -> Result<(), TenancyError> {
    if namespaces.is_empty() {
        return Err(TenancyError::Empty {
            key,
            name: name.to_string(),
        });
    }
    if namespaces.iter().any(|n| n.trim().is_empty()) {
        return Err(TenancyError::EmptyNamespace {
            key,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// `*`, `*.example.com` or `example.com` (lower or upper case, no port).
fn is_host_pattern(h: &str) -> bool {
    if h == "*" {
        return true;
    }
    let body = h.strip_prefix("*.").unwrap_or(h);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TenancyConfig, String> {
        crate::settings::GatewayConfig::from_yaml_str(text, &|_| None)
            .map(|c| c.tenancy)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_share_nothing_and_allow_no_static_endpoints() {
        let t = parse("server: {}").expect("loads");
        assert_eq!(t, TenancyConfig::default());
        assert!(t.static_endpoints.namespaces.is_empty());
        assert!(!t.static_endpoints.allow_private && !t.static_endpoints.allow_loopback);
    }

    #[test]
    fn the_section_loads_and_checks() {
        let t = parse(
            "tenancy:\n  hosts:\n    shop.example.com: [shop, checkout]\n    \"*\": [gatehouse-system]\n  channels:\n    admin-alerts: [ops]\n  static_endpoints:\n    namespaces: [legacy]\n    allow_private: true\n",
        )
        .expect("loads");
        assert_eq!(t.hosts["shop.example.com"], ["shop", "checkout"]);
        assert_eq!(t.hosts["*"], ["gatehouse-system"]);
        assert_eq!(t.channels["admin-alerts"], ["ops"]);
        assert_eq!(t.static_endpoints.namespaces, ["legacy"]);
        assert!(t.static_endpoints.allow_private);
        assert_eq!(t.check(), Ok(()));

        let bad = |text: &str| parse(text).expect("loads").check().unwrap_err().to_string();
        assert!(bad("tenancy:\n  hosts:\n    \"shop.example.com:443\": [a]\n").contains("not a host name"));
        assert!(bad("tenancy:\n  hosts:\n    a.example.com: []\n").contains("lists no namespace"));
        assert!(bad("tenancy:\n  channels:\n    c: [\"\"]\n").contains("empty namespace"));
    }

    #[test]
    fn misspelt_keys_are_errors_not_silent_defaults() {
        let e = parse("tenancy:\n  static_endpoint:\n    namespaces: [a]\n").unwrap_err();
        assert!(e.contains("tenancy") && e.contains("static_endpoint"), "{e}");
        let e = parse("tenancy:\n  static_endpoints:\n    allow_privat: true\n").unwrap_err();
        assert!(e.contains("allow_privat"), "{e}");
    }

    #[test]
    fn environment_overrides() {
        let mut t = TenancyConfig::default();
        let env = |k: &str| match k {
            STATIC_ENDPOINT_NAMESPACES_ENV => Some("a, b,".to_string()),
            STATIC_ENDPOINTS_ALLOW_LOOPBACK_ENV => Some("true".to_string()),
            _ => None,
        };
        t.apply_env(&env).expect("valid");
        assert_eq!(t.static_endpoints.namespaces, ["a", "b"]);
        assert!(t.static_endpoints.allow_loopback);
        let env = |k: &str| (k == STATIC_ENDPOINTS_ALLOW_LOOPBACK_ENV).then(|| "maybe".to_string());
        assert!(t.apply_env(&env).is_err());
    }
}
