//! One HTTP reply type and the client helpers that produce it: a hyper client for async tests,
//! and a blocking raw request (a GET for the polling loops of the Kubernetes tests, any bytes
//! for the tests of what the gateway makes of odd requests).

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// How long `send` waits for a whole answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The status as a `StatusCode`.
    pub fn code(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.status).unwrap()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client (HTTP/2 with prior knowledge for `h2c_client`).
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Sends `req` and reads the whole answer (at most 15 s); the error says why there is none.
pub async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let answer = async {
        let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// GET `url` on a connection of its own.
pub async fn get(url: &str) -> Result<Reply, String> {
    send(&client(), Request::get(url).body(Full::default()).unwrap()).await
}

/// A blocking HTTP/1.1 GET of `path` on 127.0.0.1:`port` (`Connection: close`, 5 s read
/// timeout); None if the connection failed or the answer is not HTTP.
pub fn get_blocking(port: u16, path: &str) -> Option<Reply> {
    send_raw_blocking(port, "GET", path, &[], Duration::from_secs(5))
}

/// Sends `METHOD target` with `fields` (whole lines) on a connection of its own, byte for byte
/// as written (no client in between to tidy the target or the fields), and reads the answer to
/// its end, waiting at most `wait` for each read.
pub fn send_raw_blocking(
    port: u16,
    method: &str,
    target: &str,
    fields: &[&str],
    wait: Duration,
) -> Option<Reply> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for f in fields {
        head.push_str(f);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(v.trim()).ok()?,
        );
    }
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Reply {
        status,
        headers,
        body: Bytes::from(body),
    })
}

/// The data of a chunked body (trailers dropped).
fn dechunk(mut wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = wire.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&wire[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        wire = &wire[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(wire.get(..size)?);
        wire = wire.get(size + 2..)?;
    }
}
