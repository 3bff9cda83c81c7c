#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::*;

#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn tracing_with(rate: f64) -> (Tracing, Collect) {
    let c = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(rate))))
        .with_simple_exporter(c.clone())
        .build();
    let tracer = provider.tracer("test");
    (Tracing { provider, tracer }, c)
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn spans_continue_the_client_trace_and_name_the_upstream_hop() {
    let (t, spans) = tracing_with(0.0);
    let req = Request::get("/users/7")
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=1")
        .header("host", "api.example.com")
        .body(())
        .unwrap();
    let span = t.start_request(&req, "10.1.2.3:5555".parse().unwrap(), "https");
    span.set_route(&http::Method::GET, "default/users", "/users/{id}");
    let mut out = HeaderMap::new();
    out.insert("x-user-id", HeaderValue::from_static("u-42"));
    let up = span.upstream_call("default/users", "http://10.0.0.9:3002", &mut out);
    up.finish(Ok(http::StatusCode::OK));
    span.finish(http::StatusCode::OK);

    let spans = spans.0.lock().unwrap();
    assert_eq!(spans.len(), 2, "a sampled parent is followed even at rate 0");
    let client = spans.iter().find(|s| s.span_kind == SpanKind::Client).unwrap();
    let server = spans.iter().find(|s| s.span_kind == SpanKind::Server).unwrap();
    assert_eq!(server.span_context.trace_id().to_string(), &PARENT[3..35]);
    assert_eq!(server.parent_span_id.to_string(), &PARENT[36..52]);
    assert!(server.parent_span_is_remote);
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    let tp = out["traceparent"].to_str().unwrap();
    assert_eq!(
        tp,
        format!("00-{}-{}-01", &PARENT[3..35], client.span_context.span_id())
    );
    assert_eq!(out["tracestate"], "vendor=1");
    assert_eq!(server.name, "GET /users/{id}");
    assert_eq!(attr(server, "gatehouse.route").as_deref(), Some("default/users"));
    assert_eq!(
        attr(server, "gatehouse.upstream").as_deref(),
        Some("default/users")
    );
    assert_eq!(
        attr(server, "gatehouse.endpoint").as_deref(),
        Some("http://10.0.0.9:3002")
    );
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "user.id").as_deref(), Some("u-42"));
    assert_eq!(attr(server, "url.scheme").as_deref(), Some("https"));
    assert_eq!(attr(client, "http.response.status_code").as_deref(), Some("200"));
}

#[test]
fn unsampled_traces_are_passed_on_but_not_exported() {
    let (t, spans) = tracing_with(0.0);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    for tp in [Some(parent), None] {
        let mut b = Request::get("/");
        if let Some(tp) = tp {
            b = b.header("traceparent", tp);
        }
        let req = b.body(()).unwrap();
        let span = t.start_request(&req, "127.0.0.1:1".parse().unwrap(), "http");
        let mut out = HeaderMap::new();
        span.upstream_call("ns/u", "http://x:1", &mut out)
            .finish(Err("refused"));
        span.finish(http::StatusCode::BAD_GATEWAY);
        let sent = out["traceparent"].to_str().unwrap().to_string();
        assert!(super::valid_traceparent(sent.as_bytes()), "{sent}");
        assert!(sent.ends_with("-00"));
        if tp.is_some() {
            assert_eq!(&sent[..36], &parent[..36]);
            assert_ne!(&sent[36..52], &parent[36..52]);
        }
    }
    assert!(spans.0.lock().unwrap().is_empty());
}

#[test]
fn endpoints_become_traces_urls() {
    assert_eq!(traces_url(None), DEFAULT_ENDPOINT);
    assert_eq!(
        traces_url(Some("http://jaeger:4318")),
        "http://jaeger:4318/v1/traces"
    );
    assert_eq!(
        traces_url(Some("http://jaeger:4318/")),
        "http://jaeger:4318/v1/traces"
    );
    assert_eq!(traces_url(Some("http://c:4318/custom")), "http://c:4318/custom");
    let off = TracingConfig::default();
    assert!(Tracing::from_config(&off).unwrap().is_none());
    let bad = TracingConfig {
        enabled: true,
        sampling_rate: Some(2.0),
        ..Default::default()
    };
    assert!(Tracing::from_config(&bad).is_err());
}
