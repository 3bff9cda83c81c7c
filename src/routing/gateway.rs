//! What a route compiled from a Gateway API HTTPRoute carries beyond a GatewayRoute: the
//! header and query matches of its rule, its filters and its weighted backends, and the
//! listeners of the Gateways (one socket per address and port, each with its own table).
//!
//! A compiled HTTPRoute rule is an ordinary [`super::Route`] (its path and method go through
//! the same index) whose `gateway` field holds a [`GatewayRule`]. Tables built for Gateway
//! listeners are *strict*: a request is matched only against the most specific host that has
//! routes or belongs to a listener (no falling through to wildcard or host-less routes), and a
//! path whose routes take other methods is a 404, not a 405, as the Gateway API asks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::RoutingTable;
use crate::upstream::Upstream;

/// The Gateway API part of a compiled HTTPRoute rule (one of its matches).
#[derive(Debug, Default)]
pub struct GatewayRule {
    /// `namespace/name` of the HTTPRoute and the index of the rule, for logs.
    pub source: String,
    /// The path match, for `ReplacePrefixMatch`.
    pub path: PathMatch,
    /// All must match.
    pub headers: Vec<HeaderMatch>,
    /// All must match.
    pub query: Vec<QueryMatch>,
    pub request_headers: Option<HeaderEdit>,
    pub response_headers: Option<HeaderEdit>,
    /// Answered by the gateway; the backends are not called.
    pub redirect: Option<Redirect>,
    pub rewrite: Option<UrlRewrite>,
    /// Chosen by weight per request. Empty, or a chosen backend without an upstream (a
    /// reference that does not resolve): the request is answered 500.
    pub backends: Vec<WeightedBackend>,
}

/// How the rule's path matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// The prefix without a trailing `/` (`""` for `/`).
    Prefix(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix(String::new())
    }
}

/// A header that must be present with this value (names are case-insensitive; values exact).
#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub name: HeaderName,
    pub value: String,
}

/// A query parameter that must be present with this value (the first occurrence counts).
#[derive(Clone, Debug)]
pub struct QueryMatch {
    pub name: String,
    pub value: String,
}

/// `RequestHeaderModifier` / `ResponseHeaderModifier`, compiled.
#[derive(Clone, Debug, Default)]
pub struct HeaderEdit {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdit {
    /// Applies the edit: set replaces every value, add appends, remove drops the name.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

/// A path replacement of a redirect or rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathModifier {
    Full(String),
    Prefix(String),
}

/// `RequestRedirect`, compiled.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    pub status: StatusCode,
}

/// `URLRewrite`, compiled.
#[derive(Clone, Debug)]
pub struct UrlRewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathModifier>,
}

/// One `backendRef` with its weight; `upstream` is `None` when the reference does not resolve
/// (requests that choose it are answered 500).
#[derive(Clone, Debug)]
pub struct WeightedBackend {
    pub upstream: Option<Arc<Upstream>>,
    pub weight: u32,
}

impl GatewayRule {
    /// Whether the request's headers and query satisfy this rule's matches.
    pub fn matches(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        for m in &self.headers {
            let ok = headers
                .get_all(&m.name)
                .iter()
                .next()
                .is_some_and(|v| v.as_bytes() == m.value.as_bytes());
            if !ok {
                return false;
            }
        }
        for m in &self.query {
            let found = query.and_then(|q| {
                q.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == m.name).then_some(v)
                })
            });
            if found != Some(m.value.as_str()) {
                return false;
            }
        }
        true
    }

    /// The backend for a request, given a number drawn uniformly from `0..u32::MAX`:
    /// `Some(upstream)`, or `None` when the request must be answered 500 (no backends, all of
    /// weight 0, or the chosen one does not resolve).
    pub fn choose(&self, draw: u32) -> Option<&Arc<Upstream>> {
        let total: u64 = self.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut at = u64::from(draw) % total;
        for b in &self.backends {
            let w = u64::from(b.weight);
            if at < w {
                return b.upstream.as_ref();
            }
            at -= w;
        }
        None
    }

    /// The upstream path after a `ReplacePrefixMatch` or `ReplaceFullPath` of `modifier`, for
    /// a request path that matched this rule.
    pub fn replace_path(&self, modifier: &PathModifier, path: &str) -> String {
        match modifier {
            PathModifier::Full(p) => p.clone(),
            PathModifier::Prefix(p) => {
                let rest = match &self.path {
                    PathMatch::Prefix(prefix) => path.get(prefix.len()..).unwrap_or(""),
                    PathMatch::Exact(_) => "",
                };
                let base = p.trim_end_matches('/');
                if rest.is_empty() || rest == "/" {
                    if base.is_empty() {
                        "/".to_string()
                    } else if rest == "/" || p.ends_with('/') {
                        format!("{base}/")
                    } else {
                        base.to_string()
                    }
                } else {
                    format!("{base}{rest}")
                }
            }
        }
    }
}

/// The sockets the Gateways of this table listen on.
#[derive(Debug, Default)]
pub struct GatewayListeners {
    pub sockets: Vec<ListenerSocket>,
}

/// One address and port of a Gateway: the table its requests are routed with.
#[derive(Debug)]
pub struct ListenerSocket {
    pub addr: SocketAddr,
    /// HTTPS: the certificates are `table.tls`, chosen by SNI.
    pub tls: bool,
    /// `namespace/name` of the Gateway.
    pub gateway: String,
    pub table: Arc<RoutingTable>,
}

impl GatewayListeners {
    /// The socket bound to `local` (the address a connection arrived on).
    pub fn get(&self, local: SocketAddr) -> Option<&ListenerSocket> {
        self.sockets.iter().find(|s| s.addr == local)
    }

    /// The addresses of every socket, with whether it is HTTPS.
    pub fn addresses(&self) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
        self.sockets.iter().map(|s| (s.addr, s.tls))
    }

    /// Whether any socket listens on `ip`.
    pub fn uses(&self, ip: IpAddr) -> bool {
        self.sockets.iter().any(|s| s.addr.ip() == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: PathMatch) -> GatewayRule {
        GatewayRule {
            path,
            ..GatewayRule::default()
        }
    }

    #[test]
    fn headers_and_query_must_all_match() {
        let mut r = rule(PathMatch::default());
        r.headers.push(HeaderMatch {
            name: HeaderName::from_static("version"),
            value: "one".into(),
        });
        r.query.push(QueryMatch {
            name: "animal".into(),
            value: "whale".into(),
        });
        let mut h = HeaderMap::new();
        h.insert("version", HeaderValue::from_static("one"));
        assert!(r.matches(&h, Some("animal=whale&x=1")));
        assert!(!r.matches(&h, Some("animal=dolphin")));
        assert!(!r.matches(&h, None));
        h.insert("version", HeaderValue::from_static("two"));
        assert!(!r.matches(&h, Some("animal=whale")));
    }

    #[test]
    fn weights_pick_in_proportion_and_zero_total_is_none() {
        let up = |k: &str| Some(Arc::new(Upstream::empty(k.into())));
        let mut r = rule(PathMatch::default());
        r.backends = vec![
            WeightedBackend {
                upstream: up("a"),
                weight: 1,
            },
            WeightedBackend {
                upstream: up("b"),
                weight: 3,
            },
        ];
        let keys: Vec<_> = (0..4).map(|d| r.choose(d).unwrap().key.clone()).collect();
        assert_eq!(keys, ["a", "b", "b", "b"]);
        r.backends.iter_mut().for_each(|b| b.weight = 0);
        assert!(r.choose(7).is_none());
        r.backends = vec![WeightedBackend {
            upstream: None,
            weight: 1,
        }];
        assert!(r.choose(0).is_none());
    }

    #[test]
    fn prefix_replacement_keeps_the_rest_of_the_path() {
        let r = rule(PathMatch::Prefix("/prefix/one".into()));
        let m = PathModifier::Prefix("/one".into());
        assert_eq!(r.replace_path(&m, "/prefix/one/two"), "/one/two");
        assert_eq!(r.replace_path(&m, "/prefix/one"), "/one");
        assert_eq!(r.replace_path(&m, "/prefix/one/"), "/one/");
        let root = PathModifier::Prefix("/".into());
        assert_eq!(r.replace_path(&root, "/prefix/one/two"), "/two");
        assert_eq!(r.replace_path(&root, "/prefix/one"), "/");
        let full = PathModifier::Full("/full".into());
        assert_eq!(r.replace_path(&full, "/prefix/one/x"), "/full");
    }
}
