//! A consistent-hash ring with virtual nodes: each endpoint owns `VNODES` points placed by a
//! hash of its URL, so adding an endpoint only takes the keys that fall on its new points.

use std::hash::BuildHasher;

/// Points per endpoint: enough for an even spread (about ±10% at a few endpoints).
pub const VNODES: u32 = 160;

/// Hashing that every replica agrees on, so a key maps to the same endpoint everywhere.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6761_7465_686f_7573).hash_one(bytes)
}

/// The ring of one compiled upstream.
#[derive(Debug, Default)]
pub struct Ring {
    /// `(point, endpoint index)`, sorted by point.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// A ring over `urls` (the index of each URL is what lookups return).
    pub fn new<S: AsRef<str>>(urls: &[S]) -> Ring {
        let mut points = Vec::with_capacity(urls.len() * VNODES as usize);
        for (i, url) in urls.iter().enumerate() {
            let mut buf = Vec::with_capacity(url.as_ref().len() + 6);
            for v in 0..VNODES {
                buf.clear();
                buf.extend_from_slice(url.as_ref().as_bytes());
                buf.push(b'#');
                buf.extend_from_slice(&v.to_le_bytes());
                points.push((stable_hash(&buf), i as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The first endpoint clockwise from `hash` that `usable` accepts.
    pub fn lookup(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        let start = self.points.partition_point(|(p, _)| *p < hash);
        let mut last = u32::MAX;
        for k in 0..n {
            let (_, idx) = self.points[(start + k) % n];
            if idx != last {
                if usable(idx as usize) {
                    return Some(idx as usize);
                }
                last = idx;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://10.1.0.{i}:8080")).collect()
    }

    #[test]
    fn adding_an_endpoint_moves_only_its_share() {
        let before = Ring::new(&urls(10));
        let after = Ring::new(&urls(11));
        let keys = 20_000u64;
        let mut moved = 0;
        for k in 0..keys {
            let h = stable_hash(&k.to_le_bytes());
            let a = before.lookup(h, |_| true).expect("some");
            let b = after.lookup(h, |_| true).expect("some");
            if a != b {
                // Every key that moved went to the new endpoint, none between old ones.
                assert_eq!(b, 10, "key {k} moved from {a} to {b}");
                moved += 1;
            }
        }
        // The new endpoint took about 1/11 of the keys.
        let share = moved as f64 / keys as f64;
        assert!((0.06..0.12).contains(&share), "moved share {share}");
    }

    #[test]
    fn keys_spread_and_skip_unusable_endpoints() {
        let ring = Ring::new(&urls(4));
        let mut counts = [0usize; 4];
        for k in 0..40_000u64 {
            counts[ring
                .lookup(stable_hash(&k.to_le_bytes()), |_| true)
                .expect("some")] += 1;
        }
        for c in counts {
            assert!((7_000..13_000).contains(&c), "{counts:?}");
        }
        // With endpoint 2 out, its keys go elsewhere and the others' keys stay put.
        for k in 0..2_000u64 {
            let h = stable_hash(&k.to_le_bytes());
            let all = ring.lookup(h, |_| true).expect("some");
            let without = ring.lookup(h, |i| i != 2).expect("some");
            if all != 2 {
                assert_eq!(all, without);
            } else {
                assert_ne!(without, 2);
            }
        }
        assert_eq!(ring.lookup(1, |_| false), None);
        assert_eq!(Ring::new::<String>(&[]).lookup(1, |_| true), None);
    }
}
