//! The proxy listener's own HTTP/1.1 path, end to end, from a raw TCP client: the real binary
//! in front of a scripted upstream that echoes what it received. Plain keep-alive requests are
//! served on the fast path; a connection carrying anything else is handed to the general server
//! with the bytes read so far, and must go on working there.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::raw::{field_values, Conn};
use crate::support::scripted::{gateway_for, Scripted};
use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_the_gateway_headers() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;

    // Three requests in one write, one of them with a body.
    let mut batch = get("/first");
    batch.push_str("POST /second HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello");
    batch.push_str(&get("/third?x=1"));
    c.send(batch.as_bytes()).await;
    let first = c.response(false).await;
    let second = c.response(false).await;
    let third = c.response(false).await;
    assert!(
        first.text().starts_with("GET /first HTTP/1.1\r\n"),
        "{}",
        first.text()
    );
    assert!(
        second.text().starts_with("POST /second HTTP/1.1\r\n"),
        "{}",
        second.text()
    );
    assert!(second.text().ends_with("\r\n\r\nhello"), "{}", second.text());
    assert!(
        third.text().starts_with("GET /third?x=1 HTTP/1.1\r\n"),
        "{}",
        third.text()
    );

    for r in [&first, &second, &third] {
        assert_eq!(r.status(), 200);
        assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
        assert!(r.header("x-request-id").is_some(), "{}", r.head);
        assert!(r.header("date").is_some(), "{}", r.head);
        assert!(r.header("connection").is_none(), "{}", r.head);
    }
    // What the upstream received carries the forwarding headers.
    let seen = first.text().to_ascii_lowercase();
    for h in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: gw.test",
        "traceparent: 00-",
    ] {
        assert!(seen.contains(h), "{h} missing in {seen}");
    }
    // HEAD gets the head only; the connection stays in step for the next request.
    c.send(b"HEAD /fourth HTTP/1.1\r\nHost: gw.test\r\n\r\n").await;
    let head = c.response(true).await;
    assert_eq!(head.status(), 200);
    c.send(get("/fifth").as_bytes()).await;
    assert!(c.response(false).await.text().starts_with("GET /fifth "));
}

/// The upstream's fields reach the client as they were written, less the hop-by-hop ones and
/// its own request id; those the gateway sets appear once.
#[tokio::test]
async fn upstream_fields_are_passed_on_less_the_hop_by_hop_ones() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;

    c.send(get("/fields").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "ok"), "{}", r.head);
    assert!(r.head.contains("\r\nServer: scripted\r\n"), "{}", r.head);
    assert!(r.head.contains("\r\nX-Mixed-Case: Value\r\n"), "{}", r.head);
    assert_eq!(r.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(r.all("content-length"), ["2"]);
    assert_eq!(r.all("date"), ["Tue, 01 Jan 2030 00:00:00 GMT"]);
    let ids = r.all("x-request-id");
    assert!(ids.len() == 1 && ids[0] != "from-upstream", "{}", r.head);
    for hop in ["connection", "keep-alive", "proxy-authenticate"] {
        assert!(r.header(hop).is_none(), "{hop} passed on: {}", r.head);
    }

    c.send(get("/fields-named").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.text(), "ok");
    assert_eq!(r.all("x-kept"), ["1"]);
    assert!(
        r.header("x-hop").is_none() && r.header("connection").is_none(),
        "{}",
        r.head
    );
    let ids = r.all("x-request-id");
    assert!(ids.len() == 1 && ids[0] != "from-upstream", "{}", r.head);

    // The same through the general server (HTTP/1.0 is handed to it), whose fields are lower
    // case.
    let mut c = Conn::open(gw.http).await;
    c.send(b"GET /fields HTTP/1.0\r\nHost: gw.test\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(r.all("x-mixed-case"), ["Value"]);
    let ids = r.all("x-request-id");
    assert!(ids.len() == 1 && ids[0] != "from-upstream", "{}", r.head);
    assert!(
        r.header("keep-alive").is_none() && r.header("proxy-authenticate").is_none(),
        "{}",
        r.head
    );
}

/// The fields the gateway sets replace the client's: each reaches the upstream once, `Host`
/// first.
#[tokio::test]
async fn the_gateway_fields_replace_the_clients() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    c.send(
        format!(
            "GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: spoofed\r\nX-Request-ID: client-1\r\n\
             traceparent: {incoming}\r\nX-Other: kept\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.response(false).await;
    let seen = r.text();
    let values = |name: &str| field_values(&seen, name);
    let upstream_host = up.url.trim_start_matches("http://").to_string();
    assert_eq!(values("host"), std::slice::from_ref(&upstream_host), "{seen}");
    assert_eq!(
        seen.lines().nth(1),
        Some(format!("host: {upstream_host}").as_str())
    );
    assert_eq!(values("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"], "{seen}");
    assert_eq!(values("x-forwarded-proto"), ["http"], "{seen}");
    assert_eq!(values("x-forwarded-host"), ["gw.test"], "{seen}");
    assert_eq!(values("x-request-id"), ["client-1"], "{seen}");
    assert_eq!(r.all("x-request-id"), ["client-1"]);
    let tp = values("traceparent");
    assert_eq!(tp.len(), 1, "{seen}");
    assert_eq!(&tp[0][..36], &incoming[..36], "the client's trace goes on");
    assert_ne!(&tp[0][36..52], &incoming[36..52], "with this hop's parent id");
    assert_eq!(values("x-other"), ["kept"]);
}

#[tokio::test]
async fn heads_and_bodies_in_pieces_are_served() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;

    // A head a few bytes at a time.
    for piece in get("/slowly").as_bytes().chunks(3) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = c.response(false).await;
    assert!(r.text().starts_with("GET /slowly HTTP/1.1\r\n"), "{}", r.text());

    // A body that comes after its head: the general server takes the connection over and
    // reads it, and serves the requests that follow.
    c.send(b"POST /late-body HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 11\r\n\r\nhello")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(b" world").await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().ends_with("\r\n\r\nhello world"), "{}", r.text());
    c.send(get("/after").as_bytes()).await;
    let r = c.response(false).await;
    assert!(r.text().starts_with("GET /after HTTP/1.1\r\n"), "{}", r.text());
}

#[tokio::test]
async fn other_requests_are_served_by_the_general_server_on_the_same_connection() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;

    // Fast first, then `Expect: 100-continue`, which the fast path leaves alone.
    let mut c = Conn::open(gw.http).await;
    c.send(get("/one").as_bytes()).await;
    assert_eq!(c.response(false).await.status(), 200);
    c.send(b"PUT /two HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.response(true).await;
    assert_eq!(interim.status(), 100, "{}", interim.head);
    c.send(b"abc").await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().ends_with("\r\n\r\nabc"), "{}", r.text());
    c.send(get("/three").as_bytes()).await;
    assert!(c.response(false).await.text().starts_with("GET /three "));

    // A chunked upload.
    let mut c = Conn::open(gw.http).await;
    c.send(b"POST /chunked-up HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert_eq!(c.response(false).await.status(), 200);

    // HTTP/1.0: answered, then closed.
    let mut c = Conn::open(gw.http).await;
    c.send(b"GET /old HTTP/1.0\r\nHost: gw.test\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200, "{}", r.head);
    assert!(c.closed_within(Duration::from_secs(5)).await);

    // h2c with prior knowledge still works on the same port.
    let r = send(
        &h2c_client(),
        http::Request::get(gw.url("/h2"))
            .body(Default::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn responses_are_framed_for_the_client_and_close_is_honoured() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;

    // A chunked upstream body is passed on chunked (trailers are not).
    c.send(get("/chunked").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));

    // A body delimited by the upstream closing goes out chunked too, on a connection that
    // stays open.
    c.send(get("/until-close").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.text(), "all of this, then the end");
    assert!(r.wire.ends_with(b"0\r\n\r\n"));

    // 204: no body and no length.
    c.send(get("/no-content").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 204);
    assert!(r.header("content-length").is_none() && r.header("transfer-encoding").is_none());
    // Also when the upstream puts a length on it: a client reading that length would take
    // the next response for this one's body.
    c.send(get("/no-content-length").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("x-after").as_deref(), Some("204"));
    assert!(r.header("content-length").is_none(), "{}", r.head);

    // A transfer coding the gateway does not undo would reach the client still coded, with
    // nothing saying so: 502 instead.
    let mut c3 = Conn::open(gw.http).await;
    c3.send(get("/gzip-coded").as_bytes()).await;
    let r = c3.response(false).await;
    assert_eq!(r.status(), 502, "{}", r.head);
    assert!(r.text().contains("Transfer-Encoding"), "{}", r.text());

    // Errors the gateway makes are the JSON of the SPEC, with their length.
    let mut c2 = Conn::open(gw.http).await;
    c2.send(b"DELETE /garbage HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await;
    let r = c2.response(false).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string()));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["error"]["code"], "bad_gateway");

    // `Connection: close`: the answer says so and the gateway closes.
    c.send(b"GET /last HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

/// Waits up to `within` for `done`, failing with `what`.
/// Heads that can not be served get the SPEC's JSON error, and the connection closes:
/// malformed ones 400 `bad_request`, oversized ones 431 `headers_too_large`.
#[tokio::test]
async fn malformed_and_oversized_heads_get_the_json_error() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let many: String = (0..120).map(|i| format!("X-F{i}: v\r\n")).collect();
    let cases: [(&str, Vec<u8>, u16, &str); 8] = [
        (
            "a version no server here takes",
            b"GET /v HTTP/2.0\r\nHost: gw.test\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a bad field name",
            b"GET /bad HTTP/1.1\r\nHost: gw.test\r\nBad Name: x\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        ("no request line", b"GARBAGE\r\n\r\n".to_vec(), 400, "bad_request"),
        (
            "a target no URI parser takes",
            b"GET /a<b> HTTP/1.1\r\nHost: gw.test\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a length that is no number",
            b"POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "two different lengths",
            b"POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a head over max_header_size",
            format!(
                "GET /big HTTP/1.1\r\nHost: gw.test\r\nX-Big: {}\r\n\r\n",
                "a".repeat(300 * 1024)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "more than 100 fields",
            format!("GET /many HTTP/1.1\r\nHost: gw.test\r\n{many}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        // After a good request on the same connection, so that keep-alive state is covered too.
        let mut c = Conn::open(gw.http).await;
        c.send(get("/fine").as_bytes()).await;
        assert_eq!(c.response(false).await.status(), 200, "{what}");
        c.send(&request).await;
        let r = c.response(false).await;
        assert_eq!(r.status(), status, "{what}: {}", r.head);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "{what}"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert_eq!(
            body["error"]["request_id"].as_str(),
            r.header("x-request-id").as_deref(),
            "{what}"
        );
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{what}");
        assert!(
            c.closed_within(Duration::from_secs(5)).await,
            "{what}: the connection closes"
        );
    }
    // Counted without a route or method.
    let metrics = gw.metrics_text().await;
    for (status, n) in [("400", 6), ("431", 2)] {
        let series = format!(r#"gateway_http_requests_total{{method="",route="",status="{status}"}} {n}"#);
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
}

async fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < until, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_ends_its_upstream_call() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;
    c.send(get("/hold").as_bytes()).await;
    wait_for(
        "the request never reached the upstream",
        Duration::from_secs(5),
        || up.connections() > 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        up.released(),
        0,
        "the upstream call ended while the client waited"
    );

    // The client goes: the gateway drops the upstream call at once, not after the upstream's
    // 10 s or the route's 30 s timeout.
    drop(c);
    wait_for(
        "the upstream call outlived its client",
        Duration::from_secs(3),
        || up.released() > 0,
    )
    .await;
    let metrics = gw.metrics_text().await;
    assert!(
        metrics
            .contains(r#"gateway_http_requests_total{method="GET",route="default/scripted",status="499"} 1"#),
        "{metrics}"
    );

    // The same on the general server (a chunked body takes a request there).
    let mut c = Conn::open(gw.http).await;
    c.send(b"POST /hold HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        .await;
    wait_for(
        "the request never reached the upstream",
        Duration::from_secs(5),
        || up.connections() >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(up.released(), 1);
    drop(c);
    wait_for(
        "the upstream call outlived its client (general server)",
        Duration::from_secs(3),
        || up.released() >= 2,
    )
    .await;

    // A client that sends its next request while the first is upstream is not taken for one
    // that left: both are answered, in order.
    let mut c = Conn::open(gw.http).await;
    c.send(get("/slow").as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(get("/second").as_bytes()).await;
    assert!(c.response(false).await.text().starts_with("GET /slow "));
    assert!(c.response(false).await.text().starts_with("GET /second "));
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host field, with more than one, or with one
/// that is not `host[:port]` gets 400, on the fast path and on the general server alike, and
/// reaches no upstream: a proxy in front that read such fields another way would otherwise
/// apply other routes than the gateway. HTTP/1.0 needs none.
#[tokio::test]
async fn host_fields_that_name_no_single_host_get_400() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let refused: [(&str, &str); 6] = [
        ("GET /h HTTP/1.1\r\n\r\n", "needs a Host"),
        (
            "GET /h HTTP/1.1\r\nHost: gw.test\r\nHost: other.test\r\n\r\n",
            "more than one",
        ),
        (
            "GET /h HTTP/1.1\r\nHost: gw.test\r\nhost: gw.test\r\n\r\n",
            "more than one",
        ),
        ("GET /h HTTP/1.1\r\nHost: gw.test/admin\r\n\r\n", "host[:port]"),
        ("GET /h HTTP/1.1\r\nHost: user@gw.test\r\n\r\n", "host[:port]"),
        (
            "POST /h HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "more than one",
        ),
    ];
    for (request, why) in refused {
        let mut c = Conn::open(gw.http).await;
        c.send(request.as_bytes()).await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 400, "{request:?}: {}", r.head);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{request:?}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{request:?}: {message}");
    }
    assert_eq!(up.connections(), 0, "no request reached the upstream");
    for fine in [
        "GET /h HTTP/1.0\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: GW.test.\r\n\r\n",
    ] {
        let mut c = Conn::open(gw.http).await;
        c.send(fine.as_bytes()).await;
        assert_eq!(c.response(false).await.status(), 200, "{fine:?}");
    }
}

/// The gateway is a reverse proxy: CONNECT gets the JSON 400 and opens no tunnel, neither to
/// an upstream nor to the host it names.
#[tokio::test]
async fn connect_is_refused_not_tunnelled() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let authority = up.url.trim_start_matches("http://").to_string();
    let mut c = Conn::open(gw.http).await;
    c.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 400, "{}", r.head);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(up.connections(), 0, "nothing reached the upstream");
}

/// A client that stops reading is closed once the gateway's writes to it have stalled for
/// `server.timeouts.send_timeout`, rather than holding its response and the upstream
/// connection behind it for as long as it likes.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let up = Scripted::start().await;
    let config = format!("{BASE_CONFIG}server:\n  timeouts:\n    send_timeout: 300ms\n");
    let gw = scripted::gateway_with(&up, &config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(([127, 0, 0, 1], gw.http).into()).await.unwrap();
    c.write_all(get("/huge").as_bytes()).await.unwrap();
    // Reads nothing for well over the limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open");
    assert!(got < scripted::HUGE, "the whole response arrived: {got} bytes");
}

/// An upstream that stops sending a response body half-way is given up after
/// `server.timeouts.read_timeout`: the client's connection closes with the body cut short
/// (its length says so), rather than both waiting for as long as the upstream likes.
#[tokio::test]
async fn an_upstream_that_stops_sending_its_body_is_given_up_after_the_read_timeout() {
    let up = Scripted::start().await;
    let config = format!("{BASE_CONFIG}server:\n  timeouts:\n    read_timeout: 300ms\n");
    let gw = scripted::gateway_with(&up, &config).await;
    let mut c = Conn::open(gw.http).await;
    c.send(get("/stall-body").as_bytes()).await;
    let started = std::time::Instant::now();
    let end = loop {
        if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(c.fill().await, "closed before a response head");
    };
    let head = String::from_utf8_lossy(&c.buf[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut more = [0u8; 1024];
        loop {
            match c.s.read(&mut more).await {
                Ok(0) | Err(_) => return,
                Ok(n) => c.buf.extend_from_slice(&more[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(&c.buf[end..], b"first ten.", "only what the upstream sent");
}
