//! Upstream protection through the real binary against real upstreams that fail on command:
//! health checks, circuit breaker, retries, consistent hashing, and state that survives a
//! routing-table swap.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

const CONFIG: &str = "middleware:\n  rate_limiting:\n    default_limit: 0\n";

async fn gateway(upstream_spec: &str, route_extra: &str) -> Gateway {
    gateway_with(CONFIG, upstream_spec, route_extra).await
}

async fn gateway_with(config: &str, upstream_spec: &str, route_extra: &str) -> Gateway {
    Gateway::builder()
        .config(config)
        .resource("app.yaml", &resources(upstream_spec, route_extra))
        .start()
        .await
}

/// Who answered `n` GETs (by body), and every non-200 status seen.
async fn tally(gw: &Gateway, n: usize) -> (HashMap<String, usize>, Vec<StatusCode>) {
    let mut by = HashMap::new();
    let mut bad = Vec::new();
    for _ in 0..n {
        match get(&gw.url("/x")).await {
            Ok(r) if r.code() == StatusCode::OK => *by.entry(r.text()).or_insert(0) += 1,
            Ok(r) => bad.push(r.code()),
            Err(e) => panic!("request failed: {e}"),
        }
    }
    (by, bad)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn endpoint_health(v: &serde_json::Value, url: &str) -> Option<bool> {
    v["upstreams"][0]["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == url)?["healthy"]
        .as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_endpoints_out_and_back_in_across_table_swaps() {
    let a = Upstream::start_mode("a", Mode::Ok).await;
    let b = Upstream::start_mode("b", Mode::Ok).await;
    let spec = format!(
        "  endpoints: [\"{}\", \"{}\"]\n  healthCheck: {{path: /health, interval: 100ms, timeout: 500ms, \
         healthyThreshold: 2, unhealthyThreshold: 2}}",
        a.url(),
        b.url()
    );
    let gw = gateway(&spec, "").await;
    let (by, bad) = tally(&gw, 20).await;
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!((by["a"], by["b"]), (10, 10), "round robin over both");

    b.set_health(Mode::Fail500);
    wait_until("b is marked unhealthy", || async {
        endpoint_health(&gw.admin_json("/admin/upstreams").await, &b.url()) == Some(false)
    })
    .await;
    let (by, bad) = tally(&gw, 10).await;
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        by.get("a"),
        Some(&10),
        "all traffic on the healthy endpoint: {by:?}"
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(r#"gateway_upstream_endpoints{state="unhealthy",upstream="default/svc"} 1"#),
        "{metrics}"
    );

    // A new table (another route added) keeps the health state it had.
    let route2 = "---\napiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {name: other, \
                  namespace: default}\nspec: {path: /other, upstream: svc}\n";
    gw.write_resources("app.yaml", &(resources(&spec, "") + route2));
    wait_until("the new table is live", || async {
        gw.admin_json("/admin/routes").await["routes"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    })
    .await;
    let (by, _) = tally(&gw, 6).await;
    assert_eq!(by.get("a"), Some(&6), "b still out after the swap: {by:?}");

    b.set_health(Mode::Ok);
    wait_until("b is healthy again", || async {
        endpoint_health(&gw.admin_json("/admin/upstreams").await, &b.url()) == Some(true)
    })
    .await;
    let (by, _) = tally(&gw, 10).await;
    assert!(by.get("b").is_some_and(|&n| n >= 4), "b back in rotation: {by:?}");

    // An endpoint that stops listening is taken out too.
    drop(b);
    wait_until("a stopped endpoint is unhealthy", || async {
        gw.admin_json("/admin/upstreams").await["upstreams"][0]["healthy"] == 1
    })
    .await;
    let (by, bad) = tally(&gw, 6).await;
    assert!(bad.is_empty() && by.get("a") == Some(&6), "{by:?} {bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_answers_503_at_once_then_probes_and_closes() {
    let a = Upstream::start_mode("a", Mode::Ok).await;
    let spec = format!(
        "  endpoints: [\"{}\"]\n  circuitBreaker: {{failureThreshold: 3, timeout: 1s, successThreshold: 1}}",
        a.url()
    );
    let gw = gateway(&spec, "").await;
    a.set(Mode::Fail500);
    for _ in 0..3 {
        assert_eq!(
            get(&gw.url("/x")).await.expect("answer").code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let hits = a.hits();
    let started = Instant::now();
    let (status, body) = get(&gw.url("/x"))
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("upstream_unavailable") && body.contains("circuit breaker"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(a.hits(), hits, "an open breaker does not call the upstream");
    let admin = gw.admin_json("/admin/upstreams").await;
    assert_eq!(
        admin["upstreams"][0]["circuit_breaker"]["state"], "open",
        "{admin}"
    );
    assert!(gw
        .metrics_text()
        .await
        .contains(r#"gateway_circuit_breaker_open{upstream="default/svc"} 1"#));

    // Still open across a table swap (the route gains a timeout).
    gw.write_resources("app.yaml", &resources(&spec, "  timeout: 9s"));
    wait_until("the new table is live", || async {
        gw.admin_json("/admin/routes").await["routes"][0]["timeout_ms"] == 9000
    })
    .await;
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(
            get(&gw.url("/x")).await.expect("answer").code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    // After the open timeout, one probe goes through; it succeeds and closes the breaker.
    a.set(Mode::Ok);
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(started.elapsed())).await;
    assert_eq!(get(&gw.url("/x")).await.expect("answer").code(), StatusCode::OK);
    assert_eq!(
        gw.admin_json("/admin/upstreams").await["upstreams"][0]["circuit_breaker"]["state"],
        "closed"
    );
    assert!(gw
        .metrics_text()
        .await
        .contains(r#"gateway_circuit_breaker_open{upstream="default/svc"} 0"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_another_endpoint() {
    let bad = Upstream::start_mode("bad", Mode::Ok).await;
    let good = Upstream::start_mode("good", Mode::Ok).await;
    let closed_port = free_port();
    let spec = format!(
        "  endpoints: [\"{}\", \"{}\", \"http://127.0.0.1:{closed_port}\"]\n  loadBalancer: {{type: RoundRobin}}\n  \
         retries: {{attempts: 2, retryOn: [connect-failure, reset, 5xx, timeout]}}",
        bad.url(),
        good.url()
    );
    let gw = gateway(&spec, "  timeout: 3s").await;

    // `Slow` answers 200 after 2s, inside the 3s route timeout: only the per-try share of the
    // timeout (1s with two retries left) moves those requests to `good`.
    for mode in [Mode::Fail500, Mode::Close, Mode::Slow] {
        bad.set(mode);
        let (by, errors) = tally(&gw, 9).await;
        assert!(errors.is_empty(), "{mode:?}: {errors:?}");
        assert_eq!(by.get("good"), Some(&9), "{mode:?}: {by:?}");
    }

    // POST is not idempotent: a 500 comes back as it is, and only one endpoint is tried.
    bad.set(Mode::Fail500);
    let (before_bad, before_good) = (bad.hits(), good.hits());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let req = Request::post(gw.url("/x"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        statuses.push(send(&client(), req).await.expect("answer").code());
    }
    let tried = (bad.hits() - before_bad) + (good.hits() - before_good);
    assert!(tried <= 3, "POSTs were sent {tried} times");
    assert!(
        statuses.contains(&StatusCode::INTERNAL_SERVER_ERROR) || statuses.contains(&StatusCode::BAD_GATEWAY),
        "{statuses:?}"
    );

    // A PUT with a small body is retried with its body intact.
    let req = Request::put(gw.url("/x"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("request");
    let (status, body) = send(&client(), req)
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_failures_surface_and_the_route_timeout_holds() {
    let a = Upstream::start_mode("a", Mode::Ok).await;
    let spec = format!("  endpoints: [\"{}\"]", a.url());
    let gw = gateway(&spec, "  timeout: 500ms").await;
    a.set(Mode::Slow);
    let (status, body) = get(&gw.url("/x"))
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    a.set(Mode::Close);
    assert_eq!(
        get(&gw.url("/x")).await.expect("answer").code(),
        StatusCode::BAD_GATEWAY
    );
}

/// A gateway whose `server.timeouts.upstream_timeout` is `limit`.
async fn gateway_with_upstream_timeout(limit: &str, upstream_spec: &str, route_extra: &str) -> Gateway {
    let config = format!("{CONFIG}server:\n  timeouts:\n    upstream_timeout: {limit}\n");
    gateway_with(&config, upstream_spec, route_extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_timeout_bounds_each_try_within_the_route_timeout() {
    // `Slow` answers after 2s. The route allows 10s, so only the 300ms bound on one try
    // turns it into a 504, well before the answer.
    let slow = Upstream::start_mode("slow", Mode::Ok).await;
    slow.set(Mode::Slow);
    let spec = format!("  endpoints: [\"{}\"]", slow.url());
    let gw = gateway_with_upstream_timeout("300ms", &spec, "  timeout: 10s").await;
    let started = Instant::now();
    let (status, body) = get(&gw.url("/x"))
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body.contains("upstream_timeout") && body.contains("300ms"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(gw);

    // With a retry on timeout, the bounded try moves on to the other endpoint, and the
    // answer comes from it (a try could otherwise take half of the 10s, and `slow` answers).
    let good = Upstream::start_mode("good", Mode::Ok).await;
    let spec = format!(
        "  endpoints: [\"{}\", \"{}\"]\n  loadBalancer: {{type: RoundRobin}}\n  \
         retries: {{attempts: 1, retryOn: [timeout]}}",
        slow.url(),
        good.url()
    );
    let gw = gateway_with_upstream_timeout("300ms", &spec, "  timeout: 10s").await;
    let started = Instant::now();
    let (by, errors) = tally(&gw, 4).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(by.get("good"), Some(&4), "{by:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sends_one_key_to_one_endpoint() {
    let ups = [
        Upstream::start_mode("a", Mode::Ok).await,
        Upstream::start_mode("b", Mode::Ok).await,
        Upstream::start_mode("c", Mode::Ok).await,
    ];
    let urls: Vec<String> = ups.iter().map(|u| format!("\"{}\"", u.url())).collect();
    let spec = format!(
        "  endpoints: [{}]\n  loadBalancer: {{type: ConsistentHash, hashOn: \"header:x-tenant\"}}",
        urls.join(", ")
    );
    let gw = gateway(&spec, "").await;
    let mut owners = HashMap::new();
    for round in 0..3 {
        for t in 0..12 {
            let req = Request::get(gw.url("/x"))
                .header("x-tenant", format!("tenant-{t}"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let (status, body) = send(&client(), req)
                .await
                .map(|r| (r.code(), r.text()))
                .expect("answer");
            assert_eq!(status, StatusCode::OK);
            let owner = owners.entry(t).or_insert_with(|| body.clone());
            assert_eq!(*owner, body, "tenant-{t} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(distinct.len() >= 2, "{owners:?}");
}

/// An endpoint whose TCP handshake never completes: a listener that never accepts, with its
/// one-slot accept queue taken, so the kernel drops further SYNs. The returned streams hold the
/// queue full and must live as long as the endpoint is used.
async fn unanswering_endpoint() -> (String, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(0).expect("listen");
    let mut held = Vec::new();
    // Fill the accept queue; the first connect that does not complete shows it is full.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    // The listener stays open (leaked for the test's lifetime) but never accepts.
    std::mem::forget(listener);
    (format!("http://{addr}"), held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_connect_timeout_overrides_the_global_one() {
    let (url, _held) = unanswering_endpoint().await;
    // The global connect timeout (10s) would hold the request for 10 s.
    let config = format!("{CONFIG}server:\n  timeouts:\n    connect_timeout: 10s\n");
    let gw = gateway_with(
        &config,
        &format!("  endpoints: [\"{url}\"]\n  connectTimeout: 300ms"),
        "  timeout: 30s",
    )
    .await;
    let started = Instant::now();
    let (status, body) = get(&gw.url("/x"))
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        took < Duration::from_secs(5),
        "the 300ms connectTimeout did not apply: {took:?}"
    );
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

/// The whole answer on a raw connection: its head, then as many bytes as its Content-Length
/// says. Fails after 5 s.
async fn raw_answer<R: tokio::io::AsyncRead + Unpin>(c: &mut R) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let answer = async {
        loop {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.parse::<usize>().ok())
                    .expect("content-length");
                if body.len() >= length {
                    return (head.to_string(), body.to_string());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("an answer")
}

/// The value of the upstream's `status="error"` series (0 when it is not there).
fn upstream_errors(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(r#"gateway_upstream_requests_total{status="error""#))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// A client whose streamed body is malformed gets 400, and the upstream is not blamed for the
/// call that failed with it: its breaker stays closed and its error series does not move.
/// Before, the client got 502 and each such request counted as an upstream failure, so that a
/// few of them opened the breaker for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_is_the_clients_fault_not_the_upstreams() {
    use tokio::io::AsyncWriteExt;
    let a = Upstream::start_mode("a", Mode::Ok).await;
    let spec = format!(
        "  endpoints: [\"{}\"]\n  circuitBreaker: {{failureThreshold: 2, timeout: 60s, successThreshold: 1}}",
        a.url()
    );
    let gw = gateway(&spec, "").await;
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
            .await
            .expect("connect");
        c.write_all(b"POST /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n")
            .await
            .expect("send");
        let (head, body) = raw_answer(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        assert!(
            body.contains("\"bad_request\"") && body.contains("request body"),
            "{body}"
        );
    }
    assert_eq!(get(&gw.url("/x")).await.expect("answer").code(), StatusCode::OK);
    let admin = gw.admin_json("/admin/upstreams").await;
    assert_eq!(
        admin["upstreams"][0]["circuit_breaker"]["state"], "closed",
        "{admin}"
    );
    let metrics = gw.metrics_text().await;
    assert!(
        !metrics.contains(r#"gateway_upstream_requests_total{status="error""#),
        "{metrics}"
    );
}

/// A client that stops sending its body half-way gets 408 once the route timeout has passed,
/// whether its body was being streamed to the upstream (chunked, or longer than what is read
/// first) or read whole first (a short Content-Length). The upstream, which was only waiting
/// for the body, is not blamed: its breaker stays closed and its error series does not move.
/// Before, the streamed ones got 504 and counted as upstream failures, so that a few slow
/// uploads opened the breaker for everyone; the short one got 504 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_with_its_body_gets_408_and_the_upstream_is_not_blamed() {
    use tokio::io::AsyncWriteExt;
    let a = Upstream::start_mode("a", Mode::Ok).await;
    a.set(Mode::ReadBody);
    let spec = format!(
        "  endpoints: [\"{}\"]\n  circuitBreaker: {{failureThreshold: 2, timeout: 60s, successThreshold: 1}}",
        a.url()
    );
    let gw = gateway(&spec, "  timeout: 300ms").await;
    let stalled = [
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "Content-Length: 1000000\r\n\r\nhello",
        "Content-Length: 10\r\n\r\nhello",
    ];
    for _ in 0..2 {
        for rest in stalled {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
                .await
                .expect("connect");
            c.write_all(format!("POST /x HTTP/1.1\r\nHost: gw.test\r\n{rest}").as_bytes())
                .await
                .expect("send");
            let (head, body) = raw_answer(&mut c).await;
            assert!(head.starts_with("HTTP/1.1 408 "), "{rest:?}: {head}\n{body}");
            assert!(
                body.contains("\"request_timeout\"") && body.contains("300ms"),
                "{body}"
            );
        }
    }
    // The same upstream takes whole bodies as before.
    let req = Request::post(gw.url("/x"))
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("request");
    let (status, body) = send(&client(), req)
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "a read 5"));
    let admin = gw.admin_json("/admin/upstreams").await;
    assert_eq!(
        admin["upstreams"][0]["circuit_breaker"]["state"], "closed",
        "{admin}"
    );
    assert_eq!(upstream_errors(&gw.metrics_text().await), 0);
}

/// The other way round: when the client has sent its body and the upstream does not answer
/// in time, the upstream is out of time (504, counted against it), also when it does not
/// read the body at all and the gateway is left holding most of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_leaves_the_body_unread_is_still_the_one_out_of_time() {
    use tokio::io::AsyncWriteExt;
    let a = Upstream::start_mode("a", Mode::Ok).await;
    // Answers after 2 s, reading nothing.
    a.set(Mode::Slow);
    let config = format!("{CONFIG}server:\n  limits:\n    max_body_size: {}\n", 1u64 << 30);
    let gw = gateway_with(
        &config,
        &format!("  endpoints: [\"{}\"]", a.url()),
        "  timeout: 300ms",
    )
    .await;
    // A streamed body, sent whole: the upstream's socket takes all of it.
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
        .await
        .expect("connect");
    c.write_all(
        b"POST /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .expect("send");
    let (head, body) = raw_answer(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 504 "), "{head}\n{body}");
    assert!(body.contains("\"upstream_timeout\""), "{body}");
    assert_eq!(upstream_errors(&gw.metrics_text().await), 1);
    // A body far larger than the sockets between here and the upstream hold: the gateway
    // stops reading it because the upstream does not take it. The answer may be lost when
    // the gateway closes a connection with unread bytes, so the series tells.
    let c = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
        .await
        .expect("connect");
    let (mut r, mut w) = c.into_split();
    const LEN: usize = 64 << 20;
    let writer = tokio::spawn(async move {
        let _ = w
            .write_all(
                format!("POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
            )
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..LEN / chunk.len() {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut r, &mut buf),
    )
    .await;
    writer.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let errors = upstream_errors(&gw.metrics_text().await);
        if errors == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "upstream errors: {errors}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
