//! Active health checks: one task per endpoint, `GET path` every `interval` within `timeout`.
//! `unhealthyThreshold` consecutive failures take the endpoint out, `healthyThreshold`
//! consecutive successes (2xx or 3xx) bring it back. Endpoints start healthy, so traffic flows
//! before the first check. `https` endpoints are checked by a TCP connect (the proxy's client
//! speaks plain HTTP and h2c). Each check opens a fresh connection (a check tests connecting
//! too), and one that reaches an address the upstream's `Egress` refuses fails without a
//! request being sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::egress::{self, Egress};
use super::state::EndpointState;
use super::{Endpoint, HealthCheckPolicy, Protocol};

/// Runs health checks: each one on a connection of its own.
#[derive(Clone, Default)]
pub struct Checker;

impl Checker {
    pub fn new() -> Checker {
        Checker
    }

    /// One check: true when the endpoint answered 2xx/3xx (or accepted TCP, for https).
    pub async fn probe(
        &self,
        ep: &Endpoint,
        protocol: Protocol,
        policy: &HealthCheckPolicy,
        rules: &Egress,
    ) -> bool {
        tokio::time::timeout(policy.timeout, attempt(ep, protocol, policy, rules))
            .await
            .unwrap_or(false)
    }
}

async fn attempt(ep: &Endpoint, protocol: Protocol, policy: &HealthCheckPolicy, rules: &Egress) -> bool {
    let (host, port) = ep.host_port();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(stream) = TcpStream::connect((bare, port)).await else {
        return false;
    };
    if rules.check_stream(egress::is_name(host), &stream).is_err() {
        return false;
    }
    if ep.scheme == http::uri::Scheme::HTTPS {
        return true;
    }
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    let answered = if protocol == Protocol::H2c {
        let Ok(uri) = Uri::builder()
            .scheme(ep.scheme.clone())
            .authority(ep.authority.clone())
            .path_and_query(policy.path.as_str())
            .build()
        else {
            return false;
        };
        let Ok((mut send, conn)) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await
        else {
            return false;
        };
        tokio::spawn(conn);
        let Ok(req) = request(uri, ep, http::Version::HTTP_2) else {
            return false;
        };
        send.send_request(req).await
    } else {
        let Ok(uri) = policy.path.parse::<Uri>() else {
            return false;
        };
        let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(io).await else {
            return false;
        };
        tokio::spawn(conn);
        let Ok(req) = request(uri, ep, http::Version::HTTP_11) else {
            return false;
        };
        send.send_request(req).await
    };
    match answered {
        Ok(resp) => resp.status().is_success() || resp.status().is_redirection(),
        Err(_) => false,
    }
}

fn request(uri: Uri, ep: &Endpoint, version: http::Version) -> http::Result<Request<Empty<Bytes>>> {
    let mut b = Request::get(uri)
        .version(version)
        .header(header::USER_AGENT, "gatehouse-health-check");
    if version == http::Version::HTTP_11 {
        b = b.header(header::HOST, ep.host_header.clone());
    }
    b.body(Empty::new())
}

/// The check loop of one endpoint; ends when aborted or when `changed` (told the upstream
/// whose endpoint changed state) answers false.
pub(super) async fn run(
    state: Arc<EndpointState>,
    endpoint: Endpoint,
    protocol: Protocol,
    policy: HealthCheckPolicy,
    rules: Arc<Egress>,
    upstream: String,
    changed: impl Fn(&str) -> bool,
) {
    let mut ticker = tokio::time::interval(policy.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut oks, mut fails) = (0u32, 0u32);
    loop {
        ticker.tick().await;
        let ok = Checker.probe(&endpoint, protocol, &policy, &rules).await;
        if ok {
            oks += 1;
            fails = 0;
        } else {
            fails += 1;
            oks = 0;
        }
        let change = if state.is_healthy() && fails >= policy.unhealthy_threshold {
            Some(false)
        } else if !state.is_healthy() && oks >= policy.healthy_threshold {
            Some(true)
        } else {
            None
        };
        if let Some(healthy) = change {
            if state.set_healthy(healthy) {
                if healthy {
                    tracing::info!(%upstream, endpoint = %endpoint.url, "endpoint healthy again");
                } else {
                    tracing::warn!(%upstream, endpoint = %endpoint.url, path = %policy.path,
                        "endpoint unhealthy: {fails} failed health checks");
                }
                if !changed(&upstream) {
                    return;
                }
            }
        }
    }
}
