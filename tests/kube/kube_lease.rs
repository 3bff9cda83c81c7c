//! Two replicas: both serve, only the Lease holder writes status, and the other takes over when
//! the holder dies. Needs `eval "$(.ci/kube-apiserver.sh start)"`.

use std::time::{Duration, Instant};

use crate::support::cluster::*;
use crate::support::*;
use k8s_openapi::api::coordination::v1::Lease;

const T: Duration = Duration::from_secs(20);
const LEASE: &str = "3s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_writes_status_and_another_takes_over() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-lease").await;
    let up = upstream("ok").await;
    let args = [
        "--namespace",
        &ns,
        "--lease-namespace",
        &ns,
        "--lease-duration",
        LEASE,
    ];
    let mut replicas = [
        Gateway::builder().kubeconfig(&kubeconfig()).args(&args).spawn(),
        Gateway::builder().kubeconfig(&kubeconfig()).args(&args).spawn(),
    ];

    apply(&client, &ns, static_upstream("u", &up.url())).await;
    apply(&client, &ns, route("one", "/one", "u")).await;
    for gw in &replicas {
        gw.wait_for("/one", 200, T).await;
    }
    eventually(T, "status of route one", || async {
        let (s, _) = conditions(&client, &ns, "GatewayRoute", "one").await?;
        (s["observedGeneration"] == 1).then_some(())
    })
    .await;

    // Exactly one holder, and only it wrote.
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &ns);
    let holder = eventually(T, "a lease holder", || async {
        leases
            .get("gatehouse-status-writer")
            .await
            .ok()?
            .spec?
            .holder_identity
    })
    .await;
    let leading: Vec<bool> = replicas
        .iter()
        .map(|g| g.log().contains("acquired the lease"))
        .collect();
    assert_eq!(
        leading.iter().filter(|l| **l).count(),
        1,
        "holder {holder}; leading {leading:?}"
    );
    let (leader, follower) = if leading[0] { (0, 1) } else { (1, 0) };
    assert!(
        replicas[leader].log().contains(&holder),
        "the log of the holder names {holder}"
    );
    assert!(replicas[leader].status_patches() > 0);
    assert_eq!(
        replicas[follower].status_patches(),
        0,
        "{}",
        replicas[follower].log()
    );

    // The holder dies without releasing the Lease; the other replica takes over.
    replicas[leader].kill();
    let died = Instant::now();
    apply(&client, &ns, route("two", "/two", "u")).await;
    replicas[follower].wait_for("/two", 200, T).await;
    eventually(T, "status of route two from the new holder", || async {
        let (s, _) = conditions(&client, &ns, "GatewayRoute", "two").await?;
        (s["observedGeneration"] == 1).then_some(())
    })
    .await;
    let took = died.elapsed();
    println!("takeover: status written {took:?} after the holder was killed (lease {LEASE})");
    assert!(replicas[follower].log().contains("acquired the lease"));
    let new_holder = leases
        .get("gatehouse-status-writer")
        .await
        .ok()
        .and_then(|l| l.spec?.holder_identity);
    assert_ne!(new_holder.as_deref(), Some(holder.as_str()));
    assert_eq!(replicas[follower].get("/one").map(|r| r.status), Some(200));
}
