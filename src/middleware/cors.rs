//! CORS: preflight answers and the headers added to actual responses.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::routing::CorsRules;

/// A preflight is `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
}

/// The preflight answer for `rules`: 204 with the allow headers, or 403 for a foreign origin.
pub fn preflight(rules: &CorsRules, req: &HeaderMap) -> (StatusCode, HeaderMap) {
    let mut h = HeaderMap::new();
    let origin = req
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    if !rules.allows(origin) {
        return (StatusCode::FORBIDDEN, h);
    }
    allow_origin(rules, req, &mut h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, rules.allow_methods.clone());
    match (
        &rules.allow_headers,
        req.get(header::ACCESS_CONTROL_REQUEST_HEADERS),
    ) {
        (Some(v), _) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        (None, Some(asked)) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        (None, None) => {}
    }
    if let Some(age) = &rules.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
    }
    (StatusCode::NO_CONTENT, h)
}

/// Adds CORS headers to an actual response when the request's origin is allowed.
pub fn decorate(rules: &CorsRules, origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
    let Some(origin) = origin else { return };
    if !origin.to_str().is_ok_and(|o| rules.allows(o)) {
        return;
    }
    let mut req = HeaderMap::new();
    req.insert(header::ORIGIN, origin.clone());
    allow_origin(rules, &req, resp);
    resp.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(e) = &rules.expose_headers {
        resp.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
    }
}

fn allow_origin(rules: &CorsRules, req: &HeaderMap, h: &mut HeaderMap) {
    if rules.any_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if let Some(o) = req.get(header::ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
    }
    if rules.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}
