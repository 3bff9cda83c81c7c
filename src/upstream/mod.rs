//! Upstreams as the proxy sees them: endpoints, the balancing policy and the protection
//! policies (health checks, circuit breaker, retries) parsed from the resource.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};

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
    /// `Host` sent to this endpoint.
    pub host_header: http::HeaderValue,
}

impl Endpoint {
    /// Parses `http://host:port` (or `https://`); a base path is not allowed.
    pub fn parse(url: &str, protocol: Protocol) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("endpoint `{url}` is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") if protocol == Protocol::Https => Scheme::HTTPS,
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(s) => return Err(format!("endpoint `{url}`: scheme `{s}` is not http or https")),
            None => return Err(format!("endpoint `{url}` needs a scheme, e.g. http://{url}")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("endpoint `{url}` has no host"))?;
        if authority.host().is_empty() {
            return Err(format!("endpoint `{url}` has no host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "endpoint `{url}` may not carry a path; use the route's rewritePrefix"
            ));
        }
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("endpoint `{url}` has an invalid host"))?;
        Ok(Endpoint {
            url: url.to_string(),
            scheme,
            authority,
            host_header,
        })
    }
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
            .contains("scheme"));
        assert!(Endpoint::parse("http://x:1/base", Protocol::Http)
            .unwrap_err()
            .contains("path"));
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
}
