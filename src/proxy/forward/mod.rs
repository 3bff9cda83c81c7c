//! The forward phase: the request to an endpoint chosen by the route upstream's balancer,
//! through its circuit breaker, tried again on another endpoint when the retry policy says
//! so, all within the route timeout; and WebSocket upgrades, tunnelled.
//!
//! Order (each file uses only those before it): `buffer` (the request body), `general` (the
//! general client), `forwarder` (the clients), `rewrite` (endpoint choice and the request as
//! the upstream gets it), `attempt` (one try: deadline, send, classify), `relay` (a tunnel's
//! bytes and idle clock), `upgrade` (tunnels), then this file: the loop over the tries.
//!
//! The loop keeps the request's large values (the head, the forwarding fields, the body) as
//! its own locals and lends them to each step: made elsewhere and moved in, or handed back and
//! forth, they would be copied on every request (`benches/proxy_instructions.sh` counts it).

mod attempt;
mod buffer;
mod forwarder;
mod general;
mod relay;
mod rewrite;
#[cfg(test)]
mod tests;
mod upgrade;

use std::time::Duration;

use http::{Request, Response};

use attempt::{start_try, Clock, Tries, Try};
use buffer::ForwardBody;
pub use forwarder::Forwarder;
use rewrite::UpstreamHead;

use super::body::{Body, ClientBody};
use super::client::is_idempotent;
use super::context::RequestCtx;
use super::error::ProxyError;
use crate::upstream::Protocol;

impl Forwarder {
    /// Sends the request to an endpoint chosen by the upstream's balancer, through its circuit
    /// breaker, retrying idempotent requests on another endpoint when the retry policy says so,
    /// all within the route timeout.
    pub async fn forward(
        &self,
        ctx: &RequestCtx<'_>,
        req: Request<ClientBody>,
    ) -> Result<Response<Body>, ProxyError> {
        let upstream = ctx.upstream();
        if upstream.endpoints.is_empty() {
            return Err(ProxyError::UpstreamUnavailable(format!(
                "upstream {} has no endpoints",
                upstream.key
            )));
        }
        let binding = upstream.binding();
        let clock = Clock::start(ctx.route.timeout, self.upstream_timeout);
        let (mut parts, body) = req.into_parts();
        // The fast path's own writer takes the upstream's fields in wire form.
        let wire = matches!(body, ClientBody::Read(_));
        let target = rewrite::target(&ctx.route, &parts.uri)?;
        let mut chosen = rewrite::first_choice(ctx, &parts.headers)?;
        let mut fwd = rewrite::forwarding(ctx, &parts.uri);
        let h2c = upstream.protocol == Protocol::H2c;
        rewrite::rewrite_head(ctx, &mut parts, h2c, &self.headers);
        // The head of the tries: each but the last gets a copy, the last takes it.
        let mut template = Some(parts);
        let mut body = match ForwardBody::take(body, ctx.arrival.content_length(), self.max_body_size) {
            Ok(body) => body,
            Err(small) => ForwardBody::collect(small, clock.deadline, ctx.route.timeout).await?,
        };
        let retry = upstream.retries.as_ref().filter(|r| {
            r.attempts > 0
                && template.as_ref().is_some_and(|p| is_idempotent(&p.method))
                && matches!(body, ForwardBody::Buffered(_))
        });
        let tries = Tries {
            count: 1 + retry.map_or(0, |r| r.attempts as usize),
            retry,
            clock,
            watch: body.watch(),
        };
        // Only needed to steer retries away from endpoints already tried.
        let mut tried: Vec<usize> = Vec::with_capacity(if tries.count > 1 { tries.count } else { 0 });
        let mut last: Option<Result<Response<Body>, ProxyError>> = None;

        for attempt in 0..tries.count {
            if attempt > 0 {
                let headers = template.as_ref().map_or(&self.empty_headers, |p| &p.headers);
                match rewrite::choose(ctx, headers, &tried) {
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
            if tries.count > 1 {
                tried.push(chosen);
            }
            let (Some(endpoint), Some(state)) =
                (upstream.endpoints.get(chosen), binding.endpoints.get(chosen))
            else {
                break;
            };
            let Some((until, capped)) = tries.deadline(attempt) else {
                break;
            };
            let more = attempt + 1 < tries.count;
            let Some(mut parts) = rewrite::next_head(&mut template, !more) else {
                break;
            };
            // The try: its head, the send, and what came back.
            let mut t = Try {
                endpoint,
                ticket,
                until,
                capped,
                span: None,
            };
            start_try(ctx, &mut fwd, &mut t, &mut parts);
            let head = UpstreamHead {
                target: &target,
                fwd: &fwd,
                h2c,
                wire,
            };
            let in_flight = state.start();
            let result = self.send(head, &mut body, parts, &t).await;
            drop(in_flight);
            let tried = self.classify(ctx, &tries, t, result);
            if !(tried.retry && more) {
                return tried.outcome;
            }
            tracing::debug!(upstream = %upstream.key, endpoint = %endpoint.url, attempt, "retrying on another endpoint");
            last = Some(tried.outcome);
        }
        last.unwrap_or_else(|| {
            Err(ProxyError::UpstreamTimeout(
                ctx.route.timeout.unwrap_or(Duration::ZERO),
            ))
        })
    }
}
