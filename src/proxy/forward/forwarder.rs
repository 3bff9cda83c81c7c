//! The upstream side of the proxy: the own client, the general client and the h2c client,
//! and what bounds their calls.

use std::time::Duration;

use http::HeaderMap;

use super::general::{general_client, GeneralClient};
use crate::proxy::client::OwnClient;
use crate::proxy::tls::UpstreamConnector;
use crate::settings::HeadersConfig;
use crate::telemetry::Metrics;

/// How long an upstream connection may wait idle in a pool before it is closed.
const UPSTREAM_IDLE: Duration = Duration::from_secs(90);

/// The upstream side: the clients and what bounds their calls.
pub struct Forwarder {
    /// Plain `http` HTTP/1.1 endpoints, for requests whose body is in memory.
    pub(super) own: OwnClient,
    /// `https` endpoints and streamed request bodies.
    pub(super) general: GeneralClient,
    /// `h2c` endpoints.
    pub(super) h2c: GeneralClient,
    pub(super) metrics: Metrics,
    /// The fields of a request whose head has gone to its last try.
    pub(super) empty_headers: HeaderMap,
    /// `server.timeouts.upstream_timeout`: the longest one try may take.
    pub upstream_timeout: Option<Duration>,
    /// `server.timeouts.read_timeout`: the longest an upstream's response body may send
    /// nothing.
    pub read_timeout: Option<Duration>,
    /// `server.headers`: the client's fields that are not passed on.
    pub headers: HeadersConfig,
    /// `server.limits.max_body_size`: what a streamed request body may bring.
    pub max_body_size: u64,
    /// `server.timeouts.tunnel_idle_timeout`: the longest a WebSocket tunnel may carry
    /// nothing.
    pub tunnel_idle_timeout: Option<Duration>,
}

impl Forwarder {
    /// Clients dialling through `connector`, counting into `metrics`.
    pub fn new(connector: UpstreamConnector, metrics: Metrics) -> Self {
        Forwarder {
            own: OwnClient::new(connector.clone(), UPSTREAM_IDLE, 1024),
            general: general_client(connector.clone(), UPSTREAM_IDLE, false),
            h2c: general_client(connector, UPSTREAM_IDLE, true),
            metrics,
            empty_headers: HeaderMap::new(),
            upstream_timeout: None,
            read_timeout: None,
            headers: HeadersConfig::default(),
            max_body_size: u64::MAX,
            tunnel_idle_timeout: None,
        }
    }

    /// Counts a call to `upstream` that ended with `status` (or "error").
    pub(super) fn count_upstream(&self, upstream: &str, status: &str) {
        self.metrics
            .upstream_requests_total
            .with_label_values(&[upstream, status])
            .inc();
    }
}
