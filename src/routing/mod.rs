//! The compiled model, pure data: routes and their policies, the index from (host, path,
//! method) to a route, path patterns, channel policies, and the handle through which the proxy
//! and the hub see the current table (one `ArcSwap`). `compile` builds it; nothing here does
//! I/O.

pub mod channels;
mod error;
pub mod gateway;
mod handle;
mod method;
mod path;
mod table;

pub use channels::{ChannelDefaults, ChannelPolicy, ChannelTable};
pub use error::SpecError;
pub use gateway::{GatewayListeners, GatewayRule, ListenerSocket};
pub use handle::TableHandle;
pub use method::MethodSet;
pub use path::{PathKind, PathPattern, Segment};
pub use table::{Lookup, RoutingTable, SecretUrl, TableBuilder};

use std::sync::Arc;
use std::time::Duration;

use crate::auth::AuthPolicy;
use crate::upstream::Upstream;

/// A compiled route: everything the request pipeline needs, resolved ahead of time.
#[derive(Debug)]
pub struct Route {
    /// `namespace/name`: the metrics label and the name in logs and the admin API.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub hosts: Vec<String>,
    pub methods: MethodSet,
    pub upstream: Arc<Upstream>,
    /// `None`: no timeout.
    pub timeout: Option<Duration>,
    pub auth: AuthPolicy,
    pub rate_limit: Option<RateLimitPolicy>,
    pub cors: Option<Arc<CorsRules>>,
    pub rewrite: Option<Rewrite>,
    pub websocket: bool,
    pub tls_secret: Option<String>,
    /// A rule of a Gateway API HTTPRoute: its header and query matches, filters and weighted
    /// backends (`None` for GatewayRoutes).
    pub gateway: Option<Arc<GatewayRule>>,
    /// Its metric series, resolved on first use.
    pub series: crate::telemetry::RouteSeries,
}

/// What a rate limit is counted by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    Ip,
    User,
    Header(http::HeaderName),
}

/// A route's rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitPolicy {
    pub requests: u64,
    pub window: Duration,
    pub key: RateKey,
}

/// Replace `static_prefix` of the request path by `replacement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub static_prefix: String,
    pub replacement: String,
}

impl Rewrite {
    /// The upstream path for `path` (which matched the route, so it starts with the prefix).
    pub fn apply(&self, path: &str) -> String {
        let rest = path.get(self.static_prefix.len()..).unwrap_or("");
        let mut out = String::with_capacity(self.replacement.len() + rest.len() + 1);
        if rest.is_empty() {
            out.push_str(&self.replacement);
        } else {
            out.push_str(self.replacement.trim_end_matches('/'));
            if !rest.starts_with('/') {
                out.push('/');
            }
            out.push_str(rest);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

/// CORS rules, compiled: header values ready to copy into responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsRules {
    pub any_origin: bool,
    pub origins: Vec<String>,
    pub allow_methods: http::HeaderValue,
    /// `None`: reflect the preflight's `Access-Control-Request-Headers`.
    pub allow_headers: Option<http::HeaderValue>,
    pub expose_headers: Option<http::HeaderValue>,
    pub max_age: Option<http::HeaderValue>,
    pub allow_credentials: bool,
}

impl CorsRules {
    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}
