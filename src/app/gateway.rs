//! Wiring for `gatehouse run`: sources, publisher, listeners, and shutdown on SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{metrics_response, AdminState};
use crate::compile::{CompileOptions, Tenancy};
use crate::middleware::ratelimit::RateLimiter;
use crate::proxy::{self, ConnLimits, ProxyState, Shutdown};
use crate::routing::ChannelDefaults;
use crate::routing::TableHandle;
use crate::settings::{parse_duration, GatewayConfig};
use crate::sources::{folder, Publisher};
use crate::telemetry::Metrics;
use crate::upstream::Registry;
use crate::websocket::{Hub, HubSettings};

/// Errors that stop the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Settings(#[from] crate::settings::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Crds(#[from] yaml_serde::Error),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot watch the resources folder: {0}")]
    Watch(#[from] notify::Error),
    #[error("invalid configuration: {key}: {source}")]
    Duration {
        key: String,
        source: crate::settings::DurationError,
    },
    #[error("invalid configuration: middleware.cors: {0}")]
    Cors(crate::compile::Invalid),
    #[error("invalid configuration: {0}")]
    Auth(#[from] crate::auth::SettingsError),
    #[error("invalid configuration: {0}")]
    Channels(#[from] crate::routing::channels::ChannelError),
    #[error("invalid configuration: {0}")]
    RateLimits(#[from] crate::middleware::ratelimit::ConfigError),
    #[error("invalid configuration: {0}")]
    Tracing(#[from] crate::telemetry::TraceError),
    #[error("invalid configuration: {0}")]
    EndpointsApi(#[from] crate::sources::kube::UnknownEndpointsApi),
    #[error("invalid configuration: Kubernetes client: {0}")]
    KubeClient(kube::Error),
    #[error("invalid configuration: {0}")]
    Hub(#[from] crate::websocket::Error),
    #[error("invalid configuration: {0}")]
    Tls(#[from] crate::proxy::tls::ServerConfigError),
    #[error("invalid configuration: {0}")]
    Tenancy(#[from] crate::settings::TenancyError),
    #[error("invalid configuration: {0}")]
    AddressPool(#[from] crate::settings::AddressPoolError),
    #[error("invalid configuration: {0}")]
    GatewayApi(String),
    /// Neither in-cluster config nor a kubeconfig was found.
    #[error("no Kubernetes configuration: {0}")]
    NoCluster(String),
}

/// `server.timeouts` other than `request_timeout` (a compile option); `None`: no limit.
pub struct ServerTimeouts {
    pub grace: Duration,
    pub connect: Duration,
    pub upstream: Option<Duration>,
    pub keepalive: Option<Duration>,
    pub send: Option<Duration>,
    pub read: Option<Duration>,
    pub http2_idle: Option<Duration>,
    pub tunnel_idle: Option<Duration>,
}

/// Parses `server.timeouts`, naming the key that does not parse.
pub fn server_timeouts(cfg: &GatewayConfig) -> Result<ServerTimeouts, Error> {
    let t = &cfg.server.timeouts;
    let parse = |key: &str, value: &str| {
        parse_duration(value).map_err(|source| Error::Duration {
            key: format!("server.timeouts.{key}"),
            source,
        })
    };
    let limit = |d: Duration| (!d.is_zero()).then_some(d);
    Ok(ServerTimeouts {
        grace: parse("shutdown_grace", &t.shutdown_grace)?,
        connect: parse("connect_timeout", &t.connect_timeout)?,
        upstream: limit(parse("upstream_timeout", &t.upstream_timeout)?),
        keepalive: limit(parse("keepalive_timeout", &t.keepalive_timeout)?),
        send: limit(parse("send_timeout", &t.send_timeout)?),
        read: limit(parse("read_timeout", &t.read_timeout)?),
        http2_idle: limit(parse("http2_idle_timeout", &t.idle.http2_idle_timeout)?),
        tunnel_idle: limit(parse("tunnel_idle_timeout", &t.idle.tunnel_idle_timeout)?),
    })
}

/// How far the gateway trusts the namespaces of its resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A folder or inline resources: the operator's own.
    Standalone,
    /// A cluster: every namespace is a tenant.
    Kubernetes,
}

/// The gateway's own listening ports and what each is: never an upstream.
fn own_ports(cfg: &GatewayConfig) -> Vec<(u16, &'static str)> {
    let s = &cfg.server;
    let mut ports = vec![
        (s.http_port, "proxy"),
        (s.https_port, "HTTPS"),
        (s.admin_port, "admin"),
    ];
    if cfg.observability.metrics.prometheus_enabled {
        ports.push((s.metrics_port, "metrics"));
    }
    ports
}

/// Compile options that come from the static configuration.
pub fn compile_options(cfg: &GatewayConfig, mode: Mode) -> Result<CompileOptions, Error> {
    let default_timeout =
        parse_duration(&cfg.server.timeouts.request_timeout).map_err(|source| Error::Duration {
            key: "server.timeouts.request_timeout".into(),
            source,
        })?;
    let default_cors = cfg.middleware.cors.as_ref().map(|c| c.to_policy());
    if let Some(c) = &default_cors {
        crate::compile::compile_cors(c).map_err(Error::Cors)?;
    }
    let mut reserved_paths = vec!["/health".to_string(), "/ready".to_string()];
    if cfg.websocket.enabled {
        reserved_paths.extend(HubSettings::from_config(cfg)?.paths());
    }
    cfg.tenancy.check()?;
    let tenancy = match mode {
        Mode::Standalone => Tenancy::standalone(&cfg.tenancy, own_ports(cfg)),
        Mode::Kubernetes => Tenancy::kubernetes(&cfg.tenancy, own_ports(cfg)),
    };
    let gateway_api = if cfg.gateway_api.enabled {
        let shared = match &cfg.gateway_api.service {
            None => None,
            Some(svc) => Some(crate::compile::gateway_api::SharedAddress {
                service: format!("{}/{}", svc.namespace.as_deref().unwrap_or("default"), svc.name),
                bind: cfg.server.bind_address.parse().map_err(|_| {
                    Error::GatewayApi(format!(
                        "gateway_api.service: server.bind_address {:?} must be an IP address, \
                         the address Gateway listeners are bound on",
                        cfg.server.bind_address
                    ))
                })?,
                own_ports: own_ports(cfg),
            }),
        };
        Some(crate::compile::gateway_api::GatewayApiOptions {
            controller_name: cfg.gateway_api.controller_name.clone(),
            pool: cfg.gateway_api.pool()?,
            shared,
        })
    } else {
        None
    };
    Ok(CompileOptions {
        tenancy,
        gateway_api,
        default_timeout: (!default_timeout.is_zero()).then_some(default_timeout),
        default_cors,
        reserved_paths,
        channels: ChannelDefaults::from_config(&cfg.websocket)?,
        jwt: crate::auth::JwtSettings::from_config(&cfg.auth)?,
        queue_url_secret: Some(&cfg.websocket)
            .filter(|ws| ws.enabled && ws.integration.message_queue.enabled)
            .and_then(|ws| ws.integration.message_queue.url_secret_ref.clone()),
        default_certificate: cfg
            .server
            .tls
            .as_ref()
            .and_then(|t| t.default_certificate.as_ref()?.secret_ref.as_ref())
            .map(|r| {
                (
                    r.namespace.clone().unwrap_or_else(|| "default".into()),
                    r.name.clone(),
                )
            }),
    })
}

/// What both modes share: the table handle, the one publisher, metrics and the listeners.
struct Core {
    cfg: Arc<GatewayConfig>,
    metrics: Metrics,
    handle: TableHandle,
    publisher: Arc<Publisher>,
    /// Endpoint health, breakers and in-flight counts of every upstream.
    upstreams: Arc<Registry>,
    limiter: Arc<RateLimiter>,
    grace: Duration,
    connect_timeout: Duration,
    /// `server.timeouts.upstream_timeout`: the bound of one upstream try, if any.
    upstream_timeout: Option<Duration>,
    /// `server.timeouts.read_timeout`: the longest an upstream's body may send nothing.
    read_timeout: Option<Duration>,
    /// `server.timeouts.tunnel_idle_timeout`: the longest a WebSocket tunnel may carry nothing.
    tunnel_idle: Option<Duration>,
    conn_limits: ConnLimits,
    proxy_listener: tokio::net::TcpListener,
    https_listener: tokio::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    admin_listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    /// The Gateway sockets of each table as it is published.
    gateway_listeners: tokio::sync::watch::Receiver<Arc<crate::routing::GatewayListeners>>,
}

impl Core {
    /// Parses the shared settings and binds the listeners (before any source starts).
    async fn bind(cfg: GatewayConfig, mode: Mode) -> Result<Self, Error> {
        let cfg = Arc::new(cfg);
        let metrics = Metrics::new()?;
        let handle = TableHandle::default();
        let limiter = Arc::new(RateLimiter::from_config(&cfg.middleware.rate_limiting)?);
        let upstreams = Registry::new(Some(metrics.clone()));
        let (listeners_tx, gateway_listeners) = tokio::sync::watch::channel(Default::default());
        let publisher = Arc::new(
            Publisher::new(handle.clone(), compile_options(&cfg, mode)?, metrics.clone()).before_swap({
                let upstreams = upstreams.clone();
                Box::new(move |table| {
                    upstreams.bind(&table.upstreams);
                    listeners_tx.send_replace(table.listeners.clone());
                })
            }),
        );
        let ServerTimeouts {
            grace,
            connect: connect_timeout,
            upstream: upstream_timeout,
            keepalive,
            send,
            read,
            http2_idle,
            tunnel_idle,
        } = server_timeouts(&cfg)?;
        let conn_limits = ConnLimits {
            max_header_size: cfg.server.limits.max_header_size,
            keepalive,
            send,
            h2_idle: http2_idle,
        };

        let bind = cfg.server.bind_address.as_str();
        let proxy_listener = proxy::bind(bind, cfg.server.http_port, "proxy").await?;
        let tls_config = crate::proxy::tls::server_config(
            handle.clone(),
            cfg.server.tls.as_ref().and_then(|t| t.min_version.as_deref()),
        )?;
        let https_listener = proxy::bind(bind, cfg.server.https_port, "https").await?;
        let admin_listener = proxy::bind(bind, cfg.server.admin_port, "admin").await?;
        let metrics_listener = if cfg.observability.metrics.prometheus_enabled {
            Some(proxy::bind(bind, cfg.server.metrics_port, "metrics").await?)
        } else {
            None
        };
        Ok(Core {
            cfg,
            metrics,
            handle,
            publisher,
            upstreams,
            limiter,
            grace,
            connect_timeout,
            upstream_timeout,
            read_timeout: read,
            tunnel_idle,
            conn_limits,
            proxy_listener,
            https_listener,
            tls_config,
            admin_listener,
            metrics_listener,
            gateway_listeners,
        })
    }
}

/// Runs standalone mode until SIGTERM/SIGINT, then drains and returns.
pub async fn run_standalone(cfg: GatewayConfig, resources: Option<PathBuf>) -> Result<(), Error> {
    let core = Core::bind(cfg, Mode::Standalone).await?;
    let _watch = folder::watch(core.cfg.clone(), resources, core.publisher.clone()).await?;
    serve(core).await
}

/// Options of Kubernetes mode (from the command line).
#[derive(Clone, Debug, Default)]
pub struct KubeArgs {
    pub namespaces: Vec<String>,
    pub lease_duration: String,
    pub lease_namespace: Option<String>,
    pub endpoints_api: String,
}

/// Runs Kubernetes mode until SIGTERM/SIGINT: watches the API server, serves the last good
/// table whatever the API server does, and writes status while holding the Lease.
pub async fn run_kubernetes(cfg: GatewayConfig, args: KubeArgs) -> Result<(), Error> {
    let endpoints_api = crate::sources::kube::EndpointsApi::parse(&args.endpoints_api)?;
    let lease_duration = parse_duration(&args.lease_duration).map_err(|source| Error::Duration {
        key: "--lease-duration".into(),
        source,
    })?;
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| Error::NoCluster(e.to_string()))?;
    let client = kube::Client::try_from(kube_config).map_err(Error::KubeClient)?;
    let home = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    // A Secret reference without a namespace means the gateway's own namespace here, for the
    // watcher and for compile alike.
    let mut cfg = cfg;
    default_secret_namespaces(&mut cfg, &home);
    let core = Core::bind(cfg, Mode::Kubernetes).await?;
    let source = crate::sources::kube::start(
        client.clone(),
        &core.cfg,
        crate::sources::kube::KubeOptions {
            namespaces: args.namespaces,
            home_namespace: home.clone(),
            endpoints_api,
        },
        core.publisher.clone(),
    );
    let identity = format!(
        "{}-{:08x}",
        std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "gatehouse".into()),
        rand::random::<u32>()
    );
    let controller = crate::controller::start(
        client,
        crate::controller::LeaseConfig {
            namespace: args.lease_namespace.unwrap_or(home),
            name: "gatehouse-status-writer".into(),
            identity,
            duration: lease_duration,
        },
        source.store.clone(),
        source.verdicts.clone(),
        Some(core.upstreams.clone()),
        core.cfg
            .gateway_api
            .enabled
            .then(|| crate::controller::GatewayStatusFeed {
                lookup: source.store.clone(),
                status: source.gateway_status.clone(),
                controller_name: core.cfg.gateway_api.controller_name.clone(),
            }),
    );
    let result = serve(core).await;
    controller.shutdown().await;
    drop(source);
    result
}

/// Fills the namespace of Secret references that name none.
fn default_secret_namespaces(cfg: &mut GatewayConfig, home: &str) {
    let jwt = cfg.auth.jwt.as_mut().and_then(|j| j.secret_ref.as_mut());
    let cert = cfg
        .server
        .tls
        .as_mut()
        .and_then(|t| t.default_certificate.as_mut()?.secret_ref.as_mut());
    let queue = cfg.websocket.integration.message_queue.url_secret_ref.as_mut();
    for r in [jwt, cert, queue].into_iter().flatten() {
        if r.namespace.as_deref().is_none_or(str::is_empty) {
            r.namespace = Some(home.to_string());
        }
    }
    // So is the namespace of the Service Gateways report.
    if let Some(svc) = cfg.gateway_api.service.as_mut() {
        if svc.namespace.as_deref().is_none_or(str::is_empty) {
            svc.namespace = Some(home.to_string());
        }
    }
}

/// Serves the proxy, admin and metrics listeners until SIGTERM/SIGINT, then drains.
/// Readiness follows the first published table.
async fn serve(core: Core) -> Result<(), Error> {
    let Core {
        cfg,
        metrics,
        handle,
        publisher,
        upstreams: _,
        limiter,
        grace,
        connect_timeout,
        upstream_timeout,
        read_timeout,
        tunnel_idle,
        conn_limits,
        proxy_listener,
        https_listener,
        tls_config,
        admin_listener,
        metrics_listener,
        gateway_listeners,
    } = core;
    let redirect_http = cfg.server.tls.as_ref().is_some_and(|t| t.redirect_http);
    let published = publisher.published_flag();
    let ready = Arc::new(AtomicBool::new(published.load(Ordering::Acquire)));

    let tracer = crate::telemetry::Tracing::from_config(&cfg.observability.tracing)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if !ready.load(Ordering::Acquire) {
        let ready = ready.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            while !published.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !*stop.borrow() {
                ready.store(true, Ordering::Release);
            }
        });
    }
    let shutdown = Shutdown { stop: stop_rx, grace };
    let hub = if cfg.websocket.enabled {
        let verifier = Arc::new(crate::websocket::auth::TableVerifier(handle.clone()));
        let settings = HubSettings::from_config(&cfg)?;
        Some(Hub::start(settings, handle.clone(), verifier, metrics.clone())?)
    } else {
        None
    };
    let mut state = ProxyState::new(
        handle.clone(),
        metrics.clone(),
        ready.clone(),
        connect_timeout,
        cfg.server.limits.max_body_size,
    )
    .with_rate_limiter(limiter)
    .with_tracing(tracer.clone())
    .with_upstream_timeout(upstream_timeout)
    .with_read_timeout(read_timeout)
    .with_paths(cfg.server.paths)
    .with_headers(cfg.server.headers)
    .with_tunnel_idle_timeout(tunnel_idle);
    // `server.tls.redirect_http`: plain requests (probes aside) get a 308 to https.
    if redirect_http {
        state = state.with_https_redirect(cfg.server.https_port);
    }
    if let Some(hub) = &hub {
        state = state.with_hub(hub.clone());
    }
    let state = Arc::new(state);
    let mut tasks = tokio::task::JoinSet::new();
    {
        // The hub's paths (upgrades and the webhook) are served by the general server.
        let hub_paths = hub.clone();
        let general = move |path: &str| hub_paths.as_ref().is_some_and(|h| h.claims(path));
        let counted = state.clone();
        let refused = move |status| counted.count_refused(status);
        // The Gateway API Gateways' sockets, bound and unbound as tables list them.
        let gateway_state = state.clone();
        let handler = move |local, peer, req| gateway_state.clone().handle_gateway(local, peer, req);
        let sockets = proxy::GatewaySockets {
            listeners: gateway_listeners,
            table: handle.clone(),
            tls: tls_config.clone(),
        };
        tasks.spawn(proxy::serve_gateways(
            sockets,
            handler,
            general.clone(),
            refused.clone(),
            shutdown.clone(),
            conn_limits,
        ));
        let tls_state = state.clone();
        let handler = move |peer, req| tls_state.clone().handle(peer, req);
        tasks.spawn(proxy::serve_proxy(
            https_listener,
            Some(tls_config),
            handler,
            general.clone(),
            refused.clone(),
            shutdown.clone(),
            conn_limits,
        ));
        let proxy_state = state.clone();
        // Nothing around `handle`: its future is large, and each wrapping is a copy of it per
        // request.
        let handler = move |peer, req| proxy_state.clone().handle(peer, req);
        tasks.spawn(proxy::serve_proxy(
            proxy_listener,
            None,
            handler,
            general,
            refused,
            shutdown.clone(),
            conn_limits,
        ));
    }
    // The expiry gauges count down between publishes.
    let expiry = {
        let (handle, metrics) = (handle.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                handle.load().tls.export_expiry(&metrics, crate::tls::unix_now());
            }
        })
    };
    let admin = Arc::new(AdminState {
        table: handle.clone(),
        ready: ready.clone(),
        token: cfg.admin.token.clone(),
        allow_jwt: cfg.admin.allow_jwt,
        websocket: hub.clone(),
    });
    tasks.spawn(proxy::serve_simple(
        admin_listener,
        move |req| admin.clone().handle(req),
        shutdown.clone(),
        ConnLimits::internal(conn_limits.keepalive),
    ));
    if let Some(l) = metrics_listener {
        let path = cfg.observability.metrics.endpoint_path.clone();
        let m = metrics.clone();
        let handler = move |req: http::Request<hyper::body::Incoming>| {
            let resp = metrics_response(&m, &path, &req);
            async move { resp }
        };
        tasks.spawn(proxy::serve_simple(
            l,
            handler,
            shutdown.clone(),
            ConnLimits::internal(conn_limits.keepalive),
        ));
    }
    tracing::info!(
        http = cfg.server.http_port,
        https = cfg.server.https_port,
        admin = cfg.server.admin_port,
        metrics = cfg.server.metrics_port,
        "gatehouse listening"
    );

    wait_for_signal().await;
    expiry.abort();
    tracing::info!("shutting down: draining for up to {grace:?}");
    ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    if let Some(hub) = &hub {
        hub.shutdown(grace).await;
    }
    let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("listeners did not finish draining in time");
    }
    if let Some(t) = tracer {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs_without_namespace_take_the_home_namespace() {
        let mut cfg = GatewayConfig::from_yaml_str(
            "auth:\n  jwt:\n    secret_ref: {name: jwt}\nserver:\n  tls:\n    default_certificate:\n      secret_ref: {name: cert, namespace: certs}\n",
            &|_| None,
        )
        .expect("config");
        default_secret_namespaces(&mut cfg, "gatehouse-system");
        let jwt = cfg
            .auth
            .jwt
            .as_ref()
            .and_then(|j| j.secret_ref.as_ref())
            .expect("jwt ref");
        assert_eq!(jwt.namespace.as_deref(), Some("gatehouse-system"));
        let cert = cfg
            .server
            .tls
            .as_ref()
            .and_then(|t| t.default_certificate.as_ref()?.secret_ref.as_ref());
        assert_eq!(
            cert.and_then(|c| c.namespace.as_deref()),
            Some("certs"),
            "an explicit namespace stays"
        );
    }

    #[test]
    fn the_queue_url_secret_ref_takes_the_home_namespace_and_reaches_compile() {
        let yaml = "websocket:\n  enabled: true\n  integration:\n    message_queue:\n      enabled: true\n      url_secret_ref: {name: mq, key: amqp}\n";
        let mut cfg = GatewayConfig::from_yaml_str(yaml, &|_| None).expect("config");
        default_secret_namespaces(&mut cfg, "gatehouse-system");
        let options = compile_options(&cfg, Mode::Kubernetes).expect("options");
        let r = options.queue_url_secret.expect("queue ref");
        assert_eq!(
            (r.name.as_str(), r.namespace.as_deref(), r.key.as_deref()),
            ("mq", Some("gatehouse-system"), Some("amqp"))
        );
        assert_eq!(
            crate::sources::kube::config_secrets(&cfg, "gatehouse-system"),
            vec![crate::sources::kube::Dependency::Secret(
                "gatehouse-system".into(),
                "mq".into()
            )]
        );
    }

    #[test]
    fn gateways_behind_a_service_take_its_home_namespace_and_the_bind_address() {
        let yaml = "gateway_api:\n  service: {name: edge}\nserver:\n  bind_address: 0.0.0.0\n";
        let mut cfg = GatewayConfig::from_yaml_str(yaml, &|_| None).expect("config");
        default_secret_namespaces(&mut cfg, "gatehouse-system");
        let options = compile_options(&cfg, Mode::Kubernetes).expect("options");
        let shared = options.gateway_api.and_then(|g| g.shared).expect("shared");
        assert_eq!(shared.service, "gatehouse-system/edge");
        assert_eq!(shared.bind.to_string(), "0.0.0.0");
        assert!(shared.own_ports.iter().any(|(p, _)| *p == cfg.server.http_port));
        assert_eq!(
            crate::sources::kube::config_secrets(&cfg, "gatehouse-system"),
            vec![crate::sources::kube::Dependency::Service(
                "gatehouse-system".into(),
                "edge".into()
            )]
        );
        let bad = "gateway_api:\n  service: {name: edge, port: 1}\n";
        assert!(
            GatewayConfig::from_yaml_str(bad, &|_| None).is_err(),
            "unknown keys are refused"
        );
        let host = "gateway_api:\n  service: {name: edge}\nserver:\n  bind_address: localhost\n";
        let cfg = GatewayConfig::from_yaml_str(host, &|_| None).expect("config");
        let err = compile_options(&cfg, Mode::Kubernetes).expect_err("a host name is refused");
        assert!(err.to_string().contains("gateway_api.service"), "{err}");
    }
}
