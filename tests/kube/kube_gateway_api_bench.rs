//! Figures of the Gateway API front door against the real kube-apiserver (issue 22), run once
//! by hand (ignored by default):
//!   eval "$(.ci/kube-apiserver.sh start)"
//!   cargo test --release --test kube kube_gateway_api_bench -- --ignored --nocapture --test-threads 1
//! In the manner of the public gateway-api-bench:
//! - route propagation: with 3,000 HTTPRoutes programmed on one Gateway, 100 times one new
//!   HTTPRoute, from the start of its create request to its first 200 through the Gateway's
//!   address (median, p99);
//! - no errors during change: 4 keep-alive clients as fast as they go on one unchanged route
//!   while other HTTPRoutes are created, changed and deleted at 50/s for 60 s;
//! - memory: the gateway's RSS with 5,000 HTTPRoutes programmed.
//!
//! The gateway runs as its own process (`tests/support` `Gateway`), so its RSS is its own.
//! Each test has a GatewayClass of its own controllerName and its Gateway an address of its own
//! pool (127.0.1.200-127.0.1.210), so no other gateway or test takes them. The routes' backend
//! is a `gatehouse.dev/GatewayUpstream` with a loopback endpoint (the API server refuses
//! loopback addresses in Endpoints), the test's own upstream.
//! `GATEHOUSE_BENCH_GAP_MS` pauses between two changes of the propagation test (default 0:
//! one change right after the previous one answered).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kube_gateway_api::{api_of, apply_api, gateway_class, install_gateway_api_crds};
use crate::support::cluster::*;
use crate::support::*;

/// The controllerName of the benchmark's classes.
const CONTROLLER: &str = "gatehouse.dev/bench-controller";
/// The gateway's address pool: apart from the default pool's start, which others use.
const POOL: &str = "127.0.1.200-127.0.1.210";
/// The domain of the routes' host names.
const DOMAIN: &str = "bench.test";

/// The gateway's configuration: our class and pool, no default rate limit.
fn config() -> String {
    format!(
        "gateway_api:\n  controller_name: {CONTROLLER}\n  addresses: [\"{POOL}\"]\n\
         middleware:\n  rate_limiting:\n    default_limit: 0\n\
         observability:\n  logging:\n    level: info\n"
    )
}

fn host(name: &str) -> String {
    format!("{name}.{DOMAIN}")
}

/// An HTTPRoute `name` on Gateway `bench` for the host `name.bench.test`, path prefix `/`, to
/// the GatewayUpstream `u`.
fn http_route(name: &str) -> Value {
    http_route_for(name, &host(name))
}

fn http_route_for(name: &str, hostname: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "bench"}],
            "hostnames": [hostname],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"group": "gatehouse.dev", "kind": "GatewayUpstream", "name": "u"}]
            }]
        }
    })
}

/// POSTs a new HTTPRoute (as `kubectl create`).
async fn create_route(client: &kube::Client, ns: &str, obj: Value) -> Result<(), String> {
    let obj: DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    api_of(client, "HTTPRoute", ns)
        .create(&PostParams::default(), &obj)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Creates HTTPRoutes r0..rN, 32 requests in flight.
async fn create_routes(client: &kube::Client, ns: &str, n: usize) {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let ns = ns.to_string();
            async move {
                let name = format!("r{i}");
                create_route(&client, &ns, http_route(&name))
                    .await
                    .unwrap_or_else(|e| panic!("create {name}: {e}"))
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// Whether our controller's parent entry says `Accepted` for the route's current generation.
fn accepted(o: &DynamicObject) -> bool {
    o.data["status"]["parents"].as_array().is_some_and(|parents| {
        parents.iter().any(|p| {
            p["controllerName"] == CONTROLLER
                && p["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "Accepted"
                            && c["status"] == "True"
                            && c["observedGeneration"].as_i64() == o.metadata.generation
                    })
                })
        })
    })
}

/// Counts the HTTPRoutes of `api` that our controller accepted, following a watch.
fn follow_accepted(api: Api<DynamicObject>) -> tokio::sync::watch::Receiver<usize> {
    let (tx, rx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        let mut ok: std::collections::HashMap<String, bool> = Default::default();
        let mut count = 0usize;
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            let (name, now) = match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    (o.metadata.name.clone().unwrap_or_default(), Some(accepted(&o)))
                }
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

/// An HTTP/1.1 client of one address that keeps its connection alive and opens a new one
/// when the last broke or was closed.
struct Http1 {
    addr: SocketAddr,
    conn: Option<(TcpStream, Vec<u8>)>,
}

impl Http1 {
    fn new(addr: SocketAddr) -> Http1 {
        Http1 { addr, conn: None }
    }

    /// GET `path` for `host`: the status, or why there is none (the connection is dropped).
    async fn get(&mut self, host: &str, path: &str) -> Result<u16, String> {
        let r = tokio::time::timeout(Duration::from_secs(5), self.exchange(host, path)).await;
        match r {
            Ok(Ok((status, keep))) => {
                if !keep {
                    self.conn = None;
                }
                Ok(status)
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err("no answer within 5 s".into())
            }
        }
    }

    /// One request and its response: (status, whether the connection stays open).
    async fn exchange(&mut self, host: &str, path: &str) -> Result<(u16, bool), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.conn = Some((s, Vec::new()));
        }
        let Some((s, buf)) = self.conn.as_mut() else {
            return Err("no connection".into());
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            fill(s, buf).await?;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        let status: u16 = head
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not a response: {head:?}"))?;
        let field = |name: &str| {
            head.lines()
                .skip(1)
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
                .map(str::to_string)
        };
        let keep = field("connection").as_deref() != Some("close");
        if let Some(len) = field("content-length") {
            let len: usize = len.parse().map_err(|_| format!("content-length {len:?}"))?;
            while buf.len() < len {
                fill(s, buf).await?;
            }
            buf.drain(..len);
        } else if field("transfer-encoding").as_deref() == Some("chunked") {
            // Enough for the short bodies here: up to the last chunk.
            loop {
                if let Some(i) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                    buf.drain(..i + 5);
                    break;
                }
                fill(s, buf).await?;
            }
        } else if !matches!(status, 204 | 304) {
            // Framed by the end of the connection.
            while fill(s, buf).await.is_ok() {}
            return Ok((status, false));
        }
        Ok((status, keep))
    }
}

/// Reads more into `buf`; an error at the end of the stream.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut more = [0u8; 8192];
    match s.read(&mut more).await {
        Ok(0) => Err("closed by the gateway".into()),
        Ok(n) => {
            buf.extend_from_slice(&more[..n]);
            Ok(())
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Resident memory of a process (VmRSS, or VmHWM: the peak) in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The `elapsed_ms` of the gateway's "routing table published" log lines, in order: from the
/// first change noticed to the new table live.
fn publishes(gw: &Gateway) -> Vec<f64> {
    gw.log()
        .lines()
        .filter(|l| l.contains("routing table published"))
        .filter_map(|l| {
            l.split("elapsed_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The `p`-th percentile (nearest rank) of sorted samples.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A gateway in Kubernetes mode serving one Gateway `bench` (one HTTP listener) of a class of
/// its own, with `base` HTTPRoutes r0..r{base-1} attached and accepted.
struct Bench {
    client: Cluster,
    ns: String,
    class: String,
    gw: Gateway,
    /// The Gateway's address and listener port.
    addr: SocketAddr,
    _up: Upstream,
}

impl Bench {
    /// None when there is no test API server (the test skips). `ip`: the Gateway's address
    /// (of `POOL`), one per test so that no socket of an earlier test is in the way.
    async fn start(tag: &str, ip: &str, base: usize) -> Option<Bench> {
        let client = cluster().await?;
        install_gateway_api_crds(&client).await;
        let ns = namespace(&client, &format!("gh-gwbench-{tag}")).await;
        let up = Upstream::start_mode("ok", Mode::Ok).await;
        let class = format!("gh-bench-{tag}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let port = free_port();
        let addr: SocketAddr = format!("{ip}:{port}").parse().expect("address");
        apply_api(&client, "", gateway_class(&class, CONTROLLER)).await;
        apply(&client, &ns, static_upstream("u", &up.url())).await;
        apply_api(
            &client,
            &ns,
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "bench"},
                "spec": {"gatewayClassName": class,
                         "addresses": [{"type": "IPAddress", "value": ip}],
                         "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}
            }),
        )
        .await;
        let gw = Gateway::builder()
            .kubeconfig(&kubeconfig())
            .config(&config())
            .args(&["--namespace", &ns, "--lease-namespace", &ns])
            .env("RUST_LOG", "info,kube_client=error")
            .spawn();
        let bench = Bench {
            client,
            ns,
            class,
            gw,
            addr,
            _up: up,
        };
        bench.wait_for("warm", Duration::from_secs(30), true).await;
        println!(
            "  gateway (pid {}) up on {addr}: RSS {} MiB with no HTTPRoute",
            bench.gw.pid(),
            vm_kib(bench.gw.pid(), "VmRSS") / 1024
        );
        if base > 0 {
            let mut accepted = follow_accepted(api_of(&bench.client, "HTTPRoute", &bench.ns));
            let start = Instant::now();
            create_routes(&bench.client, &bench.ns, base).await;
            let created = start.elapsed();
            bench
                .wait_for(&format!("r{}", base - 1), Duration::from_secs(120), false)
                .await;
            let live = start.elapsed();
            tokio::time::timeout(Duration::from_secs(300), accepted.wait_for(|c| *c >= base))
                .await
                .unwrap_or_else(|_| panic!("not all {base} HTTPRoutes Accepted in 300 s"))
                .expect("watch of HTTPRoutes ended");
            println!(
                "  {base} HTTPRoutes: created in {created:?}, the last one live at {live:?}, all \
                 Accepted at {:?}",
                start.elapsed()
            );
            let mut c = Http1::new(addr);
            let mut served = 0;
            let sampled = (0..base).step_by(97).count();
            for i in (0..base).step_by(97) {
                if c.get(&host(&format!("r{i}")), "/").await == Ok(200) {
                    served += 1;
                }
            }
            assert_eq!(served, sampled, "sampled routes answering 200");
        }
        Some(bench)
    }

    /// Waits until the host of route `name` answers 200 (creating the route first if
    /// `create`); panics with the gateway's log after `within`.
    async fn wait_for(&self, name: &str, within: Duration, create: bool) {
        if create {
            create_route(&self.client, &self.ns, http_route(name))
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e}"));
        }
        let start = Instant::now();
        let mut c = Http1::new(self.addr);
        loop {
            let last = c.get(&host(name), "/").await;
            if last == Ok(200) {
                return;
            }
            if start.elapsed() > within {
                panic!(
                    "{name} not served on {} within {within:?} (last: {last:?}); log:\n{}",
                    self.addr,
                    self.gw.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the gateway and deletes the HTTPRoutes (thousands of them would slow down what
    /// later tests do with the CRDs) and the class.
    async fn finish(self) {
        let Bench {
            client,
            ns,
            class,
            gw,
            ..
        } = self;
        drop(gw);
        let _ = api_of(&client, "HTTPRoute", &ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let _ = api_of(&client, "GatewayClass", "")
            .delete(&class, &Default::default())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn route_propagation_with_3000_routes() {
    const BASE: usize = 3_000;
    const N: usize = 100;
    let Some(b) = Bench::start("prop", "127.0.1.200", BASE).await else {
        return;
    };
    let gap = std::env::var("GATEHOUSE_BENCH_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    // Let the status writes of the base routes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut probe = Http1::new(b.addr);
    let (mut total, mut api, mut tries) = (Vec::new(), Vec::new(), Vec::new());
    let published_before = publishes(&b.gw).len();
    for i in 0..N {
        tokio::time::sleep(gap).await;
        let name = format!("new-{i}");
        let h = host(&name);
        let start = Instant::now();
        create_route(&b.client, &b.ns, http_route(&name))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        api.push(start.elapsed());
        let mut n = 0u32;
        loop {
            n += 1;
            if probe.get(&h, "/").await == Ok(200) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} not served within 20 s; log:\n{}",
                b.gw.log()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        total.push(start.elapsed());
        tries.push(n);
    }
    let published: Vec<f64> = publishes(&b.gw).split_off(published_before);
    total.sort();
    api.sort();
    let mut sorted = published.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "route propagation, {BASE} HTTPRoutes programmed, {N} new ones one after another (gap {gap:?}): \
         create request -> first 200 median {}, p99 {}, min {}, max {}",
        ms(percentile(&total, 50.0)),
        ms(percentile(&total, 99.0)),
        ms(total[0]),
        ms(total[N - 1])
    );
    println!(
        "  the create request alone: median {}, p99 {}; probes per change: median {}",
        ms(percentile(&api, 50.0)),
        ms(percentile(&api, 99.0)),
        {
            tries.sort();
            percentile(&tries, 50.0)
        }
    );
    if !sorted.is_empty() {
        println!(
            "  {} tables published meanwhile; change noticed -> table live: median {:.1} ms, p99 {:.1} ms",
            sorted.len(),
            percentile(&sorted, 50.0),
            percentile(&sorted, 99.0)
        );
    }
    println!(
        "  gateway RSS {} MiB (peak {} MiB)",
        vm_kib(b.gw.pid(), "VmRSS") / 1024,
        vm_kib(b.gw.pid(), "VmHWM") / 1024
    );
    b.finish().await;
}

/// What the load clients saw.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    non_2xx: AtomicU64,
    errors: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn no_errors_while_routes_change() {
    const BASE: usize = 3_000;
    /// Churn routes alive at any time.
    const CHURN: usize = 50;
    const RATE: u64 = 50;
    const SECS: u64 = 60;
    const CLIENTS: usize = 4;
    let Some(b) = Bench::start("churn", "127.0.1.201", BASE).await else {
        return;
    };
    b.wait_for("steady", Duration::from_secs(30), true).await;
    for i in 0..CHURN {
        create_route(&b.client, &b.ns, http_route(&format!("c{i}")))
            .await
            .unwrap_or_else(|e| panic!("create c{i}: {e}"));
    }
    b.wait_for(&format!("c{}", CHURN - 1), Duration::from_secs(30), false)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let first_errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (load, stop, first_errors) = (load.clone(), stop.clone(), first_errors.clone());
            let addr = b.addr;
            tokio::spawn(async move {
                let mut c = Http1::new(addr);
                let h = host("steady");
                while !stop.load(Ordering::Relaxed) {
                    let r = c.get(&h, "/").await;
                    let what = match &r {
                        Ok(s) if (200..300).contains(s) => {
                            load.ok.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(s) => {
                            load.non_2xx.fetch_add(1, Ordering::Relaxed);
                            format!("status {s}")
                        }
                        Err(e) => {
                            load.errors.fetch_add(1, Ordering::Relaxed);
                            e.clone()
                        }
                    };
                    let mut first = first_errors.lock().unwrap();
                    if first.len() < 10 {
                        first.push(what);
                    }
                }
            })
        })
        .collect();

    // Churn: one change every 1/RATE s, in turn a create (a new route), a change (a new host
    // name for a live one) and a delete (the oldest), so that about CHURN routes live; each
    // request on its own task, so that a slow answer does not slow the rate.
    let published_before = publishes(&b.gw).len();
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let (mut next_new, mut oldest) = (CHURN, 0usize);
    let mut ops = Vec::new();
    let t0 = Instant::now();
    for k in 0..RATE * SECS {
        tick.tick().await;
        let (client, ns) = ((*b.client).clone(), b.ns.clone());
        let (done, failed) = (done.clone(), failed.clone());
        let op = match k % 3 {
            0 => {
                let name = format!("c{next_new}");
                next_new += 1;
                tokio::spawn(async move { create_route(&client, &ns, http_route(&name)).await })
            }
            1 => {
                // A live one between the oldest and the newest.
                let name = format!("c{}", oldest + 1 + (k as usize / 3) % (CHURN - 2));
                let hostname = host(&format!("{name}-v{k}"));
                tokio::spawn(async move {
                    let obj: DynamicObject = serde_json::from_value(http_route_for(&name, &hostname))
                        .map_err(|e| e.to_string())?;
                    api_of(&client, "HTTPRoute", &ns)
                        .patch(
                            &name,
                            &kube::api::PatchParams::apply("kubectl-bench").force(),
                            &kube::api::Patch::Apply(&obj),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }
            _ => {
                let name = format!("c{oldest}");
                oldest += 1;
                tokio::spawn(async move {
                    api_of(&client, "HTTPRoute", &ns)
                        .delete(&name, &Default::default())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }
        };
        ops.push(tokio::spawn(async move {
            match op.await {
                Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                _ => failed.fetch_add(1, Ordering::Relaxed),
            }
        }));
    }
    for op in ops {
        let _ = op.await;
    }
    let churn_secs = t0.elapsed().as_secs_f64();
    // The last changes reach the table too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (ok, non_2xx, errors) = (
        load.ok.load(Ordering::Relaxed),
        load.non_2xx.load(Ordering::Relaxed),
        load.errors.load(Ordering::Relaxed),
    );
    let total = ok + non_2xx + errors;
    let mut published = publishes(&b.gw).split_off(published_before);
    published.sort_by(f64::total_cmp);
    println!(
        "no errors during change, {BASE} HTTPRoutes + ~{CHURN} changing: {} creates/changes/deletes \
         in {churn_secs:.1} s ({:.0}/s, {} failed); {CLIENTS} keep-alive clients on an unchanged \
         route for {secs:.1} s: {total} requests ({:.0}/s), {non_2xx} non-2xx, {errors} connection errors",
        done.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed) as f64 / churn_secs,
        failed.load(Ordering::Relaxed),
        total as f64 / secs
    );
    if !published.is_empty() {
        println!(
            "  {} tables published meanwhile; change noticed -> table live: median {:.1} ms, p99 {:.1} ms",
            published.len(),
            percentile(&published, 50.0),
            percentile(&published, 99.0)
        );
    }
    let first = first_errors.lock().unwrap().clone();
    if !first.is_empty() {
        println!("  first failures: {first:?}");
    }
    b.finish().await;
    assert_eq!(non_2xx + errors, 0, "failed requests during change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against .ci/kube-apiserver.sh"]
async fn memory_with_5000_routes() {
    const BASE: usize = 5_000;
    let Some(b) = Bench::start("mem", "127.0.1.202", BASE).await else {
        return;
    };
    // Status writes settle, allocations are given back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "memory, {BASE} HTTPRoutes programmed: gateway process (pid {}) VmRSS {} MiB, peak (VmHWM) {} MiB",
        b.gw.pid(),
        vm_kib(b.gw.pid(), "VmRSS") / 1024,
        vm_kib(b.gw.pid(), "VmHWM") / 1024
    );
    b.finish().await;
}
