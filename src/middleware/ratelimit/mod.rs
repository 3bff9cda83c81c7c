//! Rate limiting: which limit applies to a request, who it is counted for, and the decision
//! from the memory or Redis store (both run the same GCRA, see `gcra`).
//!
//! One limit applies per request, the most specific one: the route's own `rateLimit`, else the
//! static `route_limits` entry matching the request path (exact over `/*` glob, longest glob
//! first; a limit of 0 exempts the path), else `default_limit` per client IP across all
//! routes. A glob is one budget for everything under it. The path is the one the route was
//! chosen by (in normal form), and an exact key counts it with or without a trailing `/`.

pub mod gcra;
pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::routing::{RateKey, Route};
use crate::settings::{parse_duration, RateLimitingConfig};
use gcra::Outcome;
use memory::MemoryStore;
use redis::RedisStore;

/// How long a Redis decision may take before `failure_mode` applies.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Who a request is counted for: the seam the pipeline fills (`user` from the auth step).
pub struct Caller<'a> {
    pub ip: IpAddr,
    /// The authenticated user id, when the route's auth step found one.
    pub user: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// The decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// No limit applies.
    Unlimited,
    Allowed(Quota),
    Limited(Quota),
    /// The store could not decide and `failure_mode` is `closed`.
    Unavailable,
}

/// A limit's state after one request, for the `RateLimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the whole quota is back.
    pub reset: Duration,
    /// Until the next request is allowed (zero when allowed).
    pub retry_after: Duration,
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl Quota {
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` (whole seconds, rounded up).
    pub fn add_headers(&self, h: &mut HeaderMap) {
        h.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        h.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        h.insert(RATELIMIT_RESET, HeaderValue::from(ceil_secs(self.reset)));
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Errors in the static rate-limit configuration.
#[derive(Debug, thiserror::Error)]
#[error("middleware.rate_limiting: {0}")]
pub struct ConfigError(String);

#[derive(Clone, Debug)]
struct Limit {
    requests: u64,
    window: Duration,
    /// The bucket namespace: `default`, `path:/auth/login`, `path:/api/v1/admin/*`.
    scope: Arc<str>,
}

enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Rate limits of the static configuration and the store their counters live in. One per
/// process, outside the routing table, so counters survive table swaps.
pub struct RateLimiter {
    default: Option<Limit>,
    exact: HashMap<String, Limit>,
    /// `(prefix without "/*", limit)`, longest first.
    globs: Vec<(String, Limit)>,
    store: Store,
    fail_open: bool,
    hasher: foldhash::quality::RandomState,
    last_warning: AtomicU64,
}

impl RateLimiter {
    /// Builds the limiter from `middleware.rate_limiting`; Redis is connected lazily.
    /// Must be called inside a Tokio runtime when the storage is Redis.
    pub fn from_config(cfg: &RateLimitingConfig) -> Result<RateLimiter, ConfigError> {
        let window = parse_duration(&cfg.window).map_err(|e| ConfigError(format!("window: {e}")))?;
        if window.is_zero() {
            return Err(ConfigError("window must be greater than 0".into()));
        }
        let limit = |requests, scope: String| Limit {
            requests,
            window,
            scope: scope.into(),
        };
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (pattern, &requests) in &cfg.route_limits {
            if !pattern.starts_with('/') {
                return Err(ConfigError(format!(
                    "route_limits key `{pattern}` must start with '/'"
                )));
            }
            let l = limit(requests, format!("path:{pattern}"));
            match pattern.strip_suffix("/*") {
                Some(prefix) if !prefix.contains('*') => globs.push((prefix.to_string(), l)),
                None if !pattern.contains('*') => {
                    if let Some(other) = exact.insert(without_trailing_slash(pattern).to_string(), l) {
                        return Err(ConfigError(format!(
                            "route_limits keys `{}` and `{pattern}` name the same path (a trailing `/` makes no difference)",
                            other.scope.trim_start_matches("path:")
                        )));
                    }
                }
                _ => {
                    return Err(ConfigError(format!(
                        "route_limits key `{pattern}`: `*` is only allowed as a trailing `/*`"
                    )))
                }
            }
        }
        globs.sort_by_key(|g| std::cmp::Reverse(g.0.len()));
        let store = match cfg.storage.type_.to_ascii_lowercase().as_str() {
            "memory" | "" => Store::Memory(MemoryStore::default()),
            "redis" => {
                let url = cfg
                    .storage
                    .url
                    .as_deref()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ConfigError("storage.url is required with storage type Redis".into()))?;
                Store::Redis(
                    RedisStore::new(url, REDIS_TIMEOUT)
                        .map_err(|e| ConfigError(format!("storage.url: {e}")))?,
                )
            }
            t => return Err(ConfigError(format!("storage.type `{t}` must be Memory or Redis"))),
        };
        let fail_open = match cfg.failure_mode.to_ascii_lowercase().as_str() {
            "open" | "" => true,
            "closed" => false,
            m => return Err(ConfigError(format!("failure_mode `{m}` must be open or closed"))),
        };
        Ok(RateLimiter {
            default: (cfg.default_limit > 0).then(|| limit(cfg.default_limit, "default".into())),
            exact,
            globs,
            store,
            fail_open,
            hasher: Default::default(),
            last_warning: AtomicU64::new(0),
        })
    }

    /// True when the store is shared (Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// Counts the request against the limit that applies to it.
    pub async fn check(&self, route: &Route, path: &str, caller: &Caller<'_>) -> Admission {
        match &route.rate_limit {
            Some(p) => {
                let key = ClientKey::of(&p.key, caller);
                self.decide(p.requests, p.window, route.id.as_str(), key).await
            }
            None => self.check_path(path, caller.ip).await,
        }
    }

    /// Counts a request that no route serves (the WebSocket hub's paths) against the static
    /// limit for its path: `route_limits`, else `default_limit`, per client IP.
    pub async fn check_path(&self, path: &str, ip: IpAddr) -> Admission {
        match self.static_limit(path) {
            Some(l) if l.requests > 0 => {
                self.decide(l.requests, l.window, &l.scope, ClientKey::Ip(ip))
                    .await
            }
            _ => Admission::Unlimited,
        }
    }

    async fn decide(&self, requests: u64, window: Duration, scope: &str, key: ClientKey<'_>) -> Admission {
        let result = match &self.store {
            Store::Memory(m) => {
                let h = self.hasher.hash_one((scope, &key));
                Ok(to_quota(m.check(h, requests, window), memory::to_duration))
            }
            Store::Redis(r) => {
                let bucket = key.redis_key(scope);
                r.check(bucket, requests, window)
                    .await
                    .map(|o| to_quota(o, redis::to_duration))
            }
        };
        match result {
            Ok((true, d)) => Admission::Allowed(d),
            Ok((false, d)) => Admission::Limited(d),
            Err(e) => {
                self.warn(&e);
                if self.fail_open {
                    Admission::Unlimited
                } else {
                    Admission::Unavailable
                }
            }
        }
    }

    /// The static limit of `path`, which is in normal form (`server.paths`): the path the
    /// route was chosen by. An exact key counts its path with or without a trailing `/`, as
    /// most upstreams serve both alike; a glob covers its prefix and what is below it, by
    /// whole segments, as a route's `/*` does.
    fn static_limit(&self, path: &str) -> Option<&Limit> {
        if let Some(l) = self.exact.get(without_trailing_slash(path)) {
            return Some(l);
        }
        for (prefix, l) in &self.globs {
            if let Some(rest) = path.strip_prefix(prefix.as_str()) {
                if rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/') {
                    return Some(l);
                }
            }
        }
        self.default.as_ref()
    }

    /// At most one warning every 10 seconds while the store fails.
    fn warn(&self, e: &redis::Error) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let mode = if self.fail_open {
                "open: allowing"
            } else {
                "closed: refusing"
            };
            tracing::warn!("rate-limit store unavailable ({e}); failure_mode {mode} requests");
        }
    }
}

/// `path` without one trailing `/`, unless it is `/`.
fn without_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

fn to_quota(o: Outcome, unit: fn(u64) -> Duration) -> (bool, Quota) {
    (
        o.allowed,
        Quota {
            limit: o.limit,
            remaining: o.remaining,
            reset: unit(o.reset),
            retry_after: unit(o.retry_after),
        },
    )
}

/// What a request is counted by. A missing user or header falls back to the client IP.
#[derive(Hash)]
enum ClientKey<'a> {
    Ip(IpAddr),
    User(&'a str),
    Header(&'a [u8]),
}

impl<'a> ClientKey<'a> {
    fn of(key: &RateKey, caller: &Caller<'a>) -> ClientKey<'a> {
        match key {
            RateKey::Ip => ClientKey::Ip(caller.ip),
            RateKey::User => caller.user.map_or(ClientKey::Ip(caller.ip), ClientKey::User),
            RateKey::Header(name) => caller
                .headers
                .get(name)
                .map_or(ClientKey::Ip(caller.ip), |v| ClientKey::Header(v.as_bytes())),
        }
    }

    /// `scope|ip:1.2.3.4`, `scope|user:alice`, `scope|hdr:value` (long values hashed).
    fn redis_key(&self, scope: &str) -> String {
        match self {
            ClientKey::Ip(ip) => format!("{scope}|ip:{ip}"),
            ClientKey::User(u) if u.len() <= 128 => format!("{scope}|user:{u}"),
            ClientKey::Header(v) if v.len() <= 128 => {
                format!("{scope}|hdr:{}", String::from_utf8_lossy(v))
            }
            ClientKey::User(long) => format!("{scope}|user#{:016x}", stable_hash(long.as_bytes())),
            ClientKey::Header(long) => format!("{scope}|hdr#{:016x}", stable_hash(long)),
        }
    }
}

/// FNV-1a: the same on every replica, unlike the per-process hasher.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
