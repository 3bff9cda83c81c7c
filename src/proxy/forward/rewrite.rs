//! Endpoint choice and the request as the upstream gets it, in the order the forward phase
//! takes them: the path rewritten, the first endpoint chosen while the client's fields are
//! still as they came (`hashOn: header:NAME` reads them), the forwarding fields worked out once
//! for every try, then the head rewritten: hop-by-hop and identity fields out, the caller's
//! identity in; and per try, the head and the endpoint of each next one.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Uri, Version};

use crate::proxy::context::RequestCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{self, Forwarding};
use crate::proxy::path::path_and_query;
use crate::routing::Route;
use crate::settings::HeadersConfig;
use crate::upstream::{ClaimLookup, PickContext};

/// What the head of every try shares besides the client's fields: where it goes, the fields
/// the gateway sets, the protocol, and how the response's fields are kept. (A view, made per
/// try: what it shows stays where the forward phase made it, since a struct owning it would be
/// copied on every request.)
#[derive(Clone, Copy)]
pub(super) struct UpstreamHead<'a> {
    /// Path and query at the endpoint (origin form).
    pub(super) target: &'a PathAndQuery,
    /// The fields the gateway sets; per try, the endpoint's `Host` and the hop's trace context.
    pub(super) fwd: &'a Forwarding,
    /// The upstream speaks h2c.
    pub(super) h2c: bool,
    /// The fast path's own writer takes the upstream's fields in wire form.
    pub(super) wire: bool,
}

/// The head for the next try from the `template` of the tries: a copy, or the template itself
/// for the `last` one.
#[inline(always)]
pub(super) fn next_head(template: &mut Option<Parts>, last: bool) -> Option<Parts> {
    if last {
        template.take()
    } else {
        template.as_ref().map(copy_parts)
    }
}

/// The path and query the upstream gets: the route's rewrite applied, the query kept.
#[inline]
pub(super) fn target(route: &Route, uri: &Uri) -> Result<PathAndQuery, ProxyError> {
    let rewritten = route.rewrite.as_ref().map(|r| r.apply(uri.path()));
    match rewritten {
        Some(p) => path_and_query(p, uri.query()),
        None => Ok(uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))),
    }
    .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))
}

/// The endpoint for the first try, chosen while the client's fields are still as they came.
#[inline]
pub(super) fn first_choice(ctx: &RequestCtx<'_>, headers: &HeaderMap) -> Result<usize, ProxyError> {
    choose(ctx, headers, &[]).ok_or_else(|| {
        ProxyError::UpstreamUnavailable(format!("upstream {} has no healthy endpoint", ctx.upstream().key))
    })
}

/// The forwarding fields of the request whose target is `uri`: the host it was routed by (the
/// target's authority, else its `Host`), the client's address and protocol, the request id.
#[inline]
pub(super) fn forwarding(ctx: &RequestCtx<'_>, uri: &Uri) -> Forwarding {
    let arrival = ctx.arrival;
    let client_host = match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => arrival.client.host.clone(),
    };
    Forwarding::new(
        arrival.client,
        arrival.peer.ip(),
        arrival.proto,
        client_host,
        arrival.request_id.clone(),
    )
}

/// The client's head made the upstream's: hop-by-hop fields out (`TE: trailers` kept for h2c),
/// the fields that may not go upstream as sent out (`server.headers`: identity fields in any
/// spelling, method overrides), the caller's identity in, an HTTP/2 client's cookie fragments
/// joined for an HTTP/1.1 upstream, the version the upstream speaks.
#[inline]
pub(super) fn rewrite_head(ctx: &RequestCtx<'_>, parts: &mut Parts, h2c: bool, fields: &HeadersConfig) {
    let h = &mut parts.headers;
    if parts.version == Version::HTTP_2 && !h2c {
        join_cookies(h);
    }
    // `TE` is hop-by-hop, but HTTP/2 keeps its one value, `trailers`, end to end: gRPC
    // clients send it and servers look for it.
    let te_trailers = h2c && headers::accepts_trailers(h);
    headers::strip_hop_by_hop(h);
    headers::strip_client_fields(h, ctx.arrival.client.marks, fields);
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(user) = &ctx.user {
        user.apply_headers(h);
    }
    parts.version = if h2c { Version::HTTP_2 } else { Version::HTTP_11 };
}

/// An HTTP/2 client may send its cookies as several `cookie` fields (RFC 9113 §8.2.3, for
/// better compression); before they go to an HTTP/1.1 upstream they are joined into one with
/// `"; "`, as that section asks: many HTTP/1.1 servers read only the first. (One field, the
/// usual case, is left as it is.)
pub(super) fn join_cookies(h: &mut HeaderMap) {
    let mut all = h.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for more in h.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(more.as_bytes());
    }
    // (Joined valid values are a valid value.)
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

/// The endpoint of the route's upstream to try, leaving out those `tried`: the balancer's
/// choice among the healthy ones, by the client's address, `headers` and the caller's claims.
#[inline]
pub(super) fn choose(ctx: &RequestCtx<'_>, headers: &HeaderMap, tried: &[usize]) -> Option<usize> {
    let user = ctx.user.as_deref();
    let claim_of = |name: &str| user.and_then(|u| u.claim_str(name));
    let claim: Option<&ClaimLookup<'_>> = if user.is_some() { Some(&claim_of) } else { None };
    let pick = PickContext {
        ip: ctx.arrival.peer.ip(),
        headers,
        claim,
    };
    ctx.upstream().choose(&pick, tried)
}

/// A copy of the request head for one more try (extensions stay with the original).
fn copy_parts(p: &Parts) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    parts
}
