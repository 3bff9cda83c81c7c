//! The HTTP/1.1 client for plain `http` endpoints. The task serving a client's request writes
//! the upstream request and reads the response head itself, on a pooled keep-alive connection:
//! no connection task and no channel between tasks, which is most of what a proxied request
//! costs in user space. The response body is handed on as it arrives and the connection goes
//! back to the pool when the body has been read to its end.
//!
//! Requests carry their whole body (small bodies are read before the call); streamed uploads,
//! `https` and `h2c` endpoints go through the general client instead.

//!
//! Order (each file uses only those before it): `pool` (connections), `write` (the request
//! head), `body` (the response body and its decoder), `head` (the response head), then this
//! file: the exchange on one connection.

mod body;
mod head;
mod pool;
#[cfg(test)]
mod tests;
mod write;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::uri::Authority;
use http::{Method, Response, Uri};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, Sleep};

pub(in crate::proxy) use body::PooledBody;
#[cfg(any(test, fuzzing))]
pub(in crate::proxy) use body::{Chunk, State, Step};
pub(in crate::proxy) use head::{parse_head, switched_unasked, Codings};
use pool::{Pool, UpstreamConn, READ_CHUNK};
pub(in crate::proxy) use write::Outbound;
use write::{encode_head, INLINE_BODY};

use super::error::CallError;
use super::tls::{UpstreamConnector, UpstreamStream};

/// The largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;

/// Keep-alive connections to plain `http` endpoints, keyed by `host:port`; cheap to clone.
#[derive(Clone)]
pub struct OwnClient {
    pool: Arc<Pool>,
    connector: UpstreamConnector,
}

impl OwnClient {
    pub fn new(connector: UpstreamConnector, idle_timeout: Duration, max_idle_per_host: usize) -> Self {
        OwnClient {
            pool: Pool::start(idle_timeout, max_idle_per_host),
            connector,
        }
    }

    /// Sends `req` and reads the response head. A pooled connection that turns out to have
    /// been closed by the upstream before answering is replaced by a new one, once, when the
    /// request may be sent again (it was not written, or its method is idempotent).
    /// `until` bounds everything up to the response head (connecting included).
    pub async fn request(
        &self,
        req: Outbound<'_>,
        until: Option<Instant>,
    ) -> Result<Response<PooledBody>, CallError> {
        let key = req.authority.as_str();
        if let Some(mut conn) = self.pool.take(key) {
            encode_head(&req, &mut conn.out);
            match exchange(conn, &req, until).await {
                Ok(resp) => return Ok(resp),
                Err(Failed {
                    error,
                    sent,
                    answered,
                }) => {
                    let again = !answered && (!sent || is_idempotent(req.method));
                    if !again {
                        return Err(error);
                    }
                    tracing::debug!("pooled connection to {key} was closed: {error}; using a new one");
                }
            }
        }
        let mut conn = match until {
            Some(t) => tokio::time::timeout_at(t, self.connect(req.authority))
                .await
                .map_err(|_| CallError::timeout())??,
            None => self.connect(req.authority).await?,
        };
        encode_head(&req, &mut conn.out);
        exchange(conn, &req, until).await.map_err(|f| f.error)
    }

    async fn connect(&self, authority: &Authority) -> Result<Box<UpstreamConn>, CallError> {
        use tower_service::Service;
        let endpoint = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| CallError::protocol(format!("endpoint {authority}: {e}")))?;
        let mut connector = self.connector.clone();
        let stream = connector
            .call(endpoint)
            .await
            .map_err(|e| CallError::connect(format!("cannot connect: {e}")))?;
        let UpstreamStream::Plain(io) = stream else {
            return Err(CallError::protocol("expected a plain TCP connection"));
        };
        Ok(UpstreamConn::new(io.into_inner(), authority.as_str(), &self.pool))
    }
}

/// A failed exchange, and how far it got.
struct Failed {
    error: CallError,
    /// The request was written whole.
    sent: bool,
    /// Some of a response arrived.
    answered: bool,
}

/// Runs `fut` until it completes (`Some`) or `until` passes (`None`), on the connection's
/// own timer. The timer is moved on lazily: deadlines mostly grow from one exchange to the
/// next, so it stays where it is, and when it fires before the current deadline it is set
/// again. A request thus costs no timer registration.
async fn before<F: Future>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    until: Option<Instant>,
    fut: F,
) -> Option<F::Output> {
    let Some(until) = until else {
        return Some(fut.await);
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
    if timer.deadline() > until {
        timer.as_mut().reset(until);
    }
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= until {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(until);
        }
        Poll::Pending
    })
    .await
}

/// Writes the request on `conn` and reads the response head, before `until`.
async fn exchange(
    mut conn: Box<UpstreamConn>,
    req: &Outbound<'_>,
    until: Option<Instant>,
) -> Result<Response<PooledBody>, Failed> {
    let body = req.body;
    let not_sent = |error| Failed {
        error,
        sent: false,
        answered: false,
    };
    let timed_out = |sent| Failed {
        error: CallError::timeout(),
        sent,
        answered: true, // not to be sent again: the time is up
    };
    before(&mut conn.timer, until, conn.io.write_all(&conn.out))
        .await
        .ok_or_else(|| timed_out(false))?
        .map_err(|e| not_sent(CallError::io("writing the request", e)))?;
    if body.len() > INLINE_BODY {
        before(&mut conn.timer, until, conn.io.write_all(body))
            .await
            .ok_or_else(|| timed_out(false))?
            .map_err(|e| not_sent(CallError::io("writing the request body", e)))?;
    }
    let failed = |error, answered| Failed {
        error,
        sent: true,
        answered,
    };
    loop {
        let parsed = match conn.buf.is_empty() {
            true => None,
            false => parse_head(&mut conn.buf, req.method, req.wire).map_err(|e| failed(e, true))?,
        };
        let Some(head) = parsed else {
            if conn.buf.len() >= MAX_HEAD {
                return Err(failed(
                    CallError::protocol("upstream response head is too large"),
                    true,
                ));
            }
            let answered = !conn.buf.is_empty();
            conn.buf.reserve(READ_CHUNK);
            let read = before(
                &mut conn.timer,
                until,
                tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.buf),
            )
            .await
            .ok_or_else(|| timed_out(true))?;
            match read {
                Ok(0) => {
                    return Err(failed(
                        CallError::protocol("upstream closed the connection before a response"),
                        answered,
                    ))
                }
                Ok(_) => continue,
                Err(e) => return Err(failed(CallError::io("reading the response", e), answered)),
            }
        };
        if head.interim {
            continue; // 100 Continue and other interim answers: the final one follows
        }
        return Ok(head.into_response(conn));
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
pub(in crate::proxy) fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}
