//! The sockets of the Gateway API Gateways. Every table may list sockets (an address and
//! port per Gateway listener, plain or HTTPS); each is bound as soon as a table that lists it
//! is published and served by the proxy's accept loop (`serve_proxy`: HTTP/1.1 and h2c, or TLS
//! with ALPN h2 and http/1.1 and the certificates of that socket's table). A socket that a new
//! table no longer lists stops accepting, and its connections drain as they do on shutdown; a
//! socket that stays listed is never bound again, so no change drops a connection. A socket
//! that cannot be bound is logged and tried again on the next publish (and every few seconds
//! meanwhile); it never stops the gateway.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Body;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::accept::{serve_proxy, Shutdown};
use super::limits::ConnLimits;
use crate::proxy::body::{ClientBody, WireHead};
use crate::proxy::tls::listener_config;
use crate::routing::{GatewayListeners, TableHandle};

/// How soon a socket that could not be bound is tried again without a publish.
const RETRY: Duration = Duration::from_secs(2);
/// How soon, when its address was given up by a socket of the other protocol just now.
const RETRY_SOON: Duration = Duration::from_millis(50);

/// Where the Gateways' sockets come from, and what their TLS needs.
pub struct GatewaySockets {
    /// The listeners of each table as it is published (the latest one first).
    pub listeners: watch::Receiver<Arc<GatewayListeners>>,
    /// The live table, whose socket tables the HTTPS sockets take their certificates from.
    pub table: TableHandle,
    /// The HTTPS listener's config: the versions and ALPN of the HTTPS sockets.
    pub tls: Arc<rustls::ServerConfig>,
}

/// A bound socket: its protocol, and how to tell its accept loop to stop.
struct Open {
    tls: bool,
    stop: watch::Sender<bool>,
}

/// Binds and serves the sockets of every published table until `shutdown`, then drains them.
/// `handler` is called with the socket's own address, the client's and the request.
pub async fn serve_gateways<F, Fut, B, G, R>(
    sockets: GatewaySockets,
    handler: F,
    general: G,
    refused: R,
    shutdown: Shutdown,
    limits: ConnLimits,
) where
    F: Fn(SocketAddr, SocketAddr, Request<ClientBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = bytes::Bytes> + WireHead + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    G: Fn(&str) -> bool + Clone + Send + Sync + 'static,
    R: Fn(http::StatusCode) + Clone + Send + Sync + 'static,
{
    let GatewaySockets {
        listeners: mut feed,
        table,
        tls,
    } = sockets;
    let spawn_serve = |tasks: &mut JoinSet<()>,
                       listener: TcpListener,
                       addr: SocketAddr,
                       tls: Option<Arc<rustls::ServerConfig>>| {
        let (stop_tx, stop_rx) = watch::channel(false);
        let h = handler.clone();
        let handler = move |peer, req| h(addr, peer, req);
        let own = Shutdown {
            stop: stop_rx,
            grace: shutdown.grace,
        };
        tasks.spawn(serve_proxy(
            listener,
            tls,
            handler,
            general.clone(),
            refused.clone(),
            own,
            limits,
        ));
        stop_tx
    };
    let mut open: HashMap<SocketAddr, Open> = HashMap::new();
    // Listed but not bound: the last error, to log it once.
    let mut failed: HashMap<SocketAddr, String> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut stop = shutdown.stop.clone();
    let mut wanted = feed.borrow_and_update().clone();
    let (mut published, mut feed_open) = (true, true);
    while !*stop.borrow() {
        // Stop what is no longer listed (or is listed with the other protocol).
        let mut given_up = Vec::new();
        open.retain(|addr, o| {
            let keep = wanted.sockets.iter().any(|s| s.addr == *addr && s.tls == o.tls);
            if !keep {
                tracing::info!(%addr, "Gateway socket no longer listed: stops accepting");
                let _ = o.stop.send(true);
                given_up.push(*addr);
            }
            keep
        });
        failed.retain(|addr, _| wanted.get(*addr).is_some());
        for s in &wanted.sockets {
            if open.contains_key(&s.addr) {
                continue;
            }
            let bound = match TcpListener::bind(s.addr).await {
                Ok(l) if s.tls => match listener_config(&tls, table.clone(), s.addr) {
                    Ok(cfg) => Ok((l, Some(cfg))),
                    Err(e) => Err(e.to_string()),
                },
                Ok(l) => Ok((l, None)),
                Err(e) => Err(e.to_string()),
            };
            match bound {
                Ok((listener, cfg)) => {
                    tracing::info!(addr = %s.addr, gateway = %s.gateway, tls = s.tls, "Gateway socket listening");
                    failed.remove(&s.addr);
                    let stop = spawn_serve(&mut tasks, listener, s.addr, cfg);
                    open.insert(s.addr, Open { tls: s.tls, stop });
                }
                Err(error) => {
                    let again = failed.get(&s.addr) == Some(&error);
                    if (published || !again) && !given_up.contains(&s.addr) {
                        tracing::warn!(addr = %s.addr, gateway = %s.gateway, %error, "cannot bind a Gateway socket; it is tried again on the next publish");
                    } else {
                        tracing::debug!(addr = %s.addr, %error, "Gateway socket not bound yet");
                    }
                    failed.insert(s.addr, error);
                }
            }
        }
        let retry_in = if failed.keys().any(|a| given_up.contains(a)) {
            RETRY_SOON
        } else {
            RETRY
        };
        published = false;
        tokio::select! {
            changed = feed.changed(), if feed_open => match changed {
                Ok(()) => {
                    wanted = feed.borrow_and_update().clone();
                    published = true;
                }
                // No more tables: what is open serves on until shutdown.
                Err(_) => feed_open = false,
            },
            _ = tokio::time::sleep(retry_in), if !failed.is_empty() => {}
            // Keeps the set of drained sockets small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            changed = stop.changed() => if changed.is_err() {
                break;
            },
        }
    }
    for o in open.values() {
        let _ = o.stop.send(true);
    }
    // Each socket drains within the grace on its own.
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
pub(super) mod tests;
