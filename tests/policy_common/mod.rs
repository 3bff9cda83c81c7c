//! Test harness: the built `gatehouse` binary on free loopback ports, upstream servers that
//! fail on command, and a small HTTP client.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";

#[path = "../support/ports.rs"]
mod ports;
pub use ports::free_port;

/// One `gatehouse run` process; killed on drop.
pub struct Gateway {
    child: Child,
    pub http: u16,
    pub admin: u16,
    pub metrics: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts the gateway with `config` (gateway.yaml text) and the resources in `dir`, and
    /// waits until it is ready.
    pub async fn start(config: &str, dir: &Path) -> Gateway {
        let cfg_path = dir.join("gateway.yaml.cfg");
        std::fs::write(&cfg_path, config).expect("write config");
        let res = dir.join("res");
        std::fs::create_dir_all(&res).expect("resources dir");
        let (http, admin, metrics, https) = (free_port(), free_port(), free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["run", "--config"])
            .arg(&cfg_path)
            .arg("--resources")
            .arg(&res)
            .env("GATEWAY_SERVER_HTTP_PORT", http.to_string())
            .env("GATEWAY_SERVER_HTTPS_PORT", https.to_string())
            .env("GATEWAY_ADMIN_PORT", admin.to_string())
            .env("GATEWAY_METRICS_PORT", metrics.to_string())
            .env("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GATEWAY_WORKER_THREADS", "2")
            .env("GATEWAY_LOG_LEVEL", "warn")
            .env("JWT_SECRET", "test-secret")
            .env_remove("GATEWAY_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gatehouse");
        let mut gw = Gateway {
            child,
            http,
            admin,
            metrics,
            dir: res,
            _tmp: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = gw.url("/ready");
            let probe = tokio::time::timeout(Duration::from_secs(2), get(&ready));
            if let Ok(Ok((StatusCode::OK, _))) = probe.await {
                break;
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("gateway exited before it was ready ({status}); its log is above");
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Writes `yaml` as resources file `name` (the gateway picks changes up live).
    pub fn write_resources(&self, name: &str, yaml: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).expect("write resources");
        std::fs::rename(&tmp, self.dir.join(name)).expect("rename resources");
    }

    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let req = Request::get(format!("http://127.0.0.1:{}{path}", self.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, _, body) = send(req).await.expect("admin answers");
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).expect("admin JSON")
    }

    pub async fn metrics_text(&self) -> String {
        get(&format!("http://127.0.0.1:{}/metrics", self.metrics))
            .await
            .expect("metrics")
            .1
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resources for one upstream and one catch-all route.
pub fn resources(upstream_spec: &str, route_extra: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: svc, namespace: default}}\n\
         spec:\n{upstream_spec}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\n\
         metadata: {{name: all, namespace: default}}\nspec:\n  path: \"/*\"\n  upstream: svc\n{route_extra}\n"
    )
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(HttpConnector::new())
}

/// Sends `req`; status, headers and body text.
pub async fn send(req: Request<Full<Bytes>>) -> Result<(StatusCode, http::HeaderMap, String), String> {
    thread_local! {
        static CLIENT: Client<HttpConnector, Full<Bytes>> = client();
    }
    let c = CLIENT.with(|c| c.clone());
    let resp = tokio::time::timeout(Duration::from_secs(15), c.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

pub async fn get(url: &str) -> Result<(StatusCode, String), String> {
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    send(req).await.map(|(s, _, b)| (s, b))
}

/// What a test upstream does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Fail500 = 1,
    /// Close the connection without answering.
    Close = 2,
    /// Answer after 2 seconds, without reading the request body.
    Slow = 3,
    /// Read the whole request body first, then answer `200 <name> read <bytes>`.
    ReadBody = 4,
}

/// A real HTTP upstream on loopback: answers `200 <name>` (and `/health`), or fails as told.
/// `stop` closes the listener and every connection; `restart` listens again on the same port.
pub struct Upstream {
    pub name: &'static str,
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    health_mode: Arc<AtomicU8>,
    pub hits: Arc<AtomicU64>,
    pub health_hits: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let mut u = Upstream {
            name,
            addr,
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            health_mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            hits: Arc::new(AtomicU64::new(0)),
            health_hits: Arc::new(AtomicU64::new(0)),
            task: None,
        };
        u.task = Some(u.serve(listener));
        u
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_health(&self, mode: Mode) {
        self.health_mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).await.expect("rebind upstream");
        self.task = Some(self.serve(listener));
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let (name, mode, health_mode) = (self.name, self.mode.clone(), self.health_mode.clone());
        let (hits, health_hits) = (self.hits.clone(), self.health_hits.clone());
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (mode, health_mode) = (mode.clone(), health_mode.clone());
                let (hits, health_hits) = (hits.clone(), health_hits.clone());
                let svc = service_fn(move |req: Request<Incoming>| {
                    let health = req.uri().path() == "/health";
                    let m = if health {
                        health_hits.fetch_add(1, Ordering::SeqCst);
                        health_mode.load(Ordering::SeqCst)
                    } else {
                        hits.fetch_add(1, Ordering::SeqCst);
                        mode.load(Ordering::SeqCst)
                    };
                    async move {
                        let (status, body) = match m {
                            4 => match req.into_body().collect().await {
                                Ok(b) => (StatusCode::OK, format!("{name} read {}", b.to_bytes().len())),
                                Err(_) => return Err("the request body broke off"),
                            },
                            1 => (StatusCode::INTERNAL_SERVER_ERROR, format!("{name} failed")),
                            2 => return Err("closing"),
                            3 => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                (StatusCode::OK, name.to_string())
                            }
                            _ => (StatusCode::OK, name.to_string()),
                        };
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = status;
                        Ok::<_, &'static str>(resp)
                    }
                });
                conns.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}
