//! One try on one endpoint, in steps the retry loop runs in turn: its deadline, its head
//! (`start_try`), the send through the client that fits (the own client for plain `http`
//! endpoints and bodies in memory, the general one otherwise), and what came back classified
//! (`classify`): the answer, whether another try may replace it, and what the circuit breaker
//! and the upstream's metrics hear of it. (Only the send is `async`: a future per step would be
//! copied around on every request.)

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Either;
use tokio::time::Instant;

use super::buffer::{BodyFault, BodyWatch, ForwardBody};
use super::forwarder::Forwarder;
use super::general::{self, GeneralRequest};
use super::rewrite::UpstreamHead;
use crate::proxy::body::{Body, UpstreamBody};
use crate::proxy::client::Outbound;
use crate::proxy::context::RequestCtx;
use crate::proxy::error::{CallError, ProxyError};
use crate::proxy::headers::{self, Forwarding};
use crate::telemetry::UpstreamSpan;
use crate::upstream::{Endpoint, RetryPolicy, Ticket};

/// The route timeout and the upstream timeout, read against one start.
pub(super) struct Clock {
    /// When the first try began (read only when some timeout applies).
    started: Option<Instant>,
    /// The end of the route timeout.
    pub(super) deadline: Option<Instant>,
    /// The route timeout.
    route: Option<Duration>,
    /// `server.timeouts.upstream_timeout`: the longest one try may take.
    upstream: Option<Duration>,
}

impl Clock {
    #[inline]
    pub(super) fn start(route: Option<Duration>, upstream: Option<Duration>) -> Self {
        // (The clock is read here only when some timeout applies.)
        let started = (route.is_some() || upstream.is_some()).then(Instant::now);
        Clock {
            started,
            deadline: route.zip(started).map(|(t, s)| s + t),
            route,
            upstream,
        }
    }

    /// The deadline of try `attempt` of `tries`, and whether the upstream timeout set it;
    /// `None` when the route timeout has no time left for it.
    #[inline]
    fn per_try(
        &self,
        attempt: usize,
        tries: usize,
        retry: Option<&RetryPolicy>,
    ) -> Option<(Option<Instant>, bool)> {
        // With `timeout` listed, each try gets an even share of the time that is left;
        // otherwise it may take all of it. (The clock is read only when there is a choice.)
        let left = (tries - attempt) as u32;
        let per_try = match self.deadline {
            Some(d) if attempt > 0 || (left > 1 && retry.is_some_and(|p| p.on("timeout"))) => {
                let now = Instant::now();
                let remaining = d.saturating_duration_since(now);
                if remaining.is_zero() {
                    return None;
                }
                match retry {
                    Some(p) if left > 1 && p.on("timeout") => Some(now + remaining / left),
                    _ => Some(d),
                }
            }
            d => d,
        };
        // `server.timeouts.upstream_timeout` bounds the try, when it ends sooner.
        Some(match (self.upstream, self.started) {
            (Some(limit), Some(first)) => {
                let from = if attempt == 0 { first } else { Instant::now() };
                match per_try {
                    Some(t) if t <= from + limit => (Some(t), false),
                    _ => (Some(from + limit), true),
                }
            }
            _ => (per_try, false),
        })
    }

    /// How long a try out of time waited: the route timeout, or the upstream timeout when it
    /// came first (`capped`).
    #[inline]
    fn waited(&self, capped: bool) -> Duration {
        match self.upstream {
            Some(limit) if capped => limit,
            _ => self.route.unwrap_or_default(),
        }
    }
}

/// What steers the tries of one request: how many there may be, the retry policy, the
/// clock, and the watch on a streamed body.
pub(super) struct Tries<'a> {
    pub(super) count: usize,
    /// The upstream's retry policy, when this request may be tried again.
    pub(super) retry: Option<&'a RetryPolicy>,
    pub(super) clock: Clock,
    /// What can be learnt of a streamed body after a try.
    pub(super) watch: Option<Arc<BodyWatch>>,
}

impl Tries<'_> {
    /// The deadline of try `attempt`, and whether the upstream timeout set it; `None` when no
    /// time is left for it.
    #[inline]
    pub(super) fn deadline(&self, attempt: usize) -> Option<(Option<Instant>, bool)> {
        self.clock.per_try(attempt, self.count, self.retry)
    }
}

/// One try: where it goes, by when, and what hears of it.
pub(super) struct Try<'a> {
    pub(super) endpoint: &'a Endpoint,
    /// The circuit breaker's leave to call, when the upstream has one.
    pub(super) ticket: Option<Ticket<'a>>,
    pub(super) until: Option<Instant>,
    /// The upstream timeout set `until`.
    pub(super) capped: bool,
    /// The hop's client span, when tracing is on.
    pub(super) span: Option<UpstreamSpan>,
}

/// How a try went: the answer to give, unless `retry` and another try replaces it.
pub(super) struct Tried {
    pub(super) outcome: Result<Response<Body>, ProxyError>,
    pub(super) retry: bool,
}

/// The head of try `t`: the endpoint's `Host`, and the hop's trace context (each try is its
/// own upstream hop: a client span when tracing is on, else a fresh parent id for the
/// client's trace).
#[inline]
pub(super) fn start_try(ctx: &RequestCtx<'_>, fwd: &mut Forwarding, t: &mut Try<'_>, parts: &mut Parts) {
    fwd.host = Some(ctx.upstream_host(&t.endpoint.host_header));
    t.span = match &ctx.arrival.span {
        Some(s) => {
            fwd.traceparent = None;
            Some(s.upstream_call(&ctx.upstream().key, &t.endpoint.url, &mut parts.headers))
        }
        None => {
            fwd.next_traceparent();
            None
        }
    };
}

impl Forwarder {
    /// Sends the request on the client that fits and reads the response head, before the
    /// try's deadline (the own client keeps a timer per connection, the general one gets a
    /// timer per call).
    pub(super) async fn send(
        &self,
        head: UpstreamHead<'_>,
        body: &mut ForwardBody,
        parts: Parts,
        t: &Try<'_>,
    ) -> Result<Response<UpstreamBody>, CallError> {
        let endpoint = t.endpoint;
        match body {
            ForwardBody::Buffered(body) if !head.h2c && endpoint.scheme == http::uri::Scheme::HTTP => {
                let out = Outbound {
                    method: &parts.method,
                    target: head.target.as_str(),
                    headers: &parts.headers,
                    body,
                    authority: &endpoint.authority,
                    forwarding: head.fwd,
                    wire: head.wire,
                };
                self.own
                    .request(out, t.until)
                    .await
                    .map(|r| r.map(|b| UpstreamBody::pooled(b, self.read_timeout)))
            }
            body => {
                let client = if head.h2c { &self.h2c } else { &self.general };
                let req = GeneralRequest {
                    body: body.for_general()?,
                    parts,
                    fwd: head.fwd,
                    endpoint,
                    target: head.target,
                };
                general::send(client, req, t.until)
                    .await
                    .map(|r| r.map(|b| UpstreamBody::hyper(b, self.read_timeout)))
            }
        }
    }

    /// What try `t` came back with, classified: what the hop's span, the breaker and the
    /// upstream's series hear, the answer (hop-by-hop fields gone) or error, and whether the
    /// retry policy allows another try. (Kept out of line: a call writes the answer straight
    /// into the caller's future, where one made there would be copied into place.)
    #[inline(never)]
    pub(super) fn classify(
        &self,
        ctx: &RequestCtx<'_>,
        tries: &Tries<'_>,
        t: Try<'_>,
        result: Result<Response<UpstreamBody>, CallError>,
    ) -> Tried {
        if let Some(span) = t.span {
            match &result {
                Ok(resp) => span.finish(Ok(resp.status())),
                Err(e) if e.is_timeout() => span.finish(Err("timeout")),
                Err(e) => span.finish(Err(&e.to_string())),
            }
        }
        if let (Err(e), Some(watch)) = (&result, &tries.watch) {
            // Reading the client's body failed, or time ran out waiting for it: the client's
            // fault, which neither the breaker nor the upstream's series hear of, and which
            // no other try mends.
            let fault = match watch.failed() {
                Some(BodyFault::TooLarge(limit)) => Some(ProxyError::PayloadTooLarge { limit: *limit }),
                Some(BodyFault::Broken(why)) => Some(ProxyError::BadRequest(format!(
                    "cannot read the request body: {why}"
                ))),
                None if e.is_timeout() && watch.waiting() => {
                    Some(ProxyError::RequestTimeout(tries.clock.waited(t.capped)))
                }
                None => None,
            };
            if let Some(fault) = fault {
                return Tried {
                    outcome: Err(fault),
                    retry: false,
                };
            }
        }
        // The status the try is counted by (none without a response: "error"), and whether
        // the breaker counts it a success.
        let label = result.as_ref().ok().map(|r| r.status());
        if let Some(ticket) = t.ticket {
            ticket.record(label.is_some_and(|s| !s.is_server_error()));
        }
        let upstream = ctx.upstream();
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
        let retry = tries.retry;
        match result {
            Ok(mut resp) => {
                let status = resp.status();
                let retry = retry.is_some_and(|p| {
                    (status.is_server_error() && p.on("5xx"))
                        || (matches!(status.as_u16(), 502..=504) && p.on("gateway-error"))
                });
                headers::strip_hop_by_hop(resp.headers_mut());
                if status == StatusCode::NO_CONTENT {
                    // RFC 9110 §8.6; the own client drops it already.
                    resp.headers_mut().remove(header::CONTENT_LENGTH);
                }
                Tried {
                    outcome: Ok(resp.map(Either::Left)),
                    retry,
                }
            }
            Err(e) if e.is_timeout() => {
                let out_of_time = tries.clock.deadline.is_some_and(|d| d <= Instant::now());
                Tried {
                    outcome: Err(ProxyError::UpstreamTimeout(tries.clock.waited(t.capped))),
                    retry: !out_of_time && retry.is_some_and(|p| p.on("timeout")),
                }
            }
            Err(e) => {
                let connect = e.is_connect();
                let condition = if connect { "connect-failure" } else { "reset" };
                let msg = if connect {
                    format!("cannot connect to {}", t.endpoint.url)
                } else {
                    format!("{} failed: {e}", t.endpoint.url)
                };
                Tried {
                    outcome: Err(ProxyError::BadGateway(msg)),
                    retry: retry.is_some_and(|p| p.on(condition)),
                }
            }
        }
    }
}
