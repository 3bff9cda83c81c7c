//! The fast path's response writer: the head (an upstream's fields in wire form first, when
//! the body has them so), framing as RFC 9112 says, and the body in batched writes.

use std::io;
use std::time::SystemTime;

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::proxy::body::WireHead;
use crate::proxy::fields::put_number;

/// Response bytes gathered before a write.
const WRITE_BATCH: usize = 64 * 1024;

/// Writes `response`; an error means the connection can not go on.
pub(super) async fn write_response<S: AsyncWrite + Unpin, B: Body<Data = Bytes> + WireHead>(
    stream: &mut S,
    out: &mut Vec<u8>,
    response: Response<B>,
    head_request: bool,
    close: bool,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let (mut has_length, mut has_date) = (false, false);
    if let Some(wire) = body.wire_fields() {
        wire.write_to(out);
        has_length = wire.has_length;
        has_date = wire.has_date;
    }
    for (name, value) in &parts.headers {
        has_length |= name == header::CONTENT_LENGTH;
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // RFC 9112 §6.3: no body after 1xx, 204 and 304, nor in answer to HEAD.
    let bodiless_status =
        status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let mut chunked = false;
    if !bodiless_status && !has_length {
        match body.size_hint().exact() {
            Some(n) => {
                out.extend_from_slice(b"content-length: ");
                put_number(out, n, 10);
                out.extend_from_slice(b"\r\n");
            }
            None if !head_request => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
            None => {}
        }
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_request || bodiless_status {
        stream.write_all(out).await?;
        return stream.flush().await;
    }
    let mut body = std::pin::pin!(body);
    loop {
        let polled =
            futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)));
        let frame = match polled {
            Some(f) => f,
            None => {
                // What is written reaches the client before the wait for more (a stream that
                // buffers, as TLS does, holds it until flushed).
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                stream.flush().await?;
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Err(io::Error::other("the response body failed")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) if !d.is_empty() => d,
                // Trailers are not passed on; empty frames carry nothing.
                _ => continue,
            },
        };
        if chunked {
            put_number(out, data.len() as u64, 16);
            out.extend_from_slice(b"\r\n");
        }
        if out.len() + data.len() <= WRITE_BATCH {
            out.extend_from_slice(&data);
        } else {
            if !out.is_empty() {
                stream.write_all(out).await?;
                out.clear();
            }
            stream.write_all(&data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    stream.flush().await
}

thread_local! {
    /// The `Date` value of the current second, per thread.
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

/// Calls `f` with the IMF-fixdate of now.
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        f(&cached.1);
    });
}
