//! What one connection has still to send, and who writes it.
//!
//! Frames are encoded once (a broadcast's bytes are shared by every subscriber) and queued in
//! order. Whoever queued a frame writes it straight to the socket when nobody else is waiting
//! on that socket: a broadcast to ten thousand subscribers costs ten thousand `send` calls and
//! no task wake-ups. When the socket is full, the connection's writer task takes over: it alone
//! waits for the socket to drain, and everybody else only appends. The queue is bounded in
//! slots; a full queue is a slow consumer.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The write side of a connection's socket.
pub(crate) type Sink = Pin<Box<dyn AsyncWrite + Send>>;

/// Queue entries written per vectored write when there is a backlog.
const GATHER: usize = 64;

/// The wire bytes of server frames back to back (servers do not mask).
fn wire(frames: impl IntoIterator<Item = Frame>) -> Bytes {
    let mut out = Vec::new();
    for f in frames {
        out.reserve(f.len());
        // Writing into a Vec cannot fail.
        let _ = f.format(&mut out);
    }
    Bytes::from(out)
}

fn text_frame(t: &Utf8Bytes) -> Frame {
    Frame::message(Bytes::from(t.clone()), OpCode::Data(Data::Text), true)
}

/// A text frame.
pub(crate) fn text(t: &Utf8Bytes) -> Bytes {
    wire([text_frame(t)])
}

/// Several text frames back to back (a history replay).
pub(crate) fn texts(list: &[Utf8Bytes]) -> Bytes {
    wire(list.iter().map(text_frame))
}

pub(crate) fn ping() -> Bytes {
    wire([Frame::ping(Bytes::new())])
}

pub(crate) fn close(frame: Option<CloseFrame>) -> Bytes {
    wire([Frame::close(frame)])
}

/// What became of a frame offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Every slot is taken: the client is not reading.
    Full,
    /// The connection is closing or broken.
    Closed,
}

/// What the writer task has to do next.
#[derive(Debug)]
pub(crate) enum WriterEvent {
    /// Wrote this many data messages (0: control frames only).
    Wrote(u64),
    /// Close with this frame (`None`: complete a close the peer started).
    Close(Option<CloseFrame>),
    Failed,
}

struct Item {
    bytes: Bytes,
    /// Data messages in `bytes` (a replay holds several; control frames none).
    messages: u32,
}

#[derive(Default)]
struct Inner {
    sink: Option<Sink>,
    queue: VecDeque<Item>,
    /// The writer task is waiting for the socket: others must only append.
    writer_owns: bool,
    /// A close frame is queued: nothing more goes out.
    sealed: bool,
    failed: bool,
    unflushed: bool,
    close: Option<Option<CloseFrame>>,
}

enum Progress {
    Empty,
    Blocked,
    Failed,
}

impl Inner {
    /// Writes queued bytes until the queue is empty, the socket is full or the write fails.
    /// Returns the data messages written.
    fn drive(&mut self, cx: &mut Context<'_>) -> (u64, Progress) {
        let Some(sink) = self.sink.as_mut() else {
            return (0, Progress::Blocked);
        };
        let mut messages = 0u64;
        while !self.queue.is_empty() {
            let r = if self.queue.len() == 1 {
                sink.as_mut().poll_write(cx, &self.queue[0].bytes)
            } else {
                let slices: Vec<IoSlice<'_>> = self
                    .queue
                    .iter()
                    .take(GATHER)
                    .map(|i| IoSlice::new(&i.bytes))
                    .collect();
                sink.as_mut().poll_write_vectored(cx, &slices)
            };
            match r {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.failed = true;
                    return (messages, Progress::Failed);
                }
                Poll::Ready(Ok(mut n)) => {
                    self.unflushed = true;
                    while n > 0 {
                        let Some(front) = self.queue.front_mut() else {
                            break;
                        };
                        if n < front.bytes.len() {
                            front.bytes.advance(n);
                            break;
                        }
                        n -= front.bytes.len();
                        messages += u64::from(front.messages);
                        self.queue.pop_front();
                    }
                }
                Poll::Pending => return (messages, Progress::Blocked),
            }
        }
        if self.unflushed {
            match sink.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => {
                    self.failed = true;
                    return (messages, Progress::Failed);
                }
                Poll::Pending => return (messages, Progress::Blocked),
            }
        }
        (messages, Progress::Empty)
    }
}

/// One connection's outgoing queue and socket.
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    writer: AtomicWaker,
    slots: usize,
    sent: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(slots: usize) -> Self {
        Outbox {
            inner: Mutex::default(),
            writer: AtomicWaker::new(),
            slots: slots.max(2),
            sent: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the outbox its socket (after the upgrade); what was queued before goes out first.
    pub(crate) fn attach(&self, sink: Sink) {
        self.lock().sink = Some(sink);
        self.writer.wake();
    }

    /// Queues `bytes` holding `messages` data messages; writes nothing (see [`Self::write_now`]).
    pub(crate) fn push(&self, bytes: Bytes, messages: u32) -> Pushed {
        let mut g = self.lock();
        if g.sealed || g.failed {
            return Pushed::Closed;
        }
        if g.queue.len() >= self.slots {
            return Pushed::Full;
        }
        g.queue.push_back(Item { bytes, messages });
        Pushed::Queued
    }

    /// Asks the writer task to close (once).
    pub(crate) fn request_close(&self, frame: Option<CloseFrame>) {
        self.lock().close = Some(frame);
        self.writer.wake();
    }

    /// Queues the last frame (a close), whatever the queue holds; nothing is queued after it.
    pub(crate) fn push_last(&self, bytes: Option<Bytes>) {
        let mut g = self.lock();
        if !g.sealed {
            if let Some(bytes) = bytes {
                g.queue.push_back(Item { bytes, messages: 0 });
            }
            g.sealed = true;
        }
    }

    /// Writes what the socket takes now, without waiting; the writer task gets what is left.
    /// Returns the data messages written.
    pub(crate) fn write_now(&self) -> u64 {
        let mut g = self.lock();
        if g.writer_owns || g.sink.is_none() || (g.queue.is_empty() && !g.unflushed) {
            return 0;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let (n, progress) = g.drive(&mut cx);
        let wake = match progress {
            Progress::Empty => false,
            Progress::Blocked => {
                // The no-op waker was left with the socket: the writer task polls it again
                // with its own, and waits for it from then on.
                g.writer_owns = true;
                true
            }
            Progress::Failed => true,
        };
        drop(g);
        if wake {
            self.writer.wake();
        }
        self.sent.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// The writer task: writes what is queued, waiting for the socket when it is full.
    pub(crate) fn poll_writer(&self, cx: &mut Context<'_>) -> Poll<WriterEvent> {
        self.writer.register(cx.waker());
        let mut g = self.lock();
        if g.failed {
            return Poll::Ready(WriterEvent::Failed);
        }
        if let Some(frame) = g.close.take() {
            return Poll::Ready(WriterEvent::Close(frame));
        }
        if g.queue.is_empty() && !g.unflushed {
            g.writer_owns = false;
            return Poll::Pending;
        }
        let (n, progress) = g.drive(cx);
        self.sent.fetch_add(n, Ordering::Relaxed);
        match progress {
            Progress::Failed => Poll::Ready(WriterEvent::Failed),
            Progress::Blocked => {
                g.writer_owns = true;
                if n > 0 {
                    Poll::Ready(WriterEvent::Wrote(n))
                } else {
                    Poll::Pending
                }
            }
            Progress::Empty => {
                g.writer_owns = false;
                Poll::Ready(WriterEvent::Wrote(n))
            }
        }
    }

    /// The writer task while closing: ready when everything queued is written (or failed).
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.writer.register(cx.waker());
        let mut g = self.lock();
        if g.failed {
            return Poll::Ready(());
        }
        match g.drive(cx).1 {
            Progress::Blocked => {
                g.writer_owns = true;
                Poll::Pending
            }
            Progress::Empty | Progress::Failed => Poll::Ready(()),
        }
    }

    /// Queue entries not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Data messages written to the socket.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frames(n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| text(&Utf8Bytes::from(format!("message {i:04}"))))
            .collect()
    }

    #[tokio::test]
    async fn direct_writes_keep_order_and_the_writer_takes_over_when_the_socket_is_full() {
        // A real socket pair whose reader stops reading: the kernel buffers fill up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let out = std::sync::Arc::new(Outbox::new(100_000));
        out.attach(Box::pin(server));
        let msgs = frames(50_000);
        let total: usize = msgs.iter().map(Bytes::len).sum();
        let mut written_now = 0;
        for m in &msgs {
            assert_eq!(out.push(m.clone(), 1), Pushed::Queued);
            written_now += out.write_now();
        }
        // The socket filled before the end: the rest waits for the writer task.
        assert!(written_now < 50_000, "{written_now}");
        assert!(out.queued() > 0);
        let o = out.clone();
        let writer = tokio::spawn(async move {
            let mut n = 0;
            while n < 50_000 - written_now {
                match std::future::poll_fn(|cx| o.poll_writer(cx)).await {
                    WriterEvent::Wrote(k) => n += k,
                    e => panic!("{e:?}"),
                }
            }
            n
        });
        let mut got = vec![0u8; total];
        let mut c = client;
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(writer.await.unwrap(), 50_000 - written_now);
        assert_eq!(got, msgs.concat());
        assert_eq!(out.sent(), 50_000);
    }

    #[test]
    fn a_full_queue_refuses_and_a_close_seals_it() {
        let out = Outbox::new(2);
        assert_eq!(out.push(Bytes::from_static(b"a"), 1), Pushed::Queued);
        assert_eq!(out.push(Bytes::from_static(b"b"), 1), Pushed::Queued);
        assert_eq!(out.push(Bytes::from_static(b"c"), 1), Pushed::Full);
        out.push_last(Some(close(None)));
        assert_eq!(out.queued(), 3);
        assert_eq!(out.push(Bytes::from_static(b"d"), 1), Pushed::Closed);
        // Not attached yet: nothing can be written.
        assert_eq!(out.write_now(), 0);
    }

    #[test]
    fn frames_are_encoded_unmasked() {
        assert_eq!(&text(&Utf8Bytes::from_static("hi"))[..], b"\x81\x02hi");
        assert_eq!(&ping()[..], b"\x89\x00");
        let long = Utf8Bytes::from("x".repeat(300));
        assert_eq!(&text(&long)[..4], b"\x81\x7e\x01\x2c");
        let two = texts(&[Utf8Bytes::from_static("a"), Utf8Bytes::from_static("b")]);
        assert_eq!(&two[..], b"\x81\x01a\x81\x01b");
    }
}
