//! The Prometheus series of SPEC §7, in one registry served on the metrics port.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every series the gateway exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests_total: IntCounterVec,
    pub http_request_duration_seconds: HistogramVec,
    pub upstream_requests_total: IntCounterVec,
    pub upstream_endpoints: IntGaugeVec,
    pub circuit_breaker_open: IntGaugeVec,
    pub rate_limited_total: IntCounterVec,
    pub config_reloads_total: IntCounterVec,
    pub routes: IntGauge,
    pub tls_certificate_expiry_seconds: prometheus::GaugeVec,
    pub config_propagation_seconds: Histogram,
    /// WebSocket hub: see `WsMetrics`.
    pub ws: WsMetrics,
}

/// The seed's `websocket_*` series, plus refusals and slow-consumer disconnects.
#[derive(Clone)]
pub struct WsMetrics {
    /// Open connections (the seed names this gauge `websocket_connections_total`).
    pub connections: IntGauge,
    /// `connected` and `closing` are current counts; `closed` counts closes since start.
    pub connections_by_state: IntGaugeVec,
    pub messages_sent_total: IntCounter,
    pub messages_received_total: IntCounter,
    pub channel_subscribers: IntGaugeVec,
    pub connection_duration_seconds: Histogram,
    /// `direction`: `in` (from clients) or `out` (each published frame, once).
    pub message_size_bytes: HistogramVec,
    pub slow_consumers_total: IntCounter,
    /// Upgrades refused, by `reason`.
    pub upgrades_refused_total: IntCounterVec,
    /// Messages taken from the message queue and handed to the hub (then acknowledged).
    pub queue_messages_consumed_total: IntCounter,
    /// Messages from the message queue rejected (not requeued) as malformed.
    pub queue_messages_rejected_total: IntCounter,
    /// 1 while the hub consumes from the message queue, 0 while it is away or reconnecting.
    pub queue_connected: IntGauge,
}

impl WsMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = WsMetrics {
            connections: IntGauge::new("websocket_connections_total", "Open WebSocket connections")?,
            connections_by_state: IntGaugeVec::new(
                Opts::new(
                    "websocket_connections_by_state",
                    "WebSocket connections by state (connected, closing; closed counts closes)",
                ),
                &["state"],
            )?,
            messages_sent_total: IntCounter::new(
                "websocket_messages_sent_total",
                "Frames sent to WebSocket clients",
            )?,
            messages_received_total: IntCounter::new(
                "websocket_messages_received_total",
                "Data frames received from WebSocket clients",
            )?,
            channel_subscribers: IntGaugeVec::new(
                Opts::new(
                    "websocket_channel_subscribers",
                    "Subscribers per channel on this replica",
                ),
                &["channel"],
            )?,
            connection_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "websocket_connection_duration_seconds",
                    "WebSocket connection lifetime",
                )
                .buckets(vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0]),
            )?,
            message_size_bytes: HistogramVec::new(
                HistogramOpts::new("websocket_message_size_bytes", "WebSocket message size").buckets(vec![
                    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
                ]),
                &["direction"],
            )?,
            slow_consumers_total: IntCounter::new(
                "websocket_slow_consumers_disconnected_total",
                "Connections dropped because their send queue was full",
            )?,
            upgrades_refused_total: IntCounterVec::new(
                Opts::new(
                    "websocket_upgrades_refused_total",
                    "WebSocket upgrades refused, by reason",
                ),
                &["reason"],
            )?,
            queue_messages_consumed_total: IntCounter::new(
                "websocket_queue_messages_consumed_total",
                "Messages taken from the message queue and handed to the hub",
            )?,
            queue_messages_rejected_total: IntCounter::new(
                "websocket_queue_messages_rejected_total",
                "Malformed messages from the message queue, rejected without requeue",
            )?,
            queue_connected: IntGauge::new(
                "websocket_queue_connected",
                "1 while the hub consumes from the message queue",
            )?,
        };
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.connections_by_state.clone()))?;
        registry.register(Box::new(m.messages_sent_total.clone()))?;
        registry.register(Box::new(m.messages_received_total.clone()))?;
        registry.register(Box::new(m.channel_subscribers.clone()))?;
        registry.register(Box::new(m.connection_duration_seconds.clone()))?;
        registry.register(Box::new(m.message_size_bytes.clone()))?;
        registry.register(Box::new(m.slow_consumers_total.clone()))?;
        registry.register(Box::new(m.upgrades_refused_total.clone()))?;
        registry.register(Box::new(m.queue_messages_consumed_total.clone()))?;
        registry.register(Box::new(m.queue_messages_rejected_total.clone()))?;
        registry.register(Box::new(m.queue_connected.clone()))?;
        for state in ["connected", "closing", "closed"] {
            m.connections_by_state.with_label_values(&[state]);
        }
        Ok(m)
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// A fresh registry with every series registered.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            http_requests_total: IntCounterVec::new(
                Opts::new(
                    "gateway_http_requests_total",
                    "Requests answered, by route, method and status",
                ),
                &["route", "method", "status"],
            )?,
            http_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "gateway_http_request_duration_seconds",
                    "Request duration through the gateway",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
            upstream_requests_total: IntCounterVec::new(
                Opts::new(
                    "gateway_upstream_requests_total",
                    "Requests sent to upstreams, by upstream and status",
                ),
                &["upstream", "status"],
            )?,
            upstream_endpoints: IntGaugeVec::new(
                Opts::new("gateway_upstream_endpoints", "Endpoints per upstream, by state"),
                &["upstream", "state"],
            )?,
            circuit_breaker_open: IntGaugeVec::new(
                Opts::new(
                    "gateway_circuit_breaker_open",
                    "1 while the upstream's circuit breaker is open",
                ),
                &["upstream"],
            )?,
            rate_limited_total: IntCounterVec::new(
                Opts::new("gateway_rate_limited_total", "Requests refused by a rate limit"),
                &["route"],
            )?,
            config_reloads_total: IntCounterVec::new(
                Opts::new(
                    "gateway_config_reloads_total",
                    "Configuration reloads: success (all accepted), partial (some rejected), failure",
                ),
                &["result"],
            )?,
            routes: IntGauge::new("gateway_routes", "Routes live in the routing table")?,
            tls_certificate_expiry_seconds: prometheus::GaugeVec::new(
                Opts::new(
                    "gateway_tls_certificate_expiry_seconds",
                    "Seconds until the certificate expires",
                ),
                &["secret"],
            )?,
            config_propagation_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "gateway_config_propagation_seconds",
                    "From a resource change seen to the new routing table live",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            ws: WsMetrics::new(&registry)?,
            registry: registry.clone(),
        };
        registry.register(Box::new(m.http_requests_total.clone()))?;
        registry.register(Box::new(m.http_request_duration_seconds.clone()))?;
        registry.register(Box::new(m.upstream_requests_total.clone()))?;
        registry.register(Box::new(m.upstream_endpoints.clone()))?;
        registry.register(Box::new(m.circuit_breaker_open.clone()))?;
        registry.register(Box::new(m.rate_limited_total.clone()))?;
        registry.register(Box::new(m.config_reloads_total.clone()))?;
        registry.register(Box::new(m.routes.clone()))?;
        registry.register(Box::new(m.tls_certificate_expiry_seconds.clone()))?;
        registry.register(Box::new(m.config_propagation_seconds.clone()))?;
        for result in ["success", "partial", "failure"] {
            m.config_reloads_total.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Children of a metric vector by a small key, found without hashing label strings: the
/// series a route or an upstream uses, resolved on first use. Holds at most
/// `SeriesCache::MAX` keys; any others are looked up each time.
pub struct SeriesCache<K, M> {
    entries: arc_swap::ArcSwap<Vec<(K, M)>>,
}

impl<K, M> Default for SeriesCache<K, M> {
    fn default() -> Self {
        SeriesCache {
            entries: arc_swap::ArcSwap::from_pointee(Vec::new()),
        }
    }
}

impl<K, M> std::fmt::Debug for SeriesCache<K, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeriesCache({} series)", self.entries.load().len())
    }
}

impl<K: PartialEq + Clone, M: Clone> SeriesCache<K, M> {
    const MAX: usize = 64;

    /// Calls `f` with the series of `key`, made by `make` when it is not known yet.
    pub fn with<R>(&self, key: &K, make: impl FnOnce() -> M, f: impl FnOnce(&M) -> R) -> R {
        let entries = self.entries.load();
        if let Some((_, m)) = entries.iter().find(|(k, _)| k == key) {
            return f(m);
        }
        let full = entries.len() >= Self::MAX;
        drop(entries);
        let m = make();
        if !full {
            self.entries.rcu(|old| {
                let mut v = Vec::clone(old);
                if !v.iter().any(|(k, _)| k == key) {
                    v.push((key.clone(), m.clone()));
                }
                v
            });
        }
        f(&m)
    }
}

/// The series of one route: its request counters by method and status, and its latency
/// histogram.
#[derive(Debug, Default)]
pub struct RouteSeries {
    /// By (`method_label`, status).
    pub requests: SeriesCache<(&'static str, u16), IntCounter>,
    pub duration: std::sync::OnceLock<Histogram>,
}

/// The `method` label of a request: the method's name when it is one of the nine of RFC 9110
/// and RFC 5789, else `other`. A label whose value a client chooses must come from a closed
/// set: every new value is a new series kept for the life of the process.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod series_tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_nine_share_one_label() {
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        let made_up = http::Method::from_bytes(b"M0000001AAAA").expect("a token");
        assert_eq!(method_label(&made_up), "other");
        let lower = http::Method::from_bytes(b"get").expect("a token");
        assert_eq!(method_label(&lower), "other");
    }

    #[test]
    fn series_are_made_once_per_key_and_count_into_the_vector() {
        let m = Metrics::new().expect("metrics");
        let cache: SeriesCache<u16, IntCounter> = SeriesCache::default();
        let mut made = 0;
        for status in [200u16, 200, 404, 200] {
            cache.with(
                &status,
                || {
                    made += 1;
                    m.http_requests_total
                        .with_label_values(&["r", "GET", &status.to_string()])
                },
                |c| c.inc(),
            );
        }
        assert_eq!(made, 2);
        assert_eq!(
            m.http_requests_total
                .with_label_values(&["r", "GET", "200"])
                .get(),
            3
        );
        assert_eq!(
            m.http_requests_total
                .with_label_values(&["r", "GET", "404"])
                .get(),
            1
        );

        // Past the bound, series are still counted, without being kept.
        let many: SeriesCache<u16, IntCounter> = SeriesCache::default();
        let series = |code: u16| {
            m.http_requests_total
                .with_label_values(&["many", "GET", &code.to_string()])
        };
        for code in 0..100u16 {
            many.with(&code, || series(code), |c| c.inc());
        }
        many.with(&99, || series(99), |c| c.inc());
        assert_eq!(series(99).get(), 2);
        assert_eq!(many.entries.load().len(), 64);
    }
}
