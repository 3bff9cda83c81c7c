//! The `gatehouse` binary as a child process on free loopback ports, started through one
//! builder: standalone (a config file and a resources folder) or in Kubernetes mode (a
//! kubeconfig and command-line arguments), with whatever environment the test adds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::web::{get, get_blocking, send, Reply};
use super::{free_port, write_atomic, ADMIN_TOKEN};

/// What the log filter of a gateway in Kubernetes mode lets through: enough to see what the
/// controller did (the lease tests read it).
const KUBE_RUST_LOG: &str = "info,gatehouse::controller=debug,gatehouse::sources=debug,kube_client=error";

/// How long `start` waits for `/ready`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A gateway to start: `Gateway::builder()`, then what it runs with, then `start` (waits until it
/// is ready) or `spawn` (returns at once).
#[derive(Default)]
pub struct GatewayBuilder {
    config: Option<String>,
    resources: Vec<(String, String)>,
    env: Vec<(String, String)>,
    kubeconfig: Option<PathBuf>,
    args: Vec<String>,
}

impl GatewayBuilder {
    /// The gateway.yaml text, passed with `--config`.
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }

    /// A file of the resources folder (name, YAML text). Standalone gateways always get the
    /// folder (`--resources`), empty if no file is given; files can be added later with
    /// `Gateway::write_resources`.
    pub fn resource(mut self, name: &str, text: &str) -> Self {
        self.resources.push((name.to_string(), text.to_string()));
        self
    }

    /// `resource` for each (name, text).
    pub fn resources(mut self, files: &[(&str, &str)]) -> Self {
        for (name, text) in files {
            self = self.resource(name, text);
        }
        self
    }

    /// An environment variable, set after the defaults (so it wins over them).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// `env` for each (key, value).
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, vars: &[(K, V)]) -> Self {
        for (k, v) in vars {
            self = self.env(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Kubernetes mode against the cluster of `path`: no resources folder unless files are
    /// given, the working directory a fresh one, the controller's debug logs on.
    pub fn kubeconfig(mut self, path: &Path) -> Self {
        self.kubeconfig = Some(path.to_path_buf());
        self
    }

    /// Arguments after `gatehouse run`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Starts the process and waits until its admin port answers `/ready` (panics with the log
    /// if it exits or is not ready within 20 s).
    pub async fn start(self) -> Gateway {
        let mut gw = self.spawn();
        gw.wait_ready().await;
        gw
    }

    /// Starts the process and returns at once (Kubernetes-mode tests wait for their routes).
    pub fn spawn(self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let (http, admin, metrics, https) = (free_port(), free_port(), free_port(), free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("run");
        // Only what the test says: nothing of the gateway's settings from the environment the
        // tests run in.
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if key.starts_with("GATEWAY_")
                || matches!(
                    key,
                    "JWT_SECRET"
                        | "WEBHOOK_AUTH_TOKEN"
                        | "RUST_LOG"
                        | "KUBECONFIG"
                        | "KUBERNETES_SERVICE_HOST"
                )
            {
                cmd.env_remove(key);
            }
        }
        if let Some(config) = &self.config {
            let path = dir.path().join("gateway.yaml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        if self.kubeconfig.is_none() || !self.resources.is_empty() {
            let res = dir.path().join("resources");
            std::fs::create_dir_all(&res).unwrap();
            for (name, text) in &self.resources {
                std::fs::write(res.join(name), text).unwrap();
            }
            cmd.arg("--resources").arg(&res);
        }
        cmd.args(&self.args)
            .env("GATEWAY_SERVER_HTTP_PORT", http.to_string())
            .env("GATEWAY_SERVER_HTTPS_PORT", https.to_string())
            .env("GATEWAY_ADMIN_PORT", admin.to_string())
            .env("GATEWAY_METRICS_PORT", metrics.to_string())
            .env("GATEWAY_BIND_ADDRESS", "127.0.0.1");
        match &self.kubeconfig {
            None => {
                cmd.env("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
                    .env("GATEWAY_WORKER_THREADS", "2");
            }
            Some(kubeconfig) => {
                // The tests' upstreams listen on loopback (the API server refuses loopback in
                // Endpoints, and network namespaces need root): static endpoints, loopback
                // included, in every namespace. A test of the tenancy rules sets its own.
                cmd.current_dir(dir.path())
                    .env("KUBECONFIG", kubeconfig)
                    .env("RUST_LOG", KUBE_RUST_LOG)
                    .env("GATEWAY_STATIC_ENDPOINT_NAMESPACES", "*")
                    .env("GATEWAY_STATIC_ENDPOINTS_ALLOW_LOOPBACK", "true");
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = dir.path().join("gateway.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn gatehouse");
        Gateway {
            child,
            http,
            admin,
            metrics,
            https,
            dir,
        }
    }
}

/// One `gatehouse run` process; killed on drop. Its stdout and stderr go to a log file
/// (`log()`).
pub struct Gateway {
    pub child: Child,
    pub http: u16,
    pub admin: u16,
    pub metrics: u16,
    pub https: u16,
    dir: tempfile::TempDir,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// A standalone gateway with `config` (YAML text) and the resources `files` (name, text),
    /// ready: `Gateway::builder().config(config).resources(files).start()`.
    pub async fn start(config: &str, files: &[(&str, &str)]) -> Gateway {
        Gateway::builder().config(config).resources(files).start().await
    }

    /// Waits until the admin port answers `/ready`.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        let ready = format!("http://127.0.0.1:{}/ready", self.admin);
        while Instant::now() < deadline {
            let probe = tokio::time::timeout(Duration::from_secs(2), get(&ready)).await;
            if let Ok(Ok(r)) = probe {
                if r.status == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gateway exited before it was ready ({status}); log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway not ready; log:\n{}", self.log());
    }

    /// The resources folder (standalone).
    pub fn resources(&self) -> PathBuf {
        self.dir.path().join("resources")
    }

    /// Writes `yaml` as resources file `name` atomically (the gateway picks changes up live).
    pub fn write_resources(&self, name: &str, yaml: &str) {
        write_atomic(&self.resources().join(name), yaml);
    }

    /// A URL of the proxy port.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// GET `path` on the admin port with the admin token; panics unless 200 with JSON.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let req = http::Request::get(format!("http://127.0.0.1:{}{path}", self.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Default::default())
            .unwrap();
        let r = send(&super::client(), req).await.expect("admin answers");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// The metrics port's exposition text.
    pub async fn metrics_text(&self) -> String {
        let r = get(&format!("http://127.0.0.1:{}/metrics", self.metrics))
            .await
            .expect("metrics");
        r.text()
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGKILL: no lease release, no drain.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `path` answers `status` (config changes apply asynchronously); how long
    /// that took.
    pub async fn wait_status(&self, path: &str, status: u16) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if get(&self.url(path)).await.map(|r| r.status).ok() == Some(status) {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} never answered {status}; log:\n{}", self.log());
    }

    /// A blocking GET of `path` on the proxy port; None if the connection failed.
    pub fn get(&self, path: &str) -> Option<Reply> {
        get_blocking(self.http, path)
    }

    /// Waits until GET `path` answers `code` within `timeout`, and returns its body; panics
    /// with the gateway log otherwise.
    pub async fn wait_for(&self, path: &str, code: u16, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.get(path) {
                if r.status == code {
                    return r.text();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "GET {path} did not answer {code} within {timeout:?}; last: {:?}\n--- gateway log ---\n{}",
                    self.get(path).map(|r| (r.status, r.text())),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident memory of the process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The sum of `patches=N` over the status writer's "status written" log lines.
    pub fn status_patches(&self) -> u64 {
        self.log()
            .lines()
            .filter(|l| l.contains("status written"))
            .filter_map(|l| {
                l.split("patches=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
