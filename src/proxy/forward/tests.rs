//! Tests of the forward phase's clients.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::general::general_client;

/// Idle pooled connections of the general client are closed by the pool's timer, with no
/// later request to find them: a real HTTP/1.1 and a real h2c server count what is open.
#[tokio::test]
async fn the_general_client_closes_idle_connections() {
    for h2 in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let open = counted.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let client = general_client(HttpConnector::new(), Duration::from_millis(200), h2);
        let req = Request::get(format!("http://{addr}/"))
            .body(Either::Right(Full::new(Bytes::new())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        assert_eq!(open.load(Ordering::SeqCst), 1, "h2: {h2}");
        let until = Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < until,
                "an idle connection stayed open (h2: {h2})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.abort();
    }
}

/// hyper's client decodes a chunked body but leaves a `Content-Length` beside it in the
/// fields; `frame` holds its responses to the own client's rules: the length goes when the
/// body is chunked, another coding and an unasked `101` are errors.
#[tokio::test]
async fn general_responses_are_framed_by_the_own_clients_rules() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&got).to_string();
                    let answer: &[u8] = if head.starts_with("GET /both ") || head.starts_with("HEAD /both ") {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    } else if head.starts_with("GET /gzip-chunked ") {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    } else if head.starts_with("HEAD /gzip ") {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
                    } else {
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    };
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = general_client(HttpConnector::new(), Duration::from_secs(5), false);
    let call = |method: &'static str, path: &'static str| {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Either::Right(Full::new(Bytes::new())))
            .unwrap();
        client.request(req)
    };

    let mut resp = call("GET", "/both").await.unwrap();
    assert!(resp.headers().contains_key(http::header::CONTENT_LENGTH));
    assert!(resp.headers().contains_key(http::header::TRANSFER_ENCODING));
    super::general::frame(&mut resp, false).unwrap();
    assert!(!resp.headers().contains_key(http::header::CONTENT_LENGTH));
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "hello");

    let mut resp = call("HEAD", "/both").await.unwrap();
    super::general::frame(&mut resp, true).unwrap();
    assert!(!resp.headers().contains_key(http::header::CONTENT_LENGTH));

    let mut resp = call("GET", "/gzip-chunked").await.unwrap();
    let err = super::general::frame(&mut resp, false).unwrap_err();
    assert!(err.to_string().contains("Transfer-Encoding"), "{err}");
    // No body, nothing coded.
    let mut resp = call("HEAD", "/gzip").await.unwrap();
    super::general::frame(&mut resp, true).unwrap();

    let mut resp = call("GET", "/switch").await.unwrap();
    assert_eq!(resp.status(), 101);
    let err = super::general::frame(&mut resp, false).unwrap_err();
    assert!(err.to_string().contains("switched protocols"), "{err}");
}

/// Cookie fields of an HTTP/2 client are joined with `"; "` (RFC 9113 §8.2.3); one is left
/// as it is.
#[test]
fn cookie_fields_are_joined_into_one() {
    let mut h = http::HeaderMap::new();
    h.append(http::header::COOKIE, "a=1".parse().unwrap());
    super::rewrite::join_cookies(&mut h);
    assert_eq!(h.get_all(http::header::COOKIE).iter().count(), 1);
    h.append(http::header::COOKIE, "b=2".parse().unwrap());
    h.append(http::header::COOKIE, "c=3; d=4".parse().unwrap());
    super::rewrite::join_cookies(&mut h);
    let all: Vec<_> = h.get_all(http::header::COOKIE).iter().collect();
    assert_eq!(all, ["a=1; b=2; c=3; d=4"]);
}

/// A tunnel dials the endpoint's port, or the scheme's when its URL names none.
#[test]
fn tunnels_dial_the_schemes_port_when_the_endpoint_names_none() {
    use crate::upstream::{Endpoint, Protocol};
    let target = |url: &str| {
        let e = Endpoint::parse(url, Protocol::Http).unwrap();
        let (host, port) = super::upgrade::dial_target(&e);
        (host.to_string(), port)
    };
    assert_eq!(target("http://svc"), ("svc".to_string(), 80));
    assert_eq!(target("http://svc:8080"), ("svc".to_string(), 8080));
    assert_eq!(target("https://svc"), ("svc".to_string(), 443));
    assert_eq!(target("http://[::1]"), ("::1".to_string(), 80));
    assert_eq!(target("http://[::1]:9000"), ("::1".to_string(), 9000));
}
