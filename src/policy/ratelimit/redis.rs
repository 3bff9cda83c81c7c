//! Shared storage: the GCRA decision runs as one Lua script inside Redis, so every replica
//! sees the same count and no read-then-write race exists. The clock is the Redis server's
//! (`TIME`), so replica clocks do not matter.
//!
//! The connection is a lazily connected `ConnectionManager`: one multiplexed connection that
//! pipelines concurrent decisions and reconnects by itself. The gateway starts without Redis;
//! until it answers, decisions fail and `failure_mode` applies.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::{Outcome, Quota};

/// KEYS[1] = bucket; ARGV[1] = emission interval (µs); ARGV[2] = limit.
/// Returns {allowed (0/1), TAT - now (µs)}: `Outcome::from_ahead` does the rest.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local span = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > span then
  return {0, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now}
"#;

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Redis-backed GCRA buckets.
pub struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl RedisStore {
    /// Prepares the connection without waiting for it: a down Redis is not a startup error.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore {
            conn,
            script: redis::Script::new(SCRIPT),
            prefix: "gatehouse:rl:".to_string(),
            timeout,
        })
    }

    /// One atomic decision for `key`: `limit` requests per `window`. Times are microseconds.
    pub async fn check(&self, key: &str, limit: u64, window: Duration) -> Result<Outcome, Error> {
        let quota = Quota::new(limit, u64::try_from(window.as_micros()).unwrap_or(u64::MAX / 4));
        let mut conn = self.conn.clone();
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        let mut call = self.script.key(full);
        call.arg(quota.interval).arg(quota.limit);
        let (allowed, ahead): (i64, i64) = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| Error::Timeout(self.timeout))??;
        Ok(Outcome::from_ahead(quota, allowed == 1, ahead.max(0) as u64))
    }
}

/// Outcome times are in microseconds here.
pub fn to_duration(units: u64) -> Duration {
    Duration::from_micros(units)
}
