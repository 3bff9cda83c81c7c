//! Request and response framing, and the clocks of long-lived connections, end to end: the
//! real binary between raw clients and scripted upstreams. Responses of the general client
//! (here from a TLS upstream) are framed by the same rule as the own client's; chunked uploads
//! are held to `server.limits.max_body_size`; HTTP/2 connections and WebSocket tunnels close
//! after their idle timeouts; an HTTP/2 client's cookie fragments reach an HTTP/1.1 upstream as
//! one field; a WebSocket upstream without a port is reached on the scheme's port.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::raw::Conn;
use crate::support::scripted::{gateway_for, Scripted, SMUGGLED};
use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `https` upstream answering with both `Content-Length` and `Transfer-Encoding: chunked`
/// and a second response hidden in its chunk: the client sees one response, the whole chunk
/// its body, and its next request gets its own answer, on the fast path and on the general
/// server alike.
#[tokio::test]
async fn a_tls_upstream_cannot_slip_a_second_response_to_a_kept_alive_client() {
    let up = Scripted::start_tls().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;
    let r = c.get("/smuggle").await;
    assert_eq!(r.status(), 200, "{}", r.head);
    assert_eq!(r.text(), format!("hello{SMUGGLED}"), "{}", r.head);
    assert!(r.header("content-length").is_none(), "{}", r.head);
    let next = c.get("/next").await;
    assert_eq!(next.status(), 200, "{}", next.head);
    assert!(
        next.text().starts_with("GET /next HTTP/1.1\r\n"),
        "{}",
        next.text()
    );

    // Through the general server (HTTP/1.0 is handed to it), and to an HTTP/2 client.
    let mut c = Conn::open(gw.http).await;
    c.send(b"GET /smuggle HTTP/1.0\r\nHost: gw.test\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.text(), format!("hello{SMUGGLED}"), "{}", r.head);
    let r = send(
        &h2c_client(),
        http::Request::get(gw.url("/smuggle"))
            .body(Default::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.text()), (200, format!("hello{SMUGGLED}")));

    // The same upstream over plain HTTP (the own client) answers the same.
    let plain = Scripted::start().await;
    let gw = gateway_for(&plain).await;
    let mut c = Conn::open(gw.http).await;
    let r = c.get("/smuggle").await;
    assert_eq!(r.text(), format!("hello{SMUGGLED}"), "{}", r.head);
    assert!(r.header("content-length").is_none(), "{}", r.head);
}

/// A TLS upstream's `101` to a request that asked for no upgrade, and a body in a transfer
/// coding the gateway does not undo, are 502 `bad_gateway` as from a plain upstream; the
/// upstream connection that switched is not used again, and the client's is.
#[tokio::test]
async fn a_tls_upstream_switching_protocols_unasked_or_coding_its_body_gets_502() {
    let up = Scripted::start_tls().await;
    let gw = gateway_for(&up).await;
    let mut c = Conn::open(gw.http).await;
    assert_eq!(c.get("/first").await.status(), 200);
    assert_eq!(up.connections(), 1);

    let r = c.get("/switch").await;
    assert_eq!(r.status(), 502, "{}", r.head);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["error"]["code"], "bad_gateway", "{json}");
    assert!(r.header("upgrade").is_none(), "{}", r.head);
    // The client's connection goes on; the upstream's that switched is not reused.
    let r = c.get("/after").await;
    assert_eq!(r.status(), 200, "{}", r.head);
    assert!(r.text().starts_with("GET /after "), "{}", r.text());
    assert_eq!(up.connections(), 2, "the switched connection was used again");

    let r = Conn::open(gw.http).await.get("/gzip-coded").await;
    assert_eq!(r.status(), 502, "{}", r.head);
    assert!(r.text().contains("Transfer-Encoding"), "{}", r.text());
}

/// An upstream that reads one chunked request body and records whether it ended (its last
/// chunk came) or was cut off (the connection closed first); a whole one gets 200.
async fn chunk_reader() -> (String, std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    if got.ends_with(b"\r\n0\r\n\r\n") {
                        record.lock().unwrap().push("whole");
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nwhole")
                            .await;
                        return;
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            record.lock().unwrap().push("cut");
                            return;
                        }
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A body that declares no length (chunked, or HTTP/2 without `content-length`) is held to
/// `server.limits.max_body_size` as it is read: 413 `payload_too_large` once it crosses the
/// limit, and the upstream's request is cut off, never ended as if whole.
#[tokio::test]
async fn bodies_without_a_length_are_held_to_the_body_limit() {
    let (url, seen) = chunk_reader().await;
    let files = [
        ("u.yaml", upstream_yaml("u", &[url])),
        ("r.yaml", route_yaml("u", "/*", "u", "")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let config = format!("server:\n  limits:\n    max_body_size: 1024\n{BASE_CONFIG}");
    let gw = Gateway::start(&config, &files).await;
    let chunked = |total: usize| {
        let mut req =
            b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..total / 512 {
            req.extend_from_slice(b"200\r\n");
            req.extend_from_slice(&[b'x'; 512]);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        req
    };

    // Within the limit: passed on whole.
    let mut c = Conn::open(gw.http).await;
    c.send(&chunked(1024)).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "whole"), "{}", r.head);

    // 64 KiB through a 1 KiB limit.
    let mut c = Conn::open(gw.http).await;
    c.send(&chunked(64 * 1024)).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 413, "{}", r.head);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large", "{json}");

    // The same from an HTTP/2 client whose body has no `content-length`.
    use http_body_util::StreamBody;
    type Frames = futures_util::stream::Iter<
        std::vec::IntoIter<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>,
    >;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, StreamBody<Frames>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let post = |pieces: usize| {
        let frames: Vec<_> = (0..pieces)
            .map(|_| Ok(hyper::body::Frame::data(bytes::Bytes::from(vec![b'y'; 512]))))
            .collect();
        let req = http::Request::post(gw.url("/upload"))
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        h2.request(req)
    };
    let resp = post(2).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = post(128).await.unwrap();
    assert_eq!(resp.status(), 413);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large", "{json}");

    // Two bodies came whole, two were cut off.
    let until = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 4 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["cut", "cut", "whole", "whole"]);
}

/// An HTTP/2 client's cookie fragments reach an HTTP/1.1 upstream as one `cookie` field,
/// joined with `"; "` (RFC 9113 §8.2.3), with and without a request body.
#[tokio::test]
async fn an_h2_clients_cookie_fields_reach_an_http1_upstream_as_one() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    for body in ["", "payload"] {
        let req = http::Request::post(gw.url("/cookies"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap();
        let r = send(&h2c_client(), req).await.unwrap();
        assert_eq!(r.status, 200);
        let seen = r.text();
        let cookies: Vec<&str> = seen
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
            .collect();
        assert_eq!(cookies, ["cookie: a=1; b=2"], "{seen}");
    }
}

/// An HTTP/2 connection is shut down (GOAWAY, then closed) once it has had no open stream for
/// `server.timeouts.http2_idle_timeout`, after its requests as before its first; a stream
/// open for longer keeps it.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_its_idle_timeout() {
    let up = Upstream::start("u").await;
    let files = [
        ("u.yaml", upstream_yaml("u", &[up.url()])),
        ("r.yaml", route_yaml("u", "/*", "u", "")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let config = format!("server:\n  timeouts:\n    http2_idle_timeout: 1s\n{BASE_CONFIG}");
    let gw = Gateway::start(&config, &files).await;

    let tcp = TcpStream::connect(("127.0.0.1", gw.http)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let mut conn = tokio::spawn(conn);
    let mut ask = |path: &str| {
        let req = http::Request::get(format!("http://gw.test{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        sender.send_request(req)
    };
    // A stream open longer than the idle timeout, then a short one: the connection stays.
    let resp = ask("/sleep/1500").await.unwrap();
    assert_eq!(resp.status(), 200);
    http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    let resp = ask("/after").await.unwrap();
    assert_eq!(resp.status(), 200);
    http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    let quiet = Instant::now();
    // Then nothing: closed about a second later.
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut conn).await;
    assert!(closed.is_ok(), "the idle HTTP/2 connection is still open");
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    assert!(ask("/too-late").await.is_err());

    // A connection that never opens a stream is closed too, even when its client answers
    // nothing (the GOAWAY's ping included): one more idle timeout, and it is cut.
    let mut idle = TcpStream::connect(("127.0.0.1", gw.http)).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = idle.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an HTTP/2 connection without streams is still open"
    );
}

/// A WebSocket echo server on `listener`; it also answers `"path"` with its request path.
fn ws_echo(listener: tokio::net::TcpListener) {
    use futures_util::{SinkExt, StreamExt};
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// A gateway whose route `/live/*` tunnels WebSocket upgrades to `endpoint`, with `config`.
async fn tunnel_gateway(endpoint: &str, config: &str) -> Gateway {
    let files = [
        ("u.yaml", upstream_yaml("ws", &[endpoint.to_string()])),
        ("r.yaml", route_yaml("ws", "/live/*", "ws", "websocket: true")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    Gateway::start(config, &files).await
}

type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Sends `text` on `ws` and expects it back.
async fn echoes(ws: &mut WsClient, text: &str) {
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an echo within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(back.to_text().unwrap(), text);
}

/// A tunnel that carries nothing either way for `server.timeouts.tunnel_idle_timeout` is
/// closed; one that keeps carrying messages stays open past it.
#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_after_its_idle_timeout() {
    use futures_util::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    ws_echo(listener);
    let config = format!("server:\n  timeouts:\n    tunnel_idle_timeout: 1s\n{BASE_CONFIG}");
    let gw = tunnel_gateway(&endpoint, &config).await;
    let url = format!("ws://127.0.0.1:{}/live/feed", gw.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Messages every 400 ms for 2.4 s: it stays open.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        echoes(&mut ws, &format!("message {i}")).await;
    }
    // Then nothing: closed about a second later.
    let quiet = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle tunnel is still open");
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
}

/// A WebSocket upstream whose URL names no port is reached on the scheme's: 80 for `http`.
/// (Needs 127.0.0.1:80; where it cannot be bound the test says so and returns, and the unit
/// test of the address, `tunnels_dial_the_schemes_port_when_the_endpoint_names_none`, stands.)
#[tokio::test]
async fn a_websocket_upstream_without_a_port_is_reached_on_port_80() {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:80").await {
        Ok(l) => l,
        Err(e) => {
            crate::support::services::skipped(&format!("cannot bind 127.0.0.1:80: {e}"));
            return;
        }
    };
    ws_echo(listener);
    let gw = tunnel_gateway("http://127.0.0.1", BASE_CONFIG).await;
    let url = format!("ws://127.0.0.1:{}/live/feed", gw.http);
    let (mut ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    echoes(&mut ws, "through port 80").await;
}
