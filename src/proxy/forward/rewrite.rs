//! Endpoint choice and the request as the upstream gets it: the path rewritten, the first
//! endpoint chosen while the client's fields are still as they came (`hashOn: header:NAME`
//! reads them), then the fields rewritten: hop-by-hop and identity fields out, the caller's
//! identity in, and the forwarding fields worked out once for every try.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Version};

use crate::proxy::context::RequestCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{self, Forwarding};
use crate::proxy::path::path_and_query;
use crate::upstream::{ClaimLookup, PickContext, Protocol};

/// The request head as the upstream gets it, worked out once for all its tries.
pub(super) struct UpstreamHead {
    /// The head of the tries: each but the last gets a copy, the last takes it.
    template: Option<Parts>,
    /// Path and query at the endpoint (origin form).
    pub(super) target: PathAndQuery,
    /// The fields the gateway sets; per try, the endpoint's `Host` and the hop's trace context.
    pub(super) fwd: Forwarding,
    /// The upstream speaks h2c.
    pub(super) h2c: bool,
}

impl UpstreamHead {
    /// The request's method (while a try is left to send).
    pub(super) fn method(&self) -> Option<&Method> {
        self.template.as_ref().map(|p| &p.method)
    }

    /// The fields the client sent, as the upstream gets them (while a try is left to send).
    pub(super) fn headers(&self) -> Option<&HeaderMap> {
        self.template.as_ref().map(|p| &p.headers)
    }

    /// The head for the next try: a copy, or the head itself for the `last` one.
    pub(super) fn for_try(&mut self, last: bool) -> Option<Parts> {
        if last {
            self.template.take()
        } else {
            self.template.as_ref().map(copy_parts)
        }
    }
}

/// The request head of `parts` rewritten for the route's upstream, and the endpoint chosen for
/// its first try.
pub(super) fn prepare(ctx: &RequestCtx, mut parts: Parts) -> Result<(UpstreamHead, usize), ProxyError> {
    let (route, arrival) = (&ctx.route, &ctx.arrival);
    let upstream = &route.upstream;
    let path = parts.uri.path();
    let rewritten = route.rewrite.as_ref().map(|r| r.apply(path));
    let target = match rewritten {
        Some(p) => path_and_query(p, parts.uri.query()),
        None => Ok(parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))),
    }
    .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))?;
    // Chosen before the headers change, so that `hashOn: header:NAME` sees the client's.
    let Some(chosen) = choose(ctx, &parts.headers, &[]) else {
        return Err(ProxyError::UpstreamUnavailable(format!(
            "upstream {} has no healthy endpoint",
            upstream.key
        )));
    };

    // The host the route was chosen by.
    let client_host = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => arrival.client.host.clone(),
    };
    let fwd = Forwarding::new(
        &arrival.client,
        arrival.peer.ip(),
        arrival.proto,
        client_host,
        arrival.request_id.clone(),
    );
    let h2c = upstream.protocol == Protocol::H2c;
    let h = &mut parts.headers;
    // `TE` is hop-by-hop, but HTTP/2 keeps its one value, `trailers`, end to end: gRPC
    // clients send it and servers look for it.
    let te_trailers = h2c && headers::accepts_trailers(h);
    headers::strip_hop_by_hop(h);
    headers::strip_user_headers(h);
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(user) = &ctx.user {
        user.apply_headers(h);
    }
    parts.version = if h2c { Version::HTTP_2 } else { Version::HTTP_11 };
    let head = UpstreamHead {
        template: Some(parts),
        target,
        fwd,
        h2c,
    };
    Ok((head, chosen))
}

/// The endpoint of the route's upstream to try, leaving out those `tried`: the balancer's
/// choice among the healthy ones, by the client's address, `headers` and the caller's claims.
pub(super) fn choose(ctx: &RequestCtx, headers: &HeaderMap, tried: &[usize]) -> Option<usize> {
    let user = ctx.user.as_deref();
    let claim_of = |name: &str| user.and_then(|u| u.claim_str(name));
    let claim: Option<&ClaimLookup<'_>> = if user.is_some() { Some(&claim_of) } else { None };
    let pick = PickContext {
        ip: ctx.arrival.peer.ip(),
        headers,
        claim,
    };
    ctx.route.upstream.choose(&pick, tried)
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
