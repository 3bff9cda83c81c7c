//! Shared storage: the GCRA decision runs as one Lua script inside Redis, so every replica
//! sees the same count and no read-then-write race exists. The clock is the Redis server's
//! (`TIME`), so replica clocks do not matter.
//!
//! Decisions that arrive together for the same bucket go to Redis as one call: a batching task
//! takes every decision queued since it last ran, groups them by bucket, and asks the script to
//! admit `n` requests at once. Redis answers how many of the `n` fit, and they are admitted in
//! arrival order, exactly as if the `n` requests had reached Redis one after the other at the
//! same instant. Under load this turns hundreds of script calls into a few, without giving up
//! exactness across replicas.
//!
//! The connection is a lazily connected `ConnectionManager`: one multiplexed connection that
//! pipelines the calls in flight and reconnects by itself. The gateway starts without Redis;
//! until it answers, decisions fail and `failure_mode` applies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};

use super::gcra::{Outcome, Quota};

/// KEYS[1] = bucket; ARGV[1] = emission interval (µs); ARGV[2] = limit; ARGV[3] = requests.
/// Returns {admitted, TAT - now (µs)}: the first `admitted` requests pass, the rest are refused.
/// Every product stays below 2^53, so Lua's numbers are exact here.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local span = interval * tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local k = math.floor((span - (tat - now)) / interval)
if k > n then k = n end
if k < 0 then k = 0 end
while k > 0 and tat + k * interval - now > span do k = k - 1 end
while k < n and tat + (k + 1) * interval - now <= span do k = k + 1 end
if k == 0 then
  return {0, tat - now}
end
local new_tat = tat + k * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {k, new_tat - now}
"#;

#[cfg(test)]
pub(super) const SCRIPT_FOR_TESTS: &str = SCRIPT;

/// The most decisions one batching pass takes before it sends what it has.
const MAX_PASS: usize = 4096;

/// Errors talking to Redis.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(Arc<redis::RedisError>),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the rate-limit batching task has stopped")]
    Stopped,
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Redis(Arc::new(e))
    }
}

/// One decision waiting for its batch.
struct Ask {
    bucket: String,
    quota: Quota,
    reply: Reply,
}

type Reply = oneshot::Sender<Result<Outcome, Error>>;

/// Redis-backed GCRA buckets.
pub struct RedisStore {
    asks: mpsc::UnboundedSender<Ask>,
    calls: Arc<AtomicU64>,
}

impl RedisStore {
    /// Prepares the connection without waiting for it: a down Redis is not a startup error.
    /// Must be called inside a Tokio runtime (it starts the batching task).
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let (asks, rx) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicU64::new(0));
        let batcher = Batcher {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            prefix: "gatehouse:rl:".into(),
            timeout,
            calls: calls.clone(),
        };
        tokio::spawn(batcher.run(rx));
        Ok(RedisStore { asks, calls })
    }

    /// One atomic decision for `key`: `limit` requests per `window`. Times are microseconds.
    pub async fn check(&self, key: String, limit: u64, window: Duration) -> Result<Outcome, Error> {
        let quota = Quota::new(limit, u64::try_from(window.as_micros()).unwrap_or(u64::MAX / 4));
        let (reply, answer) = oneshot::channel();
        self.asks
            .send(Ask {
                bucket: key,
                quota,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Script calls sent to Redis so far (each decides one batch).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

struct Batcher {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
    prefix: Arc<str>,
    timeout: Duration,
    calls: Arc<AtomicU64>,
}

impl Batcher {
    /// Takes what is queued, sends one call per bucket, and keeps the calls in flight while
    /// the next decisions queue up.
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Ask>) {
        let mut in_flight = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                first = rx.recv() => {
                    let Some(first) = first else { break };
                    // Let the tasks that are ready now queue their decisions too (a task woken
                    // by a send would otherwise run right after the sender, one ask at a time).
                    tokio::task::yield_now().await;
                    // Replies keep their arrival order within a bucket; buckets are independent.
                    let mut groups: HashMap<(String, Quota), Vec<Reply>> = HashMap::new();
                    let mut ask = first;
                    let mut taken = 1;
                    loop {
                        groups.entry((ask.bucket, ask.quota)).or_default().push(ask.reply);
                        if taken == MAX_PASS {
                            break;
                        }
                        let Ok(next) = rx.try_recv() else { break };
                        ask = next;
                        taken += 1;
                    }
                    for ((bucket, quota), replies) in groups {
                        in_flight.push(self.decide(bucket, quota, replies));
                    }
                }
            }
        }
        while in_flight.next().await.is_some() {}
    }

    /// One script call for `replies.len()` requests on `bucket`, answered in arrival order.
    fn decide(
        &self,
        bucket: String,
        quota: Quota,
        replies: Vec<Reply>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let mut conn = self.conn.clone();
        let script = self.script.clone();
        let timeout = self.timeout;
        let mut full = String::with_capacity(self.prefix.len() + bucket.len());
        full.push_str(&self.prefix);
        full.push_str(&bucket);
        self.calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let n = replies.len() as u64;
            let mut call = script.key(full);
            call.arg(quota.interval).arg(quota.limit).arg(n);
            let result: Result<(i64, i64), Error> =
                match tokio::time::timeout(timeout, call.invoke_async(&mut conn)).await {
                    Ok(r) => r.map_err(Error::from),
                    Err(_) => Err(Error::Timeout(timeout)),
                };
            match result {
                Ok((admitted, ahead)) => {
                    let admitted = admitted.clamp(0, n as i64) as u64;
                    let ahead = ahead.max(0) as u64;
                    for (i, reply) in (0u64..).zip(replies) {
                        let outcome = if i < admitted {
                            // The i-th admitted request moved the TAT to `ahead` minus the
                            // intervals of the admitted requests after it.
                            let own = ahead.saturating_sub((admitted - 1 - i) * quota.interval);
                            Outcome::from_ahead(quota, true, own)
                        } else {
                            Outcome::from_ahead(quota, false, ahead)
                        };
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Outcome times are in microseconds here.
pub fn to_duration(units: u64) -> Duration {
    Duration::from_micros(units)
}
