//! Accept loops: HTTP/1.1 and h2c on one port, HTTPS (rustls, ALPN h2 and http/1.1) on
//! another, graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
pub async fn serve<F, Fut, B>(listener: TcpListener, handler: F, shutdown: Shutdown, max_header_size: usize)
where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = http_builder(max_header_size);
    let graceful = GracefulShutdown::new();
    let mut stop = shutdown.stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let h = handler.clone();
                    let svc = service_fn(move |req| h(peer, req));
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    drain(graceful, shutdown.grace, "connections").await;
}

fn http_builder(max_header_size: usize) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(max_header_size.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024);
    builder
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `serve` over TLS: each connection does the rustls handshake (certificate chosen per
/// handshake by the config's resolver), then the same HTTP/1.1 + h2 stack runs on it. Requests
/// carry the `TlsConn` extension. A failed handshake closes only that connection.
pub async fn serve_tls<F, Fut, B>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: F,
    shutdown: Shutdown,
    max_header_size: usize,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(http_builder(max_header_size));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut stop = shutdown.stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (acceptor, builder, h) = (acceptor.clone(), builder.clone(), handler.clone());
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
                        let svc = service_fn(move |mut req: Request<Incoming>| {
                            req.extensions_mut().insert(crate::tls::TlsConn);
                            h(peer, req)
                        });
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    drain(graceful, shutdown.grace, "TLS connections").await;
}

/// Waits for the connections `graceful` watches to finish, at most `grace`.
async fn drain(graceful: GracefulShutdown, grace: Duration, what: &str) {
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace of {grace:?} ended with {what} still open");
        }
    }
}

/// `serve` for small internal servers (admin, metrics) whose handler is a plain function.
pub async fn serve_simple<F, Fut, B>(listener: TcpListener, handler: F, shutdown: Shutdown)
where
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
    serve(listener, h, shutdown, 64 * 1024).await;
}
