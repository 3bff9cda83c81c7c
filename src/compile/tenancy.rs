//! Who may claim what when namespaces share the gateway: hosts belong to the namespace that
//! claimed them first (or to the namespaces `tenancy.hosts` lists), static endpoints need the
//! namespace's leave and never point at the gateway itself. The channel side is in `channels`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::reasons;
use crate::settings::TenancyConfig;
use crate::upstream::Egress;

/// The tenancy rules `compile` applies, from `tenancy` and the mode the gateway runs in.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenancy {
    /// `tenancy.hosts`: host (`*.` wildcard, or `*` for routes without hosts) -> the namespaces
    /// that may serve it (`*`: any).
    pub hosts: BTreeMap<String, Vec<String>>,
    /// `tenancy.channels`: channel name -> the namespaces that may declare it.
    pub channels: BTreeMap<String, Vec<String>>,
    /// The namespaces whose upstreams may list static endpoints; `None`: every namespace.
    pub static_endpoints: Option<Vec<String>>,
    /// Channels and service events of the static configuration are the operator's: no
    /// resource declares them unless `tenancy.channels` lets its namespace.
    pub reserve_config_channels: bool,
    /// Where endpoints may point.
    pub egress: Arc<Egress>,
}

impl Default for Tenancy {
    /// Nothing reserved, every namespace trusted with static endpoints, any address.
    fn default() -> Self {
        Tenancy {
            hosts: BTreeMap::new(),
            channels: BTreeMap::new(),
            static_endpoints: None,
            reserve_config_channels: false,
            egress: Arc::new(Egress::default()),
        }
    }
}

impl Tenancy {
    /// Standalone: the folder and the configuration are the operator's, so every namespace in
    /// them may list static endpoints, loopback included; only the gateway's own ports are
    /// refused. Hosts and channel names are still first come, first served across namespaces.
    pub fn standalone(cfg: &TenancyConfig, own_ports: Vec<(u16, &'static str)>) -> Self {
        Tenancy {
            hosts: cfg.hosts.clone(),
            channels: cfg.channels.clone(),
            static_endpoints: None,
            reserve_config_channels: false,
            egress: Arc::new(Egress {
                own_ports,
                ..Egress::default()
            }),
        }
    }

    /// Kubernetes mode: every namespace is a tenant. Static endpoints only for the namespaces
    /// `tenancy.static_endpoints.namespaces` lists, never link-local, loopback and private
    /// addresses only where allowed, the configuration's channels and events its own.
    pub fn kubernetes(cfg: &TenancyConfig, own_ports: Vec<(u16, &'static str)>) -> Self {
        let s = &cfg.static_endpoints;
        Tenancy {
            hosts: cfg.hosts.clone(),
            channels: cfg.channels.clone(),
            static_endpoints: Some(s.namespaces.clone()),
            reserve_config_channels: true,
            egress: Arc::new(Egress {
                own_ports,
                allow_loopback: s.allow_loopback,
                allow_link_local: false,
                allow_private: s.allow_private,
            }),
        }
    }

    /// Whether upstreams of `ns` may list static endpoints.
    pub fn static_endpoints_allowed(&self, ns: &str) -> bool {
        self.static_endpoints.as_ref().is_none_or(|l| listed(l, ns))
    }
}

/// Whether `namespaces` names `ns` or holds `*`.
pub(super) fn listed(namespaces: &[String], ns: &str) -> bool {
    namespaces.iter().any(|n| n == ns || n == "*")
}

/// `a, b` for a message.
pub(super) fn names(namespaces: &[String]) -> String {
    namespaces.join(", ")
}

/// The part a `*.` wildcard matches the end of (`.example.com`), or the host itself.
fn name_of(claim: &str) -> &str {
    claim.strip_prefix('*').unwrap_or(claim)
}

/// Whether the wildcard `wild` (`*.example.com`) covers `claim` (a host or a narrower wildcard).
fn covers(wild: &str, claim: &str) -> bool {
    let (Some(suffix), name) = (wild.strip_prefix('*'), name_of(claim)) else {
        return false;
    };
    suffix.starts_with('.') && name.len() > suffix.len() && name.ends_with(suffix)
}

/// The host claims of accepted routes so far (oldest first), and the pinned ones.
pub(super) struct HostClaims<'t> {
    pinned: &'t BTreeMap<String, Vec<String>>,
    /// Claim -> (namespace, route) of each namespace holding it, the first claimant first.
    held: BTreeMap<String, Vec<(String, String)>>,
}

/// What a route claims: its hosts, lowercase, or `*` when it has none.
pub(super) fn claims_of(hosts: &[String]) -> Vec<String> {
    if hosts.is_empty() {
        vec!["*".to_string()]
    } else {
        hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
    }
}

impl<'t> HostClaims<'t> {
    pub(super) fn new(pinned: &'t BTreeMap<String, Vec<String>>) -> Self {
        HostClaims {
            pinned,
            held: BTreeMap::new(),
        }
    }

    /// The `tenancy.hosts` entry that decides `claim`: its own, else the longest wildcard
    /// covering it.
    fn pin(&self, claim: &str) -> Option<(&'t str, &'t [String])> {
        if let Some((k, v)) = self.pinned.get_key_value(claim) {
            return Some((k.as_str(), v.as_slice()));
        }
        if claim == "*" {
            return None;
        }
        self.pinned
            .iter()
            .filter(|(k, _)| covers(k, claim))
            .max_by_key(|(k, _)| k.len())
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether `ns` may claim `claims` (see `claims_of`); the reason and message of its
    /// `Accepted=False` when not.
    pub(super) fn check(&self, ns: &str, claims: &[String]) -> Result<(), (&'static str, String)> {
        claims.iter().try_for_each(|c| self.check_one(ns, c))
    }

    fn check_one(&self, ns: &str, claim: &str) -> Result<(), (&'static str, String)> {
        let (what, is) = if claim == "*" {
            ("routes without hosts".to_string(), "are")
        } else {
            (format!("host {claim}"), "is")
        };
        if let Some((key, list)) = self.pin(claim) {
            if listed(list, ns) {
                return Ok(());
            }
            let by = if key == claim {
                String::new()
            } else {
                format!(" (its entry {key})")
            };
            return Err((
                reasons::NOT_PERMITTED,
                format!(
                    "{what} {is} reserved by tenancy.hosts{by} for namespace(s) {}; namespace {ns} is not listed",
                    names(list)
                ),
            ));
        }
        // A wildcard may not swallow a host pinned to other namespaces.
        if let Some((key, list)) = self
            .pinned
            .iter()
            .find(|(k, l)| covers(claim, k) && !listed(l, ns))
        {
            return Err((
                reasons::NOT_PERMITTED,
                format!(
                    "{what} covers {key}, which tenancy.hosts gives to namespace(s) {} only",
                    names(list)
                ),
            ));
        }
        if claim == "*" {
            // Routes without hosts share the hosts nobody claims (the table keeps them off
            // claimed ones); only `tenancy.hosts["*"]` reserves them.
            return Ok(());
        }
        if let Some(h) = self.held.get(claim) {
            if h.iter().any(|(n, _)| n == ns) {
                return Ok(());
            }
            let (owner, route) = &h[0];
            return Err((
                reasons::CONFLICTED,
                format!(
                    "{what} belongs to namespace {owner} (GatewayRoute {route} claimed it first); tenancy.hosts can share it with namespace {ns}"
                ),
            ));
        }
        // Under a wildcard: the most specific one held decides.
        let covering = self
            .held
            .iter()
            .filter(|(w, _)| covers(w, claim))
            .max_by_key(|(w, _)| w.len());
        if let Some((wild, h)) = covering {
            if !h.iter().any(|(n, _)| n == ns) {
                let (owner, route) = &h[0];
                return Err((
                    reasons::CONFLICTED,
                    format!(
                        "{what} is under {wild}, which belongs to namespace {owner} (GatewayRoute {route} claimed it first); tenancy.hosts can share it with namespace {ns}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records the claims of an accepted route `id` of `ns`.
    pub(super) fn record(&mut self, ns: &str, id: &str, claims: &[String]) {
        for c in claims {
            let h = self.held.entry(c.clone()).or_default();
            if !h.iter().any(|(n, _)| n == ns) {
                h.push((ns.to_string(), id.to_string()));
            }
        }
    }
}
