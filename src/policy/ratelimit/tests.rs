use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::*;
use crate::routing::{AuthPolicy, MethodSet, RateKey, RateLimitPolicy, Route};
use crate::settings::RateLimitingConfig;
use crate::upstream::Upstream;

fn route(id: &str, limit: Option<RateLimitPolicy>) -> Route {
    Route {
        id: id.into(),
        namespace: "default".into(),
        name: id.into(),
        path: "/*".into(),
        hosts: Vec::new(),
        methods: MethodSet::parse::<&str>(&[]).expect("all methods"),
        upstream: Arc::new(Upstream::empty("default/u".into())),
        timeout: None,
        auth: AuthPolicy::default(),
        rate_limit: limit,
        cors: None,
        rewrite: None,
        websocket: false,
        tls_secret: None,
    }
}

fn config(default_limit: u64, route_limits: &[(&str, u64)]) -> RateLimitingConfig {
    RateLimitingConfig {
        default_limit,
        window: "1h".into(),
        route_limits: route_limits
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// How many of `n` requests pass.
async fn passes(l: &RateLimiter, r: &Route, path: &str, caller: &Caller<'_>, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        match l.check(r, path, caller).await {
            Verdict::Allowed(_) | Verdict::Unlimited => ok += 1,
            Verdict::Limited(_) | Verdict::Unavailable => {}
        }
    }
    ok
}

#[tokio::test]
async fn the_most_specific_limit_applies() {
    let l = RateLimiter::from_config(&config(
        5,
        &[
            ("/auth/login", 2),
            ("/api/v1/admin/*", 3),
            ("/api/v1/admin/audit/*", 1),
            ("/health", 0),
        ],
    ))
    .expect("valid");
    let h = HeaderMap::new();
    let c = Caller {
        ip: ip(1),
        user: None,
        headers: &h,
    };
    let plain = route("default/plain", None);
    assert_eq!(passes(&l, &plain, "/auth/login", &c, 10).await, 2);
    // The glob is one budget for everything under it, and the bare prefix is under it too.
    assert_eq!(passes(&l, &plain, "/api/v1/admin/users", &c, 2).await, 2);
    assert_eq!(passes(&l, &plain, "/api/v1/admin", &c, 5).await, 1);
    // The longer glob wins over the shorter one.
    assert_eq!(passes(&l, &plain, "/api/v1/admin/audit/x", &c, 5).await, 1);
    // `/api/v1/administrators` is not under `/api/v1/admin/*`: the default applies.
    assert_eq!(passes(&l, &plain, "/api/v1/administrators", &c, 10).await, 5);
    // The default budget is per IP across paths and already spent; 0 exempts a path.
    assert_eq!(passes(&l, &plain, "/other", &c, 3).await, 0);
    assert_eq!(passes(&l, &plain, "/health", &c, 20).await, 20);
    // A route's own limit beats all of them.
    let own = route(
        "default/own",
        Some(RateLimitPolicy {
            requests: 4,
            window: Duration::from_secs(60),
            key: RateKey::Ip,
        }),
    );
    assert_eq!(passes(&l, &own, "/auth/login", &c, 10).await, 4);
    // Other clients have their own budgets.
    let c2 = Caller {
        ip: ip(2),
        user: None,
        headers: &h,
    };
    assert_eq!(passes(&l, &plain, "/auth/login", &c2, 10).await, 2);
}

#[tokio::test]
async fn keys_count_by_user_or_header_and_fall_back_to_ip() {
    let l = RateLimiter::from_config(&config(0, &[])).expect("valid");
    let by_user = route(
        "default/u",
        Some(RateLimitPolicy {
            requests: 2,
            window: Duration::from_secs(60),
            key: RateKey::User,
        }),
    );
    let h = HeaderMap::new();
    let alice = Caller {
        ip: ip(1),
        user: Some("alice"),
        headers: &h,
    };
    let alice_elsewhere = Caller {
        ip: ip(9),
        user: Some("alice"),
        headers: &h,
    };
    let bob = Caller {
        ip: ip(1),
        user: Some("bob"),
        headers: &h,
    };
    assert_eq!(passes(&l, &by_user, "/", &alice, 1).await, 1);
    assert_eq!(passes(&l, &by_user, "/", &alice_elsewhere, 5).await, 1);
    assert_eq!(passes(&l, &by_user, "/", &bob, 5).await, 2);
    let anon = Caller {
        ip: ip(1),
        user: None,
        headers: &h,
    };
    assert_eq!(passes(&l, &by_user, "/", &anon, 5).await, 2);

    let by_header = route(
        "default/h",
        Some(RateLimitPolicy {
            requests: 1,
            window: Duration::from_secs(60),
            key: RateKey::Header(http::HeaderName::from_static("x-api-key")),
        }),
    );
    let mut k1 = HeaderMap::new();
    k1.insert("x-api-key", "k1".parse().expect("value"));
    let mut k2 = HeaderMap::new();
    k2.insert("x-api-key", "k2".parse().expect("value"));
    for (headers, n) in [(&k1, 1), (&k2, 1), (&k1, 0)] {
        let c = Caller {
            ip: ip(3),
            user: None,
            headers,
        };
        assert_eq!(passes(&l, &by_header, "/", &c, 3).await, n);
    }
    // No default limit and no route limit: unlimited, without headers.
    assert_eq!(
        l.check(&route("default/x", None), "/", &anon).await,
        Verdict::Unlimited
    );
}

#[tokio::test]
async fn decisions_carry_what_the_headers_need() {
    let l = RateLimiter::from_config(&config(3, &[])).expect("valid");
    let h = HeaderMap::new();
    let c = Caller {
        ip: ip(1),
        user: None,
        headers: &h,
    };
    let r = route("default/r", None);
    let Verdict::Allowed(first) = l.check(&r, "/", &c).await else {
        panic!("first request allowed")
    };
    assert_eq!((first.limit, first.remaining), (3, 2));
    assert!(first.reset <= Duration::from_secs(1200));
    l.check(&r, "/", &c).await;
    l.check(&r, "/", &c).await;
    let Verdict::Limited(d) = l.check(&r, "/", &c).await else {
        panic!("fourth request limited")
    };
    assert_eq!(d.remaining, 0);
    // One request comes back every 20 minutes.
    assert!(
        (1190..=1200).contains(&d.retry_after_secs()),
        "{}",
        d.retry_after_secs()
    );
    let mut headers = HeaderMap::new();
    d.add_headers(&mut headers);
    assert_eq!(headers["ratelimit-limit"], "3");
    assert_eq!(headers["ratelimit-remaining"], "0");
}

#[test]
fn bad_configuration_is_explained() {
    for (cfg, needle) in [
        (config(1, &[("auth/login", 1)]), "must start with '/'"),
        (config(1, &[("/a/*/b", 1)]), "trailing"),
        (
            RateLimitingConfig {
                failure_mode: "maybe".into(),
                ..config(1, &[])
            },
            "failure_mode",
        ),
        (
            RateLimitingConfig {
                window: "0s".into(),
                ..config(1, &[])
            },
            "window",
        ),
    ] {
        let err = RateLimiter::from_config(&cfg)
            .err()
            .expect("rejected")
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let mut redis_without_url = config(1, &[]);
    redis_without_url.storage.type_ = "Redis".into();
    let err = RateLimiter::from_config(&redis_without_url)
        .err()
        .expect("rejected");
    assert!(err.to_string().contains("storage.url"), "{err}");
}
