//! The admission phase: who calls (JWT on protected routes), whether the rate limit lets them,
//! and whether the body they declare may be sent.

use std::net::IpAddr;
use std::sync::Arc;

use http::{header, Request};

use super::state::ProxyState;
use crate::auth::{self, UserContext};
use crate::middleware::ratelimit::{Admission, Caller, Quota};
use crate::proxy::body::ClientBody;
use crate::proxy::context::RequestCtx;
use crate::proxy::error::ProxyError;

impl ProxyState {
    /// The caller on a protected route (`None` on public ones), or why it may not call. The
    /// key set is the one of the table the request arrived with.
    pub(super) fn authenticate(
        &self,
        ctx: &RequestCtx<'_>,
        req: &Request<ClientBody>,
    ) -> Result<Option<Arc<UserContext>>, ProxyError> {
        let route = &ctx.route;
        if !route.auth.required {
            return Ok(None);
        }
        let upgrade = route.websocket && req.headers().contains_key(header::UPGRADE);
        auth::authenticate(
            ctx.arrival.table.auth.as_deref(),
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

    /// Counts the request against the limit that applies (per user where the key says so):
    /// the decision for the `RateLimit-*` headers, or the refusal.
    pub(super) async fn rate_limit(
        &self,
        ctx: &RequestCtx<'_>,
        req: &Request<ClientBody>,
    ) -> Result<Option<Quota>, ProxyError> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        let route = &ctx.route;
        let caller = Caller {
            ip: ctx.arrival.peer.ip(),
            user: ctx.user.as_deref().map(|u| u.user_id.as_str()),
            headers: req.headers(),
        };
        match limiter.check(route, req.uri().path(), &caller).await {
            Admission::Unlimited => Ok(None),
            Admission::Allowed(d) => Ok(Some(d)),
            Admission::Limited(d) => {
                self.metrics
                    .rate_limited_total
                    .with_label_values(&[route.id.as_str()])
                    .inc();
                Err(ProxyError::RateLimited {
                    limit: d.limit,
                    reset_secs: d.retry_after_secs(),
                })
            }
            Admission::Unavailable => Err(ProxyError::RateLimitUnavailable),
        }
    }

    /// A request on the WebSocket hub's paths (an upgrade or the webhook), which no route
    /// serves: counted against the static limit for its path, per client IP.
    pub(super) async fn rate_limit_hub(&self, peer: IpAddr, path: &str) -> Result<(), ProxyError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_path(path, peer).await {
            Admission::Unlimited | Admission::Allowed(_) => Ok(()),
            Admission::Limited(d) => {
                self.metrics.rate_limited_total.with_label_values(&[""]).inc();
                Err(ProxyError::RateLimited {
                    limit: d.limit,
                    reset_secs: d.retry_after_secs(),
                })
            }
            Admission::Unavailable => Err(ProxyError::RateLimitUnavailable),
        }
    }

    /// Refuses a body declared larger than `server.limits.max_body_size`.
    pub(super) fn check_size(&self, ctx: &RequestCtx<'_>) -> Result<(), ProxyError> {
        match ctx.arrival.content_length() {
            Some(len) if len > self.max_body_size => Err(ProxyError::PayloadTooLarge {
                limit: self.max_body_size,
            }),
            _ => Ok(()),
        }
    }
}
