//! Active health checks: one task per endpoint, `GET path` every `interval` within `timeout`.
//! `unhealthyThreshold` consecutive failures take the endpoint out, `healthyThreshold`
//! consecutive successes (2xx or 3xx) bring it back. Endpoints start healthy, so traffic flows
//! before the first check. `https` endpoints are checked by a TCP connect (the proxy's client
//! speaks plain HTTP and h2c).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, Version};
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::state::EndpointState;
use super::{Endpoint, HealthCheckPolicy, Protocol};

type CheckClient = Client<HttpConnector, Empty<Bytes>>;

/// The HTTP clients checks use: fresh connections each time (a check tests connecting too).
#[derive(Clone)]
pub struct Checker {
    http1: CheckClient,
    h2c: CheckClient,
}

impl Checker {
    pub fn new() -> Checker {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Checker {
            http1: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector.clone()),
            h2c: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .http2_only(true)
                .build(connector),
        }
    }

    /// One check: true when the endpoint answered 2xx/3xx (or accepted TCP, for https).
    pub async fn probe(&self, ep: &Endpoint, protocol: Protocol, policy: &HealthCheckPolicy) -> bool {
        let attempt = async {
            if ep.scheme == http::uri::Scheme::HTTPS {
                let port = ep.authority.port_u16().unwrap_or(443);
                return tokio::net::TcpStream::connect((ep.authority.host(), port))
                    .await
                    .is_ok();
            }
            let Ok(uri) = Uri::builder()
                .scheme(ep.scheme.clone())
                .authority(ep.authority.clone())
                .path_and_query(policy.path.as_str())
                .build()
            else {
                return false;
            };
            let (client, version) = match protocol {
                Protocol::H2c => (&self.h2c, Version::HTTP_2),
                _ => (&self.http1, Version::HTTP_11),
            };
            let Ok(req) = Request::get(uri)
                .version(version)
                .header(http::header::USER_AGENT, "gatehouse-health-check")
                .body(Empty::new())
            else {
                return false;
            };
            match client.request(req).await {
                Ok(resp) => resp.status().is_success() || resp.status().is_redirection(),
                Err(_) => false,
            }
        };
        tokio::time::timeout(policy.timeout, attempt)
            .await
            .unwrap_or(false)
    }
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

/// The check loop of one endpoint; ends when aborted or when `changed` (told the upstream
/// whose endpoint changed state) answers false.
pub(super) async fn run(
    checker: Checker,
    state: Arc<EndpointState>,
    endpoint: Endpoint,
    protocol: Protocol,
    policy: HealthCheckPolicy,
    upstream: String,
    changed: impl Fn(&str) -> bool,
) {
    let mut ticker = tokio::time::interval(policy.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut oks, mut fails) = (0u32, 0u32);
    loop {
        ticker.tick().await;
        let ok = checker.probe(&endpoint, protocol, &policy).await;
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
