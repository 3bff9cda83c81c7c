//! Logs (tracing, JSON or text), the Prometheus registry, and distributed tracing (OTLP).

mod metrics;
mod trace;

pub use metrics::{method_label, Metrics, RouteSeries, SeriesCache, WsMetrics};
pub use trace::{
    traces_url, valid_traceparent, RequestSpan, TraceError, Tracing, UpstreamSpan, DEFAULT_ENDPOINT,
};

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global log subscriber. `RUST_LOG` wins over `level` when set.
pub fn init_logging(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(format!("{level},hyper=warn,kube=warn,tower=warn,rustls=warn"))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if format.eq_ignore_ascii_case("json") {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
