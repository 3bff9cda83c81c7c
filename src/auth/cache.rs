//! A bounded cache of verified tokens, each kept until its `exp` (plus leeway).
//!
//! The key is the whole token text, compared byte for byte: a hit is the very token that was
//! verified before, never a look-alike. Failures are not cached. The cache lives inside one
//! `Verifier`, so a new key set (a rotated Secret) starts with an empty cache.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::UserContext;

type Map = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

const SHARDS: usize = 16;

struct Entry {
    user: Arc<UserContext>,
    /// Last second (since the epoch) at which the token is still valid.
    valid_until: u64,
}

/// Sharded map from token to user context.
pub struct TokenCache {
    shards: Box<[Mutex<Map>]>,
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
}

impl TokenCache {
    /// A cache holding at most about `capacity` tokens; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            per_shard,
        }
    }

    fn shard(&self, token: &str) -> &Mutex<Map> {
        &self.shards[(self.hasher.hash_one(token) as usize) % SHARDS]
    }

    /// The context of `token` if it was verified before and is still valid at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<UserContext>> {
        if self.per_shard == 0 {
            return None;
        }
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        match map.get(token) {
            Some(e) if now <= e.valid_until => Some(e.user.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token until `valid_until`. A full shard first drops what has
    /// expired, then an arbitrary entry.
    pub fn insert(&self, token: &str, user: Arc<UserContext>, valid_until: u64, now: u64) {
        if self.per_shard == 0 || valid_until < now {
            return;
        }
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(token) {
            map.retain(|_, e| now <= e.valid_until);
            if map.len() >= self.per_shard {
                if let Some(k) = map.keys().next().cloned() {
                    map.remove(&k);
                }
            }
        }
        map.insert(token.into(), Entry { user, valid_until });
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
