//! The rule phase of a route compiled from a Gateway API HTTPRoute: a redirect, answered by the
//! gateway itself, or the rule's request filters (fields, path, the host the backend gets) and
//! the backend chosen by weight. Its response filter edits whatever answer the route gives.
//! Routes of GatewayRoutes never come here.

use std::fmt::Write as _;

use http::header::{self, HeaderValue};
use http::{Request, Response};

use super::respond::{fields_mut, plain};
use crate::proxy::body::{Body, ClientBody};
use crate::proxy::context::{Arrival, GatewayChoice};
use crate::proxy::error::ProxyError;
use crate::proxy::path::with_path;
use crate::routing::gateway::Redirect;
use crate::routing::GatewayRule;
use crate::wire::strip_port;

/// The rule's request filters applied to `req`, and the backend chosen (`rule.choose` with a
/// random draw; none is a 500). (A rule with a redirect is answered by [`redirect`] instead.)
pub(super) fn apply_rule(
    rule: &GatewayRule,
    req: &mut Request<ClientBody>,
) -> Result<GatewayChoice, ProxyError> {
    if let Some(edit) = &rule.request_headers {
        edit.apply(req.headers_mut());
    }
    let mut host = None;
    if let Some(rewrite) = &rule.rewrite {
        host = rewrite.hostname.clone();
        if let Some(m) = &rewrite.path {
            let path = rule.replace_path(m, req.uri().path());
            let uri = with_path(req.uri(), path)
                .ok_or_else(|| ProxyError::BadRequest("cannot build the rewritten path".into()))?;
            *req.uri_mut() = uri;
        }
    }
    // The backend gets the host the client asked for, as with any Gateway.
    let host = host.or_else(|| match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    });
    let upstream = rule
        .choose(rand::random())
        .ok_or_else(|| ProxyError::NoBackend(format!("no backend for this request ({})", rule.source)))?;
    Ok(GatewayChoice {
        upstream: upstream.clone(),
        host,
    })
}

/// The rule's response filter on the answer the client gets.
pub(super) fn edit_response(rule: &GatewayRule, resp: &mut Response<Body>) {
    if let Some(edit) = &rule.response_headers {
        edit.apply(fields_mut(resp));
    }
}

/// The port a scheme has when a URL names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        s if s.eq_ignore_ascii_case("http") => Some(80),
        s if s.eq_ignore_ascii_case("https") => Some(443),
        _ => None,
    }
}

/// The `RequestRedirect` answer to `req`, which arrived as `arrival` on the socket whose port
/// is `listener_port`: `Location` made of the request's URL with the filter's scheme,
/// hostname, port and path put in (the query kept). Without a port in the filter, a filter's
/// scheme brings its own well-known port, else the port is the listener's (the Gateway API's
/// rules); a scheme's default port is left out.
pub(super) fn redirect(
    arrival: &Arrival<'_>,
    rule: &GatewayRule,
    r: &Redirect,
    req: &Request<ClientBody>,
    listener_port: Option<u16>,
) -> Result<Response<Body>, ProxyError> {
    let scheme = r.scheme.as_deref().unwrap_or(arrival.proto);
    let asked = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()));
    let host = match &r.hostname {
        Some(h) => h.as_str(),
        None => asked.map(strip_port).unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(ProxyError::BadRequest(
            "a Host header is needed to redirect".into(),
        ));
    }
    let asked_port = || asked.and_then(|a| a.get(strip_port(a).len()..)?.strip_prefix(':')?.parse().ok());
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p),
        (None, Some(s)) => default_port(s).or(listener_port),
        (None, None) => listener_port.or_else(asked_port),
    };
    let port = port.filter(|p| default_port(scheme) != Some(*p));
    let mut location = String::with_capacity(64);
    location.push_str(scheme);
    location.push_str("://");
    if host.contains(':') && !host.starts_with('[') {
        let _ = write!(location, "[{host}]");
    } else {
        location.push_str(host);
    }
    if let Some(p) = port {
        let _ = write!(location, ":{p}");
    }
    match &r.path {
        Some(m) => location.push_str(&rule.replace_path(m, req.uri().path())),
        None => location.push_str(req.uri().path()),
    }
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let value = HeaderValue::from_str(&location)
        .map_err(|_| ProxyError::BadRequest("cannot build the redirect's location".into()))?;
    let mut resp = plain(r.status, "");
    resp.headers_mut().insert(header::LOCATION, value);
    Ok(resp)
}
