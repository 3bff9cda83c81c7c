use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::*;
use crate::auth::AuthPolicy;
use crate::routing::{MethodSet, RateKey, RateLimitPolicy, Route};
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
        gateway: None,
        series: Default::default(),
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
            Admission::Allowed(_) | Admission::Unlimited => ok += 1,
            Admission::Limited(_) | Admission::Unavailable => {}
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
        Admission::Unlimited
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
    let Admission::Allowed(first) = l.check(&r, "/", &c).await else {
        panic!("first request allowed")
    };
    assert_eq!((first.limit, first.remaining), (3, 2));
    assert!(first.reset <= Duration::from_secs(1200));
    l.check(&r, "/", &c).await;
    l.check(&r, "/", &c).await;
    let Admission::Limited(d) = l.check(&r, "/", &c).await else {
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

#[tokio::test]
async fn a_trailing_slash_does_not_lead_around_an_exact_limit() {
    let l = RateLimiter::from_config(&config(
        0,
        &[("/auth/login", 3), ("/docs/", 1), ("/", 1), ("/api/*", 1)],
    ))
    .expect("valid");
    let h = HeaderMap::new();
    let c = Caller {
        ip: ip(1),
        user: None,
        headers: &h,
    };
    let plain = route("default/plain", None);
    // One budget for `/auth/login` and `/auth/login/`.
    assert_eq!(passes(&l, &plain, "/auth/login", &c, 2).await, 2);
    assert_eq!(passes(&l, &plain, "/auth/login/", &c, 5).await, 1);
    assert_eq!(passes(&l, &plain, "/auth/login", &c, 5).await, 0);
    // Nor a key written with one.
    assert_eq!(passes(&l, &plain, "/docs", &c, 5).await, 1);
    assert_eq!(passes(&l, &plain, "/docs/", &c, 5).await, 0);
    // `/` is `/`, not every path.
    assert_eq!(passes(&l, &plain, "/", &c, 5).await, 1);
    assert_eq!(passes(&l, &plain, "/other/", &c, 5).await, 5);
    // A glob covers its prefix with and without the slash, as a route's `/*` does.
    assert_eq!(passes(&l, &plain, "/api/", &c, 5).await, 1);
    assert_eq!(passes(&l, &plain, "/api", &c, 5).await, 0);
}

#[test]
fn bad_configuration_is_explained() {
    for (cfg, needle) in [
        (config(1, &[("auth/login", 1)]), "must start with '/'"),
        (config(1, &[("/a/*/b", 1)]), "trailing"),
        (
            config(1, &[("/auth/login", 1), ("/auth/login/", 2)]),
            "name the same path",
        ),
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

/// The Redis that scripts/test.sh starts (`GATEHOUSE_TEST_REDIS_URL`), or `None`, said loudly
/// (and a failure under CI, which must provide one).
fn test_redis() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide Redis: GATEHOUSE_TEST_REDIS_URL is not set"
            );
            eprintln!("SKIPPED: GATEHOUSE_TEST_REDIS_URL is not set; run scripts/test.sh, which starts one");
            None
        }
    }
}

/// Decisions that arrive together for one bucket are decided by one script call, and still
/// exactly: of 500 concurrent requests against a limit of 120, exactly 120 pass, each with its
/// own `remaining`, and far fewer than 500 calls reach Redis. Needs the real Redis that
/// scripts/test.sh starts (`GATEHOUSE_TEST_REDIS_URL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redis_decisions_are_batched_and_exact() {
    let Some(url) = test_redis() else { return };
    let store = Arc::new(redis::RedisStore::new(&url, Duration::from_secs(2)).expect("store"));
    let bucket = format!(
        "unit-batch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let store = store.clone();
            let bucket = bucket.clone();
            tokio::spawn(async move { store.check(bucket, 120, Duration::from_secs(3600)).await })
        })
        .collect();
    let mut remaining = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let o = t.await.expect("task").expect("redis decision");
        assert_eq!(o.limit, 120);
        if o.allowed {
            remaining.push(o.remaining);
        } else {
            refused += 1;
            assert!(o.retry_after > 0, "{o:?}");
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..120).collect::<Vec<u64>>(),
        "each admitted request has its own remaining"
    );
    assert_eq!(refused, 380);
    let calls = store.calls();
    assert!(calls < 250, "500 concurrent decisions took {calls} script calls");
    // A lone decision afterwards is refused too: the bucket in Redis holds all 120.
    let o = store
        .check(bucket, 120, Duration::from_secs(3600))
        .await
        .expect("decision");
    assert!(!o.allowed);
}

/// The batched script admits exactly what fits when a batch is larger than the room left,
/// and a refused batch learns when to come back.
#[tokio::test]
async fn a_redis_batch_larger_than_the_room_left_is_split() {
    let Some(url) = test_redis() else { return };
    let client = ::redis::Client::open(url.as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let key = format!("unit-split-{}", std::process::id());
    let script = ::redis::Script::new(redis::SCRIPT_FOR_TESTS);
    // 5 per 5 s: interval 1 s; ask 3, then 4 (2 fit), then 1 (none fit).
    let ask = |n: u64| {
        let mut call = script.key(&key);
        call.arg(1_000_000u64).arg(5u64).arg(n);
        call
    };
    let (k, ahead): (i64, i64) = ask(3).invoke_async(&mut conn).await.expect("call");
    assert_eq!(k, 3);
    assert!((2_990_000..=3_000_000).contains(&ahead), "{ahead}");
    let (k, ahead): (i64, i64) = ask(4).invoke_async(&mut conn).await.expect("call");
    assert_eq!(k, 2);
    assert!((4_990_000..=5_000_000).contains(&ahead), "{ahead}");
    let (k, _): (i64, i64) = ask(1).invoke_async(&mut conn).await.expect("call");
    assert_eq!(k, 0);
    let _: () = ::redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("del");
}
