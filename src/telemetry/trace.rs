//! Distributed tracing: one server span per proxied request and a client span for the upstream
//! call, exported with OpenTelemetry over OTLP/HTTP (protobuf) — what Jaeger ingests on its OTLP
//! port. W3C `traceparent` is continued from the client (or started here) and sent upstream
//! with the client span's id. Sampling is parent-based: a client's sampled flag is followed,
//! new traces are sampled at `sampling_rate`.
//!
//! Export runs on the SDK's batch thread; an unreachable backend costs dropped spans and a
//! warning, never a failed request.
//!
//! Span attributes: `http.request.method`, `url.path`, `url.scheme`, `server.address`,
//! `client.address`, `http.route`, `gatehouse.route` (`namespace/name`), `gatehouse.upstream`,
//! `gatehouse.endpoint`, `http.response.status_code`, `user.id` (the `X-User-ID` the gateway
//! sends upstream).

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Request;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::settings::TracingConfig;

/// Where spans go when `backend.endpoint` is not set.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// The tracer of the gateway; `None` in `ProxyState` when tracing is off.
#[derive(Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

/// The OTLP/HTTP traces URL for a configured endpoint: a bare `http://host:4318` gets
/// An `observability.tracing` section the gateway cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("observability.tracing.sampling_rate {0} must be between 0 and 1")]
    SamplingRate(f64),
    #[error("observability.tracing: {0}")]
    Exporter(opentelemetry_otlp::ExporterBuildError),
}

/// `00-<32 hex>-<16 hex>-<2 hex>` with non-zero ids (version 00 only).
pub fn valid_traceparent(b: &[u8]) -> bool {
    let lower_hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    b.len() == 55
        && &b[0..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && lower_hex(&b[3..35])
        && lower_hex(&b[36..52])
        && lower_hex(&b[53..55])
        && b[3..35].iter().any(|c| *c != b'0')
        && b[36..52].iter().any(|c| *c != b'0')
}

/// `/v1/traces`; anything with a path is used as it is.
pub fn traces_url(endpoint: Option<&str>) -> String {
    match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        None => DEFAULT_ENDPOINT.to_string(),
        Some(e) => match e.parse::<http::Uri>() {
            Ok(u) if matches!(u.path(), "" | "/") => format!("{}/v1/traces", e.trim_end_matches('/')),
            _ => e.to_string(),
        },
    }
}

impl Tracing {
    /// Builds the exporter and tracer from `observability.tracing`; `None` when disabled.
    /// Nothing here connects: an unreachable backend only shows when spans are exported.
    pub fn from_config(cfg: &TracingConfig) -> Result<Option<Tracing>, TraceError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let rate = cfg.sampling_rate.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(TraceError::SamplingRate(rate));
        }
        let backend = cfg.backend.clone().unwrap_or_default();
        if let Some(t) = backend.type_.as_deref() {
            if !matches!(t.to_ascii_lowercase().as_str(), "jaeger" | "otlp") {
                tracing::warn!("tracing backend type `{t}`: spans are sent as OTLP/HTTP anyway");
            }
        }
        let url = traces_url(backend.endpoint.as_deref());
        if url.ends_with("/api/traces") {
            tracing::warn!(
                endpoint = %url,
                "this looks like Jaeger's Thrift collector; spans are sent as OTLP/HTTP protobuf, \
                 which Jaeger receives on port 4318 at /v1/traces"
            );
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(Duration::from_secs(3))
            .build()
            .map_err(TraceError::Exporter)?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("gatehouse");
        }
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(rate))))
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("gatehouse");
        tracing::info!(endpoint = %url, sampling_rate = rate, "tracing to OTLP");
        Ok(Some(Tracing { provider, tracer }))
    }

    /// Exports what is buffered and stops the exporter (blocking; a few seconds at most).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!("tracing shutdown: {e}");
        }
    }

    /// Starts the server span of a request, continuing the client's `traceparent`.
    pub fn start_request<B>(&self, req: &Request<B>, peer: SocketAddr, scheme: &'static str) -> RequestSpan {
        let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or_default()
            .to_string();
        let span = self
            .tracer
            .span_builder(req.method().to_string())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", req.method().to_string()),
                KeyValue::new("url.path", req.uri().path().to_string()),
                KeyValue::new("url.scheme", scheme),
                KeyValue::new("server.address", host),
                KeyValue::new("client.address", peer.ip().to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        RequestSpan {
            cx: parent.with_span(span),
            tracer: self.tracer.clone(),
        }
    }
}

/// The server span of one request. The pipeline carries it to the upstream call as a request
/// extension.
#[derive(Clone)]
pub struct RequestSpan {
    cx: Context,
    tracer: SdkTracer,
}

impl RequestSpan {
    /// Names the span after the route (`GET /users/{id}`) and records it.
    pub fn set_route(&self, method: &http::Method, route_id: &str, route_path: &str) {
        let span = self.cx.span();
        if span.is_recording() {
            span.update_name(format!("{method} {route_path}"));
            span.set_attributes([
                KeyValue::new("http.route", route_path.to_string()),
                KeyValue::new("gatehouse.route", route_id.to_string()),
            ]);
        }
    }

    /// Starts the client span of the upstream call and writes its `traceparent` (and the
    /// client's `tracestate`) into `headers`, the request about to go upstream.
    pub fn upstream_call(&self, upstream: &str, endpoint: &str, headers: &mut HeaderMap) -> UpstreamSpan {
        let server = self.cx.span();
        if server.is_recording() {
            server.set_attributes([
                KeyValue::new("gatehouse.upstream", upstream.to_string()),
                KeyValue::new("gatehouse.endpoint", endpoint.to_string()),
            ]);
            if let Some(user) = headers.get("x-user-id").and_then(|v| v.to_str().ok()) {
                server.set_attribute(KeyValue::new("user.id", user.to_string()));
            }
        }
        let span = self
            .tracer
            .span_builder("upstream")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gatehouse.upstream", upstream.to_string()),
                KeyValue::new("url.full", endpoint.to_string()),
            ])
            .start_with_context(&self.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        headers.remove(http::header::HeaderName::from_static("tracestate"));
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
        UpstreamSpan { cx }
    }

    /// Records the response status and ends the span.
    pub fn finish(&self, status: http::StatusCode) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                span.set_status(Status::error(status.to_string()));
            }
        }
        span.end();
    }
}

/// The client span of one upstream call; ends when finished or dropped.
pub struct UpstreamSpan {
    cx: Context,
}

impl UpstreamSpan {
    /// Records the upstream's status, or the error that replaced it.
    pub fn finish(self, result: Result<http::StatusCode, &str>) {
        let span = self.cx.span();
        if span.is_recording() {
            match result {
                Ok(status) => {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status.as_u16()),
                    ));
                    if status.is_server_error() {
                        span.set_status(Status::error(status.to_string()));
                    }
                }
                Err(e) => span.set_status(Status::error(e.to_string())),
            }
        }
        span.end();
    }
}

impl Drop for UpstreamSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests;
