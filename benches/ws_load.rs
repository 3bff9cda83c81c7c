//! A bounded load run of the WebSocket hub on loopback: N authenticated connections to one
//! gateway process (default 10,000), all subscribed to one channel, then R broadcasts
//! (default 20) pushed through the webhook. Reports connections/s, the gateway's RSS with all
//! connections open, delivery latency (p50/p99/max, from the webhook call to each client's
//! receipt) and messages/s delivered. It starts and stops its own gateway, and ends by itself.
//! With `WS_LOAD_AMQP_URL` the broadcasts are published on a RabbitMQ exchange the gateway
//! consumes from (`integration.message_queue`) instead, and the latency runs from the publish.
//!
//! ```sh
//! cargo bench --bench ws_load                       # 10,000 connections, 20 broadcasts
//! WS_LOAD_CONNECTIONS=2000 WS_LOAD_ROUNDS=5 cargo bench --bench ws_load
//! WS_LOAD_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo bench --bench ws_load
//! ```
//! Each side needs about N file descriptors (`ulimit -n`); the run says so when it is short.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "load-secret-of-at-least-32-bytes!";
const HOOK: &str = "load-hook";
/// Client read buffer: a broadcast frame is about 200 bytes.
const READ_BUFFER: usize = 1024;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../tests/support/ports.rs"]
mod ports;
use ports::free_port;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process (clock ticks at 100 Hz).
fn cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn nofile_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let n = env_num("WS_LOAD_CONNECTIONS", 10_000);
    let rounds = env_num("WS_LOAD_ROUNDS", 20);
    let in_flight = env_num("WS_LOAD_CONNECT_CONCURRENCY", 256);
    let amqp = std::env::var("WS_LOAD_AMQP_URL").ok().filter(|u| !u.is_empty());
    let exchange = format!("ws_load_{}", std::process::id());
    let limit = nofile_limit();
    if limit < n as u64 + 200 {
        eprintln!(
            "ulimit -n is {limit}; {n} connections need at least {}: raise it and run again",
            n + 200
        );
        std::process::exit(2);
    }

    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let cfg = dir.path().join("gateway.yaml");
    let queue = match &amqp {
        Some(url) => format!(
            "    message_queue:\n      enabled: true\n      type: rabbitmq\n      url: \"{url}\"\n      exchange: \"{exchange}\"\n"
        ),
        None => String::new(),
    };
    std::fs::write(
        &cfg,
        format!(
            "auth:\n  jwt:\n    secret: \"{SECRET}\"\nobservability:\n  logging:\n    level: warn\nwebsocket:\n  enabled: true\n  server:\n    max_connections: {}\n    ping_interval: 30s\n  channels:\n    default:\n      max_subscribers: {}\n      message_history: 0\n  integration:\n    webhook:\n      auth_token: \"{HOOK}\"\n",
            n + 100,
            n + 100
        ) + &queue,
    )
    .unwrap();
    let (http, admin, metrics) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--resources")
        .arg(&res)
        .env("GATEWAY_SERVER_HTTP_PORT", http.to_string())
        .env("GATEWAY_ADMIN_PORT", admin.to_string())
        .env("GATEWAY_METRICS_PORT", metrics.to_string())
        .env("GATEWAY_SERVER_HTTPS_PORT", free_port().to_string())
        .env("GATEWAY_BIND_ADDRESS", "127.0.0.1")
        .stdin(Stdio::null())
        .spawn()
        .expect("start gatehouse");
    let pid = child.id();
    let _gw = Gateway(child);
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(ready.elapsed() < Duration::from_secs(20), "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idle_rss = rss_kib(pid);
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let publisher = match &amqp {
        Some(url) => Some(Publisher::new(url, &exchange, &client, metrics).await),
        None => None,
    };

    // Tokens first, so that signing is not part of the connect rate.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"sub": format!("user-{i}"), "roles": ["user"], "exp": exp}),
                &key,
            )
            .unwrap()
        })
        .collect();

    let base = Instant::now();
    // Each connection keeps its own latencies (a lock nobody else takes while the run goes) and
    // bumps one shared count, so that the receive path stays a few instructions per message.
    let received = Arc::new(AtomicUsize::new(0));
    let round_done = Arc::new(tokio::sync::Notify::new());
    let slots: Vec<Arc<Mutex<Vec<f64>>>> = (0..n)
        .map(|_| Arc::new(Mutex::new(Vec::with_capacity(rounds))))
        .collect();
    let subscribed = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
    // A client reads one small frame at a time; tungstenite's default 128 KiB read buffer is
    // zero-filled on every read, which would make the load tool, not the gateway, the bottleneck.
    let client_config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (tok, slot) in tokens.into_iter().zip(slots.iter().cloned()) {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let subscribed = subscribed.clone();
        let received = received.clone();
        let round_done = round_done.clone();
        let url = format!("ws://127.0.0.1:{http}/ws?token={tok}");
        tasks.push(tokio::spawn(async move {
            let mut ws =
                match tokio_tungstenite::connect_async_with_config(url, Some(client_config), false).await {
                    Ok((ws, _)) => ws,
                    Err(e) => {
                        drop(permit);
                        return Err(e.to_string());
                    }
                };
            let sub = json!({"type": "Subscribe", "data": {"channel": "load"}}).to_string();
            ws.send(Message::text(sub)).await.map_err(|e| e.to_string())?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("\"subscribed\"") => break,
                    Some(Ok(_)) => continue,
                    other => return Err(format!("no subscribed answer: {other:?}")),
                }
            }
            subscribed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            while let Some(m) = ws.next().await {
                let m = m.map_err(|e| e.to_string())?;
                if let Message::Text(t) = m {
                    let now = base.elapsed().as_secs_f64() * 1e3;
                    // The send time is the message's last field: read it without a full parse,
                    // so that the client side adds as little as possible to the latency.
                    if let Some(sent) = t
                        .as_str()
                        .rsplit_once("\"t\":")
                        .and_then(|(_, rest)| rest.split(['}', ',']).next())
                        .and_then(|n| n.parse::<f64>().ok())
                    {
                        slot.lock().unwrap().push(now - sent);
                        if (received.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(n) {
                            round_done.notify_one();
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscribed.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline || tasks.iter().filter(|t| t.is_finished()).count() > 0 {
            let failed = tasks.iter().filter(|t| t.is_finished()).count();
            eprintln!(
                "only {} of {n} connections subscribed ({failed} failed)",
                subscribed.load(Ordering::Relaxed)
            );
            for t in tasks.iter_mut().filter(|t| t.is_finished()).take(5) {
                eprintln!("  {:?}", t.await);
            }
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_kib(pid);

    let hook = format!("http://127.0.0.1:{http}/webhook/websocket");
    let mut delivered_total = 0u64;
    let t1 = Instant::now();
    let cpu0 = cpu_secs(pid);
    let own0 = cpu_secs(std::process::id());
    for r in 0..rounds {
        let sent = base.elapsed().as_secs_f64() * 1e3;
        let body =
            json!({"type": "channel_broadcast", "channel": "load", "message": {"round": r, "t": sent}});
        if let Some(p) = &publisher {
            p.publish(body.to_string().as_bytes()).await;
        } else {
            let req = http::Request::post(&hook)
                .header("authorization", format!("Bearer {HOOK}"))
                .body(Full::new(bytes::Bytes::from(body.to_string())))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            delivered_total += v["delivered"].as_u64().unwrap_or(0);
        }
        // Wait for this round to reach everyone (bounded), so rounds do not overlap.
        let round_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while received.load(Ordering::Relaxed) < (r + 1) * n {
            if tokio::time::timeout_at(round_deadline, round_done.notified())
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let broadcast_secs = t1.elapsed().as_secs_f64();
    let gateway_cpu = cpu_secs(pid) - cpu0;
    let client_cpu = cpu_secs(std::process::id()) - own0;
    let mut latencies = Vec::with_capacity(n * rounds);
    let mut short = 0usize;
    for slot in &slots {
        let got = slot.lock().unwrap();
        if got.len() < rounds {
            short += 1;
        }
        latencies.extend_from_slice(&got);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let received = latencies.len();
    println!("WebSocket hub load run (loopback, one gateway process, its default worker threads)");
    println!("  connections:        {n} authenticated, subscribed to one channel");
    println!(
        "  connect+subscribe:  {connect_secs:.2} s  -> {:.0} connections/s ({in_flight} in flight)",
        n as f64 / connect_secs
    );
    println!(
        "  gateway RSS:        {:.1} MiB idle, {:.1} MiB with {n} connections ({:.1} KiB per connection)",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        (loaded_rss.saturating_sub(idle_rss)) as f64 / n as f64
    );
    println!(
        "  broadcasts:         {rounds} x {n} subscribers: {received} of {} received ({delivered_total} reported delivered), {short} subscribers missed some",
        rounds * n
    );
    println!(
        "  delivery latency:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} -> client receipt)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        if publisher.is_some() {
            "RabbitMQ publish"
        } else {
            "webhook call"
        }
    );
    println!(
        "  throughput:         {:.0} messages/s delivered over {broadcast_secs:.2} s",
        received as f64 / broadcast_secs
    );
    println!(
        "  CPU while broadcasting: gateway {gateway_cpu:.2} s ({:.1} us per delivered message), load tool {client_cpu:.2} s",
        gateway_cpu * 1e6 / received.max(1) as f64
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "  machine load average: {}",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    let mut ended = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks.iter_mut().filter(|t| t.is_finished()) {
        let why = match t.await {
            Ok(Ok(())) => "closed by the gateway".to_string(),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        *ended.entry(why).or_default() += 1;
    }
    for (why, count) in &ended {
        println!("  connections that ended early: {count} ({why})");
    }
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    for t in tasks {
        t.abort();
    }
}

/// Publishes on the RabbitMQ exchange the gateway consumes from.
struct Publisher {
    channel: lapin::Channel,
    exchange: String,
    _conn: lapin::Connection,
}

impl Publisher {
    /// Connects, declares the exchange and waits until the gateway consumes from it.
    async fn new(
        url: &str,
        exchange: &str,
        client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
        metrics: u16,
    ) -> Publisher {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let uri: http::Uri = format!("http://127.0.0.1:{metrics}/metrics").parse().unwrap();
            if let Ok(r) = client.get(uri).await {
                let text = r.into_body().collect().await.unwrap().to_bytes();
                if String::from_utf8_lossy(&text).contains("\nwebsocket_queue_connected 1") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never consumed from RabbitMQ"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Publisher {
            channel,
            exchange: exchange.to_string(),
            _conn: conn,
        }
    }

    async fn publish(&self, body: &[u8]) {
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                "load".into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}
