//! Test harness: the real `gatehouse` binary on free loopback ports, real upstream servers,
//! and a plain hyper client.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[path = "../support/ports.rs"]
mod ports;
pub use ports::free_port;

/// A real upstream on loopback. It answers JSON describing the request it received:
/// `{"server": name, "method", "path", "headers": {..}}`. Paths steer it:
/// `/sleep/MS` waits, `/status/CODE` answers that code.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Self::start_with(name, false).await
    }

    pub async fn start_h2c(name: &str) -> Upstream {
        Self::start_with(name, true).await
    }

    async fn start_with(name: &str, h2: bool) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let name = name.to_string();
        let h = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let name = name.clone();
                let hits = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let name = name.clone();
                        hits.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(answer(&name, req).await) }
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                });
            }
        });
        Upstream { addr, hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mut status = StatusCode::OK;
    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|m| m.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse::<u16>().ok()) {
        status = StatusCode::from_u16(code).unwrap();
    }
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = serde_json::json!({
        "server": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut()
        .insert("connection", "keep-alive".parse().unwrap());
    resp
}

/// The gateway binary running standalone on free ports.
pub struct Gateway {
    pub child: Child,
    pub http: u16,
    pub admin: u16,
    pub metrics: u16,
    pub https: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

pub const ADMIN_TOKEN: &str = "test-admin-token";

impl Gateway {
    /// Starts with `config` (YAML text) and the resources folder `dir/resources` holding
    /// `files` (name, text).
    pub async fn start(config: &str, files: &[(&str, &str)]) -> Gateway {
        Self::start_env(config, files, &[]).await
    }

    pub async fn start_env(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("resources");
        std::fs::create_dir_all(&res).unwrap();
        for (name, text) in files {
            std::fs::write(res.join(name), text).unwrap();
        }
        let cfg = dir.path().join("gateway.yaml");
        std::fs::write(&cfg, config).unwrap();
        let (http, admin, metrics, https) = (free_port(), free_port(), free_port(), free_port());
        let log = dir.path().join("gateway.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(["run", "--config"])
            .arg(&cfg)
            .arg("--resources")
            .arg(&res)
            .env("GATEWAY_SERVER_HTTP_PORT", http.to_string())
            .env("GATEWAY_ADMIN_PORT", admin.to_string())
            .env("GATEWAY_METRICS_PORT", metrics.to_string())
            .env("GATEWAY_SERVER_HTTPS_PORT", https.to_string())
            .env("GATEWAY_BIND_ADDRESS", "127.0.0.1")
            .env("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GATEWAY_WORKER_THREADS", "2")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn gatehouse");
        let mut gw = Gateway {
            child,
            http,
            admin,
            metrics,
            https,
            dir,
            log,
        };
        gw.wait_ready().await;
        gw
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = get(&format!("http://127.0.0.1:{}/ready", self.admin)).await {
                if r.status == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gateway exited before it was ready ({status}); log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway not ready; log:\n{}", self.log_text());
    }

    pub fn resources(&self) -> PathBuf {
        self.dir.path().join("resources")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// The metrics port's exposition text.
    pub async fn metrics_text(&self) -> String {
        let r = get(&format!("http://127.0.0.1:{}/metrics", self.metrics))
            .await
            .unwrap();
        String::from_utf8_lossy(&r.body).into_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits until `path` answers `status` (config changes apply asynchronously).
    pub async fn wait_status(&self, path: &str, status: u16) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if get(&self.url(path)).await.map(|r| r.status).ok() == Some(status) {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} never answered {status}; log:\n{}", self.log_text());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

pub async fn get(url: &str) -> Result<Reply, String> {
    send(&client(), Request::get(url).body(Full::default()).unwrap()).await
}

pub fn upstream_yaml(name: &str, endpoints: &[String]) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  endpoints: [{}]\n",
        eps.join(", ")
    )
}

pub fn route_yaml(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    let mut s = format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  path: \"{path}\"\n  upstream: {upstream}\n"
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Writes a file atomically (write + rename), as editors and ConfigMap updates do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub const BASE_CONFIG: &str =
    "middleware:\n  rate_limiting:\n    default_limit: 0\nobservability:\n  logging:\n    level: info\n";
pub mod ws;
