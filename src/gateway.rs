//! Wiring for `gatehouse run`: sources, publisher, listeners, and shutdown on SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{metrics_response, AdminState};
use crate::compile::CompileOptions;
use crate::proxy::{self, ProxyState, Shutdown};
use crate::routing::TableHandle;
use crate::settings::{parse_duration, GatewayConfig};
use crate::sources::{folder, Publisher};
use crate::telemetry::Metrics;

/// Errors that stop the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot watch the resources folder: {0}")]
    Watch(#[from] notify::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Compile options that come from the static configuration.
pub fn compile_options(cfg: &GatewayConfig) -> Result<CompileOptions, Error> {
    let default_timeout = parse_duration(&cfg.server.timeouts.request_timeout)
        .map_err(|e| Error::Config(format!("server.timeouts.request_timeout: {e}")))?;
    let default_cors = cfg.middleware.cors.as_ref().map(|c| c.to_policy());
    if let Some(c) = &default_cors {
        crate::compile::compile_cors(c).map_err(|e| Error::Config(format!("middleware.cors: {e}")))?;
    }
    Ok(CompileOptions {
        default_timeout: (!default_timeout.is_zero()).then_some(default_timeout),
        default_cors,
        reserved_paths: vec!["/health".into(), "/ready".into()],
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

/// Runs standalone mode until SIGTERM/SIGINT, then drains and returns.
pub async fn run_standalone(cfg: GatewayConfig, resources: Option<PathBuf>) -> Result<(), Error> {
    let cfg = Arc::new(cfg);
    let metrics = Metrics::new()?;
    let handle = TableHandle::default();
    let publisher = Arc::new(Publisher::new(
        handle.clone(),
        compile_options(&cfg)?,
        metrics.clone(),
    ));
    let published = publisher.published_flag();
    let grace = parse_duration(&cfg.server.timeouts.shutdown_grace)
        .map_err(|e| Error::Config(format!("server.timeouts.shutdown_grace: {e}")))?;
    let connect_timeout = parse_duration(&cfg.server.timeouts.connect_timeout)
        .map_err(|e| Error::Config(format!("server.timeouts.connect_timeout: {e}")))?;

    let bind = cfg.server.bind_address.as_str();
    let proxy_listener = proxy::bind(bind, cfg.server.http_port, "proxy").await?;
    let tls_cfg = cfg.server.tls.clone().unwrap_or_default();
    let tls_config =
        crate::tls::server_config(handle.clone(), tls_cfg.min_version.as_deref()).map_err(Error::Config)?;
    let https_listener = proxy::bind(bind, cfg.server.https_port, "https").await?;
    let admin_listener = proxy::bind(bind, cfg.server.admin_port, "admin").await?;
    let metrics_listener = if cfg.observability.metrics.prometheus_enabled {
        Some(proxy::bind(bind, cfg.server.metrics_port, "metrics").await?)
    } else {
        None
    };

    let _watch = folder::watch(cfg.clone(), resources, publisher.clone()).await?;
    let ready = Arc::new(AtomicBool::new(published.load(Ordering::Acquire)));

    let tracer = crate::telemetry::Tracing::from_config(&cfg.observability.tracing).map_err(Error::Config)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = Shutdown { stop: stop_rx, grace };
    let state = Arc::new(
        ProxyState::new(
            handle.clone(),
            metrics.clone(),
            ready.clone(),
            connect_timeout,
            cfg.server.limits.max_body_size,
        )
        .with_tracing(tracer.clone()),
    );
    let mut tasks = tokio::task::JoinSet::new();
    {
        let tls_state = state.clone();
        let handler = move |peer, req| tls_state.clone().handle(peer, req);
        tasks.spawn(proxy::serve_tls(
            https_listener,
            tls_config,
            handler,
            shutdown.clone(),
            cfg.server.limits.max_header_size,
        ));
        // `server.tls.redirect_http`: plain requests (probes aside) get a 308 to https.
        let https_port = tls_cfg.redirect_http.then_some(cfg.server.https_port);
        let proxy_state = state.clone();
        let handler = move |peer, req: http::Request<hyper::body::Incoming>| {
            let redirect = https_port.and_then(|port| crate::tls::https_redirect(&req, port));
            let state = proxy_state.clone();
            async move {
                match redirect {
                    Some(r) => Ok(r.map(http_body_util::Either::Right)),
                    None => state.handle(peer, req).await,
                }
            }
        };
        tasks.spawn(proxy::serve(
            proxy_listener,
            handler,
            shutdown.clone(),
            cfg.server.limits.max_header_size,
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
    });
    tasks.spawn(proxy::serve_simple(
        admin_listener,
        move |req| admin.clone().handle(req),
        shutdown.clone(),
    ));
    if let Some(l) = metrics_listener {
        let path = cfg.observability.metrics.endpoint_path.clone();
        let m = metrics.clone();
        let handler = move |req: http::Request<hyper::body::Incoming>| {
            let resp = metrics_response(&m, &path, &req);
            async move { resp }
        };
        tasks.spawn(proxy::serve_simple(l, handler, shutdown.clone()));
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
