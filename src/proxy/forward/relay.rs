//! The bytes of a tunnel, both ways, and its idle clock: a tunnel that carries nothing either
//! way for `server.timeouts.tunnel_idle_timeout` is closed, both of its connections with it.
//! Without that, a tunnel whose peers went away without closing (a laptop shut, a pod gone
//! behind a NAT that forgot it) would hold two connections and a task for ever.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Why a tunnel ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayEnd {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("nothing either way for {0:?}")]
    Idle(Duration),
}

/// Copies `a` to `b` and `b` to `a` until both have ended, or, with `idle`, until no byte has
/// been read or written on either for that long (then both are dropped, which closes them).
pub(super) async fn relay<A, B>(mut a: A, mut b: B, idle: Option<Duration>) -> Result<(), RelayEnd>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        tokio::io::copy_bidirectional(&mut a, &mut b).await?;
        return Ok(());
    };
    let start = Instant::now();
    // Milliseconds from `start` to the last read that brought bytes, from either side.
    let last = AtomicU64::new(0);
    let mut a = Active {
        io: a,
        start,
        last: &last,
    };
    let mut b = Active {
        io: b,
        start,
        last: &last,
    };
    let quiet = async {
        loop {
            let until = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut a, &mut b) => {
            copied?;
            Ok(())
        }
        _ = quiet => Err(RelayEnd::Idle(idle)),
    }
}

/// One side of a tunnel, whose reads and writes move the tunnel's clock (a write that waits on
/// a full connection is `send_timeout`'s to judge, not this one's).
struct Active<'a, S> {
    io: S,
    start: Instant,
    last: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, out);
        if matches!(polled, Poll::Ready(Ok(()))) && out.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<S> Active<'_, S> {
    /// Bytes went through: the clock starts again.
    fn moved(&self) {
        let millis = self.start.elapsed().as_millis();
        self.last
            .store(u64::try_from(millis).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
