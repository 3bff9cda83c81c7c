//! The body of a response the own client reads: whole already, or decoded as it arrives
//! (by length, chunked, or until close) on its connection, which returns to the pool at the
//! body's end.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::pool::{UpstreamConn, READ_CHUNK};
use crate::proxy::error::CallError;
use crate::proxy::fields::{number, WireFields};

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

/// The body of a response read by [`OwnClient`](super::OwnClient): whole already, or still arriving on its
/// connection, which returns to the pool at the body's end.
pub struct PooledBody {
    pub(super) state: State,
    pub(super) conn: Option<Box<UpstreamConn>>,
    pub(super) keep_alive: bool,
    /// A body that arrived with its head.
    pub(super) data: Option<Bytes>,
    /// The response's fields in wire form, when it has them so (see
    /// [`Outbound::wire`](super::Outbound::wire)).
    pub(super) wire: Option<WireFields>,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Clone, Copy, Debug)]
pub(in crate::proxy) enum State {
    Done,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Clone, Copy, Debug)]
pub(in crate::proxy) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
}

impl PooledBody {
    /// The body framed as `framing` that follows a head on `conn`, with the head's fields in
    /// wire form if it has them so. A body that is all there (or empty) already gives the
    /// connection back at once when it may be kept.
    #[inline]
    pub(super) fn framed(
        framing: Framing,
        keep_alive: bool,
        mut conn: Box<UpstreamConn>,
        wire: Option<WireFields>,
    ) -> Self {
        let body = match framing {
            Framing::Empty => {
                if keep_alive {
                    conn.release();
                }
                PooledBody::done()
            }
            Framing::Length(n) if (conn.buf.len() as u64) >= n => {
                let data = conn.buf.split_to(n as usize).freeze();
                if keep_alive {
                    conn.release();
                }
                PooledBody::whole(data)
            }
            framing => PooledBody {
                state: match framing {
                    Framing::Length(n) => State::Length(n),
                    Framing::Chunked => State::Chunked(Chunk::Size),
                    _ => State::UntilClose,
                },
                conn: Some(conn),
                keep_alive,
                data: None,
                wire: None,
            },
        };
        PooledBody { wire, ..body }
    }

    fn done() -> Self {
        PooledBody {
            state: State::Done,
            conn: None,
            keep_alive: false,
            data: None,
            wire: None,
        }
    }

    /// The response's fields in wire form, if it has them so.
    pub fn wire_fields(&self) -> Option<&WireFields> {
        self.wire.as_ref()
    }

    /// The response's fields in wire form, if it has them so, to change.
    pub fn wire_fields_mut(&mut self) -> Option<&mut WireFields> {
        self.wire.as_mut()
    }

    /// Takes the response's fields in wire form, if it has them so.
    pub fn take_wire_fields(&mut self) -> Option<WireFields> {
        self.wire.take()
    }

    fn whole(data: Bytes) -> Self {
        PooledBody {
            data: (!data.is_empty()).then_some(data),
            ..Self::done()
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                conn.release();
            }
        }
    }

    /// The next piece of the body from what is buffered, or `None` when more must be read.
    fn next_from_buffer(&mut self) -> Result<Option<Option<Bytes>>, CallError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Some(None));
        };
        match self.state.decode(&mut conn.buf)? {
            Step::More => Ok(None),
            Step::Data(data) => {
                if matches!(self.state, State::Length(0)) {
                    self.finish();
                }
                Ok(Some(Some(data)))
            }
            Step::End => {
                self.finish();
                Ok(Some(None))
            }
        }
    }
}

/// What [`State::decode`] found at the front of the buffer.
#[derive(Debug)]
pub(in crate::proxy) enum Step {
    /// More must be read.
    More,
    Data(Bytes),
    /// The body's end (the trailers, if any, taken too).
    End,
}

impl State {
    /// Takes the next piece of a body framed as `self` off the front of `buf`.
    pub(in crate::proxy) fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, CallError> {
        loop {
            match *self {
                State::Done | State::Length(0) => return Ok(Step::End),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    *self = State::Length(n - take as u64);
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::Chunked(Chunk::Size) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    // Spaces may come before an extension's `;`, none before the size.
                    let size = number(digits.trim_ascii_end(), 16)
                        .ok_or_else(|| CallError::protocol("invalid chunk size from upstream"))?;
                    *self = State::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                State::Chunked(Chunk::Data(n)) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    let left = n - take as u64;
                    *self = State::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::Chunked(Chunk::DataEnd) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if !line.is_empty() {
                        return Err(CallError::protocol("chunk data longer than its size"));
                    }
                    *self = State::Chunked(Chunk::Size);
                }
                State::Chunked(Chunk::Trailers) => {
                    // Trailers are not passed on.
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        *self = State::Done;
                        return Ok(Step::End);
                    }
                }
            }
        }
    }
}

/// A CRLF-terminated line taken off the front of `buf` (without its CRLF).
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, CallError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(CallError::protocol("chunk line too long from upstream")),
        None => Ok(None),
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = CallError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CallError>>> {
        let this = &mut *self;
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            match this.next_from_buffer() {
                Err(e) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(Some(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Some(None)) => return Poll::Ready(None),
                Ok(None) => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if conn.buf.capacity() - conn.buf.len() < 1024 {
                conn.buf.reserve(READ_CHUNK);
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            ));
            match read {
                Ok(0) => {
                    let until_close = matches!(this.state, State::UntilClose);
                    this.state = State::Done;
                    this.conn = None;
                    if until_close {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(CallError::protocol(
                        "upstream closed the connection in the middle of the body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(Some(Err(CallError::io("reading the response body", e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.state) {
            (Some(d), _) => SizeHint::with_exact(d.len() as u64),
            (None, State::Done) => SizeHint::with_exact(0),
            (None, State::Length(n)) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
