//! Figures against the real kube-apiserver, run once by hand (ignored by default):
//!   eval "$(.ci/kube-apiserver.sh start)"
//!   cargo test --release --test kube_bench -- --ignored --nocapture --test-threads 1
//! apply → first 200 (median of 20), 10,000 routes → all Programmed and live (time, RSS),
//! status writes under churn.

mod kube_common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube_common::*;

fn routes_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("gatehouse.dev", "v1alpha1", "GatewayRoute"),
            "gatewayroutes",
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn apply_to_first_200() {
    let client = cluster().await;
    let ns = namespace(&client, "gh-bench-apply").await;
    let up = upstream("ok").await;
    let gw = Gateway::start(&kubeconfig(), &["--namespace", &ns, "--lease-namespace", &ns]);
    apply(&client, &ns, static_upstream("u", &format!("http://{up}"))).await;
    apply(&client, &ns, route("warm", "/warm", "u")).await;
    gw.wait_for("/warm", 200, Duration::from_secs(20)).await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let path = format!("/r{i}");
        let start = Instant::now();
        apply(&client, &ns, route(&format!("r{i}"), &path, "u")).await;
        gw.wait_for(&path, 200, Duration::from_secs(10)).await;
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "apply -> first 200: median {:?}, min {:?}, max {:?} (n=20)",
        samples[10], samples[0], samples[19]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn ten_thousand_routes_then_churn() {
    const N: usize = 10_000;
    let client = cluster().await;
    let ns = namespace(&client, "gh-bench-10k").await;
    let up = upstream("ok").await;
    let gw = Gateway::start(&kubeconfig(), &["--namespace", &ns, "--lease-namespace", &ns]);
    apply(&client, &ns, static_upstream("u", &format!("http://{up}"))).await;
    let api = routes_api(&client, &ns);
    let start = Instant::now();
    futures_util::stream::iter(0..N)
        .map(|i| {
            let client = client.clone();
            let ns = ns.clone();
            async move { apply(&client, &ns, route(&format!("r{i}"), &format!("/r/{i}"), "u")).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let created = start.elapsed();
    gw.wait_for(&format!("/r/{}", N - 1), 200, Duration::from_secs(120))
        .await;
    let live = start.elapsed();
    eventually(Duration::from_secs(300), "all Programmed", || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let n = list
            .items
            .iter()
            .filter(|o| {
                o.data["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Programmed" && c["status"] == "True")
                })
            })
            .count();
        (n == N).then_some(())
    })
    .await;
    let all = start.elapsed();
    let served = (0..N)
        .step_by(97)
        .filter(|i| gw.get(&format!("/r/{i}")).map(|r| r.0) == Some(200))
        .count();
    println!(
        "{N} routes: created in {created:?}, last route live at {live:?}, all Programmed at {all:?}; \
         {served}/{} sampled routes answer 200; gateway RSS {} MiB; {} status patches",
        (0..N).step_by(97).count(),
        gw.rss_kib() / 1024,
        gw.status_patches()
    );

    // Churn: 50 routes updated every 100 ms for 10 s (500 spec changes/s would be 50 per tick).
    let before = gw.status_patches();
    let t0 = Instant::now();
    let mut updates = 0u64;
    let mut tick = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        tick += 1;
        futures_util::stream::iter(0..50)
            .map(|i| {
                let client = client.clone();
                let ns = ns.clone();
                async move {
                    let mut r = route(&format!("r{i}"), &format!("/r/{i}"), "u");
                    r["spec"]["timeout"] = serde_json::json!(format!("{}s", 10 + tick % 20));
                    apply(&client, &ns, r).await
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        updates += 50;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = gw.status_patches() - before;
    println!(
        "churn: {updates} spec updates in {secs:.1}s ({:.0}/s) -> {writes} status patches ({:.0}/s); RSS {} MiB",
        updates as f64 / secs,
        writes as f64 / secs,
        gw.rss_kib() / 1024
    );
}
