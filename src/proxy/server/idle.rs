//! The idle clock of an HTTP/2 client connection. The keep-alive timeout of HTTP/1.1 is a
//! timeout on the next request head, which HTTP/2 has no equivalent of: a connection whose
//! client opens no stream would otherwise stay open for as long as the client likes. So the
//! open streams of each HTTP/2 connection are counted ([`Streams`]), and once it has had none
//! for `server.timeouts.http2_idle_timeout` ([`quiet_for`]) it is shut down gracefully: a
//! GOAWAY, which tells the client to open no more streams here, then the close.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::watch;

/// The streams of one connection that are open: from the request's arrival to the end of its
/// response body (or until either is dropped).
pub(super) struct Streams {
    open: watch::Sender<usize>,
}

impl Streams {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Streams {
            open: watch::Sender::new(0),
        })
    }

    /// A stream opens; it closes when the guard is dropped.
    pub(super) fn open(self: &Arc<Self>) -> StreamGuard {
        self.open.send_modify(|n| *n += 1);
        StreamGuard(self.clone())
    }
}

/// One open stream of a connection.
pub(super) struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Resolves once `streams` have had none open for `within`. Any stream opening or closing
/// starts the wait again, so one that came and went unseen between two looks counts too.
pub(super) async fn quiet_for(streams: &Streams, within: Duration) {
    let mut seen = streams.open.subscribe();
    loop {
        if seen.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(within) => return,
            changed = seen.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// A response body that holds its stream open until it ends (or is dropped); without a
/// guard, it is the body alone.
pub(super) struct Tracked<B> {
    body: B,
    guard: Option<StreamGuard>,
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, guard: Option<StreamGuard>) -> Self {
        Tracked { body, guard }
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
