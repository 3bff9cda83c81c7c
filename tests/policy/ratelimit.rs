//! Rate limits through the real binary: memory storage, Redis shared by several gateway
//! processes (exact across replicas), and `failure_mode` while Redis is down.
//!
//! Redis tests use `GATEHOUSE_TEST_REDIS_URL` (see `.ci/services/redis.sh`, started by
//! scripts/test.sh); the failure-mode test starts its own `redis-server` so that it can stop it.
//! Without them they skip, or fail where services are required (tests/support/services.rs).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{self, client, get, resources, send, services, Gateway, Mode, Upstream};
use http::StatusCode;

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{n}")
}

/// Resources with one route named `route` limited to `limit` per hour.
fn limited(up: &Upstream, route: &str, limit: u64) -> String {
    resources(&format!("  endpoints: [\"{}\"]", up.url()), "").replace(
        "metadata: {name: all, namespace: default}\nspec:\n",
        &format!(
            "metadata: {{name: {route}, namespace: default}}\nspec:\n  rateLimit: {{requests: {limit}, window: 1h}}\n"
        ),
    )
}

async fn start(config: &str, res: &str) -> Gateway {
    Gateway::builder()
        .config(config)
        .resource("app.yaml", res)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limits_answer_429_with_headers() {
    let up = Upstream::start_mode("up", Mode::Ok).await;
    let config = "middleware:\n  rate_limiting:\n    default_limit: 0\n    storage: {type: Memory}\n";
    let gw = start(config, &limited(&up, "limited", 3)).await;
    for remaining in ["2", "1", "0"] {
        let req = http::Request::get(gw.url("/x"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let (status, h, _) = send(&client(), req)
            .await
            .map(|r| (r.code(), r.headers.clone(), r.text()))
            .expect("answer");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["ratelimit-limit"], "3");
        assert_eq!(h["ratelimit-remaining"], remaining);
        assert!(h.contains_key("ratelimit-reset"));
    }
    let req = http::Request::get(gw.url("/x"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let (status, h, body) = send(&client(), req)
        .await
        .map(|r| (r.code(), r.headers.clone(), r.text()))
        .expect("answer");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(json["error"]["code"], "rate_limited");
    // One request comes back every 20 minutes.
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1100..=1200).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(up.hits(), 3, "refused requests never reach the upstream");
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(r#"gateway_rate_limited_total{route="default/limited"} 1"#),
        "{metrics}"
    );
}

/// The shared Redis for tests, or `None` (the test skips, or fails where services are
/// required).
fn test_redis() -> Option<String> {
    services::redis_url()
}

fn redis_config(url: &str, failure_mode: &str) -> String {
    format!(
        "middleware:\n  rate_limiting:\n    default_limit: 0\n    storage: {{type: Redis, url: \"{url}\"}}\n    \
         failure_mode: {failure_mode}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_sharing_redis_let_exactly_the_limit_through() {
    let Some(url) = test_redis() else { return };
    let up = Upstream::start_mode("up", Mode::Ok).await;
    let route = unique("shared");
    let res = limited(&up, &route, 300);
    let config = redis_config(&url, "closed");
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(start(&config, &res).await);
    }
    let urls: Vec<String> = gateways.iter().map(|g| g.url("/x")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let url = urls[i % 3].clone();
        tasks.spawn(async move { get(&url).await.map(|r| r.code()) });
    }
    let (mut ok, mut limited_n, mut other) = (0, 0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.expect("task").expect("answer") {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited_n += 1,
            s => other.push(s),
        }
    }
    assert!(other.is_empty(), "{other:?}");
    assert_eq!((ok, limited_n), (300, 300));
    assert_eq!(up.hits(), 300);
}

/// A redis-server of this test's own, so it can be stopped and started again on its port.
struct OwnRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = OwnRedis {
            child: None,
            port: support::free_port(),
            dir,
        };
        r.spawn().then_some(r)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn status_of(gw: &Gateway) -> StatusCode {
    get(&gw.url("/x")).await.expect("answer").code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_mode_applies_while_redis_is_down_and_the_gateway_reconnects() {
    let Some(mut redis) = OwnRedis::start() else {
        services::missing(
            "cannot start redis-server",
            "install it (.ci/services/redis.sh does), or run scripts/test.sh",
        );
        return;
    };
    let up = Upstream::start_mode("up", Mode::Ok).await;
    let res = limited(&up, &unique("fm"), 1000);
    let closed = start(&redis_config(&redis.url(), "closed"), &res).await;
    let open = start(&redis_config(&redis.url(), "open"), &res).await;
    assert_eq!(status_of(&closed).await, StatusCode::OK);
    assert_eq!(status_of(&open).await, StatusCode::OK);

    redis.stop();
    let (status, body) = get(&closed.url("/x"))
        .await
        .map(|r| (r.code(), r.text()))
        .expect("answer");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("rate_limit_unavailable"), "{body}");
    assert_eq!(status_of(&open).await, StatusCode::OK);

    assert!(redis.spawn(), "redis-server restarts on its port");
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_of(&closed).await != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the gateway did not reconnect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Limits count again after the reconnect (headers come from a real decision).
    let req = http::Request::get(closed.url("/x"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let h = send(&client(), req).await.expect("answer").headers;
    assert_eq!(h["ratelimit-limit"], "1000");
}
