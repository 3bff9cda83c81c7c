//! Per-process storage: one atomic TAT per key in a sharded map, updated lock-free once the
//! key exists. Keys are 64-bit hashes of (scope, client), so a decision allocates nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::gcra::{self, Outcome, Quota};

const SHARDS: usize = 64;
/// A shard sweeps out full (expired) buckets when it grows past this many keys, then doubles it.
const FIRST_SWEEP: usize = 4096;

struct Shard {
    map: HashMap<u64, AtomicU64, foldhash::fast::RandomState>,
    sweep_at: usize,
}

/// In-memory GCRA buckets.
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    base: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::default(),
                        sweep_at: FIRST_SWEEP,
                    })
                })
                .collect(),
            base: Instant::now(),
        }
    }
}

impl MemoryStore {
    /// One decision for `key`: `limit` requests per `window`.
    pub fn check(&self, key: u64, limit: u64, window: Duration) -> Outcome {
        let now = self.now();
        self.check_at(key, Quota::new(limit, nanos(window)), now)
    }

    fn now(&self) -> u64 {
        // +1 so that a stored 0 always means "never seen".
        nanos(self.base.elapsed()) + 1
    }

    fn check_at(&self, key: u64, quota: Quota, now: u64) -> Outcome {
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        {
            let read = shard.read().unwrap_or_else(|e| e.into_inner());
            if let Some(cell) = read.map.get(&key) {
                return update(cell, now, quota);
            }
        }
        let mut write = shard.write().unwrap_or_else(|e| e.into_inner());
        if !write.map.contains_key(&key) && write.map.len() >= write.sweep_at {
            // A bucket whose TAT is in the past is full: forgetting it changes nothing.
            write.map.retain(|_, tat| tat.load(Ordering::Relaxed) > now);
            write.sweep_at = (write.map.len() * 2).max(FIRST_SWEEP);
        }
        let cell = write.map.entry(key).or_insert_with(|| AtomicU64::new(0));
        update(cell, now, quota)
    }

    /// Keys currently held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn update(cell: &AtomicU64, now: u64, quota: Quota) -> Outcome {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let (next, outcome) = gcra::decide(current, now, quota);
        let Some(next) = next else {
            return outcome;
        };
        match cell.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return outcome,
            Err(seen) => current = seen,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

/// Outcome times are in nanoseconds here.
pub fn to_duration(units: u64) -> Duration {
    Duration::from_nanos(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn keys_are_independent_and_exact_under_threads() {
        let store = Arc::new(MemoryStore::default());
        let window = Duration::from_secs(3600);
        let allowed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..250 {
                        if store.check(7, 300, window).allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 300);
        assert!(store.check(8, 300, window).allowed);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn full_buckets_are_swept_when_a_shard_grows() {
        let store = MemoryStore::default();
        let q = Quota::new(10, 1_000);
        // Keys that all land in shard 0, each used once at t=1 (full again after t=101).
        for k in 0..FIRST_SWEEP as u64 {
            store.check_at(k, q, 1);
        }
        assert_eq!(store.len(), FIRST_SWEEP);
        store.check_at(FIRST_SWEEP as u64, q, 10_000);
        assert_eq!(store.len(), 1);
    }
}
