//! Compile a snapshot and publish the table: the single path both modes share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::status_line::StatusLine;
use crate::compile::gateway_api::ApiStatus;
use crate::compile::{compile_after, CompileOptions, Snapshot, Verdict};
use crate::routing::{RoutingTable, TableHandle};
use crate::telemetry::Metrics;

/// The outcome of one publish.
#[derive(Debug)]
pub struct Published {
    /// False when the snapshot equalled the last one and nothing was swapped.
    pub swapped: bool,
    /// When the table went live (when the publish found nothing to swap: its end).
    pub live_at: Instant,
    pub verdicts: Arc<Vec<Verdict>>,
    /// The status of the Gateway API objects this gateway owns.
    pub gateway_status: Arc<Vec<ApiStatus>>,
}

/// What the last publish compiled from and produced.
struct Last {
    snapshot: Snapshot,
    /// What the next compile may reuse.
    cache: crate::compile::gateway_api::RouteCache,
    /// Whether each Gateway API status is a rejection, by the address of the status (kept
    /// alive by `gateway_status`, so never reused meanwhile).
    judged: HashMap<usize, bool>,
    verdicts: Arc<Vec<Verdict>>,
    gateway_status: Arc<Vec<ApiStatus>>,
}

/// Compiles snapshots and swaps the table into the handle the proxy reads.
pub struct Publisher {
    handle: TableHandle,
    options: CompileOptions,
    metrics: Metrics,
    last: Mutex<Option<Last>>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    before_swap: Option<BeforeSwap>,
}

/// Runs on each new table just before it goes live (binds runtime state, e.g. upstream health).
pub type BeforeSwap = Box<dyn Fn(&RoutingTable) + Send + Sync>;

impl Publisher {
    pub fn new(handle: TableHandle, options: CompileOptions, metrics: Metrics) -> Self {
        Publisher {
            handle,
            options,
            metrics,
            last: Mutex::new(None),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            before_swap: None,
        }
    }

    /// Calls `hook` with every new table before it is swapped in.
    pub fn before_swap(mut self, hook: BeforeSwap) -> Self {
        self.before_swap = Some(hook);
        self
    }

    /// Set once the first table is published.
    pub fn published_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.ready.clone()
    }

    /// Compiles `snapshot` and swaps it in, unless it equals the last one. `seen` is when the
    /// change that led to it was noticed (for `gateway_config_propagation_seconds`).
    /// `load_failed` marks snapshots built while some input could not be read or parsed.
    pub fn publish(&self, snapshot: Snapshot, seen: Instant, load_failed: bool) -> Published {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prev) = last.as_ref() {
            if prev.snapshot == snapshot {
                return Published {
                    swapped: false,
                    live_at: Instant::now(),
                    verdicts: prev.verdicts.clone(),
                    gateway_status: prev.gateway_status.clone(),
                };
            }
        }
        let prev = last.as_ref().map(|l| (&l.snapshot, &l.cache));
        let compiled = compile_after(&snapshot, &self.options, prev);
        for line in compiled.table.auth_report().lines {
            if line.starts_with("ok") {
                tracing::info!("{line}");
            } else {
                tracing::warn!("{line}");
            }
        }
        if let Some(crate::routing::SecretUrl::Problem(p)) = &compiled.table.queue_url {
            tracing::warn!("websocket.integration.message_queue: {p}");
        }
        let routes = compiled.table.routes().len();
        if let Some(hook) = &self.before_swap {
            hook(&compiled.table);
        }
        compiled.table.tls.published(&self.metrics);
        self.handle.store(Arc::new(compiled.table));
        let live_at = Instant::now();
        let took = live_at.saturating_duration_since(seen);
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        self.metrics
            .config_propagation_seconds
            .observe(took.as_secs_f64());
        self.metrics.routes.set(routes as i64);
        let controller = self
            .options
            .gateway_api
            .as_ref()
            .map(|g| g.controller_name.as_str())
            .unwrap_or_default();
        // Each Gateway API status is judged (and its problems logged) once: a status the last
        // compile gave too (the same `Arc`, its route's compile reused) keeps its judgement.
        let before = last.as_ref().map(|l| &l.judged);
        let mut judged = HashMap::with_capacity(compiled.gateway_status.len());
        let mut rejected = compiled.verdicts.iter().filter(|v| v.is_rejected()).count();
        for status in &compiled.gateway_status {
            let at = Arc::as_ptr(&status.status) as usize;
            let is_rejected = match before.and_then(|b| b.get(&at)) {
                Some(&r) => r,
                None => {
                    let line = StatusLine { status, controller };
                    if line.has_problem() {
                        tracing::warn!(resource = %line.resource(), "{line}");
                    }
                    line.is_rejected()
                }
            };
            rejected += usize::from(is_rejected);
            judged.insert(at, is_rejected);
        }
        let result = if load_failed {
            "failure"
        } else if rejected > 0 {
            "partial"
        } else {
            "success"
        };
        self.metrics
            .config_reloads_total
            .with_label_values(&[result])
            .inc();
        for v in compiled.verdicts.iter().filter(|v| v.has_problem()) {
            tracing::warn!(resource = %format!("{} {}/{}", v.kind, v.namespace, v.name), "{v}");
        }
        tracing::info!(
            routes,
            rejected,
            // Change noticed -> table live, in whole microseconds (the number reads as written).
            elapsed_ms = (took.as_secs_f64() * 1e6).round() / 1e3,
            "routing table published"
        );
        let verdicts = Arc::new(compiled.verdicts);
        let gateway_status = Arc::new(compiled.gateway_status);
        *last = Some(Last {
            snapshot,
            cache: compiled.cache,
            judged,
            verdicts: verdicts.clone(),
            gateway_status: gateway_status.clone(),
        });
        Published {
            swapped: true,
            live_at,
            verdicts,
            gateway_status,
        }
    }
}
