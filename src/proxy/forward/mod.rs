//! The forward phase: the request to an endpoint chosen by the route upstream's balancer,
//! through its circuit breaker, tried again on another endpoint when the retry policy says
//! so, all within the route timeout; and WebSocket upgrades, tunnelled.
//!
//! Order (each file uses only those before it): `buffer` (the request body), `general` (the
//! general client), `forwarder` (the clients), `rewrite` (endpoint choice and the request as
//! the upstream gets it), `attempt` (one try: deadline, send, classify), `upgrade` (tunnels),
//! then this file: the loop over the tries.

mod attempt;
mod buffer;
mod forwarder;
mod general;
mod rewrite;
#[cfg(test)]
mod tests;
mod upgrade;

use std::time::Duration;

use http::{Request, Response};

use attempt::{Clock, Tried, Try, UpstreamRequest};
use buffer::ForwardBody;
pub use forwarder::Forwarder;

use super::body::{Body, ClientBody};
use super::client::is_idempotent;
use super::context::RequestCtx;
use super::error::ProxyError;

impl Forwarder {
    /// Sends the request to an endpoint chosen by the upstream's balancer, through its circuit
    /// breaker, retrying idempotent requests on another endpoint when the retry policy says so,
    /// all within the route timeout.
    pub async fn forward(
        &self,
        ctx: &RequestCtx,
        req: Request<ClientBody>,
    ) -> Result<Response<Body>, ProxyError> {
        let upstream = &ctx.route.upstream;
        if upstream.endpoints.is_empty() {
            return Err(ProxyError::UpstreamUnavailable(format!(
                "upstream {} has no endpoints",
                upstream.key
            )));
        }
        let binding = upstream.binding();
        let clock = Clock::start(ctx.route.timeout, self.upstream_timeout);
        let (parts, body) = req.into_parts();
        // The fast path's own writer takes the upstream's fields in wire form.
        let wire = matches!(body, ClientBody::Read(_));
        let (head, mut chosen) = rewrite::prepare(ctx, parts)?;
        let body = ForwardBody::read(
            body,
            ctx.arrival.content_length(),
            clock.deadline,
            ctx.route.timeout,
        )
        .await?;
        let retry = upstream.retries.as_ref().filter(|r| {
            r.attempts > 0
                && head.method().is_some_and(is_idempotent)
                && matches!(body, ForwardBody::Buffered(_))
        });
        let tries = 1 + retry.map_or(0, |r| r.attempts as usize);
        let mut req = UpstreamRequest {
            head,
            watch: body.watch(),
            body,
            wire,
            retry,
            clock,
        };
        // Only needed to steer retries away from endpoints already tried.
        let mut tried: Vec<usize> = Vec::with_capacity(if tries > 1 { tries } else { 0 });
        let mut last: Option<Result<Response<Body>, ProxyError>> = None;

        for attempt in 0..tries {
            if attempt > 0 {
                let headers = req.head.headers().unwrap_or(&self.empty_headers);
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
            if tries > 1 {
                tried.push(chosen);
            }
            let (Some(endpoint), Some(state)) =
                (upstream.endpoints.get(chosen), binding.endpoints.get(chosen))
            else {
                break;
            };
            let Some((until, capped)) = req.deadline(attempt, tries) else {
                break;
            };
            let more = attempt + 1 < tries;
            let Some(parts) = req.head.for_try(!more) else {
                break;
            };
            let t = Try {
                endpoint,
                state,
                ticket,
                parts,
                until,
                capped,
            };
            let Tried { outcome, retry } = self.attempt(ctx, &mut req, t).await;
            if !(retry && more) {
                return outcome;
            }
            tracing::debug!(upstream = %upstream.key, endpoint = %endpoint.url, attempt, "retrying on another endpoint");
            last = Some(outcome);
        }
        last.unwrap_or_else(|| {
            Err(ProxyError::UpstreamTimeout(
                ctx.route.timeout.unwrap_or(Duration::ZERO),
            ))
        })
    }
}
