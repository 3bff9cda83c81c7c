//! The fast path's request parser: the request at the front of the buffer, when it is a
//! plain HTTP/1.1 request with its whole (small) body; else what to do with the bytes.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, Request, Uri, Version};

use crate::proxy::body::ClientBody;
use crate::proxy::error::ProxyError;
use crate::proxy::fields::{field_name, number, position, Spans, MAX_FIELDS};

/// The largest request body read on the fast path; larger ones are streamed by the general
/// server.
pub(super) const MAX_FAST_BODY: usize = 64 * 1024;

/// A request head the fast path serves, with its body.
pub(in crate::proxy) struct Parsed {
    pub(in crate::proxy) request: Request<ClientBody>,
    /// The client asked for the connection to close after the response.
    pub(in crate::proxy) close: bool,
}

/// What the bytes at the front of the buffer are. (`Fast` is large, and moves once: boxing it
/// would cost an allocation per request.)
#[allow(clippy::large_enum_variant)]
pub(in crate::proxy) enum Next {
    /// Not a whole request yet.
    Partial,
    /// For the general server.
    Other,
    /// A head no server can serve: answered with the JSON error, then the connection closes.
    Refused(ProxyError),
    Fast(Parsed),
}

/// Reads the request at the front of `buf` when the fast path can serve it, taking its bytes.
pub(in crate::proxy) fn parse(buf: &mut BytesMut, max_head: usize, general: &impl Fn(&str) -> bool) -> Next {
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
