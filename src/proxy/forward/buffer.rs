//! The request body towards upstreams. Bodiless requests and bodies up to [`REPLAY_LIMIT`]
//! with a known length are read into memory first (within the route timeout): a retry can
//! send them again, and plain HTTP/1.1 endpoints get them with the head in one write.
//! Anything else is streamed and not retried, with a watch on whose fault a failure is, and
//! held to `server.limits.max_body_size` as it is read: a body that declares no length
//! (chunked, or HTTP/2 without `content-length`) is cut off once it crosses the limit, and the
//! upstream's request fails with it instead of ending as if whole.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::proxy::body::ClientBody;
use crate::proxy::error::{CallError, ProxyError};

/// The largest request body kept in memory so that a retry can send it again.
const REPLAY_LIMIT: u64 = 64 * 1024;

/// The request body of the forward phase.
pub(super) enum ForwardBody {
    /// Streamed from the client: sent once, by the general client.
    Stream(Option<ClientStream>),
    /// In memory: sent by either client, as often as there are tries.
    Buffered(Bytes),
}

/// Request bodies of the general client: streamed from the client, or replayed from memory.
pub(super) type GeneralBody = Either<ClientStream, Full<Bytes>>;

impl ForwardBody {
    /// A client's body as it is sent upstream: in memory already (or empty), or streamed, at
    /// most `limit` bytes of it; or, `Err`, a small streamed body with a known length, to be
    /// read into memory first ([`ForwardBody::collect`]). (Not itself `async`: most bodies need
    /// no wait, and a future made for them would only be copied around.) A declared length was
    /// held to the limit already, and the server holds the body to it.
    #[inline]
    pub(super) fn take(body: ClientBody, content_length: Option<u64>, limit: u64) -> Result<Self, Incoming> {
        match body {
            ClientBody::Read(b) => Ok(ForwardBody::Buffered(b)),
            ClientBody::Streamed(body) if body.is_end_stream() => Ok(ForwardBody::Buffered(Bytes::new())),
            ClientBody::Streamed(body) if content_length.is_some_and(|l| l <= REPLAY_LIMIT) => Err(body),
            ClientBody::Streamed(body) => Ok(ForwardBody::Stream(Some(ClientStream {
                body,
                read: 0,
                limit,
                watch: Arc::default(),
            }))),
        }
    }

    /// A small streamed body, read into memory before `deadline` (the route timeout,
    /// `route_timeout`, ends there).
    pub(super) async fn collect(
        body: Incoming,
        deadline: Option<Instant>,
        route_timeout: Option<Duration>,
    ) -> Result<Self, ProxyError> {
        let collect = Limited::new(body, REPLAY_LIMIT as usize).collect();
        let collected = match deadline {
            Some(d) => tokio::time::timeout_at(d, collect)
                .await
                .map_err(|_| ProxyError::RequestTimeout(route_timeout.unwrap_or_default()))?,
            None => collect.await,
        }
        .map_err(|e| ProxyError::BadRequest(format!("cannot read the request body: {e}")))?;
        Ok(ForwardBody::Buffered(collected.to_bytes()))
    }

    /// What can be learnt afterwards of a streamed body.
    pub(super) fn watch(&self) -> Option<Arc<BodyWatch>> {
        match self {
            ForwardBody::Stream(Some(s)) => Some(s.watch.clone()),
            _ => None,
        }
    }

    /// The body for one try on the general client.
    pub(super) fn for_general(&mut self) -> Result<GeneralBody, CallError> {
        match self {
            ForwardBody::Buffered(b) => Ok(Either::Right(Full::new(b.clone()))),
            ForwardBody::Stream(b) => match b.take() {
                Some(b) => Ok(Either::Left(b)),
                None => Err(CallError::protocol("the request body was sent already")),
            },
        }
    }
}

/// A client's body streamed to an upstream, which keeps track of whose turn it is. When
/// reading it fails (bad chunked framing, a client gone mid-upload), or when time runs out
/// while the gateway waits for the client's next bytes, the upstream call fails too, but the
/// fault is the client's: it must not count against the upstream.
pub(super) struct ClientStream {
    body: Incoming,
    /// Bytes read so far.
    read: u64,
    /// `server.limits.max_body_size`.
    limit: u64,
    watch: Arc<BodyWatch>,
}

/// Why reading a client's body failed.
#[derive(Clone, Debug)]
pub(super) enum BodyFault {
    /// Reading it failed: bad chunked framing, a client gone mid-upload...
    Broken(String),
    /// It went past `server.limits.max_body_size` (the limit).
    TooLarge(u64),
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyFault::Broken(why) => f.write_str(why),
            BodyFault::TooLarge(limit) => write!(f, "the request body is larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for BodyFault {}

/// What the upstream call's owner can learn of its streamed body afterwards.
#[derive(Default)]
pub(super) struct BodyWatch {
    /// Why reading the client's body failed.
    failed: OnceLock<BodyFault>,
    /// The last read found no bytes from the client yet: the upstream waits for the client,
    /// not the other way round.
    waiting: AtomicBool,
}

impl BodyWatch {
    /// Why reading the client's body failed, if it did.
    pub(super) fn failed(&self) -> Option<&BodyFault> {
        self.failed.get()
    }

    /// Whether the last read of the client's body found nothing yet.
    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl http_body::Body for ClientStream {
    type Data = Bytes;
    type Error = BodyFault;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFault>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        this.watch.waiting.store(polled.is_pending(), Ordering::Relaxed);
        let fault = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Ok(frame))) => {
                this.read += frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.read <= this.limit {
                    return Poll::Ready(Some(Ok(frame)));
                }
                // The upstream's request fails here, unfinished: an HTTP/1.1 upstream never
                // gets the last chunk, an HTTP/2 one gets its stream reset.
                BodyFault::TooLarge(this.limit)
            }
            Poll::Ready(Some(Err(e))) => BodyFault::Broken(e.to_string()),
        };
        let _ = this.watch.failed.set(fault.clone());
        Poll::Ready(Some(Err(fault)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
