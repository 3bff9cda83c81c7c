//! A raw HTTP/1.1 client connection, for the tests of how the gateway frames what it sends:
//! requests go as written, responses are read off the wire one by one (pipelined ones too),
//! with their head, their body and the body as it came (chunk framing included).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off a raw connection.
#[derive(Debug)]
pub struct Raw {
    pub head: String,
    pub body: Vec<u8>,
    /// The body as it came on the wire (chunk framing included).
    pub wire: Vec<u8>,
}

impl Raw {
    pub fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    /// The first value of the field `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// Every value of the field `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        field_values(&self.head, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Every value of the field `name` in the head `text` (its first line left out), in order.
pub fn field_values(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .collect()
}

/// A raw client connection that keeps what it read past one response.
pub struct Conn {
    pub s: TcpStream,
    /// Read, not yet taken as a response.
    pub buf: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> Conn {
        Conn {
            s: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// `GET path` for the host `gw.test`, and its response.
    pub async fn get(&mut self, path: &str) -> Raw {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n").as_bytes())
            .await;
        self.response(false).await
    }

    /// Reads more; false at end of stream.
    pub async fn fill(&mut self) -> bool {
        let mut more = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut more))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&more[..n]);
        n > 0
    }

    /// Reads one response, framed as its head says (chunked, by length, or to the end of the
    /// connection); `bodiless` for answers to HEAD.
    pub async fn response(&mut self, bodiless: bool) -> Raw {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill().await, "closed before a response head");
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let mut raw = Raw {
            head,
            body: Vec::new(),
            wire: Vec::new(),
        };
        if bodiless || matches!(raw.status(), 101 | 204 | 304) {
            return raw;
        }
        if raw.header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await, "closed in a chunk");
                };
                let line: Vec<u8> = self.buf.drain(..line_end + 2).collect();
                raw.wire.extend_from_slice(&line);
                let size =
                    usize::from_str_radix(std::str::from_utf8(&line[..line_end]).unwrap(), 16).unwrap();
                while self.buf.len() < size + 2 {
                    assert!(self.fill().await, "closed in a chunk");
                }
                let chunk: Vec<u8> = self.buf.drain(..size + 2).collect();
                raw.wire.extend_from_slice(&chunk);
                raw.body.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    return raw;
                }
            }
        }
        match raw.header("content-length") {
            Some(len) => {
                let len: usize = len.parse().unwrap();
                while self.buf.len() < len {
                    assert!(self.fill().await, "closed in the body");
                }
                raw.body = self.buf.drain(..len).collect();
            }
            None => {
                while self.fill().await {}
                raw.body = std::mem::take(&mut self.buf);
            }
        }
        raw.wire = raw.body.clone();
        raw
    }

    /// True when the gateway closes the connection within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut more = [0u8; 1024];
        matches!(
            tokio::time::timeout(within, self.s.read(&mut more)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
