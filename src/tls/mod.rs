//! TLS material: the certificate store compiled from Secrets (served by SNI on the HTTPS
//! listener) and the client configs for `protocol: https` upstreams. The listener and the
//! connector that read it from the live table are the proxy's (`proxy::tls`).
//!
//! The store is built by `compile` from `Snapshot.secrets` and published inside the routing
//! table, so a changed Secret reaches new handshakes through the same swap as a changed route.

mod certs;
mod client;

pub use certs::{find as find_secret, load_ca, load_server_cert, not_after, provider, CertError, ServerCert};
pub use client::{client_config, system_roots};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::ClientConfig;

use crate::api::reasons;
use crate::telemetry::Metrics;

/// A host's certificate; `None`: the default one (a host whose owner serves none of its own
/// is kept from the wildcard certificate of another namespace).
type Served = Option<Arc<CertifiedKey>>;

/// Certificates to serve, by host, plus the upstream TLS settings; immutable once built.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<Box<str>, Served>,
    /// `(".example.com", cert)` for `*.example.com`, longest suffix first.
    wildcard: Vec<(Box<str>, Served)>,
    default: Option<Arc<CertifiedKey>>,
    /// `namespace/name` of each Secret in use -> the leaf's notAfter (Unix seconds).
    pub expiry: BTreeMap<String, i64>,
    /// Why `server.tls.default_certificate` is not served, when it is configured.
    pub default_problem: Option<String>,
    /// TLS towards the endpoints of `protocol: https` upstreams, by upstream `namespace/name`.
    upstream: HashMap<String, Arc<EndpointTls>>,
}

/// How the gateway connects to one https endpoint.
#[derive(Debug)]
pub struct EndpointTls {
    /// Roots from the upstream's CA Secret; `None`: the system roots.
    pub config: Option<Arc<ClientConfig>>,
    /// SNI and the name verified; `None`: the endpoint's host.
    pub server_name: Option<ServerName<'static>>,
}

impl CertStore {
    /// The certificate for a handshake: the SNI host's (exact, then the longest wildcard), else
    /// the default certificate.
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(host) = sni {
            let host = crate::wire::lowercase_host(host);
            let host = host.as_ref();
            if let Some(c) = self.exact.get(host) {
                return c.clone().or_else(|| self.default.clone());
            }
            for (suffix, c) in &self.wildcard {
                if host.len() > suffix.len() && host.ends_with(&**suffix) {
                    return c.clone().or_else(|| self.default.clone());
                }
            }
        }
        self.default.clone()
    }

    /// The TLS settings of the endpoints of upstream `namespace/name`, when it has any.
    pub fn upstream(&self, upstream: &str) -> Option<&Arc<EndpointTls>> {
        self.upstream.get(upstream)
    }

    /// True when no certificate at all is configured.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }

    /// After a publish: the expiry gauges, and a warning when the default certificate is unusable.
    pub fn published(&self, metrics: &Metrics) {
        self.export_expiry(metrics, unix_now());
        if let Some(p) = &self.default_problem {
            tracing::warn!("{p}; clients without SNI cannot complete a TLS handshake");
        }
    }

    /// Sets `gateway_tls_certificate_expiry_seconds{secret}` from `now` (Unix seconds); series
    /// of Secrets no longer in use go away.
    pub fn export_expiry(&self, metrics: &Metrics, now: i64) {
        let g = &metrics.tls_certificate_expiry_seconds;
        g.reset();
        for (secret, not_after) in &self.expiry {
            g.with_label_values(&[secret.as_str()])
                .set((not_after - now) as f64);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Builds a `CertStore` while `compile` walks the routes. Secrets are parsed once each.
pub struct StoreBuilder<'s> {
    secrets: &'s [Secret],
    parsed: HashMap<(String, String), Result<ServerCert, CertError>>,
    store: CertStore,
    /// Host (or `*.` wildcard) -> the namespace whose certificate it serves.
    served_by: HashMap<Box<str>, String>,
    /// Host (or `*.` wildcard) -> the namespaces that own it.
    owners: BTreeMap<Box<str>, Vec<String>>,
}

impl<'s> StoreBuilder<'s> {
    pub fn new(secrets: &'s [Secret]) -> Self {
        StoreBuilder {
            secrets,
            parsed: HashMap::new(),
            store: CertStore::default(),
            served_by: HashMap::new(),
            owners: BTreeMap::new(),
        }
    }

    /// Records that `namespace` owns `host` (lowercase; `*.` wildcards): its clients never get
    /// another namespace's certificate, even where a wildcard of that namespace covers it.
    pub fn claim_host(&mut self, host: &str, namespace: &str) {
        let owners = self.owners.entry(host.into()).or_default();
        if !owners.iter().any(|o| o == namespace) {
            owners.push(namespace.to_string());
        }
    }

    fn cert(&mut self, namespace: &str, name: &str) -> Result<ServerCert, (&'static str, String)> {
        let key = (namespace.to_string(), name.to_string());
        if !self.parsed.contains_key(&key) {
            let Some(secret) = certs::find(self.secrets, namespace, name) else {
                return Err((
                    reasons::SECRET_NOT_FOUND,
                    format!("Secret {namespace}/{name} does not exist"),
                ));
            };
            self.parsed.insert(key.clone(), load_server_cert(secret));
        }
        match self.parsed.get(&key) {
            Some(Ok(c)) => {
                if let Some(t) = c.not_after {
                    self.store.expiry.insert(format!("{namespace}/{name}"), t);
                }
                Ok(c.clone())
            }
            Some(Err(msg)) => Err((
                reasons::INVALID_CERTIFICATE,
                format!("Secret {namespace}/{name}: {msg}"),
            )),
            None => Err((
                reasons::SECRET_NOT_FOUND,
                format!("Secret {namespace}/{name} does not exist"),
            )),
        }
    }

    /// Serves Secret `namespace/name` for `hosts` (lowercase; `*.` wildcards). A host that
    /// already has a certificate (from an older route) keeps it. The error is the route's
    /// `ResolvedRefs=False` reason and message.
    pub fn add_route(
        &mut self,
        namespace: &str,
        secret: &str,
        hosts: &[String],
    ) -> Result<(), (&'static str, String)> {
        let cert = self.cert(namespace, secret)?;
        for host in hosts {
            let added = match host.strip_prefix('*') {
                Some(suffix) => {
                    let new = !self.store.wildcard.iter().any(|(s, _)| **s == *suffix);
                    if new {
                        self.store.wildcard.push((suffix.into(), Some(cert.key.clone())));
                    }
                    new
                }
                None => match self.store.exact.entry(host.as_str().into()) {
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(Some(cert.key.clone()));
                        true
                    }
                    std::collections::hash_map::Entry::Occupied(_) => false,
                },
            };
            if added {
                self.served_by.insert(host.as_str().into(), namespace.to_string());
            }
        }
        Ok(())
    }

    /// Sets the certificate for clients without SNI (or with an unknown name); a problem is
    /// kept in `default_problem`.
    pub fn set_default(&mut self, namespace: &str, name: &str) {
        match self.cert(namespace, name) {
            Ok(cert) => self.store.default = Some(cert.key),
            Err((_, msg)) => {
                self.store.default_problem = Some(format!("server.tls.default_certificate: {msg}"))
            }
        }
    }

    /// Connects to the endpoints of upstream `upstream` (`namespace/name`) with the roots of
    /// CA Secret `namespace/ca_secret` (or the system roots) and `server_name` as SNI (or each
    /// endpoint's host). Another upstream listing the same endpoints keeps its own settings.
    pub fn add_upstream(
        &mut self,
        namespace: &str,
        ca_secret: Option<&str>,
        server_name: Option<&str>,
        upstream: &str,
    ) -> Result<(), (&'static str, String)> {
        let server_name = match server_name {
            None => None,
            Some(n) => Some(ServerName::try_from(n.to_string()).map_err(|_| {
                (
                    reasons::INVALID_SPEC,
                    format!("tls.serverName `{n}` is not a DNS name or IP address"),
                )
            })?),
        };
        let config = match ca_secret {
            None => None,
            Some(name) => {
                let secret = certs::find(self.secrets, namespace, name).ok_or_else(|| {
                    (
                        reasons::SECRET_NOT_FOUND,
                        format!("Secret {namespace}/{name} does not exist"),
                    )
                })?;
                let roots = load_ca(secret).map_err(|msg| {
                    (
                        reasons::INVALID_CERTIFICATE,
                        format!("Secret {namespace}/{name}: {msg}"),
                    )
                })?;
                Some(
                    client::client_config(roots)
                        .map_err(|e| (reasons::INVALID_CERTIFICATE, e.to_string()))?,
                )
            }
        };
        let tls = Arc::new(EndpointTls { config, server_name });
        self.store.upstream.insert(upstream.to_string(), tls);
        Ok(())
    }

    pub fn build(mut self) -> CertStore {
        self.store.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        // A claimed host without a certificate of its own would fall to the longest wildcard
        // covering it: when another namespace serves that one, it gets the default instead.
        let mut pinned = Vec::new();
        for (host, owners) in &self.owners {
            let own = match host.strip_prefix('*') {
                Some(suffix) => self.store.wildcard.iter().any(|(s, _)| **s == *suffix),
                None => self.store.exact.contains_key(host),
            };
            if own {
                continue;
            }
            let name = host.strip_prefix('*').unwrap_or(host);
            let covering = self
                .store
                .wildcard
                .iter()
                .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(&**suffix));
            if let Some((suffix, _)) = covering {
                let wildcard = format!("*{suffix}");
                let foreign = self
                    .served_by
                    .get(wildcard.as_str())
                    .is_some_and(|ns| !owners.contains(ns));
                if foreign {
                    pinned.push(host.clone());
                }
            }
        }
        for host in pinned {
            match host.strip_prefix('*') {
                Some(suffix) => self.store.wildcard.push((suffix.into(), None)),
                None => {
                    self.store.exact.insert(host, None);
                }
            }
        }
        self.store.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        self.store
    }
}

#[cfg(test)]
pub(crate) mod tests;
