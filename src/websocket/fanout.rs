//! Redis: fan-out between replicas (pub/sub) and persistent channel history (lists with a TTL).
//!
//! Each published frame is delivered locally first, then sent on `gatehouse:ws:fanout` with
//! this replica's node id; every replica delivers what it hears to its own subscribers and
//! skips its own messages, so nothing is delivered twice. Persistent history is written by the
//! replica where the message was published (`RPUSH` + `LTRIM` + `PEXPIRE` in one transaction)
//! and read on Subscribe.
//!
//! Backend services may also publish on the Redis channels listed in
//! `integration.redis_pubsub.channels`: every replica subscribes to them and delivers what it
//! hears to its own subscribers of the hub channel with the same name.
//!
//! What it hears goes to an [`Inbound`] (the hub), held weakly: the fan-out knows nothing else
//! of the hub, and stops when the hub is gone.
//!
//! Redis being away never blocks the hub: publishing goes through a bounded queue (full →
//! dropped and counted), history reads time out and fall back to memory, and both connections
//! reconnect on their own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::error::{Error, Result};
use super::history::HistoryEntry;

/// The pub/sub channel replicas share.
pub const FANOUT_CHANNEL: &str = "gatehouse:ws:fanout";
const QUEUE: usize = 16 * 1024;
const PIPELINE: usize = 128;
const TIMEOUT: Duration = Duration::from_secs(2);

/// Redis key of a channel's persistent history.
pub fn history_key(channel: &str) -> String {
    format!("gatehouse:ws:history:{channel}")
}

struct Publish {
    channel: String,
    frame: Utf8Bytes,
    target: Option<String>,
    persist: Option<(u32, Duration)>,
}

#[derive(Deserialize)]
struct Envelope {
    n: String,
    c: String,
    #[serde(default)]
    t: Option<String>,
    f: String,
}

#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    t: Option<String>,
    f: String,
}

#[derive(Default)]
struct State {
    manager: OnceLock<ConnectionManager>,
    subscribed: AtomicBool,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// Where the fan-out hands what it hears: the hub.
pub(crate) trait Inbound: Send + Sync {
    /// A frame published on another replica, for this replica's subscribers.
    fn remote_frame(&self, channel: &str, frame: Utf8Bytes, target: Option<&str>);

    /// A message a backend published on `channel`, one of `integration.redis_pubsub.channels`.
    fn backend_message(&self, channel: &str, payload: &[u8]) -> Result<usize>;
}

/// The hub's Redis side.
pub struct Fanout {
    tx: mpsc::Sender<Publish>,
    state: Arc<State>,
    url: String,
}

impl Fanout {
    /// Starts the publisher and subscriber tasks of replica `node_id`; what the subscriber
    /// hears on the fan-out channel and on `backend_channels` goes to `inbound`.
    pub(crate) fn start(
        url: &str,
        node_id: &str,
        backend_channels: Vec<String>,
        inbound: Weak<dyn Inbound>,
    ) -> Result<Fanout> {
        let client = redis::Client::open(url).map_err(Error::RedisUrl)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State::default());
        tokio::spawn(publisher(client.clone(), rx, state.clone(), node_id.to_string()));
        tokio::spawn(subscriber(
            client,
            inbound,
            state.clone(),
            node_id.to_string(),
            backend_channels,
        ));
        let shown = match url.rsplit_once('@') {
            Some((_, host)) => format!("redis://***@{host}"),
            None => url.to_string(),
        };
        Ok(Fanout {
            tx,
            state,
            url: shown,
        })
    }

    /// Queues a frame for the other replicas (and for persistence); never waits.
    pub(crate) fn publish(
        &self,
        channel: &str,
        frame: &Utf8Bytes,
        target: Option<&str>,
        persist: Option<(u32, Duration)>,
    ) {
        let p = Publish {
            channel: channel.to_string(),
            frame: frame.clone(),
            target: target.map(str::to_string),
            persist,
        };
        if self.tx.try_send(p).is_err() && self.state.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("Redis fan-out queue is full: messages are not reaching other replicas");
        }
    }

    /// The last `n` persisted messages of `channel`; `None` when Redis does not answer.
    pub(crate) async fn history(&self, channel: &str, n: u32) -> Option<Vec<HistoryEntry>> {
        let mut m = self.state.manager.get()?.clone();
        let cmd = redis::cmd("LRANGE")
            .arg(history_key(channel))
            .arg(-i64::from(n))
            .arg(-1)
            .to_owned();
        let items: Vec<String> = match tokio::time::timeout(TIMEOUT, cmd.query_async(&mut m)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::debug!("reading history of {channel} from Redis: {e}");
                return None;
            }
            Err(_) => return None,
        };
        Some(
            items
                .iter()
                .filter_map(|s| serde_json::from_str::<Stored>(s).ok())
                .map(|s| HistoryEntry {
                    frame: Utf8Bytes::from(s.f),
                    target: s.t.map(Arc::from),
                })
                .collect(),
        )
    }

    pub(crate) fn status_json(&self) -> Value {
        json!({
            "configured": true,
            "url": self.url,
            "connected": self.state.manager.get().is_some() && self.state.subscribed.load(Ordering::Relaxed),
            "subscribed": self.state.subscribed.load(Ordering::Relaxed),
            "dropped_total": self.state.dropped.load(Ordering::Relaxed),
            "failed_total": self.state.failed.load(Ordering::Relaxed),
        })
    }
}

async fn publisher(client: redis::Client, mut rx: mpsc::Receiver<Publish>, state: Arc<State>, node: String) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(2);
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    let mut manager = loop {
        match client.get_connection_manager_with_config(config.clone()).await {
            Ok(m) => {
                let _ = state.manager.set(m.clone());
                tracing::info!("WebSocket hub connected to Redis");
                break m;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!("WebSocket hub cannot reach Redis (will keep trying): {e}");
                    warned = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let mut batch = Vec::with_capacity(PIPELINE);
    let mut failing = false;
    while rx.recv_many(&mut batch, PIPELINE).await > 0 {
        let mut pipe = redis::pipe();
        for p in batch.drain(..) {
            let envelope = json!({"n": node, "c": p.channel, "t": p.target, "f": p.frame.as_str()});
            pipe.cmd("PUBLISH")
                .arg(FANOUT_CHANNEL)
                .arg(envelope.to_string())
                .ignore();
            if let Some((keep, ttl)) = p.persist {
                let key = history_key(&p.channel);
                let stored = json!({"t": p.target, "f": p.frame.as_str()});
                pipe.cmd("MULTI").ignore();
                pipe.cmd("RPUSH").arg(&key).arg(stored.to_string()).ignore();
                pipe.cmd("LTRIM")
                    .arg(&key)
                    .arg(-i64::from(keep.max(1)))
                    .arg(-1)
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl.as_millis() as u64).ignore();
                pipe.cmd("EXEC").ignore();
            }
        }
        match pipe.query_async::<()>(&mut manager).await {
            Ok(()) => {
                if failing {
                    tracing::info!("WebSocket hub: Redis publishing works again");
                    failing = false;
                }
            }
            Err(e) => {
                state.failed.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!("WebSocket hub: publishing to Redis failed: {e}");
                    failing = true;
                }
            }
        }
    }
}

async fn subscriber(
    client: redis::Client,
    hub: Weak<dyn Inbound>,
    state: Arc<State>,
    node: String,
    backend_channels: Vec<String>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        let connected = tokio::time::timeout(TIMEOUT, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(FANOUT_CHANNEL).await?;
            if !backend_channels.is_empty() {
                ps.subscribe(&backend_channels).await?;
            }
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        match connected {
            Ok(Ok(mut ps)) => {
                state.subscribed.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                warned = false;
                tracing::info!("WebSocket hub subscribed to the Redis fan-out channel");
                let mut stream = ps.on_message();
                while let Some(msg) = stream.next().await {
                    let Some(hub) = hub.upgrade() else { return };
                    let name = msg.get_channel_name();
                    if name != FANOUT_CHANNEL {
                        if let Err(e) = hub.backend_message(name, msg.get_payload_bytes()) {
                            tracing::warn!(
                                channel = name,
                                "ignoring a message on a Redis pub/sub channel: {e}"
                            );
                        }
                        continue;
                    }
                    match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(e) if e.n != node => {
                            hub.remote_frame(&e.c, Utf8Bytes::from(e.f), e.t.as_deref());
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!("ignoring a malformed fan-out message: {e}"),
                    }
                }
                state.subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("WebSocket hub lost its Redis subscription; reconnecting");
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!("WebSocket hub cannot subscribe on Redis (will keep trying): {e}");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!("WebSocket hub cannot subscribe on Redis: timed out (will keep trying)");
                warned = true;
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
