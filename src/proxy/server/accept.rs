//! Accept loops and client connections: HTTP/1.1 and h2c on one port, HTTPS (rustls, ALPN h2 and http/1.1) on
//! another, both with the HTTP/1.1 fast path; idle and slow HTTP/1.1 clients closed after
//! `server.timeouts.keepalive_timeout`, idle HTTP/2 ones after
//! `server.timeouts.http2_idle_timeout`; graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::h1::{self, Ended};
use super::idle::{quiet_for, Streams, Tracked};
use super::limits::ConnLimits;
use super::rewind::Rewind;
use crate::proxy::body::{ClientBody, WireHead};
use crate::proxy::stall::StallGuard;
use crate::proxy::tls::TlsConn;

/// Tells accept loops to stop and how long connections may take to drain.
#[derive(Clone)]
pub struct Shutdown {
    pub stop: watch::Receiver<bool>,
    pub grace: Duration,
}

/// Binds `addr:port`, with a message that names what failed.
pub async fn bind(addr: &str, port: u16, what: &str) -> std::io::Result<TcpListener> {
    let target = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    };
    TcpListener::bind(&target).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the {what} listener on {target}: {e}"),
        )
    })
}

/// Serves `handler` on `listener` until told to stop, then drains open connections.
pub async fn serve<F, Fut, B>(listener: TcpListener, handler: F, shutdown: Shutdown, limits: ConnLimits)
where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = http_builder(limits);
    let graceful = GracefulShutdown::new();
    let mut stop = shutdown.stop.clone();
    while let Some((stream, peer)) = next_client(&listener, &mut stop).await {
        let h = handler.clone();
        let started = Arc::new(AtomicBool::new(false));
        let seen = started.clone();
        let svc = service_fn(move |req| {
            seen.store(true, Ordering::Relaxed);
            h(peer, req)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(first_request_within(
            graceful.watch(conn),
            started,
            limits.keepalive,
        ));
    }
    drop(listener);
    drain(graceful.shutdown(), shutdown.grace, "connections").await;
}

/// `serve` for the proxy listeners: plain HTTP/1.1 keep-alive requests go through the fast
/// path of [`h1`]; a connection carrying anything else (h2c, upgrades, streamed bodies, the
/// paths `general` claims...) is handed to the general server for the rest of its life.
///
/// With `tls`, each connection first does the rustls handshake (certificate chosen per
/// handshake by the config's resolver; a failed one closes only that connection), then the
/// same: HTTP/1.1 on the fast path, ALPN `h2` on the general server. Requests carry the
/// `TlsConn` extension. `refused` is told the status of each request head refused unread.
pub async fn serve_proxy<F, Fut, B, G, R>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: F,
    general: G,
    refused: R,
    shutdown: Shutdown,
    limits: ConnLimits,
) where
    F: Fn(SocketAddr, Request<ClientBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = bytes::Bytes> + WireHead + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    G: Fn(&str) -> bool + Clone + Send + Sync + 'static,
    R: Fn(http::StatusCode) + Clone + Send + Sync + 'static,
{
    let builder = Arc::new(http_builder(limits));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    // Every connection task holds a receiver; the drain waits for all of them to be gone.
    let (alive_tx, alive_rx) = watch::channel(());
    let mut stop = shutdown.stop.clone();
    while let Some((stream, peer)) = next_client(&listener, &mut stop).await {
        let (h, general, refused, builder) =
            (handler.clone(), general.clone(), refused.clone(), builder.clone());
        let (watcher, stop, alive) = (graceful.watcher(), stop.clone(), alive_rx.clone());
        let acceptor = acceptor.clone();
        let stream = StallGuard::new(stream, limits.send);
        tokio::spawn(async move {
            let conn = ClientConn {
                peer,
                general: &general,
                refused: &refused,
                builder: &builder,
                watcher,
                stop,
                limits,
            };
            match acceptor {
                None => conn.with(h).serve(stream).await,
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let h = move |peer, mut req: Request<ClientBody>| {
                        req.extensions_mut().insert(TlsConn);
                        h(peer, req)
                    };
                    if h2 {
                        conn.with(h)
                            .general(tls, bytes::BytesMut::new(), true, true)
                            .await;
                    } else {
                        conn.with(h).serve(tls).await;
                    }
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(alive_rx);
    let all = async {
        tokio::join!(graceful.shutdown(), alive_tx.closed());
    };
    drain(all, shutdown.grace, "connections").await;
}

/// One client connection of `serve_proxy`, before its protocol is known.
struct ClientConn<'a, G, R> {
    peer: SocketAddr,
    general: &'a G,
    refused: &'a R,
    builder: &'a auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
    limits: ConnLimits,
}

impl<'a, G, R> ClientConn<'a, G, R> {
    fn with<F>(self, handler: F) -> Serving<'a, G, R, F> {
        Serving { conn: self, handler }
    }
}

/// A client connection with its request handler.
struct Serving<'a, G, R, F> {
    conn: ClientConn<'a, G, R>,
    handler: F,
}

impl<G, R, F, Fut, B> Serving<'_, G, R, F>
where
    G: Fn(&str) -> bool,
    R: Fn(http::StatusCode),
    F: Fn(SocketAddr, Request<ClientBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = bytes::Bytes> + WireHead + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    /// The fast path, then the general server if the connection needs it.
    async fn serve<S>(mut self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let c = &mut self.conn;
        let ended = h1::serve_connection(
            stream,
            c.peer,
            &self.handler,
            c.general,
            c.refused,
            c.limits,
            &mut c.stop,
        )
        .await;
        if let Ended::HandOff(stream, read) = ended {
            // The fast path held the first request head to the keep-alive limit already.
            // (It hands HTTP/2 over once its preface's first line is there.)
            let h2 = read.starts_with(b"PRI ");
            self.general(stream, read, false, h2).await;
        }
    }

    /// The general server on `stream`, whose first bytes are `read`. `first_within`: drop the
    /// connection when no request starts within the keep-alive limit. `h2`: the connection
    /// speaks HTTP/2, and is shut down once it has had no open stream for
    /// `server.timeouts.http2_idle_timeout`.
    async fn general<S>(self, stream: S, read: bytes::BytesMut, first_within: bool, h2: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (c, h) = (self.conn, self.handler);
        let peer = c.peer;
        let started = Arc::new(AtomicBool::new(false));
        let seen = started.clone();
        let idle = c
            .limits
            .h2_idle
            .filter(|_| h2)
            .map(|within| (Streams::new(), within));
        let streams = idle.as_ref().map(|(s, _)| s.clone());
        let svc = service_fn(move |req: Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            let guard = streams.as_ref().map(Streams::open);
            let answer = h(peer, req.map(ClientBody::Streamed));
            async move {
                let resp = answer.await?;
                Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, guard)))
            }
        });
        let io = TokioIo::new(Rewind::new(stream, read.freeze()));
        let conn = c.builder.serve_connection_with_upgrades(io, svc).into_owned();
        let run = async {
            let Some((streams, within)) = idle else {
                let _ = c.watcher.watch(conn).await;
                return;
            };
            // As the shutdown watcher does, and when the connection has been idle too: a
            // graceful shutdown (GOAWAY), then the streams in flight finish.
            drop(c.watcher);
            let mut stop = c.stop;
            let mut conn = std::pin::pin!(conn);
            let mut quiet = std::pin::pin!(quiet_for(&streams, within));
            let mut stopped = std::pin::pin!(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            let (mut closing, mut told) = (false, false);
            loop {
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = quiet.as_mut() => {
                        // A client that leaves the GOAWAY's ping unanswered keeps the
                        // connection: after one more idle timeout without a stream, it is cut.
                        if closing {
                            tracing::debug!(%peer, "HTTP/2 connection cut: still open after GOAWAY");
                            return;
                        }
                        tracing::debug!(%peer, "HTTP/2 connection closing: no stream for {within:?}");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        quiet.set(quiet_for(&streams, within));
                    }
                    _ = stopped.as_mut(), if !told => {
                        told = true;
                        if !closing {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
        };
        if first_within {
            first_request_within(run, started, c.limits.keepalive).await;
        } else {
            run.await;
        }
    }
}

/// The next client connection (with `TCP_NODELAY`), or `None` once `stop` changes.
async fn next_client(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => return None,
        }
    }
}

/// Runs `conn`, but drops it when no request has started `within` its opening (nothing is lost:
/// the client has not sent a whole request head). Before its first request a connection is still
/// telling HTTP/1.1 from HTTP/2, where the head timer does not run yet; after it, that timer
/// covers HTTP/1.1. One timer per connection.
async fn first_request_within<C: Future>(conn: C, started: Arc<AtomicBool>, within: Option<Duration>) {
    let Some(within) = within else {
        conn.await;
        return;
    };
    let deadline = async {
        tokio::time::sleep(within).await;
        if started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        _ = conn => {}
        _ = deadline => tracing::debug!("connection closed: no request within {within:?}"),
    }
}

fn http_builder(limits: ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head timer runs from the moment the connection is ready for a request, so it is the
    // idle keep-alive timeout as well.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.keepalive)
        .max_buf_size(limits.max_header_size.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024);
    builder
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for `connections` (the end of the open connections) at most `grace`.
async fn drain(connections: impl Future, grace: Duration, what: &str) {
    tokio::select! {
        _ = connections => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace of {grace:?} ended with {what} still open");
        }
    }
}

/// `serve` for small internal servers (admin, metrics) whose handler is a plain function.
pub async fn serve_simple<F, Fut, B>(
    listener: TcpListener,
    handler: F,
    shutdown: Shutdown,
    limits: ConnLimits,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let h = move |_peer: SocketAddr, req: Request<Incoming>| {
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    };
    serve(listener, h, shutdown, limits).await;
}
