//! The bodies that cross the gateway: a client's request body ([`ClientBody`]), an upstream's
//! response body ([`UpstreamBody`]) and the response body the listeners write ([`Body`]), with
//! the [`WireHead`] trait through which the HTTP/1.1 server writes an upstream's fields as
//! they came.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::client::PooledBody;
use super::fields::WireFields;
use super::stall::StallTimer;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<UpstreamBody, Full<Bytes>>;

/// A client's request body: whole from the fast path, or streamed by the general server.
pub enum ClientBody {
    /// Read whole by the fast path, whose writer also takes an upstream response's fields in
    /// wire form.
    Read(Bytes),
    Streamed(Incoming),
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Read(b) if b.is_empty() => Poll::Ready(None),
            ClientBody::Read(b) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(b))))),
            ClientBody::Streamed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Read(b) => b.is_empty(),
            ClientBody::Streamed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Read(b) => SizeHint::with_exact(b.len() as u64),
            ClientBody::Streamed(b) => b.size_hint(),
        }
    }
}

/// Response bodies that may carry the response's upstream fields in wire form, which the fast
/// path writes as they are, before the fields of the response's `HeaderMap`.
pub trait WireHead {
    fn wire_fields(&self) -> Option<&WireFields> {
        None
    }
}

impl WireHead for Full<Bytes> {}

impl<L: WireHead, R: WireHead> WireHead for Either<L, R> {
    fn wire_fields(&self) -> Option<&WireFields> {
        match self {
            Either::Left(b) => b.wire_fields(),
            Either::Right(b) => b.wire_fields(),
        }
    }
}

/// A response body from an upstream: through the general client, or through [`OwnClient`](super::client::OwnClient).
/// It fails once the upstream has sent nothing of it for `server.timeouts.read_timeout`.
pub struct UpstreamBody {
    kind: BodyKind,
    stall: StallTimer,
}

enum BodyKind {
    Hyper(Incoming),
    Pooled(PooledBody),
}

impl UpstreamBody {
    /// `read_timeout`: the longest the upstream may send nothing, `None` for no limit.
    pub fn hyper(body: Incoming, read_timeout: Option<Duration>) -> Self {
        UpstreamBody {
            kind: BodyKind::Hyper(body),
            stall: StallTimer::new(read_timeout),
        }
    }

    /// As [`UpstreamBody::hyper`], for a body read by [`OwnClient`](super::client::OwnClient).
    pub fn pooled(body: PooledBody, read_timeout: Option<Duration>) -> Self {
        UpstreamBody {
            kind: BodyKind::Pooled(body),
            stall: StallTimer::new(read_timeout),
        }
    }

    /// The body read by [`OwnClient`](super::client::OwnClient), if it is one.
    pub fn pooled_mut(&mut self) -> Option<&mut PooledBody> {
        match &mut self.kind {
            BodyKind::Pooled(b) => Some(b),
            BodyKind::Hyper(_) => None,
        }
    }
}

impl WireHead for UpstreamBody {
    fn wire_fields(&self) -> Option<&WireFields> {
        match &self.kind {
            BodyKind::Pooled(b) => b.wire_fields(),
            BodyKind::Hyper(_) => None,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            BodyKind::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            BodyKind::Pooled(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        };
        match this.stall.expired(cx, polled.is_pending()) {
            Some(limit) => Poll::Ready(Some(Err(
                format!("the upstream sent nothing for {limit:?}").into()
            ))),
            None => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Hyper(b) => b.is_end_stream(),
            BodyKind::Pooled(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Hyper(b) => b.size_hint(),
            BodyKind::Pooled(b) => b.size_hint(),
        }
    }
}
