//! The response head the own client reads: status, framing (RFC 9112 §6.3), keep-alive, and
//! the fields, kept in wire form when they can be.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{Framing, PooledBody};
use super::pool::UpstreamConn;
use crate::proxy::error::CallError;
use crate::proxy::fields::{field_name, number, Span, Spans, WireFields, MAX_FIELDS};

/// A response head, read.
pub(in crate::proxy) struct Head {
    /// 1xx: the final head follows.
    pub(super) interim: bool,
    pub(in crate::proxy) status: StatusCode,
    pub(in crate::proxy) headers: HeaderMap,
    /// The fields in wire form, when asked for and possible (`headers` is empty then).
    pub(in crate::proxy) wire: Option<WireFields>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

impl Head {
    /// The response, whose body is read from `conn` (which goes back to the pool after it).
    pub(super) fn into_response(self, conn: Box<UpstreamConn>) -> Response<PooledBody> {
        let body = PooledBody::framed(self.framing, self.keep_alive, conn, self.wire);
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// What a response field is to the gateway.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Role {
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

pub(super) fn role(name: &[u8]) -> Role {
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

/// Why a response that switches protocols is refused: no request the gateway forwards asks
/// for it (upgrades are tunnelled apart), and the bytes after it are no HTTP/1.1.
pub(in crate::proxy) fn switched_unasked() -> CallError {
    CallError::protocol("upstream switched protocols unasked")
}

/// The transfer codings of a response (RFC 9112 §6.1), read field line by field line: the one
/// rule by which both clients frame what they pass on.
#[derive(Clone, Copy, Default)]
pub(in crate::proxy) struct Codings {
    /// The last coding is `chunked`: the body is delimited by it, and a `Content-Length`
    /// beside it is not passed on (a client that believed it would read the rest of the body
    /// as a second response).
    pub(in crate::proxy) chunked: bool,
    /// Some coding other than `chunked` was named.
    pub(in crate::proxy) other: bool,
}

impl Codings {
    /// Adds the codings of one `Transfer-Encoding` field line.
    pub(in crate::proxy) fn add(&mut self, value: &[u8]) {
        // Only the last coding decides whether the body is chunked.
        self.chunked = false;
        for coding in value.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
            if !coding.is_empty() {
                self.chunked = coding.eq_ignore_ascii_case(b"chunked");
                self.other |= !self.chunked;
            }
        }
    }

    /// `Transfer-Encoding` is hop-by-hop: a body in any coding but chunked would reach the
    /// client still coded, with nothing saying so. (`bodiless`: the response has no body.)
    pub(in crate::proxy) fn check(&self, bodiless: bool) -> Result<(), CallError> {
        if self.other && !bodiless {
            return Err(CallError::protocol(
                "upstream Transfer-Encoding other than chunked",
            ));
        }
        Ok(())
    }
}

/// The response head at the start of `buf`, taken off it if it is all there. Header values
/// share the head's bytes instead of being copied. With `wire`, the fields to pass on stay in
/// wire form ([`WireFields`]: no hop-by-hop fields, no `X-Request-ID`) when they can, and the
/// head's `HeaderMap` is left empty.
pub(in crate::proxy) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    wire: bool,
) -> Result<Option<Head>, CallError> {
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
        return Err(switched_unasked());
    }
    let interim = status.is_informational();
    let mut length: Option<u64> = None;
    let mut codings = Codings::default();
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
            Role::Coding => codings.add(value),
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
    codings.check(bodiless)?;
    let chunked = codings.chunked;
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
