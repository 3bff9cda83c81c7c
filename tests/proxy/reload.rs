//! Live configuration: folder changes apply without a restart and without failed requests;
//! SIGTERM drains in-flight requests.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn routes_appear_and_disappear_with_their_files() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(BASE_CONFIG, &[("up.yaml", &upstream_yaml("u", &[up.url()]))]).await;
    assert_eq!(get(&gw.url("/live")).await.unwrap().status, 404);

    let file = gw.resources().join("live.yaml");
    write_atomic(&file, &route_yaml("live", "/live", "u", ""));
    let took = gw.wait_status("/live", 200).await;
    assert!(took < Duration::from_secs(2), "applied in {took:?}");

    std::fs::remove_file(&file).unwrap();
    gw.wait_status("/live", 404).await;

    // Files in sub-folders count too.
    std::fs::create_dir_all(gw.resources().join("team-a")).unwrap();
    write_atomic(
        &gw.resources().join("team-a/r.yml"),
        &route_yaml("nested", "/nested", "u", ""),
    );
    gw.wait_status("/nested", 200).await;
}

#[tokio::test]
async fn a_broken_file_or_resource_is_reported_and_the_rest_keep_serving() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(
        BASE_CONFIG,
        &[(
            "good.yaml",
            &format!(
                "{}---\n{}",
                upstream_yaml("u", &[up.url()]),
                route_yaml("good", "/good", "u", "")
            ),
        )],
    )
    .await;
    write_atomic(&gw.resources().join("broken.yaml"), "kind: [this is not yaml\n");
    write_atomic(
        &gw.resources().join("bad-route.yaml"),
        &route_yaml("bad", "no-slash", "u", ""),
    );
    write_atomic(
        &gw.resources().join("later.yaml"),
        &route_yaml("later", "/later", "u", ""),
    );
    gw.wait_status("/later", 200).await;
    assert_eq!(get(&gw.url("/good")).await.unwrap().status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = gw.log();
        if log.contains("broken.yaml#1") && log.contains("InvalidPath") {
            break;
        }
        assert!(Instant::now() < deadline, "problems not logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = gw.metrics_text().await;
    // Reloads that met an unreadable file are counted as failures (the rest still went live).
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"gateway_config_reloads_total{result="failure"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no failure counter in:\n{metrics}"));
    assert!(failures >= 1, "{metrics}");
}

/// Clients hammer two routes while the folder is rewritten again and again (routes added,
/// removed and changed around them). Not one request may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_constant_load_fails_no_request() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let base = format!(
        "{}---\n{}---\n{}---\n{}",
        upstream_yaml("a", &[a.url()]),
        upstream_yaml("b", &[b.url()]),
        route_yaml("steady", "/steady/*", "a", ""),
        route_yaml("moving", "/moving", "a", "")
    );
    let gw = Gateway::start(BASE_CONFIG, &[("base.yaml", &base)]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..8 {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        let url = gw.url(if i % 2 == 0 { "/steady/x" } else { "/moving" });
        clients.push(tokio::spawn(async move {
            let c = client();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                let req = http::Request::get(&url).body(Default::default()).unwrap();
                match send(&c, req).await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!(
                        "{} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    for round in 0..30 {
        // Churn: extra routes come and go, the moving route flips between upstreams.
        let extra: String = (0..50)
            .map(|i| {
                format!(
                    "---\n{}",
                    route_yaml(&format!("x{round}-{i}"), &format!("/x/{round}/{i}"), "b", "")
                )
            })
            .collect();
        write_atomic(&gw.resources().join("extra.yaml"), &extra);
        let target = if round % 2 == 0 { "b" } else { "a" };
        let base = format!(
            "{}---\n{}---\n{}---\n{}",
            upstream_yaml("a", &[a.url()]),
            upstream_yaml("b", &[b.url()]),
            route_yaml("steady", "/steady/*", "a", ""),
            route_yaml("moving", "/moving", target, "")
        );
        write_atomic(&gw.resources().join("base.yaml"), &base);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 500,
        "load was too light to prove anything: {}",
        ok.load(Ordering::Relaxed)
    );
    assert!(b.hits() > 0, "the moving route did move");
    let reloads = gw.log().matches("routing table published").count();
    assert!(reloads >= 10, "only {reloads} reloads happened");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = Upstream::start("u").await;
    let files = format!(
        "{}---\n{}",
        upstream_yaml("u", &[up.url()]),
        route_yaml("slow", "/sleep/*", "u", "")
    );
    let mut gw = Gateway::start(
        "server:\n  timeouts:\n    shutdown_grace: 5s\n",
        &[("r.yaml", &files)],
    )
    .await;
    let url = gw.url("/sleep/800");
    let inflight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.sigterm();
    let r = inflight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}\n{}", gw.log());
    assert!(get(&gw.url("/sleep/1")).await.is_err(), "no longer accepting");
}
