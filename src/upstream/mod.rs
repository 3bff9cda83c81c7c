//! Upstreams as the proxy sees them: endpoints, the balancing policy and the protection
//! policies (health checks, circuit breaker, retries) parsed from the resource, plus the
//! runtime state they are bound to (`runtime`), which outlives any one routing table.

pub mod breaker;
pub mod egress;
pub mod health;
pub mod ring;
pub mod runtime;
mod state;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::HeaderMap;

pub use breaker::{Breaker, Phase, Ticket};
pub use egress::{Egress, Refusal};
pub use runtime::{Binding, Registry};
pub use state::{EndpointState, InFlight};

/// Wire protocol towards the endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    H2c,
    Https,
}

/// How an endpoint is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balancer {
    RoundRobin,
    LeastRequest,
    Random,
    ConsistentHash(HashOn),
}

/// What `ConsistentHash` hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    Ip,
    Header(http::HeaderName),
    Claim(String),
}

/// One endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// As configured or discovered, e.g. `http://10.0.0.5:3002`.
    pub url: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// What the general client dials and pools connections by: `authority`, and for `https`
    /// endpoints the upstream's `namespace/name` before it as user info, so that two upstreams
    /// with different TLS settings never share a connection (`Upstream::new` sets it).
    pub pool_key: Authority,
    /// `Host` sent to this endpoint.
    pub host_header: http::HeaderValue,
}

impl Endpoint {
    /// Parses `http://host:port` (or `https://`); a base path is not allowed.
    pub fn parse(url: &str, protocol: Protocol) -> Result<Endpoint, EndpointError> {
        let bad = |why: EndpointProblem| EndpointError {
            url: url.to_string(),
            why,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(EndpointProblem::NotUrl(e.to_string())))?;
        let scheme = match uri.scheme_str() {
            Some("http") if protocol == Protocol::Https => Scheme::HTTPS,
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(s) => return Err(bad(EndpointProblem::Scheme(s.to_string()))),
            None => return Err(bad(EndpointProblem::NoScheme(url.to_string()))),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad(EndpointProblem::NoHost))?;
        if authority.host().is_empty() {
            return Err(bad(EndpointProblem::NoHost));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(EndpointProblem::Path));
        }
        let host_header =
            http::HeaderValue::from_str(authority.as_str()).map_err(|_| bad(EndpointProblem::Host))?;
        Ok(Endpoint {
            url: url.to_string(),
            scheme,
            pool_key: authority.clone(),
            authority,
            host_header,
        })
    }

    /// The host as written in the URL (IPv6 in brackets) and the port (default by scheme).
    pub fn host_port(&self) -> (&str, u16) {
        let default = if self.scheme == Scheme::HTTPS { 443 } else { 80 };
        (
            self.authority.host(),
            self.authority.port_u16().unwrap_or(default),
        )
    }
}

/// `authority` with the upstream `key` percent-encoded before it as user info.
fn tagged(key: &str, authority: &Authority) -> Option<Authority> {
    let mut s = String::with_capacity(key.len() + authority.as_str().len() + 8);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push('@');
    s.push_str(authority.as_str());
    s.parse().ok()
}

/// The upstream `namespace/name` a pool key names (its user info), if it names one.
pub fn upstream_of_pool_key(authority: &str) -> Option<String> {
    let (info, _) = authority.rsplit_once('@')?;
    let bytes = info.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = info.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An endpoint URL the gateway cannot dial.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("endpoint `{url}`{why}")]
pub struct EndpointError {
    pub url: String,
    pub why: EndpointProblem,
}

/// What is wrong with an endpoint URL (the text follows the URL in the message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    #[error(" is not a URL: {0}")]
    NotUrl(String),
    #[error(": scheme `{0}` is not http or https")]
    Scheme(String),
    #[error(" needs a scheme, e.g. http://{0}")]
    NoScheme(String),
    #[error(" has no host")]
    NoHost,
    #[error(" may not carry a path; use the route's rewritePrefix")]
    Path,
    #[error(" has an invalid host")]
    Host,
}

/// Health-check policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckPolicy {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// Circuit-breaker policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failure_threshold: u32,
    pub open_for: Duration,
    pub success_threshold: u32,
}

/// Retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub retry_on: Vec<String>,
}

/// A compiled upstream.
#[derive(Debug)]
pub struct Upstream {
    /// `namespace/name`.
    pub key: String,
    pub protocol: Protocol,
    pub endpoints: Vec<Endpoint>,
    pub balancer: Balancer,
    pub connect_timeout: Option<Duration>,
    pub health_check: Option<HealthCheckPolicy>,
    pub circuit_breaker: Option<BreakerPolicy>,
    pub retries: Option<RetryPolicy>,
    next: AtomicUsize,
    /// `gateway_upstream_requests_total` by status (0: no response).
    pub series: crate::telemetry::SeriesCache<u16, prometheus::IntCounter>,
    /// Set by `Registry::bind` before the table goes live; private state otherwise.
    binding: OnceLock<Binding>,
    /// Where its endpoints may be dialled (health checks read it; the proxy the table's).
    pub egress: std::sync::Arc<Egress>,
}

/// Looks a claim of the authenticated user up by name.
pub type ClaimLookup<'a> = dyn Fn(&str) -> Option<String> + Sync + 'a;

/// What a balancer may look at to choose an endpoint.
pub struct PickContext<'a> {
    pub ip: IpAddr,
    pub headers: &'a HeaderMap,
    /// Claim lookup of the authenticated user (`hashOn: claim:NAME`); the auth step fills it.
    pub claim: Option<&'a ClaimLookup<'a>>,
}

impl RetryPolicy {
    /// Whether `condition` (`connect-failure`, `gateway-error`, `5xx`, `reset`, `timeout`)
    /// is listed.
    pub fn on(&self, condition: &str) -> bool {
        self.retry_on.iter().any(|c| c == condition)
    }
}

impl Upstream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: String,
        protocol: Protocol,
        endpoints: Vec<Endpoint>,
        balancer: Balancer,
        connect_timeout: Option<Duration>,
        health_check: Option<HealthCheckPolicy>,
        circuit_breaker: Option<BreakerPolicy>,
        retries: Option<RetryPolicy>,
    ) -> Self {
        let mut endpoints = endpoints;
        for e in endpoints.iter_mut().filter(|e| e.scheme == Scheme::HTTPS) {
            if let Some(k) = tagged(&key, &e.authority) {
                e.pool_key = k;
            }
        }
        Upstream {
            key,
            protocol,
            endpoints,
            balancer,
            connect_timeout,
            health_check,
            circuit_breaker,
            retries,
            next: AtomicUsize::new(0),
            series: Default::default(),
            binding: OnceLock::new(),
            egress: Default::default(),
        }
    }

    /// An upstream with no endpoints and no policies (routes whose upstream is missing).
    pub fn empty(key: String) -> Self {
        Self::new(
            key,
            Protocol::Http,
            Vec::new(),
            Balancer::RoundRobin,
            None,
            None,
            None,
            None,
        )
    }

    /// The next endpoint in round-robin order, or `None` when there is none.
    pub fn pick(&self) -> Option<&Endpoint> {
        match self.endpoints.len() {
            0 => None,
            1 => self.endpoints.first(),
            n => self.endpoints.get(self.next.fetch_add(1, Ordering::Relaxed) % n),
        }
    }

    /// The runtime state this upstream is bound to.
    pub fn binding(&self) -> &Binding {
        self.binding.get_or_init(|| Binding::standalone(self))
    }

    /// Whether the registry bound it (the admin API shows only shared state).
    pub fn is_bound(&self) -> bool {
        self.binding.get().is_some()
    }

    /// Chooses a healthy endpoint not in `tried` with the upstream's balancer: its index in
    /// `endpoints`, or `None` when no healthy endpoint is left.
    pub fn choose(&self, ctx: &PickContext<'_>, tried: &[usize]) -> Option<usize> {
        let n = self.endpoints.len();
        let b = self.binding();
        let usable = |i: usize| !tried.contains(&i) && b.endpoints.get(i).is_some_and(|e| e.is_healthy());
        let scan = |start: usize| (0..n).map(|k| (start + k) % n).find(|&i| usable(i));
        match n {
            0 => return None,
            1 => return usable(0).then_some(0),
            _ => {}
        }
        match &self.balancer {
            Balancer::RoundRobin => scan(self.next.fetch_add(1, Ordering::Relaxed)),
            Balancer::Random => scan(rand::random_range(0..n)),
            Balancer::LeastRequest => {
                // Power of two choices: two distinct random endpoints, the less busy one wins.
                let a = rand::random_range(0..n);
                let b2 = (a + rand::random_range(1..n)) % n;
                match (usable(a), usable(b2)) {
                    (true, true) => {
                        let load = |i: usize| b.endpoints.get(i).map_or(usize::MAX, |e| e.in_flight());
                        Some(if load(b2) < load(a) { b2 } else { a })
                    }
                    (true, false) => Some(a),
                    (false, true) => Some(b2),
                    (false, false) => scan(a),
                }
            }
            Balancer::ConsistentHash(on) => {
                let ring = b.ring.as_ref()?;
                ring.lookup(hash_key(on, ctx), usable)
            }
        }
    }
}

/// The hash a consistent-hash upstream places a request by; a missing header or claim falls
/// back to the client IP.
fn hash_key(on: &HashOn, ctx: &PickContext<'_>) -> u64 {
    let by_ip = || match ctx.ip {
        IpAddr::V4(v4) => ring::stable_hash(&v4.octets()),
        IpAddr::V6(v6) => ring::stable_hash(&v6.octets()),
    };
    match on {
        HashOn::Ip => by_ip(),
        HashOn::Header(name) => ctx
            .headers
            .get(name)
            .map_or_else(by_ip, |v| ring::stable_hash(v.as_bytes())),
        HashOn::Claim(claim) => ctx
            .claim
            .and_then(|lookup| lookup(claim))
            .map_or_else(by_ip, |v| ring::stable_hash(v.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_explain() {
        let e = Endpoint::parse("http://auth-service:3001", Protocol::Http).expect("ok");
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str()),
            ("http", "auth-service:3001")
        );
        assert!(Endpoint::parse("auth:3001", Protocol::Http).is_err());
        assert!(Endpoint::parse("ftp://x:1", Protocol::Http)
            .unwrap_err()
            .to_string()
            .contains("scheme"));
        assert!(Endpoint::parse("http://x:1/base", Protocol::Http)
            .unwrap_err()
            .to_string()
            .contains("path"));
    }

    #[test]
    fn https_endpoints_are_pooled_per_upstream() {
        let eps = ["https://api.example.com:443", "http://10.0.0.1:80"]
            .iter()
            .map(|u| Endpoint::parse(u, Protocol::Http).expect("ok"))
            .collect();
        let u = Upstream::new(
            "team-a/pay ments".into(),
            Protocol::Http,
            eps,
            Balancer::RoundRobin,
            None,
            None,
            None,
            None,
        );
        let key = u.endpoints[0].pool_key.as_str();
        assert_eq!(key, "team-a%2Fpay%20ments@api.example.com:443");
        assert_eq!(u.endpoints[0].pool_key.host(), "api.example.com");
        assert_eq!(upstream_of_pool_key(key).as_deref(), Some("team-a/pay ments"));
        assert_eq!(
            u.endpoints[1].pool_key, u.endpoints[1].authority,
            "plain http: shared"
        );
        assert_eq!(upstream_of_pool_key("10.0.0.1:80"), None);
    }

    #[test]
    fn round_robin_cycles() {
        let eps = ["http://a:1", "http://b:1", "http://c:1"]
            .iter()
            .map(|u| Endpoint::parse(u, Protocol::Http).expect("ok"))
            .collect();
        let u = Upstream::new(
            "ns/u".into(),
            Protocol::Http,
            eps,
            Balancer::RoundRobin,
            None,
            None,
            None,
            None,
        );
        let picks: Vec<_> = (0..6)
            .map(|_| u.pick().expect("some").authority.host().to_string())
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
        assert!(Upstream::empty("ns/x".into()).pick().is_none());
    }

    fn upstream(balancer: Balancer, n: usize) -> Upstream {
        let eps = (0..n)
            .map(|i| Endpoint::parse(&format!("http://10.0.0.{i}:80"), Protocol::Http).expect("ok"))
            .collect();
        Upstream::new(
            "ns/u".into(),
            Protocol::Http,
            eps,
            balancer,
            None,
            None,
            None,
            None,
        )
    }

    fn ctx(headers: &HeaderMap) -> PickContext<'_> {
        PickContext {
            ip: "192.0.2.7".parse().expect("ip"),
            headers,
            claim: None,
        }
    }

    #[test]
    fn balancers_choose_only_healthy_untried_endpoints() {
        let h = HeaderMap::new();
        for balancer in [
            Balancer::RoundRobin,
            Balancer::Random,
            Balancer::LeastRequest,
            Balancer::ConsistentHash(HashOn::Ip),
        ] {
            let u = upstream(balancer.clone(), 4);
            u.binding().endpoints[1].set_healthy(false);
            u.binding().endpoints[3].set_healthy(false);
            for _ in 0..50 {
                let i = u.choose(&ctx(&h), &[]).expect("a healthy endpoint");
                assert!(i == 0 || i == 2, "{balancer:?} chose {i}");
                let j = u.choose(&ctx(&h), &[i]).expect("the other healthy endpoint");
                assert_eq!(j, 2 - i, "{balancer:?}");
                assert_eq!(u.choose(&ctx(&h), &[0, 2]), None, "{balancer:?}");
            }
        }
    }

    #[test]
    fn round_robin_skips_unhealthy_endpoints_in_order() {
        let h = HeaderMap::new();
        let u = upstream(Balancer::RoundRobin, 3);
        u.binding().endpoints[1].set_healthy(false);
        let picks: Vec<_> = (0..4).map(|_| u.choose(&ctx(&h), &[]).expect("some")).collect();
        assert_eq!(picks, [0, 2, 2, 0]);
    }

    #[test]
    fn least_request_prefers_the_less_busy_endpoint() {
        let h = HeaderMap::new();
        let u = upstream(Balancer::LeastRequest, 2);
        let busy: Vec<_> = (0..5).map(|_| u.binding().endpoints[0].start()).collect();
        assert!((0..50).all(|_| u.choose(&ctx(&h), &[]) == Some(1)));
        drop(busy);
        let _other = u.binding().endpoints[1].start();
        assert!((0..50).all(|_| u.choose(&ctx(&h), &[]) == Some(0)));
    }

    #[test]
    fn consistent_hash_keeps_a_key_on_one_endpoint() {
        let u = upstream(
            Balancer::ConsistentHash(HashOn::Header(http::HeaderName::from_static("x-tenant"))),
            5,
        );
        let mut seen = std::collections::HashSet::new();
        for tenant in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let mut h = HeaderMap::new();
            h.insert("x-tenant", tenant.parse().expect("value"));
            let first = u.choose(&ctx(&h), &[]).expect("some");
            assert!((0..20).all(|_| u.choose(&ctx(&h), &[]) == Some(first)));
            seen.insert(first);
        }
        assert!(seen.len() > 1, "tenants spread over endpoints");
        // By claim, through the auth step's lookup.
        let u = upstream(Balancer::ConsistentHash(HashOn::Claim("tenant".into())), 5);
        let h = HeaderMap::new();
        let lookup = |name: &str| (name == "tenant").then(|| "acme".to_string());
        let c = PickContext {
            ip: "192.0.2.7".parse().expect("ip"),
            headers: &h,
            claim: Some(&lookup),
        };
        let first = u.choose(&c, &[]).expect("some");
        assert!((0..20).all(|_| u.choose(&c, &[]) == Some(first)));
    }
}
