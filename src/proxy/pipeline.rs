//! One request, top to bottom: gateway endpoints, route lookup, CORS, rate limit,
//! identity-header stripping, endpoint choice (balancer, health, circuit breaker), forwarding
//! headers, the upstream call under the route timeout with retries, and the response with its
//! metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{Body, ClientBody, UpstreamBody};
use super::client::{is_idempotent, Outbound, OwnClient};
use super::error::{CallError, ProxyError};
use super::headers;
use crate::auth::{self, UserContext};
use crate::policy::cors;
use crate::policy::ratelimit::{Caller, Decision, RateLimiter, Verdict};
use crate::routing::{Lookup, Route, TableHandle};
use crate::telemetry::Metrics;
use crate::upstream::{ClaimLookup, PickContext, Protocol};

/// Request bodies towards upstreams: streamed from the client, or replayed from memory.
type RequestBody = Either<ClientStream, Full<Bytes>>;

/// Plain TCP for `http` endpoints, rustls for `https` ones (settings from the live table).
type HttpClient = Client<super::tls::UpstreamConnector, RequestBody>;

/// How long an upstream connection may wait idle in a pool before it is closed.
const UPSTREAM_IDLE: Duration = Duration::from_secs(90);

/// The general (hyper) client, for `https` and `h2c` endpoints and streamed uploads. Its pool
/// has a timer, which closes connections idle for `idle`: without one, an idle connection would
/// stay open until a later request to the same endpoint found it expired.
fn general_client<C>(connector: C, idle: Duration, h2_only: bool) -> Client<C, RequestBody>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(idle).pool_timer(TokioTimer::new());
    if h2_only {
        b.http2_only(true);
    } else {
        b.pool_max_idle_per_host(1024);
    }
    b.build(connector)
}

/// `path`, then `query` if there is one.
fn path_and_query(mut path: String, query: Option<&str>) -> Result<PathAndQuery, http::uri::InvalidUri> {
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    PathAndQuery::try_from(path)
}

/// `uri` with its path replaced by `path`, its query kept.
fn with_path(uri: &Uri, path: String) -> Option<Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query(path, uri.query()).ok()?);
    Uri::from_parts(parts).ok()
}

/// The largest request body kept in memory so that a retry can send it again.
const REPLAY_LIMIT: u64 = 64 * 1024;

/// The request body of `forward`.
enum Outgoing {
    Stream(Option<ClientStream>),
    Buffered(Bytes),
}

/// A client's body streamed to an upstream, which keeps track of whose turn it is. When
/// reading it fails (bad chunked framing, a client gone mid-upload), or when time runs out
/// while the gateway waits for the client's next bytes, the upstream call fails too, but the
/// fault is the client's: it must not count against the upstream.
struct ClientStream {
    body: Incoming,
    watch: Arc<BodyWatch>,
}

/// What the upstream call's owner can learn of its streamed body afterwards.
#[derive(Default)]
struct BodyWatch {
    /// Why reading the client's body failed.
    failed: std::sync::OnceLock<String>,
    /// The last read found no bytes from the client yet: the upstream waits for the client,
    /// not the other way round.
    waiting: std::sync::atomic::AtomicBool,
}

impl http_body::Body for ClientStream {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(e))) = &polled {
            let _ = self.watch.failed.set(e.to_string());
        }
        self.watch
            .waiting
            .store(polled.is_pending(), std::sync::atomic::Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A copy of the request head for one more try (extensions stay with the original).
fn copy_parts(p: &http::request::Parts) -> http::request::Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    parts
}

/// What every request of the proxy listener shares.
pub struct ProxyState {
    pub table: TableHandle,
    pub metrics: Metrics,
    /// True once the first table is live and the listeners are bound; false while draining.
    pub ready: Arc<AtomicBool>,
    pub max_body_size: u64,
    pub proto: &'static str,
    /// Distributed tracing, when `observability.tracing.enabled`.
    pub tracing: Option<crate::telemetry::Tracing>,
    /// Plain `http` HTTP/1.1 endpoints, for requests whose body is in memory.
    h1: OwnClient,
    /// `https` endpoints and streamed request bodies.
    http1: HttpClient,
    h2c: HttpClient,
    limiter: Option<Arc<RateLimiter>>,
    empty_headers: http::HeaderMap,
    /// The WebSocket hub, when `websocket.enabled`: it answers its own paths.
    hub: Option<Arc<crate::websocket::Hub>>,
    /// `server.tls.redirect_http`: the https port plain requests are sent to.
    https_redirect: Option<u16>,
    /// `server.timeouts.upstream_timeout`: the longest one try may take.
    upstream_timeout: Option<Duration>,
    /// `server.timeouts.read_timeout`: the longest an upstream's response body may send
    /// nothing.
    pub(super) read_timeout: Option<Duration>,
}

impl ProxyState {
    pub fn new(
        table: TableHandle,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        connect_timeout: Duration,
        max_body_size: u64,
    ) -> Self {
        let tcp = {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_keepalive(Some(Duration::from_secs(60)));
            c
        };
        let upstream_connector = super::tls::UpstreamConnector::new(tcp, table.clone(), connect_timeout);
        let connector = || upstream_connector.clone();
        let h1 = OwnClient::new(connector(), UPSTREAM_IDLE, 1024);
        let http1 = general_client(connector(), UPSTREAM_IDLE, false);
        let h2c = general_client(connector(), UPSTREAM_IDLE, true);
        ProxyState {
            table,
            metrics,
            ready,
            max_body_size,
            proto: "http",
            tracing: None,
            h1,
            http1,
            h2c,
            limiter: None,
            empty_headers: http::HeaderMap::new(),
            hub: None,
            https_redirect: None,
            upstream_timeout: None,
            read_timeout: None,
        }
    }

    /// Applies rate limits from `limiter` (the static configuration's, and every route's own).
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Turns on distributed tracing for the requests of this state.
    pub fn with_tracing(mut self, tracing: Option<crate::telemetry::Tracing>) -> Self {
        self.tracing = tracing;
        self
    }

    /// Gives up on an upstream's response body that sends nothing for `limit`.
    pub fn with_read_timeout(mut self, limit: Option<Duration>) -> Self {
        self.read_timeout = limit;
        self
    }

    /// Bounds each upstream try by `limit` (the route's timeout still bounds them all).
    pub fn with_upstream_timeout(mut self, limit: Option<Duration>) -> Self {
        self.upstream_timeout = limit;
        self
    }

    /// Answers plain-HTTP requests (probes aside) with a 308 to https on `port`.
    pub fn with_https_redirect(mut self, port: u16) -> Self {
        self.https_redirect = Some(port);
        self
    }

    /// Hands the hub's paths (`websocket.server.path`, the webhook) to `hub`.
    pub fn with_hub(mut self, hub: Arc<crate::websocket::Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    pub(super) fn count_upstream(&self, upstream: &str, status: &str) {
        self.metrics
            .upstream_requests_total
            .with_label_values(&[upstream, status])
            .inc();
    }

    /// Serves one request; never fails (errors become JSON responses).
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        mut req: Request<ClientBody>,
    ) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let client = headers::ClientFields::of(req.headers());
        let request_id = headers::request_id_from(client.request_id.as_ref());
        let refused = if req.method() == http::Method::CONNECT {
            Some("CONNECT is not served: the gateway is no forward proxy")
        } else {
            client.host_problem(req.version())
        };
        if let Some(why) = refused {
            return Ok(self.refuse(&ProxyError::BadRequest(why.into()), &request_id));
        }
        if let Some(port) = self.https_redirect {
            if req.extensions().get::<super::tls::TlsConn>().is_none() {
                if let Some(r) = super::tls::https_redirect(&req, port) {
                    return Ok(r.map(Either::Right));
                }
            }
        }
        // Before anything reads the path: the route chosen and the path the upstream gets are
        // the same (`/public/../admin` and `/%61dmin` are `/admin` to both).
        if let Some(clean) = super::path::normalized(req.uri().path()) {
            match with_path(req.uri(), clean) {
                Some(uri) => *req.uri_mut() = uri,
                None => {
                    let err = ProxyError::BadRequest("invalid request path".into());
                    return Ok(self.refuse(&err, &request_id));
                }
            }
        }
        match req.uri().path() {
            "/health" => return Ok(plain(StatusCode::OK, r#"{"status":"ok"}"#)),
            "/ready" => return Ok(self.readiness()),
            p if self.hub.as_ref().is_some_and(|h| h.claims(p)) => {
                if let Some(hub) = &self.hub {
                    return Ok(hub.handle(peer, req).await.map(Either::Right));
                }
            }
            _ => {}
        }
        let method = req.method().clone();
        let span = self.tracing.as_ref().map(|t| {
            let scheme = match req.extensions().get::<super::tls::TlsConn>() {
                Some(_) => "https",
                None => self.proto,
            };
            let span = t.start_request(&req, peer, scheme);
            req.extensions_mut().insert(span.clone());
            span
        });
        // The target's authority (absolute form, HTTP/2's `:authority`) is the host when there
        // is one; the Host field only otherwise (RFC 9112 §3.2.2, RFC 9113 §8.3.1).
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| client.host.as_ref().and_then(|h| h.to_str().ok()));
        let route = match self.route_for(&req, host, &method, &request_id, start) {
            Ok(route) => route,
            Err(resp) => {
                if let Some(s) = &span {
                    s.finish(resp.status());
                }
                return Ok(resp);
            }
        };
        if let Some(s) = &span {
            s.set_route(&method, &route.id, &route.path);
        }
        // Counted as 499 should the client go before the answer is ready.
        let abandoned = Abandoned {
            state: &self,
            route: &route,
            method: &method,
            start,
            span: span.as_ref(),
        };
        // Authenticate, then count against the rate limit (per user where the key says so),
        // then forward with the user's context.
        let result = async {
            let user = self.authenticate(&route, &req)?;
            let user_id = user.as_deref().map(|u| u.user_id.as_str());
            let limit = self.rate_limit(&route, peer, &req, user_id).await?;
            if route.websocket && crate::websocket::is_websocket_upgrade(req.headers()) {
                return super::upgrade::tunnel(&self, &route, peer, req, &request_id, user.as_deref()).await;
            }
            let mut resp = self
                .forward(&route, peer, req, &client, &request_id, user.as_deref())
                .await?;
            if let Some(d) = limit {
                d.add_headers(fields_mut(&mut resp));
            }
            Ok::<_, ProxyError>(resp)
        }
        .await;
        std::mem::forget(abandoned);
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => {
                if matches!(
                    err,
                    ProxyError::BadGateway(_)
                        | ProxyError::UpstreamTimeout(_)
                        | ProxyError::Unauthorized(_)
                        | ProxyError::Forbidden(_)
                ) {
                    tracing::debug!(route = %route.id, request_id = ?request_id, "{err}");
                }
                error_response(&err, &request_id)
            }
        };
        if let Some(rules) = &route.cors {
            cors::decorate(rules, client.origin.as_ref(), fields_mut(&mut resp));
        }
        set_request_id(&mut resp, request_id);
        self.count(Some(&route), &method, resp.status(), start);
        if let Some(s) = &span {
            s.finish(resp.status());
        }
        Ok(resp)
    }

    /// Counts the request against the limit that applies: the decision for the `RateLimit-*`
    /// headers, or the refusal.
    async fn rate_limit(
        &self,
        route: &Route,
        peer: SocketAddr,
        req: &Request<ClientBody>,
        user: Option<&str>,
    ) -> Result<Option<Decision>, ProxyError> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        let caller = Caller {
            ip: peer.ip(),
            user,
            headers: req.headers(),
        };
        match limiter.check(route, req.uri().path(), &caller).await {
            Verdict::Unlimited => Ok(None),
            Verdict::Allowed(d) => Ok(Some(d)),
            Verdict::Limited(d) => {
                self.metrics
                    .rate_limited_total
                    .with_label_values(&[route.id.as_str()])
                    .inc();
                Err(ProxyError::RateLimited {
                    limit: d.limit,
                    reset_secs: d.retry_after_secs(),
                })
            }
            Verdict::Unavailable => Err(ProxyError::RateLimitUnavailable),
        }
    }

    /// Sends the request to an endpoint chosen by the upstream's balancer, through its circuit
    /// breaker, retrying idempotent requests on another endpoint when the retry policy says so,
    /// all within the route timeout.
    async fn forward(
        &self,
        route: &Route,
        peer: SocketAddr,
        req: Request<ClientBody>,
        client: &headers::ClientFields,
        request_id: &HeaderValue,
        user: Option<&UserContext>,
    ) -> Result<Response<Body>, ProxyError> {
        let claim_of = |name: &str| user.and_then(|u| u.claim_str(name));
        let claim: Option<&ClaimLookup<'_>> = if user.is_some() { Some(&claim_of) } else { None };
        let (mut parts, body) = req.into_parts();
        // The fast path's own writer takes the upstream's fields in wire form.
        let wire = matches!(body, ClientBody::Read(_));
        let content_length = client
            .content_length
            .as_ref()
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(len) = content_length {
            if len > self.max_body_size {
                return Err(ProxyError::PayloadTooLarge {
                    limit: self.max_body_size,
                });
            }
        }
        let upstream = &route.upstream;
        if upstream.endpoints.is_empty() {
            return Err(ProxyError::UpstreamUnavailable(format!(
                "upstream {} has no endpoints",
                upstream.key
            )));
        }
        let binding = upstream.binding();
        // (The clock is read here only when some timeout applies.)
        let started =
            (route.timeout.is_some() || self.upstream_timeout.is_some()).then(tokio::time::Instant::now);
        let deadline = route.timeout.zip(started).map(|(t, s)| s + t);

        let path = parts.uri.path();
        let rewritten = route.rewrite.as_ref().map(|r| r.apply(path));
        let pq = match rewritten {
            Some(p) => path_and_query(p, parts.uri.query()),
            None => Ok(parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))),
        }
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))?;
        let ctx = PickContext {
            ip: peer.ip(),
            headers: &parts.headers,
            claim,
        };
        // Chosen before the headers change, so that `hashOn: header:NAME` sees the client's.
        let Some(mut chosen) = upstream.choose(&ctx, &[]) else {
            return Err(ProxyError::UpstreamUnavailable(format!(
                "upstream {} has no healthy endpoint",
                upstream.key
            )));
        };

        // The host the route was chosen by.
        let client_host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => client.host.clone(),
        };
        let proto = match parts.extensions.get::<super::tls::TlsConn>() {
            Some(_) => "https",
            None => self.proto,
        };
        let mut fwd = headers::Forwarding::new(client, peer.ip(), proto, client_host, request_id.clone());
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
        if let Some(user) = user {
            user.apply_headers(h);
        }
        // The upstream hop's trace context is set per try, just before the send.
        let request_span = parts.extensions.remove::<crate::telemetry::RequestSpan>();
        let client = if h2c {
            parts.version = Version::HTTP_2;
            &self.h2c
        } else {
            parts.version = Version::HTTP_11;
            &self.http1
        };

        // Bodiless requests and bodies up to REPLAY_LIMIT with a known length are read into
        // memory first (within the route timeout): a retry can send them again, and plain
        // HTTP/1.1 endpoints get them with the head in one write. Anything else is streamed
        // and not retried.
        let mut outgoing = match body {
            ClientBody::Read(b) => Outgoing::Buffered(b),
            ClientBody::Streamed(body) if body.is_end_stream() => Outgoing::Buffered(Bytes::new()),
            ClientBody::Streamed(body) if content_length.is_some_and(|l| l <= REPLAY_LIMIT) => {
                let collect = Limited::new(body, REPLAY_LIMIT as usize).collect();
                let collected = match deadline {
                    Some(d) => tokio::time::timeout_at(d, collect)
                        .await
                        .map_err(|_| ProxyError::RequestTimeout(route.timeout.unwrap_or_default()))?,
                    None => collect.await,
                }
                .map_err(|e| ProxyError::BadRequest(format!("cannot read the request body: {e}")))?;
                Outgoing::Buffered(collected.to_bytes())
            }
            ClientBody::Streamed(body) => Outgoing::Stream(Some(ClientStream {
                body,
                watch: Arc::default(),
            })),
        };
        let client_watch = match &outgoing {
            Outgoing::Stream(Some(s)) => Some(s.watch.clone()),
            _ => None,
        };
        let retry = upstream.retries.as_ref().filter(|r| {
            r.attempts > 0 && is_idempotent(&parts.method) && matches!(outgoing, Outgoing::Buffered(_))
        });
        let tries = 1 + retry.map_or(0, |r| r.attempts as usize);
        let mut template = Some(parts);
        // Only needed to steer retries away from endpoints already tried.
        let mut tried: Vec<usize> = Vec::with_capacity(if tries > 1 { tries } else { 0 });
        let mut last: Option<Result<Response<Body>, ProxyError>> = None;

        for attempt in 0..tries {
            if attempt > 0 {
                let ctx = PickContext {
                    ip: peer.ip(),
                    headers: template.as_ref().map_or(&self.empty_headers, |p| &p.headers),
                    claim,
                };
                match upstream.choose(&ctx, &tried) {
                    Some(i) => chosen = i,
                    None => break,
                }
            }
            let ticket = match &binding.breaker {
                None => None,
                Some(b) => match b.try_acquire() {
                    Some(t) => Some(t),
                    None if last.is_none() => {
                        return Err(ProxyError::UpstreamUnavailable(format!(
                            "circuit breaker of upstream {} is open",
                            upstream.key
                        )))
                    }
                    None => break,
                },
            };
            if tries > 1 {
                tried.push(chosen);
            }
            let (Some(endpoint), Some(state)) =
                (upstream.endpoints.get(chosen), binding.endpoints.get(chosen))
            else {
                break;
            };
            // With `timeout` listed, each try gets an even share of the time that is left;
            // otherwise it may take all of it. (The clock is read only when there is a choice.)
            let left = (tries - attempt) as u32;
            let per_try = match deadline {
                Some(d) if attempt > 0 || (left > 1 && retry.is_some_and(|p| p.on("timeout"))) => {
                    let now = tokio::time::Instant::now();
                    let remaining = d.saturating_duration_since(now);
                    if remaining.is_zero() {
                        break;
                    }
                    match retry {
                        Some(p) if left > 1 && p.on("timeout") => Some(now + remaining / left),
                        _ => Some(d),
                    }
                }
                d => d,
            };
            // `server.timeouts.upstream_timeout` bounds the try, when it ends sooner.
            let (per_try, capped) = match (self.upstream_timeout, started) {
                (Some(limit), Some(first)) => {
                    let from = if attempt == 0 {
                        first
                    } else {
                        tokio::time::Instant::now()
                    };
                    match per_try {
                        Some(t) if t <= from + limit => (Some(t), false),
                        _ => (Some(from + limit), true),
                    }
                }
                _ => (per_try, false),
            };
            let Some(mut req_parts) = (if attempt + 1 < tries {
                template.as_ref().map(copy_parts)
            } else {
                template.take()
            }) else {
                break;
            };
            fwd.host = Some(endpoint.host_header.clone());
            // Each try is its own upstream hop: a client span when tracing is on, else a fresh
            // parent id for the client's trace.
            let upstream_span = match &request_span {
                Some(s) => {
                    fwd.traceparent = None;
                    Some(s.upstream_call(&upstream.key, &endpoint.url, &mut req_parts.headers))
                }
                None => {
                    fwd.next_traceparent();
                    None
                }
            };
            let fwd = &fwd;
            let in_flight = state.start();
            // The deadline bounds the call up to the response head; the own client keeps a
            // timer per connection, the general one gets a timer per call.
            let call = async {
                match &mut outgoing {
                    Outgoing::Buffered(body) if !h2c && endpoint.scheme == http::uri::Scheme::HTTP => {
                        let out = Outbound {
                            method: &req_parts.method,
                            target: pq.as_str(),
                            headers: &req_parts.headers,
                            body,
                            authority: &endpoint.authority,
                            forwarding: fwd,
                            wire,
                        };
                        self.h1
                            .request(out, per_try)
                            .await
                            .map(|r| r.map(|b| UpstreamBody::pooled(b, self.read_timeout)))
                    }
                    outgoing => {
                        let body = match outgoing {
                            Outgoing::Buffered(b) => Either::Right(Full::new(b.clone())),
                            Outgoing::Stream(b) => match b.take() {
                                Some(b) => Either::Left(b),
                                None => return Err(CallError::protocol("the request body was sent already")),
                            },
                        };
                        fwd.apply(&mut req_parts.headers);
                        // The general client takes the absolute URI of the endpoint.
                        req_parts.uri = Uri::from_parts({
                            let mut u = http::uri::Parts::default();
                            u.scheme = Some(endpoint.scheme.clone());
                            u.authority = Some(endpoint.authority.clone());
                            u.path_and_query = Some(pq.clone());
                            u
                        })
                        .map_err(|e| CallError::protocol(format!("cannot build the upstream URI: {e}")))?;
                        let req = Request::from_parts(req_parts, body);
                        let sent = match per_try {
                            Some(t) => tokio::time::timeout_at(t, client.request(req))
                                .await
                                .map_err(|_| CallError::timeout())?,
                            None => client.request(req).await,
                        };
                        match sent {
                            Ok(resp) => Ok(resp.map(|b| UpstreamBody::hyper(b, self.read_timeout))),
                            Err(e) => Err(CallError::from_hyper(&e)),
                        }
                    }
                }
            };
            let result = call.await;
            drop(in_flight);
            if let Some(span) = upstream_span {
                match &result {
                    Ok(resp) => span.finish(Ok(resp.status())),
                    Err(e) if e.is_timeout() => span.finish(Err("timeout")),
                    Err(e) => span.finish(Err(&e.to_string())),
                }
            }
            // How long a try out of time waited: the route timeout, or the upstream timeout
            // when it came first.
            let waited = || match self.upstream_timeout {
                Some(limit) if capped => limit,
                _ => route.timeout.unwrap_or_default(),
            };
            if let (Err(e), Some(watch)) = (&result, &client_watch) {
                // Neither the breaker nor the upstream's series hear of the client's faults.
                if let Some(why) = watch.failed.get() {
                    return Err(ProxyError::BadRequest(format!(
                        "cannot read the request body: {why}"
                    )));
                }
                if e.is_timeout() && watch.waiting.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(ProxyError::RequestTimeout(waited()));
                }
            }
            let more = attempt + 1 < tries;
            let (label, ok, retry_it, outcome) = match result {
                Ok(mut resp) => {
                    let status = resp.status();
                    let retry_it = retry.is_some_and(|p| {
                        (status.is_server_error() && p.on("5xx"))
                            || (matches!(status.as_u16(), 502..=504) && p.on("gateway-error"))
                    });
                    headers::strip_hop_by_hop(resp.headers_mut());
                    if status == StatusCode::NO_CONTENT {
                        // RFC 9110 §8.6; the own client drops it already.
                        resp.headers_mut().remove(header::CONTENT_LENGTH);
                    }
                    (
                        Some(status),
                        !status.is_server_error(),
                        retry_it,
                        Ok(resp.map(Either::Left)),
                    )
                }
                Err(e) if e.is_timeout() => {
                    let out_of_time = deadline.is_some_and(|d| d <= tokio::time::Instant::now());
                    (
                        None,
                        false,
                        !out_of_time && retry.is_some_and(|p| p.on("timeout")),
                        Err(ProxyError::UpstreamTimeout(waited())),
                    )
                }
                Err(e) => {
                    let connect = e.is_connect();
                    let condition = if connect { "connect-failure" } else { "reset" };
                    let msg = if connect {
                        format!("cannot connect to {}", endpoint.url)
                    } else {
                        format!("{} failed: {e}", endpoint.url)
                    };
                    (
                        None,
                        false,
                        retry.is_some_and(|p| p.on(condition)),
                        Err(ProxyError::BadGateway(msg)),
                    )
                }
            };
            if let Some(t) = ticket {
                t.record(ok);
            }
            // Without a response, `ok` is false: "error".
            upstream.series.with(
                &label.map_or(0, |s| s.as_u16()),
                || {
                    let status = label.as_ref().map_or("error", |s| s.as_str());
                    self.metrics
                        .upstream_requests_total
                        .with_label_values(&[upstream.key.as_str(), status])
                },
                |c| c.inc(),
            );
            if !(retry_it && more) {
                return outcome;
            }
            tracing::debug!(upstream = %upstream.key, endpoint = %endpoint.url, attempt, "retrying on another endpoint");
            last = Some(outcome);
        }
        last.unwrap_or_else(|| {
            Err(ProxyError::UpstreamTimeout(
                route.timeout.unwrap_or(Duration::ZERO),
            ))
        })
    }

    /// The caller on a protected route (`None` on public ones), or why it may not call.
    fn authenticate(
        &self,
        route: &Route,
        req: &Request<ClientBody>,
    ) -> Result<Option<Arc<UserContext>>, ProxyError> {
        if !route.auth.required {
            return Ok(None);
        }
        let table = self.table.load();
        let upgrade = route.websocket && req.headers().contains_key(header::UPGRADE);
        auth::authenticate(
            table.auth.as_deref(),
            &route.auth,
            req.headers(),
            req.uri().query(),
            upgrade,
        )
        .map(Some)
        .map_err(|e| {
            if e.is_forbidden() {
                ProxyError::Forbidden(e.to_string())
            } else {
                ProxyError::Unauthorized(e.to_string())
            }
        })
    }

    /// The route for `req`, or the response the gateway gives instead (preflight, 404, 405).
    #[allow(clippy::result_large_err)]
    fn route_for(
        &self,
        req: &Request<ClientBody>,
        host: Option<&str>,
        method: &http::Method,
        request_id: &HeaderValue,
        start: Instant,
    ) -> Result<Arc<Route>, Response<Body>> {
        let table = self.table.load();
        let path = req.uri().path();

        // A CORS preflight is answered here, for the route that the real request would take.
        if let Some(asked) = cors::preflight_method(method, req.headers()) {
            if let Lookup::Found(route) = table.lookup(host, path, &asked) {
                if let Some(rules) = &route.cors {
                    let (status, h) = cors::preflight(rules, req.headers());
                    let mut resp = if status.is_success() {
                        plain(status, "")
                    } else {
                        error_response(
                            &ProxyError::Forbidden("origin not allowed by CORS".into()),
                            request_id,
                        )
                    };
                    resp.headers_mut().extend(h);
                    resp.headers_mut()
                        .insert(&headers::X_REQUEST_ID, request_id.clone());
                    self.count(Some(route), method, resp.status(), start);
                    return Err(resp);
                }
            }
        }
        let err = match table.lookup(host, path, method) {
            Lookup::Found(route) => return Ok(route.clone()),
            Lookup::MethodNotAllowed(allow) => ProxyError::MethodNotAllowed {
                method: method.to_string(),
                allow: allow.allow_header(),
            },
            Lookup::NotFound => ProxyError::RouteNotFound {
                method: method.to_string(),
                path: path.to_string(),
            },
        };
        self.count(None, method, err.status(), start);
        Err(error_response(&err, request_id))
    }

    fn readiness(&self) -> Response<Body> {
        if self.ready.load(Ordering::Acquire) {
            plain(StatusCode::OK, r#"{"status":"ready"}"#)
        } else {
            plain(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
        }
    }

    /// The JSON error for a request refused before routing, counted without a route.
    fn refuse(&self, err: &ProxyError, request_id: &HeaderValue) -> Response<Body> {
        self.count_refused(err.status());
        error_response(err, request_id)
    }

    /// Counts a request whose head was refused before it could be read (no route, no method).
    pub fn count_refused(&self, status: StatusCode) {
        self.metrics
            .http_requests_total
            .with_label_values(&["", "", status.as_str()])
            .inc();
    }

    /// Counts a request of `route` (`None`: no route matched) and its duration.
    fn count(&self, route: Option<&Route>, method: &http::Method, status: StatusCode, start: Instant) {
        let m = &self.metrics;
        let seconds = start.elapsed().as_secs_f64();
        let Some(route) = route else {
            m.http_requests_total
                .with_label_values(&["", method.as_str(), status.as_str()])
                .inc();
            m.http_request_duration_seconds
                .with_label_values(&[""])
                .observe(seconds);
            return;
        };
        let id = route.id.as_str();
        route.series.requests.with(
            &(method.clone(), status.as_u16()),
            || {
                m.http_requests_total
                    .with_label_values(&[id, method.as_str(), status.as_str()])
            },
            |c| c.inc(),
        );
        route
            .series
            .duration
            .get_or_init(|| m.http_request_duration_seconds.with_label_values(&[id]))
            .observe(seconds);
    }
}

/// A request whose future is dropped before its answer is made: the client closed the
/// connection (or the drain ran out). It is counted with status 499, as nginx logs it.
struct Abandoned<'a> {
    state: &'a ProxyState,
    route: &'a Route,
    method: &'a http::Method,
    start: Instant,
    span: Option<&'a crate::telemetry::RequestSpan>,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let Ok(status) = StatusCode::from_u16(499) else {
            return;
        };
        self.state
            .count(Some(self.route), self.method, status, self.start);
        if let Some(s) = self.span {
            s.finish(status);
        }
    }
}

/// The body of `resp` when [`OwnClient`] reads it.
fn pooled_mut(resp: &mut Response<Body>) -> Option<&mut super::client::PooledBody> {
    match resp.body_mut() {
        Either::Left(body) => body.pooled_mut(),
        Either::Right(_) => None,
    }
}

/// The response's fields, for editing: any still in wire form move into the map first (they
/// are only written as they are while nothing else changes).
fn fields_mut(resp: &mut Response<Body>) -> &mut http::HeaderMap {
    if let Some(body) = pooled_mut(resp) {
        if let Some(wire) = body.take_wire_fields() {
            wire.append_to(resp.headers_mut());
        }
    }
    resp.headers_mut()
}

/// Sets the response's `X-Request-ID`: beside its fields in wire form when it has them so (its
/// map then stays empty), else in its map.
fn set_request_id(resp: &mut Response<Body>, id: HeaderValue) {
    if let Some(body) = pooled_mut(resp) {
        if let Some(wire) = body.wire_fields_mut() {
            wire.request_id = Some(id);
            return;
        }
    }
    resp.headers_mut().insert(&headers::X_REQUEST_ID, id);
}

fn error_response(err: &ProxyError, request_id: &HeaderValue) -> Response<Body> {
    err.to_response(request_id.to_str().unwrap_or_default())
        .map(Either::Right)
}

/// A small JSON (or empty) response made by the gateway.
pub fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(body.as_bytes()))));
    *resp.status_mut() = status;
    if !body.is_empty() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Idle pooled connections of the general client are closed by the pool's timer, with no
    /// later request to find them: a real HTTP/1.1 and a real h2c server count what is open.
    #[tokio::test]
    async fn the_general_client_closes_idle_connections() {
        for h2 in [false, true] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let open = Arc::new(AtomicUsize::new(0));
            let counted = open.clone();
            let server = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let open = counted.clone();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if h2 {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, svc)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, svc)
                                .await;
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            let client = general_client(HttpConnector::new(), Duration::from_millis(200), h2);
            let req = Request::get(format!("http://{addr}/"))
                .body(Either::Right(Full::new(Bytes::new())))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
            assert_eq!(open.load(Ordering::SeqCst), 1, "h2: {h2}");
            let until = Instant::now() + Duration::from_secs(5);
            while open.load(Ordering::SeqCst) > 0 {
                assert!(
                    Instant::now() < until,
                    "an idle connection stayed open (h2: {h2})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server.abort();
        }
    }
}
