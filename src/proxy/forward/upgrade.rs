//! WebSocket upgrades on routes with `websocket: true`: the request goes to the upstream with
//! its `Upgrade`/`Connection` headers on a fresh connection, and when the upstream answers
//! `101` both upgraded connections are joined by a bidirectional copy, closed when it has
//! carried nothing for `server.timeouts.tunnel_idle_timeout`.

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty};
use hyper_util::rt::TokioIo;

use super::forwarder::Forwarder;
use super::relay::relay;
use crate::proxy::body::{Body, ClientBody, UpstreamBody};
use crate::proxy::context::RequestCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::headers;
use crate::upstream::Endpoint;

impl Forwarder {
    /// Proxies one upgrade request; the tunnel lives on in its own task. Its
    /// `X-Forwarded-Proto` is the request's, as for any other request: `https` over TLS.
    pub async fn tunnel(
        &self,
        ctx: &RequestCtx<'_>,
        mut req: Request<ClientBody>,
    ) -> Result<Response<Body>, ProxyError> {
        let (route, arrival) = (&ctx.route, &ctx.arrival);
        let upstream = ctx.upstream();
        let endpoint = upstream.pick().ok_or_else(|| {
            ProxyError::UpstreamUnavailable(format!("upstream {} has no endpoints", upstream.key))
        })?;
        if endpoint.scheme != http::uri::Scheme::HTTP {
            return Err(ProxyError::BadGateway(format!(
                "WebSocket upgrades are proxied to http endpoints only, not {}",
                endpoint.url
            )));
        }
        let path = req.uri().path();
        let path = route
            .rewrite
            .as_ref()
            .map_or_else(|| path.to_string(), |r| r.apply(path));
        let pq = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let pq = PathAndQuery::try_from(pq)
            .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))?;

        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut out = Request::builder()
            .method(req.method().clone())
            .uri(pq)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream request: {e}")))?;
        let h = out.headers_mut();
        *h = req.headers().clone();
        let client = headers::ClientFields::of(h);
        headers::strip_hop_by_hop(h);
        headers::strip_client_fields(h, client.marks, &self.headers);
        if let Some(u) = &ctx.user {
            u.apply_headers(h);
        }
        // WebSocket only, whatever else the client listed: an upstream that switched to another
        // protocol (`h2c`) would give the client a tunnel in which it sends requests the gateway
        // never routes or authorises.
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let mut fwd = headers::Forwarding::new(
            &client,
            arrival.peer.ip(),
            arrival.proto,
            client.host.clone(),
            arrival.request_id.clone(),
        );
        fwd.host = Some(ctx.upstream_host(&endpoint.host_header));
        fwd.next_traceparent();
        fwd.apply(h);

        let connect = tokio::net::TcpStream::connect(dial_target(endpoint));
        let connect_timeout = upstream
            .connect_timeout
            .unwrap_or(std::time::Duration::from_secs(5));
        let by_name = crate::upstream::egress::is_name(endpoint.authority.host());
        let stream = match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok(s)) if arrival.table.egress.check_stream(by_name, &s).is_ok() => s,
            _ => {
                self.count_upstream(&upstream.key, "error");
                return Err(ProxyError::BadGateway(format!(
                    "cannot connect to {}",
                    endpoint.url
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProxyError::BadGateway(format!("{} failed: {e}", endpoint.url)))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let call = sender.send_request(out);
        let result = match route.timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout(t))?,
            None => call.await,
        };
        let mut resp = result.map_err(|e| {
            self.count_upstream(&upstream.key, "error");
            ProxyError::BadGateway(format!("{} failed: {e}", endpoint.url))
        })?;
        self.count_upstream(&upstream.key, resp.status().as_str());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            headers::strip_hop_by_hop(resp.headers_mut());
            return Ok(resp.map(|b| Either::Left(UpstreamBody::hyper(b, self.read_timeout))));
        }
        let switched_to = resp.headers().get(header::UPGRADE);
        if !switched_to.is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket")) {
            return Err(ProxyError::BadGateway(format!(
                "{} switched to {:?}, not to WebSocket",
                endpoint.url,
                switched_to.map(|u| String::from_utf8_lossy(u.as_bytes()).into_owned())
            )));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let route_id = route.id.clone();
        let idle = self.tunnel_idle_timeout;
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    if let Err(e) = relay(TokioIo::new(client), TokioIo::new(upstream), idle).await {
                        tracing::debug!(route = %route_id, "WebSocket tunnel ended: {e}");
                    }
                }
                Err(e) => tracing::debug!(route = %route_id, "WebSocket upgrade did not complete: {e}"),
            }
        });
        let (parts, _) = resp.into_parts();
        let mut back = Response::from_parts(parts, Either::Right(http_body_util::Full::default()));
        back.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        Ok(back)
    }
}

/// Where a tunnel to `endpoint` connects: its host (an IPv6 literal without its brackets) and
/// port, or the scheme's port when the URL names none (`http://svc` is port 80), as the
/// clients of the forward phase do.
pub(super) fn dial_target(endpoint: &Endpoint) -> (&str, u16) {
    let authority = &endpoint.authority;
    let port = authority
        .port_u16()
        .unwrap_or(match endpoint.scheme == http::uri::Scheme::HTTPS {
            true => 443,
            false => 80,
        });
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}
