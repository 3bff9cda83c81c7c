//! The test kube-apiserver (started by `.ci/kube-apiserver.sh start`, found through
//! `GATEHOUSE_TEST_KUBECONFIG`): an admin client, namespaces, server-side apply, status
//! conditions, upstreams on loopback or in a network namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::services::{self, KUBE_HOW_TO_START};
use super::upstream::{Mode, Upstream};

/// The kubeconfig of the test API server (for a test that got `cluster()`).
pub fn kubeconfig() -> PathBuf {
    match std::env::var_os("GATEHOUSE_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("GATEHOUSE_TEST_KUBECONFIG is not set: {KUBE_HOW_TO_START}"),
    }
}

/// The directory `.ci/kube-apiserver.sh start` made (ServiceAccount kubeconfigs; the outage
/// test stops and starts the API server in it).
pub fn kube_dir() -> PathBuf {
    match std::env::var_os("GATEHOUSE_TEST_KUBE_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("GATEHOUSE_TEST_KUBE_DIR is not set: {KUBE_HOW_TO_START}"),
    }
}

pub async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// Turns at the test API server: tests that change what every other test of the cluster
/// relies on (stopping the API server, the `gatehouse-system` namespace and its Lease, the
/// cluster-wide RBAC and the CRDs' owner) take it alone; the others share it.
static TURNS: RwLock<()> = RwLock::const_new(());

enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// An admin client of the test API server, with the CRDs applied, for as long as the test's
/// turn lasts (it ends when this is dropped). Derefs to the `kube::Client`.
pub struct Cluster {
    client: Client,
    _turn: Turn,
}

impl std::ops::Deref for Cluster {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// The test API server, shared with the other tests of the process; None (the test skips,
/// or fails where services are required) when there is none.
pub async fn cluster() -> Option<Cluster> {
    let path = services::kubeconfig()?;
    let turn = Turn::Shared(TURNS.read().await);
    Some(connect(&path, turn).await)
}

/// The test API server with no other test of the process using it meanwhile.
pub async fn cluster_alone() -> Option<Cluster> {
    let path = services::kubeconfig()?;
    let turn = Turn::Alone(TURNS.write().await);
    Some(connect(&path, turn).await)
}

async fn connect(kubeconfig: &Path, turn: Turn) -> Cluster {
    let client = client_from(kubeconfig).await;
    ensure_crds(&client).await;
    Cluster { client, _turn: turn }
}

async fn ensure_crds(client: &Client) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/gatehouse.dev.yaml"))
        .expect("crds/gatehouse.dev.yaml");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(&text) {
        let value = <yaml_serde::Value as serde::Deserialize>::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = yaml_serde::from_value(value).expect("crd");
        let name = crd.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("gatehouse-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply crd");
        names.push(name);
    }
    established(&api, names).await;
}

/// Waits until each CRD of `names` is Established (20 s each at most).
pub async fn established(api: &Api<CustomResourceDefinition>, names: Vec<String>) {
    for name in names {
        eventually(
            Duration::from_secs(20),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let ok = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    ok.then_some(())
                }
            },
        )
        .await;
    }
}

/// A fresh namespace named `prefix-XXXX`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ns");
    Api::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = match kind {
        "Endpoints" => "endpoints".to_string(),
        k => format!("{}s", k.to_ascii_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

/// Server-side applies a namespaced object given as JSON (what `kubectl apply` does).
pub async fn apply(client: &Client, ns: &str, obj: serde_json::Value) -> DynamicObject {
    let ar = resource_of(
        obj["apiVersion"].as_str().expect("apiVersion"),
        obj["kind"].as_str().expect("kind"),
    );
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.patch(
        &name,
        &PatchParams::apply("kubectl-test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

pub async fn delete(client: &Client, ns: &str, api_version: &str, kind: &str, name: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource_of(api_version, kind));
    let _ = api.delete(name, &Default::default()).await;
}

pub fn route(name: &str, path: &str, upstream: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayRoute",
        "metadata": {"name": name},
        "spec": {"path": path, "upstream": upstream}
    })
}

pub fn static_upstream(name: &str, endpoint: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayUpstream",
        "metadata": {"name": name},
        "spec": {"endpoints": [endpoint]}
    })
}

/// Polls `f` until it yields `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Status conditions of a Gatehouse object: (type, status, reason, observedGeneration).
pub async fn conditions(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> Option<(serde_json::Value, Vec<serde_json::Value>)> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource_of("gatehouse.dev/v1alpha1", kind));
    let obj = api.get(name).await.ok()?;
    let status = obj.data.get("status")?.clone();
    let conds = status.get("conditions")?.as_array()?.clone();
    Some((status, conds))
}

pub fn condition<'a>(conds: &'a [serde_json::Value], type_: &str) -> Option<&'a serde_json::Value> {
    conds.iter().find(|c| c["type"] == type_)
}

/// A loopback upstream that answers every request with 200 and `body`.
pub async fn upstream(body: &str) -> Upstream {
    Upstream::start_mode(body, Mode::Ok).await
}

/// A network namespace with a veth pair: test hosts whose addresses the API server accepts
/// in Endpoints (it refuses loopback). Removed on drop.
pub struct Netns {
    name: String,
    host_if: String,
    pub subnet: String,
    servers: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Netns {
    /// `10.213.<third>.0/24`: the host side is .1, test hosts take .2, .3, ...
    /// None (after a loud message) when network namespaces are not permitted here.
    pub fn create(tag: &str, third: u8, hosts: &[u8]) -> Option<Netns> {
        let name = format!("gh-{tag}");
        let host_if = format!("gh{third}h");
        let peer_if = format!("gh{third}n");
        let subnet = format!("10.213.{third}");
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_if]);
        if let Err(e) = ip(&["netns", "add", &name]) {
            services::skipped(&format!(
                "`ip netns` is not permitted here ({e}); Endpoints test hosts need it"
            ));
            return None;
        }
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            subnet: subnet.clone(),
            servers: Vec::new(),
            dirs: Vec::new(),
        };
        let host_addr = format!("{subnet}.1/24");
        let mut steps: Vec<Vec<String>> = vec![
            vec!["link", "add", &host_if, "type", "veth", "peer", "name", &peer_if],
            vec!["link", "set", &peer_if, "netns", &name],
            vec!["addr", "add", &host_addr, "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec!["netns", "exec", &name, "ip", "link", "set", "lo", "up"],
            vec!["netns", "exec", &name, "ip", "link", "set", &peer_if, "up"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for h in hosts {
            let a = format!("{subnet}.{h}/24");
            steps.push(
                ["netns", "exec", &name, "ip", "addr", "add", &a, "dev", &peer_if]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            );
        }
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            ip(&args).expect("set up the test network namespace");
        }
        Some(ns)
    }

    /// Starts an HTTP server at `subnet.host:port` in the namespace; `GET /who` answers `body`.
    pub fn serve(&mut self, host: u8, port: u16, body: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("who"), body).expect("write");
        let addr = format!("{}.{host}", self.subnet);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "python3",
                "-m",
                "http.server",
                &port.to_string(),
            ])
            .args(["--bind", &addr, "--directory"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a test host");
        self.servers.push(child);
        self.dirs.push(dir);
        // Wait until it listens.
        for _ in 0..200 {
            if std::net::TcpStream::connect_timeout(
                &format!("{addr}:{port}").parse().expect("addr"),
                Duration::from_millis(100),
            )
            .is_ok()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        addr
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
