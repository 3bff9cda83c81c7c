//! The HTTP/1.1 client for plain `http` endpoints. The task serving a client's request writes
//! the upstream request and reads the response head itself, on a pooled keep-alive connection:
//! no connection task and no channel between tasks, which is most of what a proxied request
//! costs in user space. The response body is handed on as it arrives and the connection goes
//! back to the pool when the body has been read to its end.
//!
//! Requests carry their whole body (small bodies are read before the call); streamed uploads,
//! `https` and `h2c` endpoints go through the general client instead.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Authority;
use http::{Method, Response, StatusCode, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::fields::{field_name, number, put_number, Span, Spans, WireFields, MAX_FIELDS};
use super::headers::Forwarding;
use super::tls::{UpstreamConnector, UpstreamStream};

/// The largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;
/// How often idle pooled connections are checked for age and for being closed by the peer.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Bytes read from an upstream at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Request bodies up to this size go in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// Why an upstream call failed.
#[derive(Debug)]
pub struct CallError {
    connect: bool,
    /// The deadline passed first.
    timeout: bool,
    message: String,
}

impl CallError {
    /// The connection could not be made; nothing reached the upstream.
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// The call's deadline passed before the response head arrived.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    fn io(what: &str, e: io::Error) -> Self {
        CallError {
            connect: false,
            timeout: false,
            message: format!("{what}: {e}"),
        }
    }

    pub(super) fn protocol(message: impl Into<String>) -> Self {
        CallError {
            connect: false,
            timeout: false,
            message: message.into(),
        }
    }

    pub(super) fn timeout() -> Self {
        CallError {
            connect: false,
            timeout: true,
            message: "no response before the deadline".into(),
        }
    }

    /// From the general client's error, with its whole chain of causes.
    pub fn from_hyper(e: &hyper_util::client::legacy::Error) -> Self {
        CallError {
            connect: e.is_connect(),
            timeout: false,
            message: super::pipeline::error_chain(e),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// Keep-alive connections to plain `http` endpoints, keyed by `host:port`; cheap to clone.
#[derive(Clone)]
pub struct H1Client {
    pool: Arc<Pool>,
    connector: UpstreamConnector,
}

type Map = HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>;

struct Pool {
    idle: Mutex<Map>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
}

struct Idle {
    conn: Box<Conn>,
    /// Sweeps survived while idle: the pool's clock, so that a request reads no time.
    sweeps: u32,
}

/// A connection taken from the pool (or just made) for one exchange; boxed, so that it moves
/// between the pool, the exchange and the response body as a pointer.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
    key: Arc<str>,
    pool: Weak<Pool>,
    /// Bounds each exchange; made with the connection's first deadline and then kept.
    timer: Option<Pin<Box<Sleep>>>,
    /// The request head being sent (and a small body with it), kept for the next one.
    out: Vec<u8>,
}

impl Conn {
    /// Back to the pool, when the exchange left it clean.
    fn release(mut self: Box<Self>) {
        if !self.buf.is_empty() {
            return; // bytes past the response: the upstream is not speaking HTTP/1.1 to us
        }
        if let Some(pool) = self.pool.upgrade() {
            self.buf.clear();
            if self.out.capacity() > 4 * 1024 {
                self.out = Vec::new();
            }
            pool.put(self);
        }
    }
}

impl Pool {
    fn take(&self, key: &str) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if is_quiet(&c.conn.io) {
                return Some(c.conn);
            }
        }
        None
    }

    fn put(&self, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = match idle.get_mut(&*conn.key) {
            Some(list) => list,
            None => idle.entry(conn.key.clone()).or_default(),
        };
        if list.len() < self.max_idle_per_host {
            list.push(Idle { conn, sweeps: 0 });
        }
    }

    /// Closes connections closed by their peer, and those idle for `idle_timeout` (give or
    /// take one sweep).
    fn sweep(&self) {
        let limit = (self.idle_timeout.as_millis() / SWEEP_EVERY.as_millis().max(1)).max(1) as u32;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain_mut(|c| {
                c.sweeps += 1;
                c.sweeps < limit && is_quiet(&c.conn.io)
            });
            !list.is_empty()
        });
    }
}

/// An idle connection must have nothing to read: end of stream means the peer closed it, and
/// bytes mean it is out of step. Costs no system call while the socket has had no event.
fn is_quiet(io: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// One request to send: its head is written as given, with `Content-Length` framing.
pub struct Outbound<'a> {
    pub method: &'a Method,
    /// Origin-form target: path and query.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    /// `host:port` of the endpoint.
    pub authority: &'a Authority,
    /// The fields the gateway sets, in place of the client's of the same names.
    pub forwarding: &'a Forwarding,
    /// Whoever writes the response takes its fields in wire form ([`WireFields`], in the
    /// body): the response's `HeaderMap` then holds none of the upstream's fields.
    pub wire: bool,
}

impl H1Client {
    pub fn new(connector: UpstreamConnector, idle_timeout: Duration, max_idle_per_host: usize) -> Self {
        let pool = Arc::new(Pool {
            idle: Mutex::new(Map::default()),
            max_idle_per_host,
            idle_timeout,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool);
            rt.spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    match weak.upgrade() {
                        Some(pool) => pool.sweep(),
                        None => return,
                    }
                }
            });
        }
        H1Client { pool, connector }
    }

    /// Sends `req` and reads the response head. A pooled connection that turns out to have
    /// been closed by the upstream before answering is replaced by a new one, once, when the
    /// request may be sent again (it was not written, or its method is idempotent).
    /// `until` bounds everything up to the response head (connecting included).
    pub async fn request(
        &self,
        req: Outbound<'_>,
        until: Option<Instant>,
    ) -> Result<Response<PooledBody>, CallError> {
        let key = req.authority.as_str();
        if let Some(mut conn) = self.pool.take(key) {
            encode_head(&req, &mut conn.out);
            match exchange(conn, &req, until).await {
                Ok(resp) => return Ok(resp),
                Err(Failed {
                    error,
                    sent,
                    answered,
                }) => {
                    let again = !answered && (!sent || super::pipeline::is_idempotent(req.method));
                    if !again {
                        return Err(error);
                    }
                    tracing::debug!("pooled connection to {key} was closed: {error}; using a new one");
                }
            }
        }
        let mut conn = match until {
            Some(t) => tokio::time::timeout_at(t, self.connect(req.authority))
                .await
                .map_err(|_| CallError::timeout())??,
            None => self.connect(req.authority).await?,
        };
        encode_head(&req, &mut conn.out);
        exchange(conn, &req, until).await.map_err(|f| f.error)
    }

    async fn connect(&self, authority: &Authority) -> Result<Box<Conn>, CallError> {
        use tower_service::Service;
        let endpoint = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| CallError::protocol(format!("endpoint {authority}: {e}")))?;
        let mut connector = self.connector.clone();
        let stream = connector.call(endpoint).await.map_err(|e| CallError {
            connect: true,
            timeout: false,
            message: format!("cannot connect: {e}"),
        })?;
        let UpstreamStream::Plain(io) = stream else {
            return Err(CallError::protocol("expected a plain TCP connection"));
        };
        Ok(Box::new(Conn {
            io: io.into_inner(),
            buf: BytesMut::with_capacity(READ_CHUNK),
            key: Arc::from(authority.as_str()),
            pool: Arc::downgrade(&self.pool),
            timer: None,
            out: Vec::new(),
        }))
    }
}

/// A failed exchange, and how far it got.
struct Failed {
    error: CallError,
    /// The request was written whole.
    sent: bool,
    /// Some of a response arrived.
    answered: bool,
}

/// Writes the request head (and a small body) into `out`.
fn encode_head(req: &Outbound<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(256 + req.headers.len() * 48 + req.body.len().min(INLINE_BODY));
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // The gateway's fields first, `Host` leading (RFC 9110 §7.2).
    req.forwarding.write_to(out);
    let mut declares_body = matches!(*req.method, Method::POST | Method::PUT | Method::PATCH);
    for (name, value) in req.headers {
        if name == header::CONTENT_LENGTH {
            declares_body = true;
            continue;
        }
        if name == header::TRANSFER_ENCODING || req.forwarding.replaces(name.as_str()) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() || declares_body {
        out.extend_from_slice(b"content-length: ");
        put_number(out, req.body.len() as u64, 10);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if req.body.len() <= INLINE_BODY {
        out.extend_from_slice(req.body);
    }
}

/// Runs `fut` until it completes (`Some`) or `until` passes (`None`), on the connection's
/// own timer. The timer is moved on lazily: deadlines mostly grow from one exchange to the
/// next, so it stays where it is, and when it fires before the current deadline it is set
/// again. A request thus costs no timer registration.
async fn before<F: Future>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    until: Option<Instant>,
    fut: F,
) -> Option<F::Output> {
    let Some(until) = until else {
        return Some(fut.await);
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
    if timer.deadline() > until {
        timer.as_mut().reset(until);
    }
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= until {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(until);
        }
        Poll::Pending
    })
    .await
}

/// Writes the request on `conn` and reads the response head, before `until`.
async fn exchange(
    mut conn: Box<Conn>,
    req: &Outbound<'_>,
    until: Option<Instant>,
) -> Result<Response<PooledBody>, Failed> {
    let body = req.body;
    let not_sent = |error| Failed {
        error,
        sent: false,
        answered: false,
    };
    let timed_out = |sent| Failed {
        error: CallError::timeout(),
        sent,
        answered: true, // not to be sent again: the time is up
    };
    before(&mut conn.timer, until, conn.io.write_all(&conn.out))
        .await
        .ok_or_else(|| timed_out(false))?
        .map_err(|e| not_sent(CallError::io("writing the request", e)))?;
    if body.len() > INLINE_BODY {
        before(&mut conn.timer, until, conn.io.write_all(body))
            .await
            .ok_or_else(|| timed_out(false))?
            .map_err(|e| not_sent(CallError::io("writing the request body", e)))?;
    }
    let failed = |error, answered| Failed {
        error,
        sent: true,
        answered,
    };
    loop {
        let parsed = match conn.buf.is_empty() {
            true => None,
            false => parse_head(&mut conn.buf, req.method, req.wire).map_err(|e| failed(e, true))?,
        };
        let Some(head) = parsed else {
            if conn.buf.len() >= MAX_HEAD {
                return Err(failed(
                    CallError::protocol("upstream response head is too large"),
                    true,
                ));
            }
            let answered = !conn.buf.is_empty();
            conn.buf.reserve(READ_CHUNK);
            let read = before(
                &mut conn.timer,
                until,
                tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.buf),
            )
            .await
            .ok_or_else(|| timed_out(true))?;
            match read {
                Ok(0) => {
                    return Err(failed(
                        CallError::protocol("upstream closed the connection before a response"),
                        answered,
                    ))
                }
                Ok(_) => continue,
                Err(e) => return Err(failed(CallError::io("reading the response", e), answered)),
            }
        };
        if head.interim {
            continue; // 100 Continue and other interim answers: the final one follows
        }
        return Ok(head.into_response(conn));
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(super) struct Head {
    interim: bool,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// The fields in wire form, when asked for and possible (`headers` is empty then).
    pub(super) wire: Option<WireFields>,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn into_response(self, mut conn: Box<Conn>) -> Response<PooledBody> {
        let body = match self.framing {
            Framing::Empty => {
                if self.keep_alive {
                    conn.release();
                }
                PooledBody::done()
            }
            Framing::Length(n) if (conn.buf.len() as u64) >= n => {
                let data = conn.buf.split_to(n as usize).freeze();
                if self.keep_alive {
                    conn.release();
                }
                PooledBody::whole(data)
            }
            framing => PooledBody {
                state: match framing {
                    Framing::Length(n) => State::Length(n),
                    Framing::Chunked => State::Chunked(Chunk::Size),
                    _ => State::UntilClose,
                },
                conn: Some(conn),
                keep_alive: self.keep_alive,
                data: None,
                wire: None,
            },
        };
        let mut resp = Response::new(PooledBody {
            wire: self.wire,
            ..body
        });
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// What a response field is to the gateway.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Length,
    Coding,
    Connection,
    /// Another hop-by-hop field: not passed on.
    HopByHop,
    /// The gateway sets its own.
    RequestId,
    Date,
    Other,
}

fn role(name: &[u8]) -> Role {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is(b"te") => Role::HopByHop,
        4 if is(b"date") => Role::Date,
        7 if is(b"upgrade") || is(b"trailer") => Role::HopByHop,
        10 if is(b"connection") => Role::Connection,
        10 if is(b"keep-alive") => Role::HopByHop,
        12 if is(b"x-request-id") => Role::RequestId,
        14 if is(b"content-length") => Role::Length,
        17 if is(b"transfer-encoding") => Role::Coding,
        18 if is(b"proxy-authenticate") => Role::HopByHop,
        19 if is(b"proxy-authorization") => Role::HopByHop,
        _ => Role::Other,
    }
}

/// The response head at the start of `buf`, taken off it if it is all there. Header values
/// share the head's bytes instead of being copied. With `wire`, the fields to pass on stay in
/// wire form ([`WireFields`]: no hop-by-hop fields, no `X-Request-ID`) when they can, and the
/// head's `HeaderMap` is left empty.
pub(super) fn parse_head(buf: &mut BytesMut, method: &Method, wire: bool) -> Result<Option<Head>, CallError> {
    let mut spans = Spans::new();
    let (len, code, version) = {
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(CallError::protocol(format!("invalid upstream response: {e}"))),
        };
        spans.record(buf, resp.headers);
        (len, resp.code.unwrap_or(0), resp.version)
    };
    let raw = buf.split_to(len).freeze();
    let spans = spans.as_slice();
    let status = StatusCode::from_u16(code)
        .map_err(|_| CallError::protocol(format!("invalid upstream status {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(CallError::protocol("upstream switched protocols unasked"));
    }
    let interim = status.is_informational();
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut close = version != Some(1);
    // `Connection` names other fields to drop (left to `strip_hop_by_hop` on a `HeaderMap`).
    let mut names_fields = false;
    let mut has_date = false;
    let mut roles = [Role::Other; MAX_FIELDS];
    for (&(ns, ne, vs, ve), slot) in spans.iter().zip(roles.iter_mut()) {
        let value = &raw[vs as usize..ve as usize];
        *slot = role(&raw[ns as usize..ne as usize]);
        match *slot {
            Role::Length => {
                let n = number(value.trim_ascii(), 10)
                    .ok_or_else(|| CallError::protocol("invalid upstream Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(CallError::protocol("conflicting upstream Content-Length"));
                }
                length = Some(n);
            }
            Role::Coding => {
                // Only the last coding decides whether the body is chunked.
                chunked = false;
                for coding in value.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
                    if !coding.is_empty() {
                        chunked = coding.eq_ignore_ascii_case(b"chunked");
                        other_coding |= !chunked;
                    }
                }
            }
            Role::Connection => {
                for token in value.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                        names_fields = true;
                    }
                }
            }
            Role::Date => has_date = true,
            Role::HopByHop | Role::RequestId | Role::Other => {}
        }
    }
    let bodiless = interim
        || *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // `Transfer-Encoding` is hop-by-hop: a body in any coding but chunked would reach the
    // client still coded, with nothing saying so.
    if other_coding && !bodiless {
        return Err(CallError::protocol(
            "upstream Transfer-Encoding other than chunked",
        ));
    }
    // No `Content-Length` on a 204 (RFC 9110 §8.6): a client that took it for a body's
    // length would read the next response as this one's body.
    let keep_length = !chunked && status != StatusCode::NO_CONTENT;
    let framing = if bodiless {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::UntilClose
    };
    let keep_alive = !close && framing != Framing::UntilClose;
    let wire = match wire && !names_fields {
        false => None,
        true => WireFields::of(&raw, spans, |i| match roles[i] {
            Role::Other | Role::Date => true,
            Role::Length => keep_length,
            Role::Coding | Role::Connection | Role::HopByHop | Role::RequestId => false,
        }),
    };
    let headers = match &wire {
        Some(_) => HeaderMap::new(),
        None => {
            let mut headers = header_map(&raw, spans)?;
            if !keep_length {
                headers.remove(header::CONTENT_LENGTH);
            }
            headers
        }
    };
    let wire = wire.map(|mut w| {
        w.has_length = length.is_some() && keep_length;
        w.has_date = has_date;
        w
    });
    Ok(Some(Head {
        interim,
        status,
        headers,
        wire,
        framing,
        keep_alive,
    }))
}

/// The fields of `raw` at `spans`, in a `HeaderMap`.
fn header_map(raw: &Bytes, spans: &[Span]) -> Result<HeaderMap, CallError> {
    // Room for the headers the gateway adds (request id, rate limit, CORS).
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    for &(ns, ne, vs, ve) in spans {
        let raw_name = &raw[ns as usize..ne as usize];
        let name = field_name(raw_name).map_err(|_| {
            CallError::protocol(format!(
                "invalid upstream header name {:?}",
                String::from_utf8_lossy(raw_name)
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(raw.slice(vs as usize..ve as usize))
            .map_err(|_| CallError::protocol(format!("invalid value of upstream header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The body of a response read by [`H1Client`]: whole already, or still arriving on its
/// connection, which returns to the pool at the body's end.
pub struct PooledBody {
    state: State,
    conn: Option<Box<Conn>>,
    keep_alive: bool,
    /// A body that arrived with its head.
    data: Option<Bytes>,
    /// The response's fields in wire form, when it has them so (see [`Outbound::wire`]).
    wire: Option<WireFields>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum State {
    Done,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
}

impl PooledBody {
    fn done() -> Self {
        PooledBody {
            state: State::Done,
            conn: None,
            keep_alive: false,
            data: None,
            wire: None,
        }
    }

    /// The response's fields in wire form, if it has them so.
    pub fn wire_fields(&self) -> Option<&WireFields> {
        self.wire.as_ref()
    }

    /// The response's fields in wire form, if it has them so, to change.
    pub fn wire_fields_mut(&mut self) -> Option<&mut WireFields> {
        self.wire.as_mut()
    }

    /// Takes the response's fields in wire form, if it has them so.
    pub fn take_wire_fields(&mut self) -> Option<WireFields> {
        self.wire.take()
    }

    fn whole(data: Bytes) -> Self {
        PooledBody {
            data: (!data.is_empty()).then_some(data),
            ..Self::done()
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                conn.release();
            }
        }
    }

    /// The next piece of the body from what is buffered, or `None` when more must be read.
    fn next_from_buffer(&mut self) -> Result<Option<Option<Bytes>>, CallError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Some(None));
        };
        match self.state.decode(&mut conn.buf)? {
            Step::More => Ok(None),
            Step::Data(data) => {
                if matches!(self.state, State::Length(0)) {
                    self.finish();
                }
                Ok(Some(Some(data)))
            }
            Step::End => {
                self.finish();
                Ok(Some(None))
            }
        }
    }
}

/// What [`State::decode`] found at the front of the buffer.
#[derive(Debug)]
pub(super) enum Step {
    /// More must be read.
    More,
    Data(Bytes),
    /// The body's end (the trailers, if any, taken too).
    End,
}

impl State {
    /// Takes the next piece of a body framed as `self` off the front of `buf`.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, CallError> {
        loop {
            match *self {
                State::Done | State::Length(0) => return Ok(Step::End),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    *self = State::Length(n - take as u64);
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::Chunked(Chunk::Size) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    // Spaces may come before an extension's `;`, none before the size.
                    let size = number(digits.trim_ascii_end(), 16)
                        .ok_or_else(|| CallError::protocol("invalid chunk size from upstream"))?;
                    *self = State::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                State::Chunked(Chunk::Data(n)) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    let left = n - take as u64;
                    *self = State::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::Chunked(Chunk::DataEnd) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if !line.is_empty() {
                        return Err(CallError::protocol("chunk data longer than its size"));
                    }
                    *self = State::Chunked(Chunk::Size);
                }
                State::Chunked(Chunk::Trailers) => {
                    // Trailers are not passed on.
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        *self = State::Done;
                        return Ok(Step::End);
                    }
                }
            }
        }
    }
}

/// A CRLF-terminated line taken off the front of `buf` (without its CRLF).
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, CallError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(CallError::protocol("chunk line too long from upstream")),
        None => Ok(None),
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = CallError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CallError>>> {
        let this = &mut *self;
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            match this.next_from_buffer() {
                Err(e) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(Some(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Some(None)) => return Poll::Ready(None),
                Ok(None) => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if conn.buf.capacity() - conn.buf.len() < 1024 {
                conn.buf.reserve(READ_CHUNK);
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            ));
            match read {
                Ok(0) => {
                    let until_close = matches!(this.state, State::UntilClose);
                    this.state = State::Done;
                    this.conn = None;
                    if until_close {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(CallError::protocol(
                        "upstream closed the connection in the middle of the body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(Some(Err(CallError::io("reading the response body", e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.state) {
            (Some(d), _) => SizeHint::with_exact(d.len() as u64),
            (None, State::Done) => SizeHint::with_exact(0),
            (None, State::Length(n)) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// A response body from an upstream: through the general client, or through [`H1Client`].
/// It fails once the upstream has sent nothing of it for `server.timeouts.read_timeout`.
pub struct UpstreamBody {
    kind: BodyKind,
    stall: super::stall::StallTimer,
}

enum BodyKind {
    Hyper(Incoming),
    Pooled(PooledBody),
}

impl UpstreamBody {
    /// `read_timeout`: the longest the upstream may send nothing, `None` for no limit.
    pub fn hyper(body: Incoming, read_timeout: Option<Duration>) -> Self {
        UpstreamBody {
            kind: BodyKind::Hyper(body),
            stall: super::stall::StallTimer::new(read_timeout),
        }
    }

    /// As [`UpstreamBody::hyper`], for a body read by [`H1Client`].
    pub fn pooled(body: PooledBody, read_timeout: Option<Duration>) -> Self {
        UpstreamBody {
            kind: BodyKind::Pooled(body),
            stall: super::stall::StallTimer::new(read_timeout),
        }
    }

    /// The body read by [`H1Client`], if it is one.
    pub fn pooled_mut(&mut self) -> Option<&mut PooledBody> {
        match &mut self.kind {
            BodyKind::Pooled(b) => Some(b),
            BodyKind::Hyper(_) => None,
        }
    }
}

impl super::h1::WireHead for UpstreamBody {
    fn wire_fields(&self) -> Option<&WireFields> {
        match &self.kind {
            BodyKind::Pooled(b) => b.wire_fields(),
            BodyKind::Hyper(_) => None,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            BodyKind::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            BodyKind::Pooled(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        };
        match this.stall.expired(cx, polled.is_pending()) {
            Some(limit) => Poll::Ready(Some(Err(
                format!("the upstream sent nothing for {limit:?}").into()
            ))),
            None => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Hyper(b) => b.is_end_stream(),
            BodyKind::Pooled(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Hyper(b) => b.size_hint(),
            BodyKind::Pooled(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn head_in(raw: &str, wire: bool) -> Head {
        parse_head(&mut BytesMut::from(raw), &Method::GET, wire)
            .unwrap()
            .unwrap()
    }

    /// The head of `raw`, read alike with and without wire fields.
    fn head(raw: &str) -> Head {
        let (a, b) = (head_in(raw, false), head_in(raw, true));
        assert_eq!(
            (a.framing, a.keep_alive, a.interim, a.status),
            (b.framing, b.keep_alive, b.interim, b.status),
            "{raw:?}"
        );
        a
    }

    fn wire_text(h: &Head) -> String {
        let mut out = Vec::new();
        h.wire.as_ref().expect("wire fields").write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// `role` matches names by length for speed; it must know every hop-by-hop name the
    /// header module strips, in any case.
    #[test]
    fn roles_know_every_hop_by_hop_field() {
        for name in &super::super::headers::HOP_BY_HOP {
            for form in [name.as_str().to_string(), name.as_str().to_ascii_uppercase()] {
                let r = role(form.as_bytes());
                assert!(
                    matches!(r, Role::HopByHop | Role::Connection | Role::Coding),
                    "{form}"
                );
            }
        }
        assert!(role(b"Server") == Role::Other && role(b"X-TE") == Role::Other);
    }

    #[test]
    fn wire_fields_leave_out_what_the_gateway_drops_or_sets() {
        let h = head_in(
            "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
             X-Request-ID: theirs\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\nDate: then\r\n\r\nhi",
            true,
        );
        assert!(h.headers.is_empty());
        assert_eq!(
            wire_text(&h),
            "Server: up\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\nDate: then\r\n"
        );
        let w = h.wire.as_ref().unwrap();
        assert!(w.has_length && w.has_date);

        // Chunked: no length passed on, whatever the upstream said.
        let h = head_in(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-B: 1\r\n\r\n",
            true,
        );
        assert_eq!(wire_text(&h), "X-B: 1\r\n");
        assert!(!h.wire.as_ref().unwrap().has_length && !h.wire.as_ref().unwrap().has_date);

        // A 204 has no body, so a length on it is dropped: a client that read one would take
        // the next response for this one's body.
        let h = head_in(
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-C: 1\r\n\r\n",
            true,
        );
        assert_eq!(wire_text(&h), "X-C: 1\r\n");
        assert!(!h.wire.as_ref().unwrap().has_length);
        let h = head_in("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false);
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        // A 304's length is the one the full response would have, and stays.
        let h = head_in("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(wire_text(&h), "Content-Length: 5\r\n");

        // `Connection` naming fields: a HeaderMap, for the hop-by-hop strip to read.
        let h = head_in(
            "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
            true,
        );
        assert!(h.wire.is_none());
        assert_eq!(h.headers["x-hop"], "1");
        // Without wire fields asked for: all of them in the map, as before.
        let h = head_in(
            "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(h.wire.is_none());
        assert_eq!(h.headers["server"], "up");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").framing,
            Framing::Empty
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.headers.get(header::CONTENT_LENGTH).is_none());
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.keep_alive);
        // Without a body, a coding the gateway does not undo does not matter.
        let h = head("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(head("HTTP/1.1 304 Not Modified\r\n\r\n").framing, Framing::Empty);
        let h = parse_head(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            &Method::HEAD,
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.keep_alive);
        assert!(head("HTTP/1.1 100 Continue\r\n\r\n").interim);
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\ncontent-length: 1\r\n\r\n").keep_alive
        );
        assert!(parse_head(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\ncontent-le"),
            &Method::GET,
            false
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn a_whole_head_is_taken_off_the_buffer_and_a_partial_one_left() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-Served-By: a b\r\n\r\nhi");
        let h = parse_head(&mut buf, &Method::GET, false).unwrap().unwrap();
        assert_eq!(&buf[..], b"hi");
        assert_eq!(h.headers["x-served-by"], "a b");
        assert_eq!(h.headers[header::CONTENT_LENGTH], "2");
        let mut part = BytesMut::from("HTTP/1.1 200 OK\r\nx-a: b\r\n");
        assert!(parse_head(&mut part, &Method::GET, false).unwrap().is_none());
        assert_eq!(part.len(), 25);
    }

    #[test]
    fn bad_heads_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: five\r\n\r\n",
            // A sign is no digit (Rust's integer parser takes one), and a length must fit.
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "SMTP ready\r\n\r\n",
            // Codings the gateway does not undo.
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\ncontent-length: 3\r\n\r\n",
        ] {
            for wire in [false, true] {
                assert!(
                    parse_head(&mut BytesMut::from(raw), &Method::GET, wire).is_err(),
                    "{raw:?}"
                );
            }
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// A chunked body split at awkward places comes out whole, and its connection goes back
    /// to the pool only after the last chunk and the trailers.
    #[tokio::test]
    async fn chunked_bodies_are_decoded_across_reads() {
        let (ours, mut theirs) = pair().await;
        let pool = Arc::new(Pool {
            idle: Mutex::new(Map::default()),
            max_idle_per_host: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let conn = Conn {
            io: ours,
            buf: BytesMut::new(),
            key: Arc::from("up:80"),
            pool: Arc::downgrade(&pool),
            timer: None,
            out: Vec::new(),
        };
        let mut body = PooledBody {
            state: State::Chunked(Chunk::Size),
            conn: Some(Box::new(conn)),
            keep_alive: true,
            data: None,
            wire: None,
        };
        let writer = tokio::spawn(async move {
            for piece in [
                "5\r\nhel",
                "lo\r\n6;ext=1\r",
                "\n world\r",
                "\n0\r\nx-trailer: 1\r\n",
                "\r\n",
            ] {
                theirs.write_all(piece.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            theirs
        });
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, b"hello world");
        let _theirs = writer.await.unwrap();
        assert_eq!(pool.idle.lock().unwrap().get("up:80").map(Vec::len), Some(1));
    }

    /// Chunk sizes are hex digits only, with extensions and spaces after them allowed.
    #[test]
    fn chunk_sizes_are_hex_digits_only() {
        for (line, want) in [
            ("a\r\n", Some(10)),
            ("A ;ext=1\r\n", Some(10)),
            ("ff\r\n", Some(255)),
            ("+a\r\n", None),
            ("-1\r\n", None),
            ("0x1\r\n", None),
            (" a\r\n", None),
            ("\r\n", None),
            ("1 2\r\n", None),
            ("10000000000000000\r\n", None),
        ] {
            let mut state = State::Chunked(Chunk::Size);
            let mut buf = BytesMut::from(line);
            let got = match state.decode(&mut buf) {
                Ok(Step::More) => match state {
                    State::Chunked(Chunk::Data(n)) => Some(n),
                    other => panic!("{line:?}: {other:?}"),
                },
                Ok(other) => panic!("{line:?}: {other:?}"),
                Err(_) => None,
            };
            assert_eq!(got, want, "{line:?}");
        }
    }

    /// The connection's one timer serves deadlines later and earlier than the one it was
    /// made with.
    #[tokio::test]
    async fn the_connection_timer_follows_each_deadline() {
        let mut timer = None;
        let pending = std::future::pending::<()>;
        let t0 = Instant::now();
        assert!(
            before(&mut timer, Some(t0 + Duration::from_millis(50)), pending())
                .await
                .is_none()
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));

        // A later deadline: the timer set for the old one has fired and is moved on.
        let t1 = Instant::now();
        let work = tokio::time::sleep(Duration::from_millis(100));
        assert!(before(&mut timer, Some(t1 + Duration::from_millis(300)), work)
            .await
            .is_some());
        let t2 = Instant::now();
        assert!(
            before(&mut timer, Some(t2 + Duration::from_millis(200)), pending())
                .await
                .is_none()
        );
        assert!(t2.elapsed() >= Duration::from_millis(200));

        // An earlier deadline than the timer's: it is moved back at once.
        let far = Instant::now() + Duration::from_secs(30);
        assert!(before(&mut timer, Some(far), async {}).await.is_some());
        let t3 = Instant::now();
        assert!(
            before(&mut timer, Some(t3 + Duration::from_millis(40)), pending())
                .await
                .is_none()
        );
        assert!(t3.elapsed() < Duration::from_secs(5), "fired at the new deadline");
        // No deadline: no timer involved.
        assert_eq!(before(&mut timer, None, async { 7 }).await, Some(7));
    }

    /// A connection whose peer has closed it is not handed out again.
    #[tokio::test]
    async fn closed_idle_connections_are_not_reused() {
        let (ours, theirs) = pair().await;
        let pool = Arc::new(Pool {
            idle: Mutex::new(Map::default()),
            max_idle_per_host: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let conn = |io| Conn {
            io,
            buf: BytesMut::new(),
            key: Arc::from("up:80"),
            pool: Arc::downgrade(&pool),
            timer: None,
            out: Vec::new(),
        };
        pool.put(Box::new(conn(ours)));
        drop(theirs);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take("up:80").is_none());
        let (ours, _theirs) = pair().await;
        pool.put(Box::new(conn(ours)));
        assert!(pool.take("up:80").is_some());
    }
}
