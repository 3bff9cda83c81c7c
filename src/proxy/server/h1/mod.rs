//! The proxy listener's HTTP/1.1 fast path. Most requests a gateway sees are HTTP/1.1
//! keep-alive requests with no body or a small one; this loop reads them, calls the pipeline
//! and writes the response on the connection's own task, without a general server's dispatch.
//!
//! Anything else — h2c, HTTP/1.0, upgrades, `Expect`, chunked or large bodies, a body not yet
//! whole, a head too large or not understood, the hub's paths — is handed to the general
//! server with the bytes read so far, and that server keeps the connection from then on.

//!
//! Order: `parse` and `write`, then this file, the connection loop.

mod parse;
#[cfg(test)]
mod tests;
mod write;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

pub(in crate::proxy) use parse::{parse, Next, Parsed};
use write::write_response;

use super::limits::ConnLimits;
use crate::proxy::body::{ClientBody, WireHead};
use crate::proxy::headers::request_id_from;

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why a fast connection stopped.
pub enum Ended<S> {
    /// Closed: by the client, an error, a timeout or shutdown.
    Closed,
    /// The general server should take the connection, with these bytes read already.
    HandOff(S, BytesMut),
}

/// Serves requests on `stream` until it closes or holds a request the fast path does not take.
///
/// `limits.keepalive` bounds the wait for each request head, the first included; `stop` turning true
/// closes an idle connection and the others after their current response.
pub async fn serve_connection<S, F, Fut, B>(
    mut stream: S,
    peer: SocketAddr,
    handler: &F,
    general: &impl Fn(&str) -> bool,
    refused: &impl Fn(StatusCode),
    limits: ConnLimits,
    stop: &mut watch::Receiver<bool>,
) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(SocketAddr, Request<ClientBody>) -> Fut,
    Fut: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes> + WireHead,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // One timer per connection, moved on lazily: it fires at its old deadline at the earliest,
    // and is set again when the real one is later.
    let (max_head, keepalive) = (limits.max_header_size, limits.keepalive);
    let mut timer = keepalive.map(|k| (k, Box::pin(tokio::time::sleep(k))));
    // Shutdown, waited for while idle: one wait for the connection's life (a new one per
    // request would register with the channel and leave it again each time).
    let mut stop_wait = stop.clone();
    let mut stopped = std::pin::pin!(stop_wait.changed());
    loop {
        let mut deadline = None;
        let parsed = loop {
            // (An empty buffer, the usual case after a response, holds no request to look at.)
            if !buf.is_empty() {
                match parse(&mut buf, max_head, general) {
                    Next::Fast(p) => break p,
                    Next::Other => return Ended::HandOff(stream, buf),
                    Next::Refused(err) => {
                        tracing::debug!(%peer, "request refused: {err}");
                        refused(err.status());
                        let id = request_id_from(None);
                        let response = err.to_response(id.to_str().unwrap_or_default());
                        if write_response(&mut stream, &mut out, response, false, true)
                            .await
                            .is_ok()
                        {
                            linger(&mut stream).await;
                        }
                        return Ended::Closed;
                    }
                    Next::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK);
            }
            let idle = buf.is_empty();
            let read = match &mut timer {
                None => {
                    tokio::select! {
                        biased;
                        r = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf) => r,
                        _ = stopped.as_mut(), if idle => return Ended::Closed,
                    }
                }
                Some((within, sleep)) => {
                    let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + *within);
                    loop {
                        tokio::select! {
                            biased;
                            r = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf) => break r,
                            _ = stopped.as_mut(), if idle => return Ended::Closed,
                            _ = sleep.as_mut() => {
                                if tokio::time::Instant::now() >= until {
                                    tracing::debug!(%peer, "connection closed: no whole request head within {within:?}");
                                    return Ended::Closed;
                                }
                                sleep.as_mut().reset(until);
                            }
                        }
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        };
        let Parsed { request, close } = parsed;
        let head = request.method() == Method::HEAD;
        // While the answer is made, the connection is watched: bytes that come are kept for the
        // next request (up to a head's worth), and the client closing it drops the request,
        // and with it the upstream call.
        let response = {
            let mut answer = std::pin::pin!(handler(peer, request));
            loop {
                // (The buffer grows only when full: the request still holds a part of it, so
                // growing would copy it to a new allocation.)
                let room = buf.len() < max_head;
                if room && buf.capacity() == buf.len() {
                    buf.reserve(1024);
                }
                tokio::select! {
                    biased;
                    Ok(response) = answer.as_mut() => break response,
                    read = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf), if room => match read {
                        Ok(0) | Err(_) => {
                            tracing::debug!(%peer, "the client closed the connection before its answer");
                            return Ended::Closed;
                        }
                        Ok(_) => {}
                    },
                }
            }
        };
        let close = close || *stop.borrow();
        if write_response(&mut stream, &mut out, response, head, close)
            .await
            .is_err()
            || close
        {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
        // A large body grew the write buffer; an idle connection does not keep that much.
        if out.capacity() > 16 * 1024 {
            out = Vec::with_capacity(1024);
        }
    }
}

/// Closes our side of a connection whose client may still be sending (the rest of a refused
/// head, a body), then reads and drops what comes for a short while: closing a socket with
/// unread data resets the connection, and the client could lose the answer written just before.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    const LINGER: Duration = Duration::from_secs(2);
    const LINGER_BYTES: usize = 1024 * 1024;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < LINGER_BYTES {
            match tokio::io::AsyncReadExt::read(stream, &mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}
