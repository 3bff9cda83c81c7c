//! The API server goes away: the gateway keeps serving the last table, then catches up when
//! it returns. Stops and restarts the kube-apiserver of `.ci/kube-apiserver.sh` (same port,
//! same etcd), so it has the cluster to itself (`cluster_alone`). Needs
//! `eval "$(.ci/kube-apiserver.sh start)"`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::cluster::*;
use crate::support::*;

const T: Duration = Duration::from_secs(30);

fn script(mode: &str, dir: &std::path::Path) {
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/kube-apiserver.sh"))
        .arg(mode)
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run .ci/kube-apiserver.sh");
    assert!(status.success(), ".ci/kube-apiserver.sh {mode} failed");
}

/// Restarts the API server even if the test fails while it is down.
struct Outage {
    dir: PathBuf,
    down: bool,
}

impl Outage {
    fn begin(dir: PathBuf) -> Self {
        script("apiserver-stop", &dir);
        Outage { dir, down: true }
    }
    fn end(&mut self) {
        script("apiserver-start", &self.dir);
        self.down = false;
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if self.down {
            script("apiserver-start", &self.dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_keeps_flowing_without_the_api_server_and_catches_up() {
    // Alone: every other test of the cluster would lose the API server too.
    let Some(client) = cluster_alone().await else {
        return;
    };
    let dir = kube_dir();
    let ns = namespace(&client, "gh-outage").await;
    let up = upstream("still here").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    apply(&client, &ns, static_upstream("u", &up.url())).await;
    apply(&client, &ns, route("before", "/before", "u")).await;
    gw.wait_for("/before", 200, T).await;

    let mut outage = Outage::begin(dir);
    let (mut ok, mut failed) = (0, 0);
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        match gw.get("/before") {
            Some(r) if r.status == 200 => ok += 1,
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        failed, 0,
        "{ok} ok, {failed} failed while the API server was down"
    );
    assert!(gw.log().contains("retrying with backoff"), "{}", gw.log());
    outage.end();

    let back = Instant::now();
    apply(&client, &ns, route("after", "/after", "u")).await;
    gw.wait_for("/after", 200, T).await;
    let live = back.elapsed();
    eventually(T, "status of the new route", || async {
        let (s, _) = conditions(&client, &ns, "GatewayRoute", "after").await?;
        (s["observedGeneration"] == 1).then_some(())
    })
    .await;
    println!(
        "outage: {ok} requests served during the outage; after the API server returned: new route live in \
         {live:?}, its status written in {:?}",
        back.elapsed()
    );
    if std::env::var_os("GATEHOUSE_TEST_SHOW_LOG").is_some() {
        println!("{}", gw.log());
    }
    assert_eq!(gw.get("/before").map(|r| r.status), Some(200));
}
