//! The route phase: the request looked up in the table it arrived with. A CORS preflight is
//! answered for the route the real request would take; a request without a route ends here,
//! and the respond phase says why.

use std::sync::Arc;

use http::{HeaderMap, Request, StatusCode};

use crate::middleware::cors;
use crate::proxy::body::ClientBody;
use crate::proxy::context::Arrival;
use crate::routing::{Lookup, Route};

/// Why a request goes no further than the route phase.
pub(super) enum RouteMiss<'t> {
    /// A CORS preflight for a route with CORS rules, answered with `status` and `headers`.
    Preflight {
        route: &'t Route,
        status: StatusCode,
        headers: HeaderMap,
    },
    /// No route for the host and path.
    NotFound,
    /// Routes for the path, none for the method; `allow` lists the methods that have one.
    MethodNotAllowed { allow: String },
}

/// The route of `req` in the table it arrived with, or why it has none.
pub(super) fn route<'t>(
    arrival: &'t Arrival,
    req: &'t Request<ClientBody>,
) -> Result<Arc<Route>, RouteMiss<'t>> {
    let table = &arrival.table;
    let method = &arrival.method;
    let path = req.uri().path();
    // The target's authority (absolute form, HTTP/2's `:authority`) is the host when there
    // is one; the Host field only otherwise (RFC 9112 §3.2.2, RFC 9113 §8.3.1).
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| arrival.client.host.as_ref().and_then(|h| h.to_str().ok()));

    // The rules of Gateway API HTTPRoutes match on headers and query too (other routes never
    // look at them).
    let (headers, query) = (Some(req.headers()), req.uri().query());

    // A CORS preflight is answered here, for the route that the real request would take.
    if let Some(asked) = cors::preflight_method(method, req.headers()) {
        if let Lookup::Found(route) = table.lookup_request(host, path, &asked, headers, query) {
            if let Some(rules) = &route.cors {
                let (status, headers) = cors::preflight(rules, req.headers());
                return Err(RouteMiss::Preflight {
                    route: route.as_ref(),
                    status,
                    headers,
                });
            }
        }
    }
    match table.lookup_request(host, path, method, headers, query) {
        Lookup::Found(route) => Ok(route.clone()),
        Lookup::MethodNotAllowed(allow) => Err(RouteMiss::MethodNotAllowed {
            allow: allow.allow_header(),
        }),
        Lookup::NotFound => Err(RouteMiss::NotFound),
    }
}
