//! Distributed tracing end to end: the gateway exports OTLP/HTTP protobuf to a collector built
//! here from the OTLP types, continues the client's trace and hands the upstream its hop.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message;

/// A loopback OTLP/HTTP collector keeping every span it receives.
struct Collector {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let keep = spans.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            for rs in export.resource_spans {
                                for ss in rs.scope_spans {
                                    keep.lock().unwrap().extend(ss.spans);
                                }
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(
                                ExportTraceServiceResponse::default().encode_to_vec(),
                            )));
                            resp.headers_mut()
                                .insert("content-type", "application/x-protobuf".parse().unwrap());
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Collector { port, spans, task }
    }

    /// Waits for `n` spans of trace `trace_id` (hex).
    async fn wait_for(&self, trace_id: &str, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} span(s) of {trace_id} arrived",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => Some(v.clone()),
            Value::IntValue(v) => Some(v.to_string()),
            other => Some(format!("{other:?}")),
        })
}

fn config(endpoint: &str, rate: f64) -> String {
    format!(
        "observability:\n  tracing:\n    enabled: true\n    backend: {{type: Jaeger, endpoint: \"{endpoint}\"}}\n    sampling_rate: {rate}\n  logging: {{level: info}}\nmiddleware:\n  rate_limiting: {{default_limit: 0}}\n"
    )
}

async fn gateway(endpoint: &str, rate: f64, up: &Upstream) -> Gateway {
    Gateway::builder()
        .config(&config(endpoint, rate))
        .resource("up.yaml", &upstream_yaml("u", &[up.url()]))
        .resource("r.yaml", &route_yaml("r", "/api/{id}", "u", ""))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start()
        .await
}

async fn call(gw: &Gateway, path: &str, traceparent: Option<&str>) -> Reply {
    let mut req = Request::get(gw.url(path));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    send(&client(), req.body(Full::default()).unwrap()).await.unwrap()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn the_client_trace_is_continued_through_the_gateway_to_the_upstream() {
    let collector = Collector::start().await;
    let up = Upstream::start("u").await;
    let gw = gateway(&format!("http://127.0.0.1:{}", collector.port), 1.0, &up).await;

    let r = call(&gw, "/api/7", Some(&format!("00-{TRACE}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status, 200);
    let seen = r.json()["headers"]["traceparent"].as_str().unwrap().to_string();

    let spans = collector.wait_for(TRACE, 2).await;
    let server = spans.iter().find(|s| s.kind == SpanKind::Server as i32).unwrap();
    let upstream = spans.iter().find(|s| s.kind == SpanKind::Client as i32).unwrap();
    // client -> server span -> upstream span -> the traceparent the upstream received
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(seen, format!("00-{TRACE}-{}-01", hex(&upstream.span_id)));

    assert_eq!(server.name, "GET /api/{id}");
    assert_eq!(attr(server, "gatehouse.route").as_deref(), Some("default/r"));
    assert_eq!(attr(server, "gatehouse.upstream").as_deref(), Some("default/u"));
    assert_eq!(attr(server, "gatehouse.endpoint"), Some(up.url()));
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "http.route").as_deref(), Some("/api/{id}"));
    assert_eq!(
        attr(upstream, "http.response.status_code").as_deref(),
        Some("200")
    );

    // Without a client traceparent the gateway starts the trace (sampled at rate 1).
    let r = call(&gw, "/api/8", None).await;
    let tp = r.json()["headers"]["traceparent"].as_str().unwrap().to_string();
    assert!(tp.ends_with("-01"), "{tp}");
    let spans = collector.wait_for(&tp[3..35], 2).await;
    let server = spans.iter().find(|s| s.kind == SpanKind::Server as i32).unwrap();
    assert!(server.parent_span_id.is_empty());
}

#[tokio::test]
async fn sampling_rate_zero_follows_the_parent_and_exports_nothing_unsampled() {
    let collector = Collector::start().await;
    let up = Upstream::start("u").await;
    let gw = gateway(&format!("http://127.0.0.1:{}", collector.port), 0.0, &up).await;

    let unsampled = "11111111111111111111111111111111";
    let r = call(&gw, "/api/1", Some(&format!("00-{unsampled}-{CLIENT_SPAN}-00"))).await;
    assert_eq!(r.status, 200);
    let tp = r.json()["headers"]["traceparent"].as_str().unwrap().to_string();
    assert!(
        tp.starts_with(&format!("00-{unsampled}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let fresh = call(&gw, "/api/2", None).await;
    assert!(fresh.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .ends_with("-00"));

    // A sampled parent is still followed: once its spans arrive, nothing else has.
    let sampled = "22222222222222222222222222222222";
    call(&gw, "/api/3", Some(&format!("00-{sampled}-{CLIENT_SPAN}-01"))).await;
    collector.wait_for(sampled, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let traces: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| hex(&s.trace_id))
        .collect();
    assert!(traces.iter().all(|t| t == sampled), "{traces:?}");
}

#[tokio::test]
async fn an_unreachable_tracing_backend_does_not_stop_the_gateway() {
    let up = Upstream::start("u").await;
    let closed = free_port();
    let gw = gateway(&format!("http://127.0.0.1:{closed}"), 1.0, &up).await;
    for i in 0..20 {
        assert_eq!(call(&gw, &format!("/api/{i}"), None).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call(&gw, "/api/last", None).await.status, 200);
}
