//! Figures against the real kube-apiserver, run once by hand (ignored by default):
//!   eval "$(.ci/kube-apiserver.sh start)"
//!   cargo test --release --test kube kube_bench -- --ignored --nocapture --test-threads 1
//! apply → first 200 (median of 20), 10,000 routes → all Programmed and live (time, RSS, where
//! the CPU went), status writes under churn, and a gateway start against 10,000 routes.
//! Times count from the first create request. `GATEHOUSE_BENCH_WRITE=apply` creates with
//! server-side apply instead of POST.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::cluster::*;
use crate::support::*;
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::watcher::{self, watcher, Event};

/// Cumulative CPU time (user + system) of a process, from /proc/PID/stat.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    let ticks = f.iter().sum::<u64>();
    Duration::from_millis(ticks * 10) // USER_HZ = 100 on Linux
}

/// Where the CPU went since `new`: etcd, kube-apiserver (from GATEHOUSE_TEST_KUBE_PIDS, as
/// printed by .ci/kube-apiserver.sh), the gateway, and this test process (the client).
struct CpuSplit {
    procs: Vec<(&'static str, u32, Duration)>,
}

impl CpuSplit {
    fn new(gateway: Option<u32>) -> CpuSplit {
        let pids = std::env::var("GATEHOUSE_TEST_KUBE_PIDS").unwrap_or_default();
        let mut ids = pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok());
        let mut procs = Vec::new();
        if let (Some(etcd), Some(api)) = (ids.next(), ids.next()) {
            procs.push(("etcd", etcd, cpu_of(etcd)));
            procs.push(("kube-apiserver", api, cpu_of(api)));
        }
        if let Some(gw) = gateway {
            procs.push(("gateway", gw, cpu_of(gw)));
        }
        procs.push(("client", std::process::id(), cpu_of(std::process::id())));
        CpuSplit { procs }
    }

    fn report(&self) -> String {
        self.procs
            .iter()
            .map(|(name, pid, at)| format!("{name} {:.1}s", cpu_of(*pid).saturating_sub(*at).as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the benchmark writes new routes: `GATEHOUSE_BENCH_WRITE=apply` (server-side apply, as
/// `kubectl apply --server-side`) or `create` (POST, as `kubectl create` or a client-side
/// `kubectl apply` of new objects). Default: create.
fn write_mode() -> &'static str {
    match std::env::var("GATEHOUSE_BENCH_WRITE").as_deref() {
        Ok("apply") => "apply",
        _ => "create",
    }
}

/// Writes a new object the way `write_mode` says.
async fn write_new(client: &kube::Client, ns: &str, obj: serde_json::Value) {
    if write_mode() == "apply" {
        apply(client, ns, obj).await;
        return;
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    routes_api(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Creates routes r0..rN (`/r/{i}`, upstream `u`), 32 requests in flight.
async fn create_routes(client: &kube::Client, ns: &str, n: usize) {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let ns = ns.to_string();
            async move { write_new(&client, &ns, route(&format!("r{i}"), &format!("/r/{i}"), "u")).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// Counts the routes in `api`'s namespace that have `Programmed` True for their current
/// generation, following a watch (as `kubectl wait` does): polling lists of 10,000 objects
/// would load the API server and slow down the very status writes being measured.
fn follow_programmed(api: Api<DynamicObject>) -> tokio::sync::watch::Receiver<usize> {
    let (tx, rx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        let mut ok: HashMap<String, bool> = HashMap::new();
        let mut count = 0usize;
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            let (name, now) = match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => (
                    o.metadata.name.clone().unwrap_or_default(),
                    Some(is_programmed(&o)),
                ),
                Ok(Event::Delete(o)) => (o.metadata.name.clone().unwrap_or_default(), None),
                Ok(Event::Init) => {
                    ok.clear();
                    count = 0;
                    continue;
                }
                _ => continue,
            };
            let before = match now {
                Some(p) => ok.insert(name, p),
                None => ok.remove(&name),
            };
            count = count + usize::from(now == Some(true)) - usize::from(before == Some(true));
            tx.send_replace(count);
        }
    });
    rx
}

fn is_programmed(o: &DynamicObject) -> bool {
    o.data["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter().any(|c| {
            c["type"] == "Programmed"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64() == o.metadata.generation
        })
    })
}

async fn until_programmed(count: &mut tokio::sync::watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(300), count.wait_for(|c| *c == n))
        .await
        .unwrap_or_else(|_| panic!("not all {n} routes Programmed in 300 s"))
        .expect("watch of routes ended");
}

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
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-bench-apply").await;
    let up = upstream("ok").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    apply(&client, &ns, static_upstream("u", &up.url())).await;
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
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-bench-10k").await;
    let up = upstream("ok").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    apply(&client, &ns, static_upstream("u", &up.url())).await;
    let mut programmed = follow_programmed(routes_api(&client, &ns));
    // From the first create request to the last route answering / all Programmed.
    let cpu = CpuSplit::new(Some(gw.pid()));
    let start = Instant::now();
    create_routes(&client, &ns, N).await;
    let created = start.elapsed();
    gw.wait_for(&format!("/r/{}", N - 1), 200, Duration::from_secs(120))
        .await;
    let live = start.elapsed();
    until_programmed(&mut programmed, N).await;
    let all = start.elapsed();
    let cpu_report = cpu.report();
    let served = (0..N)
        .step_by(97)
        .filter(|i| gw.get(&format!("/r/{i}")).map(|r| r.status) == Some(200))
        .count();
    println!(
        "{N} routes ({}): created in {created:?}, last route live at {live:?}, all Programmed at {all:?}; \
         {served}/{} sampled routes answer 200; gateway RSS {} MiB; {} status patches",
        write_mode(),
        (0..N).step_by(97).count(),
        gw.rss_kib() / 1024,
        gw.status_patches()
    );
    println!("  CPU until all Programmed: {cpu_report}");

    // Churn: 50 routes updated every 100 ms for 10 s (500 spec changes/s would be 50 per tick).
    let before = gw.status_patches();
    let cpu = CpuSplit::new(Some(gw.pid()));
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
    let cpu_churn = cpu.report();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = gw.status_patches() - before;
    println!(
        "churn: {updates} spec updates in {secs:.1}s ({:.0}/s) -> {writes} status patches ({:.0}/s); RSS {} MiB",
        updates as f64 / secs,
        writes as f64 / secs,
        gw.rss_kib() / 1024
    );
    println!("  CPU during churn: {cpu_churn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn start_against_ten_thousand_routes() {
    const N: usize = 10_000;
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-bench-start").await;
    let up = upstream("ok").await;
    apply(&client, &ns, static_upstream("u", &up.url())).await;
    // Without a gateway: what the API server alone needs to take them.
    let cpu = CpuSplit::new(None);
    let t0 = Instant::now();
    create_routes(&client, &ns, N).await;
    println!(
        "{N} routes ({}) with no gateway running: created in {:?}; CPU: {}",
        write_mode(),
        t0.elapsed(),
        cpu.report()
    );

    let mut programmed = follow_programmed(routes_api(&client, &ns));
    let start = Instant::now();
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    let cpu = CpuSplit::new(Some(gw.pid()));
    gw.wait_for(&format!("/r/{}", N - 1), 200, Duration::from_secs(120))
        .await;
    let live = start.elapsed();
    until_programmed(&mut programmed, N).await;
    let all = start.elapsed();
    let served = (0..N)
        .step_by(97)
        .filter(|i| gw.get(&format!("/r/{i}")).map(|r| r.status) == Some(200))
        .count();
    println!(
        "gateway start against {N} routes: all live at {live:?}, all Programmed at {all:?}; \
         {served}/{} sampled routes answer 200; gateway RSS {} MiB; {} status patches; CPU: {}",
        (0..N).step_by(97).count(),
        gw.rss_kib() / 1024,
        gw.status_patches(),
        cpu.report()
    );
}
