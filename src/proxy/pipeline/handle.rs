//! One request, top to bottom, phase by phase: the gateway's own answers (refusals, the
//! redirect to https, probes, the hub's paths once the rate limit lets them), the route, a
//! Gateway API rule's redirect or filters, admission (who calls, the rate limit), the forward
//! to the upstream (or the WebSocket tunnel), and the response.
//!
//! A request on a Gateway's socket is routed by that socket's table, taken from the live
//! table as it arrives, and by nothing else: the probes, the hub and the redirect to https
//! are the proxy listeners'.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::Either;

use super::gateway::{apply_rule, edit_response, redirect};
use super::respond::{fields_mut, plain, set_request_id};
use super::route::{route, RouteMiss};
use super::state::ProxyState;
use crate::proxy::body::{Body, ClientBody};
use crate::proxy::context::{Arrival, RequestCtx};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::ClientFields;
use crate::proxy::path::{path_and_query, read_path, with_path, PathReading};
use crate::proxy::tls::{https_redirect, TlsConn};

impl ProxyState {
    /// Serves one request of the proxy listeners; never fails (errors become JSON responses).
    /// (The future is `serve`'s own: it is large, and each wrapping would copy it.)
    pub fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<ClientBody>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
        self.serve(None, peer, req)
    }

    /// Serves one request that came in on the Gateway socket bound to `local`: routed by the
    /// table of that socket in the live table (404 once no table lists it).
    pub fn handle_gateway(
        self: Arc<Self>,
        local: SocketAddr,
        peer: SocketAddr,
        req: Request<ClientBody>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
        self.serve(Some(local), peer, req)
    }

    /// One request, from the proxy listeners (`listener`: `None`) or a Gateway's socket.
    async fn serve(
        self: Arc<Self>,
        listener: Option<SocketAddr>,
        peer: SocketAddr,
        mut req: Request<ClientBody>,
    ) -> Result<Response<Body>, Infallible> {
        // The table this request reads in every phase is loaded here, once.
        let client = ClientFields::of(req.headers());
        let mut arrival = Arrival::new(&req, &client, peer, self.proto, &self.table);
        if let Some(answer) = self.screen(&arrival, &mut req, listener.is_none()) {
            return Ok(answer);
        }
        match listener {
            None => match req.uri().path() {
                "/health" => return Ok(plain(StatusCode::OK, r#"{"status":"ok"}"#)),
                "/ready" => return Ok(self.readiness()),
                p if self.hub.as_ref().is_some_and(|h| h.claims(p)) => {
                    if let Err(err) = self.rate_limit_hub(peer.ip(), p).await {
                        return Ok(self.refuse(&err, &arrival.request_id));
                    }
                    if let Some(hub) = &self.hub {
                        return Ok(hub.handle(peer, req).await.map(Either::Right));
                    }
                }
                _ => {}
            },
            Some(local) => match arrival.table.listeners.get(local).map(|s| s.table.clone()) {
                Some(table) => arrival.table = table,
                None => return Ok(self.unrouted(&arrival, RouteMiss::NotFound, req.uri().path())),
            },
        }
        arrival.span = self
            .tracing
            .as_ref()
            .map(|t| t.start_request(&req, peer, arrival.proto));

        let route = match route(&arrival, &req) {
            Ok(route) => route,
            Err(miss) => return Ok(self.unrouted(&arrival, miss, req.uri().path())),
        };
        if let Some(s) = &arrival.span {
            s.set_route(&arrival.method, &route.id, &route.path);
        }
        let mut ctx = RequestCtx {
            arrival: &arrival,
            route,
            user: None,
            gateway: None,
        };

        // A Gateway API rule: its redirect is the answer, or its filters and backend apply.
        let mut ruled = None;
        if let Some(rule) = &ctx.route.gateway {
            if let Some(r) = &rule.redirect {
                ruled = Some(redirect(&arrival, rule, r, &req, listener.map(|l| l.port())));
            } else {
                match apply_rule(rule, &mut req) {
                    Ok(choice) => ctx.gateway = Some(choice),
                    Err(err) => ruled = Some(Err(err)),
                }
            }
        }
        let result = match ruled {
            Some(answer) => answer,
            None => match self.authenticate(&ctx, &req) {
                Ok(user) => {
                    ctx.user = user;
                    // Counted as 499 should the client go before the answer is ready.
                    let abandoned = Abandoned {
                        state: &self,
                        ctx: &ctx,
                    };
                    let result = self.proxy(&ctx, req).await;
                    std::mem::forget(abandoned);
                    result
                }
                Err(err) => Err(err),
            },
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => self.error_answer(&ctx, &err),
        };
        if let Some(rule) = &ctx.route.gateway {
            edit_response(rule, &mut resp);
        }
        self.finish(&ctx, &mut resp);
        set_request_id(&mut resp, arrival.request_id);
        Ok(resp)
    }

    /// The answers the gateway gives before routing: requests it refuses, and (on the proxy
    /// listeners, `own`) the redirect of plain HTTP to https. Before anything reads the path,
    /// it is put in normal form as `server.paths` says: the route chosen and the path the upstream gets are the same
    /// (`/public/../admin`, `/%61dmin` and `//admin` are `/admin` to both), and a spelling the
    /// gateway does not make normal (`;`, `%2F` by default) is refused, or redirected.
    fn screen(&self, arrival: &Arrival, req: &mut Request<ClientBody>, own: bool) -> Option<Response<Body>> {
        let refused = if req.method() == Method::CONNECT {
            Some("CONNECT is not served: the gateway is no forward proxy")
        } else {
            arrival.client.host_problem(req.version())
        };
        if let Some(why) = refused {
            return Some(self.refuse(&ProxyError::BadRequest(why.into()), &arrival.request_id));
        }
        if let Some(port) = self.https_redirect.filter(|_| own) {
            if req.extensions().get::<TlsConn>().is_none() {
                if let Some(r) = https_redirect(req, port) {
                    return Some(r.map(Either::Right));
                }
            }
        }
        let refused = match read_path(req.uri().path(), &self.paths) {
            PathReading::Normal => return None,
            PathReading::Rewritten(normal) => match with_path(req.uri(), normal) {
                Some(uri) => {
                    *req.uri_mut() = uri;
                    return None;
                }
                None => "invalid request path",
            },
            PathReading::Redirect(normal) => match path_and_query(normal, req.uri().query()) {
                Ok(location) => return Some(self.redirect(location.as_str(), &arrival.request_id)),
                Err(_) => "invalid request path",
            },
            PathReading::Refused(why) => why,
        };
        Some(self.refuse(&ProxyError::BadRequest(refused.into()), &arrival.request_id))
    }

    /// An admitted request: counted against the rate limit, then tunnelled (a WebSocket
    /// upgrade on a WebSocket route) or forwarded.
    async fn proxy(
        &self,
        ctx: &RequestCtx<'_>,
        req: Request<ClientBody>,
    ) -> Result<Response<Body>, ProxyError> {
        let limit = self.rate_limit(ctx, &req).await?;
        if ctx.route.websocket && crate::websocket::is_websocket_upgrade(req.headers()) {
            return self.forwarder.tunnel(ctx, req).await;
        }
        self.check_size(ctx)?;
        let mut resp = self.forwarder.forward(ctx, req).await?;
        if let Some(d) = limit {
            d.add_headers(fields_mut(&mut resp));
        }
        Ok(resp)
    }
}

/// A request whose future is dropped before its answer is made: the client closed the
/// connection (or the drain ran out). It is counted with status 499, as nginx logs it.
struct Abandoned<'a> {
    state: &'a ProxyState,
    ctx: &'a RequestCtx<'a>,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let Ok(status) = StatusCode::from_u16(499) else {
            return;
        };
        let arrival = self.ctx.arrival;
        self.state
            .count(Some(&self.ctx.route), &arrival.method, status, arrival.start);
        if let Some(s) = &arrival.span {
            s.finish(status);
        }
    }
}
