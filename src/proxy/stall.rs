//! Limits on how long a connection may make no progress. [`StallGuard`]: writes to a client
//! may not find its connection full for longer than `server.timeouts.send_timeout` (as nginx's
//! `send_timeout`), or a client that stops reading would hold its response, and the upstream
//! connection behind it, for as long as it likes. [`StallTimer`] is the clock of both that and
//! `server.timeouts.read_timeout`, the longest an upstream's response body may send nothing.
//! The timer is made only when a poll finds nothing to do, so a connection whose reads and
//! writes go through at once never has one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Measures runs of `Pending` polls against a limit.
pub struct StallTimer {
    limit: Option<Duration>,
    /// Set at the first `Pending` of a run, cleared by the next `Ready`.
    timer: Option<Pin<Box<Sleep>>>,
}

impl StallTimer {
    /// `limit`: `None` for none.
    pub fn new(limit: Option<Duration>) -> Self {
        StallTimer { limit, timer: None }
    }

    /// After a poll that was `Ready` (`pending` false) or `Pending`: whether the run of
    /// `Pending` polls has lasted the whole limit. While it has not, `cx` is woken when it does.
    #[inline]
    pub fn expired(&mut self, cx: &mut Context<'_>, pending: bool) -> Option<Duration> {
        if !pending {
            if self.timer.is_some() {
                self.timer = None;
            }
            return None;
        }
        self.pending(cx)
    }

    /// A `Pending` poll: arms the timer at the first of a run, and polls it.
    #[cold]
    fn pending(&mut self, cx: &mut Context<'_>) -> Option<Duration> {
        let limit = self.limit?;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).is_ready().then_some(limit)
    }
}

/// A client connection whose writes fail once they have found it full for the limit.
pub struct StallGuard<S> {
    inner: S,
    stall: StallTimer,
}

impl<S> StallGuard<S> {
    /// `limit`: `None` for none.
    pub fn new(inner: S, limit: Option<Duration>) -> Self {
        StallGuard {
            inner,
            stall: StallTimer::new(limit),
        }
    }

    /// A write's outcome, or the error that ends the connection once writes have been
    /// stalled for the whole limit.
    fn check<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match self.stall.expired(cx, polled.is_pending()) {
            Some(limit) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            None => polled,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Writes to a peer that reads nothing end with `TimedOut` after the limit; writes to one
    /// that keeps reading go on. (The kernel lets a sender write again only once the reader
    /// has emptied a good part of its buffer, so "keeps reading" means faster than the limit
    /// takes to drain that part.)
    #[tokio::test]
    async fn a_peer_that_stops_reading_ends_the_writes() {
        let (ours, _theirs) = pair().await;
        let mut guarded = StallGuard::new(ours, Some(Duration::from_millis(200)));
        let block = vec![7u8; 64 * 1024];
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(e) = guarded.write_all(&block).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never stalled");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (ours, mut theirs) = pair().await;
        let mut guarded = StallGuard::new(ours, Some(Duration::from_secs(2)));
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match theirs.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        // Far more than the socket buffers hold, so that writes wait for the slow reader.
        for _ in 0..256 {
            guarded
                .write_all(&block)
                .await
                .expect("a slow reader is no stalled one");
        }
        guarded.shutdown().await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), 256 * block.len());
    }
}
