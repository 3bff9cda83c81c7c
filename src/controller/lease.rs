//! Leader election on a `coordination.k8s.io/v1` Lease: every replica serves traffic, only the
//! holder writes status. Expiry is judged by the local clock from when the holder's record was
//! last seen to change (as client-go does), so clock skew between replicas does not matter.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

/// Who competes for which Lease, and for how long a holder keeps it without renewing.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

impl LeaseConfig {
    /// Renew (or retry to acquire) this often: a third of the duration.
    fn period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

/// The last version of another holder's record and when it was first seen.
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    at: Instant,
}

/// Campaigns for the Lease until `stop` turns true; `leader` follows whether this replica
/// holds it. On stop, a held Lease is released so that another replica takes over at once.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<Observed> = None;
    let mut last_renew: Option<Instant> = None;
    loop {
        let held = match try_acquire_or_renew(&api, &cfg, &mut observed).await {
            Ok(held) => {
                if held {
                    last_renew = Some(Instant::now());
                }
                held
            }
            Err(e) => {
                tracing::warn!(lease = %cfg.name, "lease request failed: {e}");
                // Keep leading only while the last renewal is surely still valid.
                last_renew.is_some_and(|t| t.elapsed() < cfg.duration * 2 / 3)
            }
        };
        if held != *leader.borrow() {
            if held {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired the lease: writing status");
            } else {
                tracing::info!(lease = %cfg.name, "lost the lease: another replica writes status");
            }
            leader.send_replace(held);
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.period()) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            if *leader.borrow() {
                leader.send_replace(false);
                if let Err(e) = release(&api, &cfg).await {
                    tracing::warn!(lease = %cfg.name, "could not release the lease: {e}");
                }
            }
            return;
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let secs = i32::try_from(cfg.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    if holder.as_deref() != Some(cfg.identity.as_str()) {
        // Someone else (or nobody): take it only once their record went stale.
        let changed = observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew != spec.renew_time);
        if changed {
            *observed = Some(Observed {
                holder: holder.clone(),
                renew: spec.renew_time.clone(),
                at: Instant::now(),
            });
        }
        let their = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
        let stale = observed.as_ref().is_some_and(|o| o.at.elapsed() >= their);
        if holder.is_some() && !stale {
            return Ok(false);
        }
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds = Some(secs);
    spec.renew_time = Some(now());
    // `replace` carries the resourceVersion read above: a concurrent taker gets 409.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    api.replace(&cfg.name, &PostParams::default(), &lease).await?;
    tracing::info!(lease = %cfg.name, "released the lease");
    Ok(())
}
