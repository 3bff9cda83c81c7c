//! The request context: what the phases of one request share instead of passing it piece by
//! piece. [`Arrival`] is what is known as the request comes in, the routing table included:
//! it is loaded once, here, and every later phase reads this table, never the live one, so
//! that a table published in the middle of a request cannot mix with the one it was routed
//! by. [`RequestCtx`] adds the route and, once authenticated, the caller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request};

use super::headers::{request_id_from, ClientFields};
use super::tls::TlsConn;
use crate::auth::UserContext;
use crate::routing::{Route, RoutingTable, TableHandle};
use crate::telemetry::RequestSpan;
use crate::upstream::Upstream;

/// What is known of a request as it comes in.
pub struct Arrival<'c> {
    /// The client's address.
    pub peer: SocketAddr,
    /// When the request came in: its duration is counted from here.
    pub start: Instant,
    pub method: Method,
    /// The client's fields the phases read. (Borrowed: they stay where they were read, since
    /// moving them in would copy them on every request.)
    pub client: &'c ClientFields,
    /// The request's id: the client's `X-Request-ID` when it is sane, else a new one.
    pub request_id: HeaderValue,
    /// `https` for a request that came over TLS, else the listener's protocol.
    pub proto: &'static str,
    /// The routing table of this request, loaded once as it came in (on a Gateway's socket,
    /// the table of that socket in it).
    pub table: Arc<RoutingTable>,
    /// The request's server span, once it has one (routed requests, with tracing on).
    pub span: Option<RequestSpan>,
}

impl<'c> Arrival<'c> {
    /// `req`, just come in from `peer` on a listener of `proto`, with its `client` fields; the
    /// table is loaded from `table` now.
    pub fn new<B>(
        req: &Request<B>,
        client: &'c ClientFields,
        peer: SocketAddr,
        proto: &'static str,
        table: &TableHandle,
    ) -> Self {
        let start = Instant::now();
        let request_id = request_id_from(client.request_id.as_ref());
        let proto = match req.extensions().get::<TlsConn>() {
            Some(_) => "https",
            None => proto,
        };
        Arrival {
            peer,
            start,
            method: req.method().clone(),
            client,
            request_id,
            proto,
            table: table.load(),
            span: None,
        }
    }

    /// The request body's declared length, when it declares a valid one.
    pub fn content_length(&self) -> Option<u64> {
        self.client
            .content_length
            .as_ref()
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    }
}

/// A request with its route: what every phase after routing reads. (It borrows the arrival,
/// which stays where it was made: moving it would copy it.)
pub struct RequestCtx<'a> {
    pub arrival: &'a Arrival<'a>,
    /// The route, from `arrival.table`.
    pub route: Arc<Route>,
    /// The caller on a protected route, once authenticated.
    pub user: Option<Arc<UserContext>>,
    /// On a route of a Gateway API rule: the backend its weights chose and the `Host` it gets
    /// (`None` on every other route).
    pub gateway: Option<GatewayChoice>,
}

/// What a Gateway API rule chose for one request.
pub struct GatewayChoice {
    /// The backend, in place of the route's upstream for the whole forward phase.
    pub upstream: Arc<Upstream>,
    /// The `Host` the backend gets: the rewrite's hostname, else the client's (a Gateway
    /// passes the host through); `None`: the endpoint's, as on other routes.
    pub host: Option<HeaderValue>,
}

impl RequestCtx<'_> {
    /// The upstream the request goes to: the route's, or the backend its rule chose.
    #[inline]
    pub fn upstream(&self) -> &Arc<Upstream> {
        match &self.gateway {
            None => &self.route.upstream,
            Some(g) => &g.upstream,
        }
    }

    /// The `Host` for a try on an endpoint whose own is `endpoint_host`.
    #[inline]
    pub fn upstream_host(&self, endpoint_host: &HeaderValue) -> HeaderValue {
        match &self.gateway {
            Some(GatewayChoice { host: Some(h), .. }) => h.clone(),
            _ => endpoint_host.clone(),
        }
    }
}
