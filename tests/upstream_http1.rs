//! The gateway's own HTTP/1.1 client towards plain `http` upstreams, end to end: the real
//! binary in front of a scripted upstream on loopback that writes exact bytes, so that every
//! way of delimiting a response body (RFC 9112 §6.3), interim answers, keep-alive reuse and
//! upstreams closing pooled connections are exercised as a real server would produce them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers by path with hand-written bytes. It counts the connections it
/// accepted; the body of a plain answer is the request it received, head and body.
struct Scripted {
    url: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BIG: usize = 1024 * 1024;

impl Scripted {
    async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s));
            }
        });
        Scripted {
            url,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut more = [0u8; 4096];
                let n = s.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut more = [0u8; 4096];
        let n = s.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn serve(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut index = 0;
    while let Some((head, body)) = read_request(&mut s, &mut buf).await {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let pause = || tokio::time::sleep(Duration::from_millis(15));
        match path.as_str() {
            "/chunked" => {
                for piece in [
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                    "lo\r\n6;note=x\r",
                    "\n world\r",
                    "\n0\r\nx-checksum: 1\r\n",
                    "\r\n",
                ] {
                    s.write_all(piece.as_bytes()).await.unwrap();
                    pause().await;
                }
            }
            "/until-close" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ")
                    .await
                    .unwrap();
                pause().await;
                s.write_all(b"this, then the end").await.unwrap();
                return;
            }
            "/no-content" => s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap(),
            "/continue" => s
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap(),
            "/big" => {
                s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
                for _ in 0..BIG / block.len() {
                    s.write_all(&block).await.unwrap();
                }
            }
            "/cut" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
                    .await
                    .unwrap();
                return;
            }
            "/garbage" => {
                s.write_all(b"this is not HTTP\r\n\r\n").await.unwrap();
                return;
            }
            // Answers, then closes the connection without saying so, as an upstream whose
            // keep-alive timeout runs out does.
            "/bye" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye")
                    .await
                    .unwrap();
                return;
            }
            // The first request of a connection is answered; a later one finds the
            // connection closing under it, the race every keep-alive client meets.
            "/race" if index > 0 => return,
            _ => {
                let mut echo = head.clone().into_bytes();
                echo.extend_from_slice(&body);
                let mut out =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", echo.len()).into_bytes();
                if !head.starts_with("HEAD ") {
                    out.extend_from_slice(&echo);
                }
                s.write_all(&out).await.unwrap();
            }
        }
        index += 1;
    }
}

async fn gateway_for(up: &Scripted) -> Gateway {
    Gateway::start(
        BASE_CONFIG,
        &[(
            "r.yaml",
            &format!(
                "{}---\n{}",
                upstream_yaml("scripted", std::slice::from_ref(&up.url)),
                route_yaml("scripted", "/*", "scripted", "")
            ),
        )],
    )
    .await
}

async fn call(c: &TestClient, method: &str, url: &str, body: &'static str) -> Result<Reply, String> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    send(c, req).await
}

#[tokio::test]
async fn every_kind_of_response_body_arrives_whole_on_reused_connections() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    let r = call(&c, "GET", &gw.url("/chunked"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"hello world"[..]));
    assert!(r.header("transfer-encoding").is_none() || r.header("transfer-encoding") == Some("chunked"));

    let r = call(&c, "HEAD", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = call(&c, "GET", &gw.url("/no-content"), "").await.unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = call(&c, "GET", &gw.url("/continue"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));

    // The request body is sent with its length; the head carries the gateway's headers.
    let r = call(&c, "POST", &gw.url("/echo?q=1"), "name=value")
        .await
        .unwrap();
    let seen = String::from_utf8_lossy(&r.body).to_string();
    assert!(seen.starts_with("POST /echo?q=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("\r\ncontent-length: 10\r\n"), "{seen}");
    assert!(seen.contains("\r\nx-request-id: "), "{seen}");
    assert!(seen.contains("\r\ntraceparent: 00-"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nname=value"), "{seen}");

    let r = call(&c, "GET", &gw.url("/big"), "").await.unwrap();
    assert_eq!(r.body.len(), BIG);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == ((i % (64 * 1024)) % 251) as u8));

    // All of that went over one upstream connection, kept alive between requests.
    assert_eq!(up.connections(), 1, "one kept-alive upstream connection");

    // A body delimited by the end of the connection arrives whole; that connection is not
    // used again.
    let r = call(&c, "GET", &gw.url("/until-close"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"all of this, then the end"[..]));
    let r = call(&c, "GET", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_without_an_error() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    // The upstream closes the connection after answering: the next request gets a new one.
    for _ in 0..3 {
        let r = call(&c, "GET", &gw.url("/bye"), "").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"bye"[..]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.connections(), 3);

    // The upstream closes a pooled connection just as a request arrives on it. The request
    // had no answer, and GET may be sent twice: it is sent again on a new connection.
    let r = call(&c, "GET", &gw.url("/race"), "").await.unwrap();
    assert_eq!(r.status, 200);
    let r = call(&c, "GET", &gw.url("/race"), "").await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.connections(), 5);

    // A POST that was written whole is not sent again: the upstream may have acted on it.
    let r = call(&c, "POST", &gw.url("/race"), "x").await.unwrap();
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "bad_gateway");
    assert_eq!(up.connections(), 5);
}

#[tokio::test]
async fn broken_upstream_answers_are_bad_gateway_or_a_cut_body() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    let r = call(&c, "GET", &gw.url("/garbage"), "").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "bad_gateway");

    // The head promised 100 bytes and the upstream hung up after 10: the client must see an
    // incomplete message, not a short body passed off as whole.
    // (The gateway may not have flushed the head yet when the cut comes; then the whole
    // response fails.)
    match c
        .request(Request::get(gw.url("/cut")).body(Full::default()).unwrap())
        .await
    {
        Ok(resp) => assert!(
            resp.into_body().collect().await.is_err(),
            "a cut body is an error"
        ),
        Err(e) => assert!(format!("{e:?}").contains("IncompleteMessage"), "{e:?}"),
    }

    // The gateway goes on serving.
    let r = call(&c, "GET", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
}
