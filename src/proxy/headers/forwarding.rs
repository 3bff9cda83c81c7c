//! The fields the gateway sets on a request going upstream (`Host`, `X-Forwarded-*`,
//! `X-Request-ID`, `traceparent`), worked out once per request and written per try.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::client::ClientFields;
use super::ids::{traceparent_text, TRACEPARENT, X_REQUEST_ID};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The fields the gateway sets on a request going upstream, worked out once: `Host` (the
/// endpoint's), `X-Forwarded-For` / `-Proto` / `-Host`, `X-Request-ID` and, unless distributed
/// tracing writes its own, `traceparent`. They replace the client's fields of the same names.
/// The general client gets them in the request's `HeaderMap` ([`Forwarding::apply`]); the
/// HTTP/1.1 client writes them into the head ahead of the client's fields
/// ([`Forwarding::write_to`]), and builds no header values for them.
pub struct Forwarding {
    /// The client's first `X-Forwarded-For`, which the peer is appended to.
    prior_for: Option<HeaderValue>,
    peer: std::net::IpAddr,
    proto: &'static str,
    forwarded_host: Option<HeaderValue>,
    request_id: HeaderValue,
    /// The client's `traceparent`, continued by each try's own.
    client_trace: Option<HeaderValue>,
    /// Per try: the endpoint's `Host`.
    pub host: Option<HeaderValue>,
    /// Per try: the hop's `traceparent`; `None` when tracing put its own in the map.
    pub traceparent: Option<[u8; 55]>,
}

impl Forwarding {
    /// For a request with the client's fields `client`.
    pub fn new(
        client: &ClientFields,
        peer: std::net::IpAddr,
        proto: &'static str,
        forwarded_host: Option<HeaderValue>,
        request_id: HeaderValue,
    ) -> Self {
        let client_trace = client.traceparent.clone();
        Forwarding {
            prior_for: client
                .forwarded_for
                .clone()
                .filter(|v| !v.as_bytes().trim_ascii().is_empty()),
            peer,
            proto,
            forwarded_host,
            request_id,
            client_trace,
            host: None,
            traceparent: None,
        }
    }

    /// A new `traceparent` for the next try, continuing the client's trace.
    pub fn next_traceparent(&mut self) {
        self.traceparent = Some(traceparent_text(self.client_trace.as_ref(), false));
    }

    /// Whether a client field named `name` gives way to one of these.
    pub fn replaces(&self, name: &str) -> bool {
        match name {
            "host" => self.host.is_some(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-request-id" => true,
            "x-forwarded-host" => self.forwarded_host.is_some(),
            "traceparent" => self.traceparent.is_some(),
            _ => false,
        }
    }

    fn forwarded_for(&self, out: &mut Vec<u8>) {
        if let Some(prior) = &self.prior_for {
            out.extend_from_slice(prior.as_bytes());
            out.extend_from_slice(b", ");
        }
        write_ip(out, self.peer);
    }

    /// Writes the fields as head lines; `Host` first.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if let Some(h) = &self.host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        self.forwarded_for(out);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(self.proto.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(h) = &self.forwarded_host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(self.request_id.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(tp) = &self.traceparent {
            out.extend_from_slice(b"traceparent: ");
            out.extend_from_slice(tp);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sets the fields in `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(h) = &self.host {
            headers.insert(header::HOST, h.clone());
        }
        let mut xff = Vec::with_capacity(64);
        self.forwarded_for(&mut xff);
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(self.proto));
        if let Some(h) = &self.forwarded_host {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        headers.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        if let Some(tp) = self
            .traceparent
            .as_ref()
            .and_then(|t| HeaderValue::from_bytes(t).ok())
        {
            headers.insert(TRACEPARENT.clone(), tp);
        }
    }
}

/// `ip` in its usual text form (IPv4 without going through `fmt`: it is on every request).
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => out.extend_from_slice(ip.to_string().as_bytes()),
    }
}
