//! The circuit breaker of one upstream.
//!
//! Closed: requests flow; `failureThreshold` consecutive failures (connect errors, timeouts,
//! 5xx) open it. Open: every request is refused at once for `timeout`. Half-open: up to
//! `successThreshold` probe requests go through at a time; that many successes close it, any
//! failure opens it again.

use std::sync::Mutex;
use std::time::Instant;

use prometheus::IntGauge;

use super::BreakerPolicy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32, probes: u32 },
}

/// What the admin API shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open => "open",
            Phase::HalfOpen => "half-open",
        }
    }
}

/// One upstream's breaker; shared by every table that has the same policy for it.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
    /// `gateway_circuit_breaker_open{upstream}`: 1 while open or half-open.
    gauge: Option<IntGauge>,
}

/// Permission to send one request; report how it went with `record`.
#[must_use]
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy, gauge: Option<IntGauge>) -> Breaker {
        if let Some(g) = &gauge {
            g.set(0);
        }
        Breaker {
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// A ticket, or `None` while open (or half-open with all probes out).
    pub fn try_acquire(&self) -> Option<Ticket<'_>> {
        self.try_acquire_at(Instant::now())
    }

    pub fn phase(&self) -> Phase {
        match *self.lock() {
            State::Closed { .. } => Phase::Closed,
            State::Open { until } if Instant::now() < until => Phase::Open,
            State::Open { .. } | State::HalfOpen { .. } => Phase::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_acquire_at(&self, now: Instant) -> Option<Ticket<'_>> {
        let mut s = self.lock();
        let probe = match *s {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return None,
            State::Open { .. } => {
                *s = State::HalfOpen {
                    successes: 0,
                    probes: 1,
                };
                true
            }
            State::HalfOpen { successes, probes } => {
                if successes + probes >= self.policy.success_threshold {
                    return None;
                }
                *s = State::HalfOpen {
                    successes,
                    probes: probes + 1,
                };
                true
            }
        };
        Some(Ticket {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn record_at(&self, probe: bool, ok: bool, now: Instant) {
        let mut s = self.lock();
        let next = match (*s, ok) {
            (State::Closed { .. }, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 >= self.policy.failure_threshold => {
                self.open(now)
            }
            (State::Closed { failures }, false) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen { successes, probes }, true) if probe => {
                if successes + 1 >= self.policy.success_threshold {
                    self.set_gauge(0);
                    State::Closed { failures: 0 }
                } else {
                    State::HalfOpen {
                        successes: successes + 1,
                        probes: probes.saturating_sub(1),
                    }
                }
            }
            (State::HalfOpen { .. }, false) => self.open(now),
            // A request let through before the breaker opened: its outcome is old news.
            (state, _) => state,
        };
        *s = next;
    }

    fn release_probe(&self) {
        let mut s = self.lock();
        if let State::HalfOpen { successes, probes } = *s {
            *s = State::HalfOpen {
                successes,
                probes: probes.saturating_sub(1),
            };
        }
    }

    fn open(&self, now: Instant) -> State {
        self.set_gauge(1);
        State::Open {
            until: now + self.policy.open_for,
        }
    }

    fn set_gauge(&self, v: i64) {
        if let Some(g) = &self.gauge {
            g.set(v);
        }
    }
}

impl Ticket<'_> {
    /// Reports the outcome: `ok` is false for connect errors, timeouts and 5xx.
    pub fn record(mut self, ok: bool) {
        self.recorded = true;
        self.breaker.record_at(self.probe, ok, Instant::now());
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // Cancelled (client went away): no verdict, but free the probe slot.
        if !self.recorded && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(failures: u32, successes: u32) -> Breaker {
        Breaker::new(
            BreakerPolicy {
                failure_threshold: failures,
                open_for: Duration::from_secs(10),
                success_threshold: successes,
            },
            None,
        )
    }

    fn fail(b: &Breaker, now: Instant) {
        let t = b.try_acquire_at(now).expect("allowed");
        t.recorded_at(false, now);
    }

    impl Ticket<'_> {
        fn recorded_at(mut self, ok: bool, now: Instant) {
            self.recorded = true;
            self.breaker.record_at(self.probe, ok, now);
        }
    }

    #[test]
    fn consecutive_failures_open_and_a_success_resets_the_count() {
        let b = breaker(3, 1);
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        b.try_acquire_at(t0).expect("closed").recorded_at(true, t0);
        fail(&b, t0);
        fail(&b, t0);
        assert!(
            b.try_acquire_at(t0).is_some(),
            "two failures after a success keep it closed"
        );
        fail(&b, t0);
        assert!(
            b.try_acquire_at(t0).is_none(),
            "third consecutive failure opens it"
        );
        assert!(b.try_acquire_at(t0 + Duration::from_secs(9)).is_none());
    }

    #[test]
    fn half_open_probes_close_or_reopen_it() {
        let b = breaker(1, 2);
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + Duration::from_secs(10);
        // Two probes at a time, no third.
        let p1 = b.try_acquire_at(t1).expect("probe 1");
        let p2 = b.try_acquire_at(t1).expect("probe 2");
        assert!(b.try_acquire_at(t1).is_none());
        p1.recorded_at(true, t1);
        assert!(
            b.try_acquire_at(t1).is_none(),
            "one success and one probe out fill the slots"
        );
        p2.recorded_at(true, t1);
        assert!(b.try_acquire_at(t1).is_some(), "two successes close it");

        // A failing probe opens it again for a full timeout.
        fail(&b, t1);
        let t2 = t1 + Duration::from_secs(10);
        b.try_acquire_at(t2).expect("probe").recorded_at(false, t2);
        assert!(b.try_acquire_at(t2 + Duration::from_secs(5)).is_none());
        // A cancelled probe frees its slot.
        let t3 = t2 + Duration::from_secs(10);
        drop(b.try_acquire_at(t3).expect("probe"));
        drop(b.try_acquire_at(t3).expect("probe again"));
        assert_eq!(b.phase(), Phase::HalfOpen);
    }
}
