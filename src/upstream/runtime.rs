//! Runtime state that outlives routing tables: endpoint health, in-flight counts, breakers,
//! and the health-check tasks. The `Registry` keeps it by upstream `namespace/name` and
//! endpoint URL; after each compile, `Registry::bind` hands every compiled `Upstream` the
//! state objects it shares with the previous table, and starts or stops health checks so that
//! they follow the table.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::breaker::Breaker;
use super::health;
use super::ring::Ring;
use super::state::EndpointState;
use super::{Balancer, HealthCheckPolicy, Upstream};
use crate::telemetry::Metrics;

/// What a compiled `Upstream` is bound to: state aligned with its `endpoints`.
#[derive(Debug)]
pub struct Binding {
    pub endpoints: Vec<Arc<EndpointState>>,
    pub breaker: Option<Arc<Breaker>>,
    pub ring: Option<Ring>,
}

impl Binding {
    /// State private to one upstream (tables that were never bound to a registry).
    pub fn standalone(u: &Upstream) -> Binding {
        Binding {
            endpoints: u
                .endpoints
                .iter()
                .map(|e| Arc::new(EndpointState::new(&e.url)))
                .collect(),
            breaker: u.circuit_breaker.clone().map(|p| Arc::new(Breaker::new(p, None))),
            ring: ring_for(u),
        }
    }

    pub fn healthy_count(&self) -> usize {
        self.endpoints.iter().filter(|e| e.is_healthy()).count()
    }
}

fn ring_for(u: &Upstream) -> Option<Ring> {
    matches!(u.balancer, Balancer::ConsistentHash(_)).then(|| {
        let urls: Vec<&str> = u.endpoints.iter().map(|e| e.url.as_str()).collect();
        Ring::new(&urls)
    })
}

struct EndpointEntry {
    state: Arc<EndpointState>,
    check: Option<(HealthCheckPolicy, tokio::task::AbortHandle)>,
}

#[derive(Default)]
struct UpstreamEntry {
    breaker: Option<Arc<Breaker>>,
    endpoints: HashMap<String, EndpointEntry>,
}

/// All runtime state, by upstream key and endpoint URL. One per process.
pub struct Registry {
    entries: Mutex<HashMap<String, UpstreamEntry>>,
    /// Bumped whenever a health check moves an endpoint in or out.
    health_version: tokio::sync::watch::Sender<u64>,
    metrics: Option<Metrics>,
    runtime: Option<tokio::runtime::Handle>,
    me: Weak<Registry>,
}

impl Registry {
    /// A registry; health checks run on the current Tokio runtime (none outside one).
    pub fn new(metrics: Option<Metrics>) -> Arc<Registry> {
        Arc::new_cyclic(|me| Registry {
            entries: Mutex::new(HashMap::new()),
            health_version: tokio::sync::watch::Sender::new(0),
            metrics,
            runtime: tokio::runtime::Handle::try_current().ok(),
            me: me.clone(),
        })
    }

    /// Binds every upstream of a table (`namespace/name` -> upstream) to its shared state (call
    /// before publishing the table), forgets upstreams and endpoints the table no longer has,
    /// and starts, restarts or stops health checks to match.
    pub fn bind(&self, upstreams: &BTreeMap<String, Arc<Upstream>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen: HashMap<&str, Vec<&str>> = HashMap::new();
        for (key, up) in upstreams {
            let entry = entries.entry(key.clone()).or_default();
            let breaker = match (&up.circuit_breaker, &entry.breaker) {
                (None, _) => None,
                (Some(p), Some(b)) if b.policy() == p => Some(b.clone()),
                (Some(p), _) => {
                    let gauge = self
                        .metrics
                        .as_ref()
                        .map(|m| m.circuit_breaker_open.with_label_values(&[key.as_str()]));
                    Some(Arc::new(Breaker::new(p.clone(), gauge)))
                }
            };
            if breaker.is_none() && entry.breaker.is_some() {
                if let Some(m) = &self.metrics {
                    let _ = m.circuit_breaker_open.remove_label_values(&[key.as_str()]);
                }
            }
            entry.breaker = breaker.clone();
            let mut states = Vec::with_capacity(up.endpoints.len());
            for ep in &up.endpoints {
                let e = entry
                    .endpoints
                    .entry(ep.url.clone())
                    .or_insert_with(|| EndpointEntry {
                        state: Arc::new(EndpointState::new(&ep.url)),
                        check: None,
                    });
                let wanted = up.health_check.as_ref();
                if e.check.as_ref().map(|(p, _)| p) != wanted {
                    if let Some((_, task)) = e.check.take() {
                        task.abort();
                    }
                    match (wanted, &self.runtime) {
                        (Some(policy), Some(rt)) => {
                            let task = rt.spawn(health::run(
                                e.state.clone(),
                                ep.clone(),
                                up.protocol,
                                policy.clone(),
                                up.egress.clone(),
                                key.clone(),
                                Self::on_health_change(self.me.clone()),
                            ));
                            e.check = Some((policy.clone(), task.abort_handle()));
                        }
                        // Without checks an endpoint is taken as healthy.
                        _ => {
                            e.state.set_healthy(true);
                        }
                    }
                }
                states.push(e.state.clone());
            }
            let _ = up.binding.set(Binding {
                endpoints: states,
                breaker,
                ring: ring_for(up),
            });
            seen.insert(
                key.as_str(),
                up.endpoints.iter().map(|e| e.url.as_str()).collect(),
            );
        }
        entries.retain(|key, entry| {
            let keep = seen.get(key.as_str());
            entry.endpoints.retain(|url, e| {
                let live = keep.is_some_and(|urls| urls.contains(&url.as_str()));
                if !live {
                    if let Some((_, task)) = e.check.take() {
                        task.abort();
                    }
                }
                live
            });
            if keep.is_none() {
                if let Some(m) = &self.metrics {
                    let _ = m.circuit_breaker_open.remove_label_values(&[key.as_str()]);
                    for state in ["healthy", "unhealthy"] {
                        let _ = m.upstream_endpoints.remove_label_values(&[key.as_str(), state]);
                    }
                }
            }
            keep.is_some()
        });
        for key in seen.keys() {
            Self::refresh_gauges(&self.metrics, key, entries.get(*key));
        }
    }

    /// What a health check calls when its endpoint changed state; false once the registry
    /// is gone (the check then ends).
    fn on_health_change(me: Weak<Registry>) -> impl Fn(&str) -> bool + Send + 'static {
        move |upstream| match me.upgrade() {
            Some(r) => {
                r.health_changed(upstream);
                true
            }
            None => false,
        }
    }

    /// Called by a health check when an endpoint changed state.
    pub(super) fn health_changed(&self, key: &str) {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::refresh_gauges(&self.metrics, key, entries.get(key));
        drop(entries);
        self.health_version.send_modify(|v| *v += 1);
    }

    /// How many endpoints of upstream `key` (`namespace/name`) are healthy now, of how many.
    pub fn health_of(&self, key: &str) -> Option<(u32, u32)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        let healthy = entry.endpoints.values().filter(|e| e.state.is_healthy()).count();
        Some((healthy as u32, entry.endpoints.len() as u32))
    }

    /// Changes whenever an endpoint's health changes (for whoever reports it, e.g. status).
    pub fn health_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.health_version.subscribe()
    }

    fn refresh_gauges(metrics: &Option<Metrics>, key: &str, entry: Option<&UpstreamEntry>) {
        let (Some(m), Some(entry)) = (metrics, entry) else {
            return;
        };
        let healthy = entry.endpoints.values().filter(|e| e.state.is_healthy()).count();
        let total = entry.endpoints.len();
        m.upstream_endpoints
            .with_label_values(&[key, "healthy"])
            .set(healthy as i64);
        m.upstream_endpoints
            .with_label_values(&[key, "unhealthy"])
            .set((total - healthy) as i64);
    }

    /// Health-check tasks running (for tests and diagnostics).
    pub fn running_checks(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .flat_map(|u| u.endpoints.values())
            .filter(|e| e.check.as_ref().is_some_and(|(_, t)| !t.is_finished()))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let entries = self.entries.get_mut().unwrap_or_else(|e| e.into_inner());
        for e in entries.values_mut().flat_map(|u| u.endpoints.values_mut()) {
            if let Some((_, task)) = e.check.take() {
                task.abort();
            }
        }
    }
}
