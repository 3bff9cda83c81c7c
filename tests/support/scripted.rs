//! A scripted HTTP/1.1 upstream on loopback that writes exact bytes, for tests of how the
//! gateway reads upstream responses and what it sends upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers by path with hand-written bytes. It counts the connections it
/// accepted; the body of a plain answer is the request it received, head and body.
pub struct Scripted {
    pub url: String,
    connections: Arc<AtomicUsize>,
    /// Requests to `/hold` whose connection the gateway closed while they waited.
    released: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const BIG: usize = 1024 * 1024;
/// More than the socket buffers between a client and the upstream hold.
pub const HUGE: usize = 32 * 1024 * 1024;

impl Scripted {
    pub async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicUsize::new(0));
        let (count, on_release) = (connections.clone(), released.clone());
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, on_release.clone()));
            }
        });
        Scripted {
            url,
            connections,
            released,
            task,
        }
    }

    pub fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
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

async fn serve(mut s: TcpStream, released: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut index = 0;
    while let Some((head, body)) = read_request(&mut s, &mut buf).await {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let pause = || tokio::time::sleep(Duration::from_millis(15));
        // Echoed as any other path, 200 ms late.
        if path == "/slow" {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
            // A length on a 204, which has no body.
            "/no-content-length" => s
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-After: 204\r\n\r\n")
                .await
                .unwrap(),
            // A transfer coding the gateway does not undo.
            "/gzip-coded" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b")
                    .await
                    .unwrap();
                return;
            }
            // Fields of every kind the gateway treats apart, in mixed case.
            "/fields" => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nServer: scripted\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                      X-Request-ID: from-upstream\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                      Proxy-Authenticate: Basic\r\nX-Mixed-Case: Value\r\nContent-Length: 2\r\n\
                      Date: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\nok",
                )
                .await
                .unwrap(),
            // `Connection` naming a field of the response, which goes with it.
            "/fields-named" => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\nX-Kept: 1\r\n\
                      X-Request-ID: from-upstream\r\nContent-Length: 2\r\n\r\nok",
                )
                .await
                .unwrap(),
            "/continue" => s
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap(),
            "/big" | "/huge" => {
                let size = if path == "/big" { BIG } else { HUGE };
                s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
                for _ in 0..size / block.len() {
                    // A gateway that gave up on the client closes this connection.
                    if s.write_all(&block).await.is_err() {
                        return;
                    }
                }
            }
            // A tenth of the body, then nothing until the gateway closes the connection.
            "/stall-body" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst ten.")
                    .await
                    .unwrap();
                let mut rest = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut rest)).await;
                return;
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
            // No answer: waits (at most 10 s) for the gateway to close the connection.
            // (What else comes, such as the rest of a chunked body, is read and dropped.)
            "/hold" => {
                let mut more = [0u8; 1024];
                let closed = async {
                    while let Ok(n) = s.read(&mut more).await {
                        if n == 0 {
                            return true;
                        }
                    }
                    false
                };
                if let Ok(true) = tokio::time::timeout(Duration::from_secs(10), closed).await {
                    released.fetch_add(1, Ordering::SeqCst);
                }
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

/// The gateway in front of `up`, on one catch-all route.
pub async fn gateway_for(up: &Scripted) -> super::Gateway {
    gateway_with(up, super::BASE_CONFIG).await
}

/// The gateway with `config` in front of `up`, on one catch-all route.
pub async fn gateway_with(up: &Scripted, config: &str) -> super::Gateway {
    use super::{route_yaml, upstream_yaml, Gateway};
    Gateway::start(
        config,
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
