//! The generic cell rate algorithm (GCRA), the one decision rule both backends apply.
//!
//! A limit of `L` requests per window `W` becomes an emission interval `T = ceil(W / L)` and a
//! "theoretical arrival time" (TAT) per key. A request at `now` is allowed when
//! `max(TAT, now) + T - now <= L * T`; allowing it moves the TAT by `T`. So a fresh key takes
//! exactly `L` requests at once and then one more every `T`: the same budget as a sliding
//! window, kept in one number per key. Time is in integer units (nanoseconds in memory,
//! microseconds in Redis), so the arithmetic is exact and `L` requests always fit.

/// A limit in the backend's time unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u64,
    /// Emission interval `ceil(window / limit)`, at least 1.
    pub interval: u64,
}

impl Quota {
    /// `limit` requests per `window` units.
    pub fn new(limit: u64, window: u64) -> Quota {
        let limit = limit.max(1);
        Quota {
            limit,
            interval: window.div_ceil(limit).max(1),
        }
    }

    /// The burst span `L * T`: how far ahead of `now` the TAT may run.
    pub fn span(&self) -> u64 {
        self.limit.saturating_mul(self.interval)
    }
}

/// The outcome of one decision, in the backend's time unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the full quota is back.
    pub reset: u64,
    /// Until the next request would be allowed (0 when allowed).
    pub retry_after: u64,
}

impl Outcome {
    /// Builds the outcome from `ahead = TAT - now` after the decision.
    pub fn from_ahead(quota: Quota, allowed: bool, ahead: u64) -> Outcome {
        let span = quota.span();
        let remaining = if allowed {
            span.saturating_sub(ahead) / quota.interval
        } else {
            0
        };
        let retry_after = if allowed {
            0
        } else {
            (ahead + quota.interval).saturating_sub(span)
        };
        Outcome {
            allowed,
            limit: quota.limit,
            remaining,
            reset: ahead,
            retry_after,
        }
    }
}

/// One decision on a stored TAT (0 = never seen): `Some(new_tat)` when allowed.
pub fn decide(tat: u64, now: u64, quota: Quota) -> (Option<u64>, Outcome) {
    let start = tat.max(now);
    let new_tat = start.saturating_add(quota.interval);
    let ahead = new_tat - now;
    if ahead > quota.span() {
        (None, Outcome::from_ahead(quota, false, start - now))
    } else {
        (Some(new_tat), Outcome::from_ahead(quota, true, ahead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(quota: Quota, times: &[u64]) -> (u64, Vec<Outcome>) {
        let mut tat = 0;
        let mut out = Vec::new();
        for &now in times {
            let (next, o) = decide(tat, now, quota);
            if let Some(t) = next {
                tat = t;
            }
            out.push(o);
        }
        (tat, out)
    }

    #[test]
    fn a_fresh_key_takes_exactly_the_limit_at_once() {
        // Limits whose window does not divide evenly still admit exactly `limit` at once.
        for (limit, window) in [(300, 3_600_000_000u64), (30, 100), (7, 1_000_000), (1, 5), (3, 1)] {
            let q = Quota::new(limit, window);
            let (_, outs) = run(q, &vec![1_000; limit as usize * 2]);
            let allowed = outs.iter().filter(|o| o.allowed).count() as u64;
            assert_eq!(allowed, limit, "limit {limit} window {window}");
            assert_eq!(outs[0].remaining, limit - 1);
            assert_eq!(outs[limit as usize - 1].remaining, 0);
            assert!(!outs[limit as usize].allowed);
        }
    }

    #[test]
    fn denied_requests_learn_when_to_come_back() {
        let q = Quota::new(3, 60); // one every 20 units
        let (_, outs) = run(q, &[100, 100, 100, 100]);
        let denied = outs[3];
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, 20);
        assert_eq!(denied.reset, 60);
        // ... and are allowed when they do.
        let (_, outs) = run(q, &[100, 100, 100, 120]);
        assert!(outs[3].allowed);
        assert_eq!(outs[3].remaining, 0);
    }

    #[test]
    fn the_quota_refills_at_the_window_rate() {
        let q = Quota::new(10, 100); // one every 10 units
                                     // A steady client at exactly the rate is never refused; one at twice the rate is
                                     // refused about half the time once the burst is spent.
        let steady: Vec<u64> = (0..100).map(|i| 1_000 + i * 10).collect();
        assert!(run(q, &steady).1.iter().all(|o| o.allowed));
        let fast: Vec<u64> = (0..200).map(|i| 1_000 + i * 5).collect();
        let allowed = run(q, &fast).1.iter().filter(|o| o.allowed).count();
        assert!((105..=111).contains(&allowed), "{allowed}");
        // After a full window of silence, the whole burst is back.
        let (tat, _) = run(q, &fast);
        let (_, o) = decide(tat, tat + 1, q);
        assert_eq!(o.remaining, 9);
    }
}
