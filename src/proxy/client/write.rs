//! The request the own client sends: its head (and a small body with it) written into the
//! connection's buffer, with `Content-Length` framing and the gateway's fields first.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::Method;

use crate::proxy::fields::put_number;
use crate::proxy::headers::Forwarding;

/// Request bodies up to this size go in the same write as the head.
pub(super) const INLINE_BODY: usize = 16 * 1024;

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
    /// Whoever writes the response takes its fields in wire form ([`WireFields`](crate::proxy::fields::WireFields), in
    /// the body): the response's `HeaderMap` then holds none of the upstream's fields.
    pub wire: bool,
}

/// Writes the request head (and a small body) into `out`.
pub(super) fn encode_head(req: &Outbound<'_>, out: &mut Vec<u8>) {
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
