//! The proxy end to end: the real binary, real upstreams on loopback, a real HTTP client.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn forwards_with_context_headers_and_strips_identity_headers() {
    let up = Upstream::start("users").await;
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}",
                upstream_yaml("users", &[up.url()]),
                route_yaml("users", "/api/users/{id}", "users", "methods: [GET]")
            ),
        )],
    )
    .await;

    // A fresh request: the gateway makes the request id and a new trace.
    let req = Request::get(gw.url("/api/users/42?x=1"))
        .header("host", "api.example.com")
        .header("x-user-id", "forged")
        .header("x-user-roles", "admin")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::default())
        .unwrap();
    let r = send(&client(), req).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = r.json();
    assert_eq!(seen["path"], "/api/users/42?x=1");
    let h = &seen["headers"];
    assert!(
        h.get("x-user-id").is_none() && h.get("x-user-roles").is_none(),
        "identity headers stripped: {h}"
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
    assert_eq!(h["host"], up.addr.to_string());
    let rid = h["x-request-id"].as_str().unwrap();
    assert_eq!(rid.len(), 36);
    assert_eq!(r.header("x-request-id"), Some(rid), "the client sees the same id");
    let tp = h["traceparent"].as_str().unwrap();
    assert_eq!(tp.len(), 55);
    assert!(tp.starts_with("00-"));

    // The client's request id and trace are kept and continued.
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = Request::get(gw.url("/api/users/7"))
        .header("x-request-id", "client-id-1")
        .header("traceparent", incoming)
        .body(Full::default())
        .unwrap();
    let r = send(&client(), req).await.unwrap();
    let h = &r.json()["headers"];
    assert_eq!(h["x-request-id"], "client-id-1");
    let tp = h["traceparent"].as_str().unwrap();
    assert_eq!(&tp[..36], &incoming[..36], "same trace id");
    assert_ne!(&tp[36..52], &incoming[36..52], "new parent id for this hop");
    assert!(tp.ends_with("-01"));
}

#[tokio::test]
async fn json_errors_for_404_405_502_503_504_413() {
    let up = Upstream::start("slow").await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let files = format!(
        "{}---\n{}---\n{}---\n{}---\n{}---\n{}---\napiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: nosvc, namespace: default}}\nspec:\n  service: {{name: missing, port: 80}}\n",
        upstream_yaml("slow", &[up.url()]),
        upstream_yaml("dead", &[closed]),
        route_yaml("slow", "/sleep/*", "slow", "timeout: 300ms\nmethods: [GET, PUT]"),
        route_yaml("dead", "/dead", "dead", ""),
        route_yaml("empty", "/empty", "nosvc", ""),
        route_yaml("upload", "/upload", "slow", "methods: [POST]"),
    );
    let gw = Gateway::start(
        "server:\n  limits:\n    max_body_size: 1000\nmiddleware:\n  rate_limiting:\n    default_limit: 0\n",
        &[("r.yaml", &files)],
    )
    .await;
    let c = client();
    let check = |r: &Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_eq!(j["error"]["code"], code);
        assert!(!j["error"]["message"].as_str().unwrap().is_empty());
        assert_eq!(j["error"]["request_id"].as_str(), r.header("x-request-id"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    };

    check(&get(&gw.url("/nowhere")).await.unwrap(), 404, "route_not_found");

    let r = send(
        &c,
        Request::delete(gw.url("/sleep/1")).body(Full::default()).unwrap(),
    )
    .await
    .unwrap();
    check(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, PUT"));

    check(&get(&gw.url("/dead")).await.unwrap(), 502, "bad_gateway");
    check(
        &get(&gw.url("/empty")).await.unwrap(),
        503,
        "upstream_unavailable",
    );

    let t0 = std::time::Instant::now();
    check(
        &get(&gw.url("/sleep/3000")).await.unwrap(),
        504,
        "upstream_timeout",
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the route timeout cut the wait"
    );
    assert_eq!(get(&gw.url("/sleep/10")).await.unwrap().status, 200);

    let big = Request::post(gw.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 5000])))
        .unwrap();
    check(&send(&c, big).await.unwrap(), 413, "payload_too_large");
    let small = Request::post(gw.url("/upload"))
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap();
    assert_eq!(send(&c, small).await.unwrap().status, 200);
}

#[tokio::test]
async fn round_robin_over_static_endpoints_and_rewrite() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}",
                upstream_yaml("ab", &[a.url(), b.url()]),
                route_yaml("ab", "/old/*", "ab", "rewritePrefix: /new")
            ),
        )],
    )
    .await;
    let mut servers = Vec::new();
    for _ in 0..4 {
        let r = get(&gw.url("/old/thing?q=1")).await.unwrap();
        assert_eq!(r.json()["path"], "/new/thing?q=1");
        servers.push(r.json()["server"].as_str().unwrap().to_string());
    }
    servers.sort();
    assert_eq!(servers, ["a", "a", "b", "b"]);
}

#[tokio::test]
async fn h2c_from_clients_and_to_upstreams() {
    let h1 = Upstream::start("h1").await;
    let h2 = Upstream::start_h2c("h2").await;
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}  protocol: h2c\n---\n{}---\n{}",
                upstream_yaml("h1", &[h1.url()]),
                upstream_yaml("h2", &[h2.url()]),
                route_yaml("h1", "/one", "h1", ""),
                route_yaml("h2", "/two", "h2", ""),
            ),
        )],
    )
    .await;
    let c = h2c_client();
    let r = send(&c, Request::get(gw.url("/one")).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["version"],
        "HTTP/1.1",
        "an h2c client reaches an HTTP/1.1 upstream"
    );
    let r = send(
        &client(),
        Request::get(gw.url("/two")).body(Full::default()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["version"],
        "HTTP/2.0",
        "protocol: h2c speaks HTTP/2 upstream"
    );
}

#[tokio::test]
async fn cors_preflight_is_answered_and_routes_override_the_default() {
    let up = Upstream::start("u").await;
    let config = "middleware:\n  rate_limiting: {default_limit: 0}\n  cors:\n    allowed_origins: [\"*\"]\n    allowed_methods: [GET, POST]\n    allowed_headers: [Content-Type, Authorization]\n    max_age: 600\n";
    let files = format!(
        "{}---\n{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("open", "/open", "u", ""),
        route_yaml(
            "strict",
            "/strict",
            "u",
            "cors: {allowedOrigins: [\"https://app.example.com\"], allowedMethods: [PUT], exposedHeaders: [X-Total]}"
        ),
    );
    let gw = Gateway::start(config, &[("r.yaml", &files)]).await;
    let c = client();
    let preflight = |path: &str, origin: &str| {
        Request::options(gw.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Full::default())
            .unwrap()
    };
    let r = send(&c, preflight("/open", "https://x.example.com"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type, Authorization")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(up.hits(), 0, "preflights never reach the upstream");

    let r = send(&c, preflight("/strict", "https://evil.example.com"))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden");
    let r = send(&c, preflight("/strict", "https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));

    let actual = Request::get(gw.url("/strict"))
        .header("origin", "https://app.example.com")
        .body(Full::default())
        .unwrap();
    let r = send(&c, actual).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("X-Total"));
    assert!(r.header("vary").unwrap_or_default().contains("Origin"));
}

#[tokio::test]
async fn health_and_ready_are_answered_by_the_gateway_itself() {
    let up = Upstream::start("u").await;
    let files = format!(
        "{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("all", "/*", "u", "")
    );
    let gw = Gateway::start(BASE_CONFIG, &[("r.yaml", &files)]).await;
    for url in [
        gw.url("/health"),
        gw.url("/ready"),
        format!("http://127.0.0.1:{}/health", gw.admin),
    ] {
        let r = get(&url).await.unwrap();
        assert_eq!(r.status, 200, "{url}");
    }
    assert_eq!(get(&gw.url("/other")).await.unwrap().json()["server"], "u");
    assert_eq!(up.hits(), 1, "only /other reached the upstream");
}

#[tokio::test]
async fn metrics_expose_the_gateway_series() {
    let up = Upstream::start("u").await;
    let files = format!(
        "{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("m", "/m", "u", "methods: [GET]")
    );
    let gw = Gateway::start(BASE_CONFIG, &[("r.yaml", &files)]).await;
    for _ in 0..3 {
        get(&gw.url("/m")).await.unwrap();
    }
    get(&gw.url("/missing")).await.unwrap();
    let text = gw.metrics_text().await;
    for needle in [
        r#"gateway_http_requests_total{method="GET",route="default/m",status="200"} 3"#,
        r#"gateway_http_requests_total{method="GET",route="",status="404"} 1"#,
        r#"gateway_upstream_requests_total{status="200",upstream="default/u"} 3"#,
        "gateway_http_request_duration_seconds_bucket",
        "gateway_routes 1",
        r#"gateway_config_reloads_total{result="success"} 1"#,
        "gateway_config_propagation_seconds_count 1",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

/// A client chooses the method; the `method` label does not (a made-up method is `other`),
/// so that clients cannot grow the metrics without bound.
#[tokio::test]
async fn made_up_methods_do_not_make_new_metric_series() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("u").await;
    let files = format!(
        "{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("any", "/any/*", "u", "")
    );
    let gw = Gateway::start(BASE_CONFIG, &[("r.yaml", &files)]).await;
    for i in 0..40 {
        let method = format!("M{i:07}{}", "A".repeat(200));
        let path = if i % 2 == 0 { "/nope" } else { "/any/x" };
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
            .await
            .unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let text = gw.metrics_text().await;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("gateway_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(methods.into_iter().collect::<Vec<_>>(), ["other"], "{text}");
    assert!(text.len() < 64 * 1024, "{} bytes of metrics", text.len());
}

#[tokio::test]
async fn admin_api_lists_routes_behind_the_token() {
    let up = Upstream::start("u").await;
    let files = format!(
        "{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("a", "/a", "u", "")
    );
    let gw = Gateway::start(BASE_CONFIG, &[("r.yaml", &files)]).await;
    let url = format!("http://127.0.0.1:{}/admin/routes", gw.admin);
    let r = get(&url).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let req = Request::get(&url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::default())
        .unwrap();
    let r = send(&client(), req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["routes"][0]["id"], "default/a");
    assert_eq!(r.json()["routes"][0]["upstream"], "default/u");
}

/// Reads what the gateway sends on `s` until it closes the connection or `limit` passes;
/// `Some(elapsed)` when it closed.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn keepalive_timeout_closes_idle_and_slow_connections_and_spares_busy_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("ka").await;
    let config = format!("{BASE_CONFIG}server:\n  timeouts:\n    keepalive_timeout: 1s\n");
    let gw = Gateway::start(
        &config,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}",
                upstream_yaml("ka", &[up.url()]),
                route_yaml("ka", "/*", "ka", "")
            ),
        )],
    )
    .await;
    let addr = format!("127.0.0.1:{}", gw.http);

    // A connection that never sends a request is closed after 1 s.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A client sending its request head a byte at a time is closed as well.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let slow_writer = tokio::spawn(async move {
        for b in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slow
    });
    let waited = closed_within(&mut idle, Duration::from_secs(5)).await;
    let waited = waited.expect("an idle connection is closed");
    assert!(
        waited >= Duration::from_millis(950),
        "closed too early: {waited:?}"
    );

    // A connection that keeps sending requests (every 400 ms, for 3 s) stays open, and a
    // request that outlasts the keep-alive time is answered whole.
    let mut busy = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let ask = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    for i in 0..8 {
        let path = if i == 7 {
            "/sleep/1800".to_string()
        } else {
            format!("/n/{i}")
        };
        busy.write_all(ask(&path).as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"}") {
            let n = tokio::time::timeout(Duration::from_secs(5), busy.read(&mut buf))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(n > 0, "request {i}: the busy connection was closed");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        if i < 7 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    // Once quiet, it is closed too.
    assert!(closed_within(&mut busy, Duration::from_secs(5)).await.is_some());

    let mut slow = slow_writer.await.unwrap();
    let waited = closed_within(&mut slow, Duration::from_secs(3)).await;
    assert!(waited.is_some(), "a slow request head is cut off");
}

/// A gRPC-shaped exchange: h2c both ways, `te: trailers`, both bodies streamed message by
/// message, and the status in the response trailers.
#[tokio::test]
async fn a_grpc_call_streams_both_ways_and_keeps_its_trailers() {
    use http_body_util::channel::Channel;
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    // The upstream echoes each request message as soon as it comes, then ends with trailers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let te = req.headers().get("te").cloned();
                    let (mut tx, body) = Channel::<Bytes, hyper::Error>::new(4);
                    tokio::spawn(async move {
                        let mut incoming = req.into_body();
                        while let Some(Ok(frame)) = incoming.frame().await {
                            if let Ok(data) = frame.into_data() {
                                let mut echo = b"echo:".to_vec();
                                echo.extend_from_slice(&data);
                                if tx.send_data(Bytes::from(echo)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        trailers.insert("grpc-message", "done".parse().unwrap());
                        let _ = tx.send_trailers(trailers).await;
                    });
                    let mut resp = http::Response::new(body);
                    resp.headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    if let Some(te) = te {
                        resp.headers_mut().insert("x-upstream-saw-te", te);
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}  protocol: h2c\n---\n{}",
                upstream_yaml("greeter", &[format!("http://{up_addr}")]),
                route_yaml("greeter", "/helloworld.Greeter/*", "greeter", ""),
            ),
        )],
    )
    .await;

    let stream =
        tokio::net::TcpStream::connect(gw.url("").trim_start_matches("http://").trim_end_matches('/'))
            .await
            .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(4);
    let req = Request::post(gw.url("/helloworld.Greeter/SayHello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let call = tokio::spawn(async move { sender.send_request(req).await });
    tx.send_data(Bytes::from_static(b"one")).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the response head comes while the request is still open")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-upstream-saw-te")
            .map(|v| v.to_str().unwrap()),
        Some("trailers"),
        "gRPC servers look for `te: trailers`"
    );
    let mut body = resp.into_body();
    // Each message comes back before the next is sent: nothing waits for a whole body.
    for (sent, want) in [(None, "echo:one"), (Some("two"), "echo:two")] {
        if let Some(s) = sent {
            tx.send_data(Bytes::from(s)).await.unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap_or_else(|_| panic!("{want} did not come back while the call was open"))
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), want);
    }
    drop(tx);
    let mut trailers = None;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
    {
        if let Ok(t) = frame.unwrap().into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.expect("the response trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");
    server.abort();
}

/// Which host a request names: the authority of an absolute-form target (as RFC 9112 §3.2.2
/// asks, whatever the Host field says), else the Host field; the trailing dot of a fully
/// qualified name changes nothing. The upstream's `X-Forwarded-Host` is the host the route was
/// chosen by.
#[tokio::test]
async fn the_host_is_the_targets_authority_then_the_host_field_less_a_trailing_dot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Upstream::start("a").await;
    let any = Upstream::start("any").await;
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}---\n{}---\n{}",
                upstream_yaml("a", &[a.url()]),
                upstream_yaml("any", &[any.url()]),
                route_yaml("a", "/*", "a", "hosts: [a.test]"),
                route_yaml("any", "/*", "any", ""),
            ),
        )],
    )
    .await;
    let addr = gw
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let cases = [
        ("/x", "a.test.", "a", "a.test."),
        ("/x", "A.Test.:80", "a", "A.Test.:80"),
        ("http://a.test/x", "other.test", "a", "a.test"),
        ("http://other.test/x", "a.test", "any", "other.test"),
        ("/x", "other.test", "any", "other.test"),
    ];
    for (target, host, server, forwarded) in cases {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&got);
        let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with("HTTP/1.1 200 "), "{target} {host}: {head}");
        let seen: serde_json::Value = serde_json::from_str(body).expect("the upstream's echo");
        assert_eq!(seen["server"], server, "{target} {host}");
        assert_eq!(seen["path"], "/x");
        assert_eq!(seen["headers"]["x-forwarded-host"], forwarded, "{target} {host}");
    }
}
