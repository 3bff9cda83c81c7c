//! What every request of the proxy listener shares, how it is built, and how requests are
//! counted.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::middleware::ratelimit::RateLimiter;
use crate::proxy::forward::Forwarder;
use crate::proxy::tls::UpstreamConnector;
use crate::routing::{Route, TableHandle};
use crate::settings::{HeadersConfig, PathsConfig};
use crate::telemetry::{method_label, Metrics, Tracing};
use crate::websocket::Hub;

/// What every request of the proxy listener shares.
pub struct ProxyState {
    pub table: TableHandle,
    pub metrics: Metrics,
    /// True once the first table is live and the listeners are bound; false while draining.
    pub ready: Arc<AtomicBool>,
    pub max_body_size: u64,
    pub proto: &'static str,
    /// Distributed tracing, when `observability.tracing.enabled`.
    pub tracing: Option<Tracing>,
    /// The upstream side: the clients and the timeouts of their calls.
    pub(super) forwarder: Forwarder,
    pub(super) limiter: Option<Arc<RateLimiter>>,
    /// The WebSocket hub, when `websocket.enabled`: it answers its own paths.
    pub(super) hub: Option<Arc<Hub>>,
    /// `server.tls.redirect_http`: the https port plain requests are sent to.
    pub(super) https_redirect: Option<u16>,
    /// `server.paths`: how other spellings of a path are read.
    pub(super) paths: PathsConfig,
}

impl ProxyState {
    pub fn new(
        table: TableHandle,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        connect_timeout: Duration,
        max_body_size: u64,
    ) -> Self {
        let tcp = {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_keepalive(Some(Duration::from_secs(60)));
            c
        };
        let connector = UpstreamConnector::new(tcp, table.clone(), connect_timeout);
        let mut forwarder = Forwarder::new(connector, metrics.clone());
        forwarder.max_body_size = max_body_size;
        ProxyState {
            table,
            metrics,
            ready,
            max_body_size,
            proto: "http",
            tracing: None,
            forwarder,
            limiter: None,
            hub: None,
            https_redirect: None,
            paths: PathsConfig::default(),
        }
    }

    /// Applies rate limits from `limiter` (the static configuration's, and every route's own).
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Turns on distributed tracing for the requests of this state.
    pub fn with_tracing(mut self, tracing: Option<Tracing>) -> Self {
        self.tracing = tracing;
        self
    }

    /// Gives up on an upstream's response body that sends nothing for `limit`.
    pub fn with_read_timeout(mut self, limit: Option<Duration>) -> Self {
        self.forwarder.read_timeout = limit;
        self
    }

    /// Closes a WebSocket tunnel that carries nothing either way for `limit`.
    pub fn with_tunnel_idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.forwarder.tunnel_idle_timeout = limit;
        self
    }

    /// Bounds each upstream try by `limit` (the route's timeout still bounds them all).
    pub fn with_upstream_timeout(mut self, limit: Option<Duration>) -> Self {
        self.forwarder.upstream_timeout = limit;
        self
    }

    /// Answers plain-HTTP requests (probes aside) with a 308 to https on `port`.
    pub fn with_https_redirect(mut self, port: u16) -> Self {
        self.https_redirect = Some(port);
        self
    }

    /// Reads request paths as `paths` says (`server.paths`; the default is the safe reading).
    pub fn with_paths(mut self, paths: PathsConfig) -> Self {
        self.paths = paths;
        self
    }

    /// Passes on the client's fields as `headers` says (`server.headers`; the default drops
    /// underscore names and method overrides).
    pub fn with_headers(mut self, headers: HeadersConfig) -> Self {
        self.forwarder.headers = headers;
        self
    }

    /// Hands the hub's paths (`websocket.server.path`, the webhook) to `hub`.
    pub fn with_hub(mut self, hub: Arc<Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Counts a request whose head was refused before it could be read (no route, no method).
    pub fn count_refused(&self, status: StatusCode) {
        self.metrics
            .http_requests_total
            .with_label_values(&["", "", status.as_str()])
            .inc();
    }

    /// Counts a request of `route` (`None`: no route matched) and its duration.
    pub(super) fn count(
        &self,
        route: Option<&Route>,
        method: &http::Method,
        status: StatusCode,
        start: Instant,
    ) {
        let m = &self.metrics;
        let seconds = start.elapsed().as_secs_f64();
        let method = method_label(method);
        let Some(route) = route else {
            m.http_requests_total
                .with_label_values(&["", method, status.as_str()])
                .inc();
            m.http_request_duration_seconds
                .with_label_values(&[""])
                .observe(seconds);
            return;
        };
        let id = route.id.as_str();
        route.series.requests.with(
            &(method, status.as_u16()),
            || {
                m.http_requests_total
                    .with_label_values(&[id, method, status.as_str()])
            },
            |c| c.inc(),
        );
        route
            .series
            .duration
            .get_or_init(|| m.http_request_duration_seconds.with_label_values(&[id]))
            .observe(seconds);
    }
}
