//! The HTTP vocabulary every room shares: the SPEC's JSON error body (§4) and the spelling of
//! host names. Plain functions over `http` types; nothing here knows a route or a socket.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// A JSON error response with any status and code:
/// `{"error": {"code": ..., "message": ..., "request_id": ...}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": {"code": code, "message": message, "request_id": request_id}});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// `host` in lower case, allocating only when it has upper-case letters.
pub fn lowercase_host(host: &str) -> std::borrow::Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// `host` without a `:port` (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
