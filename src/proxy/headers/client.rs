//! The client's fields: the few the pipeline reads, read in one pass (which also marks the
//! names that may not go upstream as sent, see `owned`); whether its `Host` names one host.

use http::header::{HeaderMap, HeaderValue};

use super::owned;

/// The client's fields the pipeline reads, found in one pass over the request's fields rather
/// than by a hashed lookup each (the first value of each).
#[derive(Default)]
pub struct ClientFields {
    pub host: Option<HeaderValue>,
    /// How many `Host` fields there are (counted up to 2).
    pub hosts: u8,
    pub origin: Option<HeaderValue>,
    pub content_length: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
    pub traceparent: Option<HeaderValue>,
    /// The marks of the other names ([`owned::marks`]): 0 when none of the client's fields
    /// needs a second look before the request goes upstream.
    pub marks: u8,
}

impl ClientFields {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut f = ClientFields::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => {
                    f.hosts = f.hosts.saturating_add(1).min(2);
                    &mut f.host
                }
                "origin" => &mut f.origin,
                "content-length" => &mut f.content_length,
                "x-request-id" => &mut f.request_id,
                "x-forwarded-for" => &mut f.forwarded_for,
                "traceparent" => &mut f.traceparent,
                other => {
                    f.marks |= owned::marks(other);
                    continue;
                }
            };
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        f
    }

    /// Why the request's `Host` fields name no single host (RFC 9112 §3.2): an HTTP/1.1
    /// request without one, more than one, or one that is not `host[:port]`. Such a request
    /// gets 400: a proxy in front that read them another way would otherwise pick other routes
    /// than the gateway.
    pub fn host_problem(&self, version: http::Version) -> Option<&'static str> {
        match (&self.host, self.hosts) {
            (_, 2..) => Some("more than one Host field"),
            (None, _) if version == http::Version::HTTP_11 => Some("an HTTP/1.1 request needs a Host field"),
            (Some(h), _) if !is_host(h.as_bytes()) => Some("the Host field is not host[:port]"),
            _ => None,
        }
    }
}

/// RFC 9110 §7.2 `uri-host [ ":" port ]`: a registered name or IPv4 address (unreserved
/// characters, sub-delimiters and escapes) or a bracketed IP literal, then an optional port.
/// Empty is allowed, as for a target without an authority. One pass, a table lookup a byte.
pub fn is_host(v: &[u8]) -> bool {
    let rest = match v.split_first() {
        Some((b'[', literal)) => {
            let Some(end) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            if end == 0 || !literal[..end].iter().all(|&b| b == b':' || HOST_BYTE[b as usize]) {
                return false;
            }
            &literal[end + 1..]
        }
        _ => match v.iter().position(|&b| !HOST_BYTE[b as usize]) {
            None => return true,
            Some(i) => &v[i..],
        },
    };
    match rest.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// The bytes of a registered name: unreserved, sub-delims and `%` (RFC 3986 §3.2.2).
const HOST_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        i += 1;
    }
    table
};
