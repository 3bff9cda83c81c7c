//! The proxy listener's HTTP/1.1 fast path. Most requests a gateway sees are HTTP/1.1
//! keep-alive requests with no body or a small one; this loop reads them, calls the pipeline
//! and writes the response on the connection's own task, without a general server's dispatch.
//!
//! Anything else — h2c, HTTP/1.0, upgrades, `Expect`, chunked or large bodies, a body not yet
//! whole, a head too large or not understood, the hub's paths — is handed to the general
//! server with the bytes read so far, and that server keeps the connection from then on.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::error::ProxyError;
use super::fields::{field_name, number, position, put_number, Spans, WireFields, MAX_FIELDS};
use super::server::ConnLimits;

/// The largest request body read on the fast path; larger ones are streamed by the general
/// server.
pub const MAX_FAST_BODY: usize = 64 * 1024;
/// Response bytes gathered before a write.
const WRITE_BATCH: usize = 64 * 1024;
/// Bytes read from a client at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A client's request body: whole from the fast path, or streamed by the general server.
pub enum ClientBody {
    /// Read whole by the fast path, whose writer also takes an upstream response's fields in
    /// wire form.
    Read(Bytes),
    Streamed(Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Read(b) if b.is_empty() => Poll::Ready(None),
            ClientBody::Read(b) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(b))))),
            ClientBody::Streamed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Read(b) => b.is_empty(),
            ClientBody::Streamed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Read(b) => SizeHint::with_exact(b.len() as u64),
            ClientBody::Streamed(b) => b.size_hint(),
        }
    }
}

/// Response bodies that may carry the response's upstream fields in wire form, which the fast
/// path writes as they are, before the fields of the response's `HeaderMap`.
pub trait WireHead {
    fn wire_fields(&self) -> Option<&WireFields> {
        None
    }
}

impl WireHead for http_body_util::Full<Bytes> {}

impl<L: WireHead, R: WireHead> WireHead for http_body_util::Either<L, R> {
    fn wire_fields(&self) -> Option<&WireFields> {
        match self {
            http_body_util::Either::Left(b) => b.wire_fields(),
            http_body_util::Either::Right(b) => b.wire_fields(),
        }
    }
}

/// A request head the fast path serves, with its body.
pub(super) struct Parsed {
    pub(super) request: Request<ClientBody>,
    /// The client asked for the connection to close after the response.
    pub(super) close: bool,
}

/// What the bytes at the front of the buffer are. (`Fast` is large, and moves once: boxing it
/// would cost an allocation per request.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Next {
    /// Not a whole request yet.
    Partial,
    /// For the general server.
    Other,
    /// A head no server can serve: answered with the JSON error, then the connection closes.
    Refused(ProxyError),
    Fast(Parsed),
}

/// Reads the request at the front of `buf` when the fast path can serve it, taking its bytes.
pub(super) fn parse(buf: &mut BytesMut, max_head: usize, general: &impl Fn(&str) -> bool) -> Next {
    let mut spans = Spans::new();
    let (head_len, method, path) = {
        // Beyond MAX_FIELDS the general server answers 431.
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let head_len = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() <= max_head => return Next::Partial,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Next::Refused(ProxyError::HeadersTooLarge)
            }
            // HTTP/2's preface is the general server's; other versions no server here takes.
            Err(httparse::Error::Version) if buf.starts_with(b"PRI ") => return Next::Other,
            Err(httparse::Error::Version) => {
                return Next::Refused(ProxyError::BadRequest("unsupported HTTP version".into()))
            }
            Err(e) => return Next::Refused(ProxyError::BadRequest(format!("malformed request head: {e}"))),
        };
        // Before the version: HTTP/1.0 goes to the general server, whose buffer limit is not
        // this one.
        if head_len > max_head {
            return Next::Refused(ProxyError::HeadersTooLarge);
        }
        if req.version != Some(1) {
            return Next::Other;
        }
        spans.record(buf, req.headers);
        let (Some(method), Some(path)) = (req.method, req.path) else {
            return Next::Other;
        };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Next::Other;
        };
        // Origin form only: absolute-form and `*` go to the general server.
        if !path.starts_with('/') || general(path.split('?').next().unwrap_or(path)) {
            return Next::Other;
        }
        (head_len, method, position(buf, path.as_bytes()))
    };
    let spans = spans.as_slice();
    let mut length: Option<usize> = None;
    let mut close = false;
    for &(ns, ne, vs, ve) in spans {
        let name = &buf[ns as usize..ne as usize];
        let value = &buf[vs as usize..ve as usize];
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = number(value, 10).and_then(|n| usize::try_from(n).ok()) else {
                return Next::Refused(ProxyError::BadRequest("invalid Content-Length".into()));
            };
            if length.is_some_and(|l| l != n) {
                return Next::Refused(ProxyError::BadRequest("conflicting Content-Length values".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Next::Other;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&c| c == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Next::Other;
                }
            }
        }
    }
    let body_len = length.unwrap_or(0);
    if body_len > MAX_FAST_BODY || buf.len() < head_len + body_len {
        return Next::Other;
    }
    let raw = buf.split_to(head_len).freeze();
    let body = buf.split_to(body_len).freeze();
    // Room for the forwarding headers the pipeline adds.
    let mut headers = HeaderMap::with_capacity(spans.len() + 8);
    for &(ns, ne, vs, ve) in spans {
        let raw_name = &raw[ns as usize..ne as usize];
        let name = field_name(raw_name);
        let value = HeaderValue::from_maybe_shared(raw.slice(vs as usize..ve as usize));
        // (hyper's server reads names, values and targets with the same parsers, and would
        // answer these with a bare 400.)
        let (Ok(name), Ok(value)) = (name, value) else {
            return Next::Refused(ProxyError::BadRequest("invalid header field".into()));
        };
        headers.append(name, value);
    }
    let Ok(uri) = Uri::from_maybe_shared(raw.slice(path.0 as usize..path.1 as usize)) else {
        return Next::Refused(ProxyError::BadRequest("invalid request target".into()));
    };
    let mut request = Request::new(ClientBody::Read(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Next::Fast(Parsed { request, close })
}

/// Why a fast connection stopped.
pub enum Ended<S> {
    /// Closed: by the client, an error, a timeout or shutdown.
    Closed,
    /// The general server should take the connection, with these bytes read already.
    HandOff(S, BytesMut),
}

/// Serves requests on `stream` until it closes or holds a request the fast path does not take.
///
/// `limits.keepalive` bounds the wait for each request head, the first included; `stop` turning true
/// closes an idle connection and the others after their current response.
pub async fn serve_connection<S, F, Fut, B>(
    mut stream: S,
    peer: SocketAddr,
    handler: &F,
    general: &impl Fn(&str) -> bool,
    refused: &impl Fn(StatusCode),
    limits: ConnLimits,
    stop: &mut watch::Receiver<bool>,
) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(SocketAddr, Request<ClientBody>) -> Fut,
    Fut: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes> + WireHead,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // One timer per connection, moved on lazily: it fires at its old deadline at the earliest,
    // and is set again when the real one is later.
    let (max_head, keepalive) = (limits.max_header_size, limits.keepalive);
    let mut timer = keepalive.map(|k| (k, Box::pin(tokio::time::sleep(k))));
    // Shutdown, waited for while idle: one wait for the connection's life (a new one per
    // request would register with the channel and leave it again each time).
    let mut stop_wait = stop.clone();
    let mut stopped = std::pin::pin!(stop_wait.changed());
    loop {
        let mut deadline = None;
        let parsed = loop {
            // (An empty buffer, the usual case after a response, holds no request to look at.)
            if !buf.is_empty() {
                match parse(&mut buf, max_head, general) {
                    Next::Fast(p) => break p,
                    Next::Other => return Ended::HandOff(stream, buf),
                    Next::Refused(err) => {
                        tracing::debug!(%peer, "request refused: {err}");
                        refused(err.status());
                        let id = super::headers::request_id_from(None);
                        let response = err.to_response(id.to_str().unwrap_or_default());
                        if write_response(&mut stream, &mut out, response, false, true)
                            .await
                            .is_ok()
                        {
                            linger(&mut stream).await;
                        }
                        return Ended::Closed;
                    }
                    Next::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK);
            }
            let idle = buf.is_empty();
            let read = match &mut timer {
                None => {
                    tokio::select! {
                        biased;
                        r = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf) => r,
                        _ = stopped.as_mut(), if idle => return Ended::Closed,
                    }
                }
                Some((within, sleep)) => {
                    let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + *within);
                    loop {
                        tokio::select! {
                            biased;
                            r = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf) => break r,
                            _ = stopped.as_mut(), if idle => return Ended::Closed,
                            _ = sleep.as_mut() => {
                                if tokio::time::Instant::now() >= until {
                                    tracing::debug!(%peer, "connection closed: no whole request head within {within:?}");
                                    return Ended::Closed;
                                }
                                sleep.as_mut().reset(until);
                            }
                        }
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        };
        let Parsed { request, close } = parsed;
        let head = request.method() == Method::HEAD;
        // While the answer is made, the connection is watched: bytes that come are kept for the
        // next request (up to a head's worth), and the client closing it drops the request,
        // and with it the upstream call.
        let response = {
            let mut answer = std::pin::pin!(handler(peer, request));
            loop {
                // (The buffer grows only when full: the request still holds a part of it, so
                // growing would copy it to a new allocation.)
                let room = buf.len() < max_head;
                if room && buf.capacity() == buf.len() {
                    buf.reserve(1024);
                }
                tokio::select! {
                    biased;
                    Ok(response) = answer.as_mut() => break response,
                    read = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf), if room => match read {
                        Ok(0) | Err(_) => {
                            tracing::debug!(%peer, "the client closed the connection before its answer");
                            return Ended::Closed;
                        }
                        Ok(_) => {}
                    },
                }
            }
        };
        let close = close || *stop.borrow();
        if write_response(&mut stream, &mut out, response, head, close)
            .await
            .is_err()
            || close
        {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
        // A large body grew the write buffer; an idle connection does not keep that much.
        if out.capacity() > 16 * 1024 {
            out = Vec::with_capacity(1024);
        }
    }
}

/// Closes our side of a connection whose client may still be sending (the rest of a refused
/// head, a body), then reads and drops what comes for a short while: closing a socket with
/// unread data resets the connection, and the client could lose the answer written just before.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    const LINGER: Duration = Duration::from_secs(2);
    const LINGER_BYTES: usize = 1024 * 1024;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < LINGER_BYTES {
            match tokio::io::AsyncReadExt::read(stream, &mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// Writes `response`; an error means the connection can not go on.
async fn write_response<S: AsyncWrite + Unpin, B: Body<Data = Bytes> + WireHead>(
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

/// A stream whose first reads return bytes already taken from it.
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(inner: S, prefix: Bytes) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tokio::net::TcpStream;

    const LIMITS: ConnLimits = ConnLimits {
        max_header_size: 8192,
        keepalive: None,
        send: None,
    };

    fn none(_: &str) -> bool {
        false
    }

    fn next(raw: &str) -> (Next, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let n = parse(&mut buf, 8192, &none);
        (n, buf)
    }

    fn fast(raw: &str) -> (Parsed, BytesMut) {
        match next(raw) {
            (Next::Fast(p), rest) => (p, rest),
            _ => panic!("not taken: {raw:?}"),
        }
    }

    fn is_other(raw: &str) -> bool {
        matches!(next(raw).0, Next::Other)
    }

    #[test]
    fn plain_requests_are_taken_with_their_body() {
        let (p, rest) = fast("GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next");
        let req = p.request;
        assert_eq!(
            (req.method(), req.uri().path(), req.uri().query()),
            (&Method::GET, "/a/b", Some("c=d"))
        );
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers().get_all("x-two").iter().count(), 2);
        assert!(req.body().is_end_stream());
        assert!(!p.close);
        assert_eq!(&rest[..], b"GET /next", "the next request stays in the buffer");

        let (p, rest) =
            fast("POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabcdef");
        assert!(p.close);
        match p.request.body() {
            ClientBody::Read(b) => assert_eq!(&b[..], b"abc"),
            ClientBody::Streamed(_) => panic!("streamed"),
        }
        assert_eq!(&rest[..], b"def");
    }

    #[test]
    fn everything_else_is_left_to_the_general_server() {
        assert!(matches!(next("GET / HTTP/1.1\r\nHost: x\r\n").0, Next::Partial));
        assert!(matches!(next("").0, Next::Partial));
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",
        ] {
            assert!(is_other(raw), "{raw:?}");
        }
        let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_FAST_BODY + 1);
        assert!(is_other(&big));
        // Paths the general server claims.
        let mut buf = BytesMut::from("GET /ws?token=1 HTTP/1.1\r\n\r\n");
        assert!(matches!(
            parse(&mut buf, 8192, &|p: &str| p == "/ws"),
            Next::Other
        ));
        // Nothing is taken from the buffer of a request left alone.
        let raw = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let (n, rest) = next(raw);
        assert!(matches!(n, Next::Other));
        assert_eq!(&rest[..], raw.as_bytes());
    }

    #[test]
    fn heads_no_server_can_serve_are_refused() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na",
            "GET /a<b> HTTP/1.1\r\n\r\n",
            "GET /a`b HTTP/1.1\r\n\r\n",
            // Versions neither server takes (HTTP/2 only with its preface).
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.2\r\n\r\n",
            "GET / HTTP/3\r\n\r\n",
        ] {
            assert!(
                matches!(next(raw).0, Next::Refused(ProxyError::BadRequest(_))),
                "{raw:?}"
            );
        }
        // A head over the limit, whole or not, or with too many fields.
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let long_10 = long.replace("HTTP/1.1", "HTTP/1.0");
        for raw in [&long, &long[..8500], &many, &long_10] {
            assert!(matches!(next(raw).0, Next::Refused(ProxyError::HeadersTooLarge)));
        }
    }

    impl<S> WireHead for StreamBody<S> {}

    async fn written<B: Body<Data = Bytes> + WireHead>(resp: Response<B>, head: bool, close: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut out = Vec::new();
        write_response(&mut server, &mut out, resp, head, close)
            .await
            .unwrap();
        drop(server);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
            .await
            .unwrap();
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn responses_are_framed_as_rfc_9112_says() {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
        resp.headers_mut().insert("x-a", HeaderValue::from_static("1"));
        let text = written(resp, false, false).await;
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n{}"), "{text}");

        // Unknown length: chunked, ended by the last chunk; close is announced.
        let frames = futures_util::stream::iter(
            ["ab", "", "cde"].map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
        );
        let mut resp = Response::new(StreamBody::new(frames));
        resp.headers_mut()
            .insert(header::DATE, HeaderValue::from_static("then"));
        let text = written(resp, false, true).await;
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: then\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );

        // HEAD: the length of the body that would be, and no body.
        let text = written(Response::new(Full::new(Bytes::from_static(b"abc"))), true, false).await;
        assert!(
            text.contains("content-length: 3\r\n") && text.ends_with("\r\n\r\n"),
            "{text}"
        );

        // 204 and 304: no body, and no length made up for them.
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = status;
            let text = written(resp, false, false).await;
            assert!(
                !text.contains("content-length") && !text.contains("chunked"),
                "{text}"
            );
            assert!(text.ends_with("\r\n\r\n"));
        }

        // A body that fails midway: the connection can not go on.
        let frames = futures_util::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(io::Error::other("cut")),
        ]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let resp = Response::new(StreamBody::new(frames));
        assert!(write_response(&mut server, &mut Vec::new(), resp, false, false)
            .await
            .is_err());
    }

    /// Shutdown closes a connection waiting for its next request, also after it served some.
    #[tokio::test]
    async fn an_idle_connection_closes_when_told_to_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let handler = |_: SocketAddr, _: Request<ClientBody>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            };
            serve_connection(server, peer, &handler, &none, &|_| {}, LIMITS, &mut rx).await
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            got.clear();
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            while !got.ends_with(b"\r\n\r\nok") {
                let mut more = [0u8; 1024];
                let n = tokio::io::AsyncReadExt::read(&mut client, &mut more)
                    .await
                    .unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&more[..n]);
            }
        }
        tx.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the idle connection ends")
            .unwrap();
        assert!(matches!(ended, Ended::Closed));
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest)
            .await
            .unwrap();
        assert!(rest.is_empty());
    }

    /// On a stream that buffers what is written (as TLS does when the socket is full), each
    /// answer is flushed, and so is a streamed body's data before the wait for more.
    #[tokio::test]
    async fn answers_are_flushed_through_a_buffering_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let (more_tx, more_rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let more_rx = std::sync::Mutex::new(Some(more_rx));
        let (_stop, mut rx) = watch::channel(false);
        tokio::spawn(async move {
            let handler = |_: SocketAddr, req: Request<ClientBody>| {
                let streamed = req.uri().path() == "/stream";
                let rx = streamed.then(|| more_rx.lock().unwrap().take()).flatten();
                async move {
                    let body: http_body_util::Either<Full<Bytes>, _> = match rx {
                        None => http_body_util::Either::Left(Full::new(Bytes::from_static(b"ok"))),
                        Some(rx) => http_body_util::Either::Right(StreamBody::new(
                            futures_util::stream::unfold(rx, |mut rx| async move {
                                Some((Ok::<_, io::Error>(Frame::data(rx.recv().await?)), rx))
                            }),
                        )),
                    };
                    Ok::<_, Infallible>(Response::new(body))
                }
            };
            let stream = tokio::io::BufWriter::new(server);
            serve_connection(stream, peer, &handler, &none, &|_| {}, LIMITS, &mut rx).await
        });
        let mut got = Vec::new();
        let mut read_until = async |client: &mut TcpStream, end: &[u8]| {
            while !got.ends_with(end) {
                let mut more = [0u8; 1024];
                let n = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read(client, &mut more),
                )
                .await
                .unwrap_or_else(|_| panic!("no {:?} within 5 s", String::from_utf8_lossy(end)))
                .unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&more[..n]);
            }
        };
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut client, b"\r\n\r\nok").await;
        client
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        more_tx.send(Bytes::from_static(b"first")).await.unwrap();
        read_until(&mut client, b"5\r\nfirst\r\n").await;
        more_tx.send(Bytes::from_static(b"second")).await.unwrap();
        read_until(&mut client, b"6\r\nsecond\r\n").await;
        drop(more_tx);
        read_until(&mut client, b"0\r\n\r\n").await;
    }

    #[tokio::test]
    async fn rewind_reads_the_taken_bytes_first() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Rewind::new(server, Bytes::from_static(b"hello"));
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut io, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"hello world");
        let body = ClientBody::Read(Bytes::from_static(b"x"));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "x");
    }
}
