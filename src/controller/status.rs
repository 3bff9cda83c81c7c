//! Status of one resource: what the compiler decided, stamped with generation and transition
//! times, compared with what the API server holds so that nothing is written twice.

use crate::api::{reasons, types, Condition, EndpointCounts};
use crate::compile::{StatusView, Verdict};

/// An upstream's verdict with its endpoints' live health (`healthy` of `total` pass their
/// health checks): `endpoints.healthy` as it is, and `Ready=False` when none is healthy. `None`
/// when the verdict already says so, or when the health figures are for another endpoint set
/// (a table not bound yet: the next publish or health change brings them together).
pub fn with_health(verdict: &Verdict, healthy: u32, total: u32) -> Option<Verdict> {
    let counts = verdict.endpoints.as_ref()?;
    if counts.total == 0 || counts.total != total || counts.healthy == healthy {
        return None;
    }
    let mut out = verdict.clone();
    out.endpoints = Some(EndpointCounts { total, healthy });
    out.set(if healthy == 0 {
        Condition::new(
            types::READY,
            false,
            reasons::NO_HEALTHY_ENDPOINTS,
            format!("none of the {total} endpoint(s) passes its health check: requests get 503"),
        )
    } else {
        Condition::new(
            types::READY,
            true,
            reasons::ENDPOINTS_AVAILABLE,
            format!("{healthy} of {total} endpoint(s) healthy"),
        )
    });
    Some(out)
}

/// The status a verdict asks for, given the status the object has now: each condition keeps
/// its `lastTransitionTime` unless its `status` changed; `now` stamps the ones that did.
pub fn desired(verdict: &Verdict, current: Option<&StatusView>, now: &str) -> StatusView {
    let conditions = verdict
        .conditions
        .iter()
        .map(|c| {
            let previous = current.and_then(|s| s.conditions.iter().find(|o| o.type_ == c.type_));
            let time = match previous {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone()
                }
                _ => Some(now.to_string()),
            };
            Condition {
                last_transition_time: time,
                observed_generation: verdict.generation,
                ..c.clone()
            }
        })
        .collect();
    StatusView {
        observed_generation: verdict.generation,
        conditions,
        endpoints: verdict.endpoints.clone(),
    }
}

/// RFC 3339 with whole seconds, as `metav1.Time` is written.
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::API_VERSION;
    use crate::compile::{satisfies, Kind};

    fn verdict(gen: i64, accepted: bool) -> Verdict {
        let mut v = Verdict::new(Kind::GatewayRoute, "ns", "r", Some(gen));
        if accepted {
            v.set(Condition::new(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "route is valid",
            ));
            v.set(Condition::new(
                types::PROGRAMMED,
                true,
                reasons::PROGRAMMED,
                "live",
            ));
        } else {
            v.reject(reasons::INVALID_PATH, "bad path");
        }
        v
    }

    #[test]
    fn first_status_is_stamped_with_now_and_generation() {
        let s = desired(&verdict(3, true), None, "2024-01-01T00:00:00Z");
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)
            && c.last_transition_time.as_deref() == Some("2024-01-01T00:00:00Z")));
    }

    #[test]
    fn unchanged_verdict_means_no_write_and_keeps_times() {
        let first = desired(&verdict(1, true), None, "2024-01-01T00:00:00Z");
        let again = desired(&verdict(1, true), Some(&first), "2024-02-02T00:00:00Z");
        assert!(again.same_ignoring_time(&first));
        assert_eq!(again, first, "transition times must not move");
    }

    #[test]
    fn transition_time_moves_only_for_the_condition_whose_status_changed() {
        let first = desired(&verdict(1, true), None, "2024-01-01T00:00:00Z");
        let mut v = verdict(2, true);
        v.set(Condition::new(
            types::PROGRAMMED,
            false,
            reasons::NOT_PROGRAMMED,
            "gone",
        ));
        let next = desired(&v, Some(&first), "2024-02-02T00:00:00Z");
        assert!(!next.same_ignoring_time(&first));
        let time = |s: &StatusView, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .and_then(|c| c.last_transition_time.clone())
        };
        assert_eq!(
            time(&next, types::ACCEPTED).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            time(&next, types::PROGRAMMED).as_deref(),
            Some("2024-02-02T00:00:00Z")
        );
    }

    #[test]
    fn a_new_generation_alone_is_a_change() {
        let first = desired(&verdict(1, true), None, "t0");
        let next = desired(&verdict(2, true), Some(&first), "t1");
        assert!(!next.same_ignoring_time(&first));
        assert_eq!(next.conditions[0].last_transition_time.as_deref(), Some("t0"));
    }

    #[test]
    fn satisfies_agrees_with_desired() {
        let first = desired(&verdict(1, true), None, "t0");
        let mut other_message = verdict(1, true);
        other_message.set(Condition::new(
            types::PROGRAMMED,
            true,
            reasons::PROGRAMMED,
            "live again",
        ));
        let mut counts = verdict(1, true);
        counts.endpoints = Some(EndpointCounts { total: 1, healthy: 0 });
        for v in [
            verdict(1, true),
            verdict(2, true),
            verdict(1, false),
            other_message,
            counts,
        ] {
            assert_eq!(
                satisfies(&first, &v),
                first.same_ignoring_time(&desired(&v, Some(&first), "t1")),
                "{v:?}"
            );
        }
        assert!(satisfies(&first, &verdict(1, true)));
        assert!(!satisfies(&StatusView::default(), &verdict(1, true)));
    }

    #[test]
    fn live_health_shows_in_upstream_status() {
        let mut v = Verdict::new(Kind::GatewayUpstream, "ns", "u", Some(1));
        v.endpoints = Some(EndpointCounts { total: 3, healthy: 3 });
        v.set(Condition::new(
            types::READY,
            true,
            reasons::ENDPOINTS_AVAILABLE,
            "3 endpoint(s)",
        ));
        assert!(
            with_health(&v, 3, 3).is_none(),
            "all healthy: the verdict as compiled"
        );
        assert!(
            with_health(&v, 1, 2).is_none(),
            "figures of another endpoint set are not used"
        );

        let some = with_health(&v, 2, 3).expect("one down");
        assert_eq!(some.endpoints, Some(EndpointCounts { total: 3, healthy: 2 }));
        let ready = some
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.message.as_str()),
            ("True", "2 of 3 endpoint(s) healthy")
        );

        let none = with_health(&v, 0, 3).expect("all down");
        let ready = none
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::NO_HEALTHY_ENDPOINTS)
        );
        // ... and the writer sees it as a change from what the API server holds.
        let held = desired(&v, None, "t0");
        assert!(!satisfies(&held, &none));
    }

    #[test]
    fn apply_body_names_kind_and_carries_endpoints() {
        let mut v = Verdict::new(Kind::GatewayUpstream, "ns", "u", Some(1));
        v.endpoints = Some(EndpointCounts { total: 3, healthy: 3 });
        let body = desired(&v, None, "t").apply_body(Kind::GatewayUpstream, "u");
        assert_eq!(body["kind"], "GatewayUpstream");
        assert_eq!(body["apiVersion"], API_VERSION);
        assert_eq!(body["status"]["endpoints"]["total"], 3);
    }
}
