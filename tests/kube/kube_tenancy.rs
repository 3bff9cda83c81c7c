//! Namespaces as tenants against a real API server: the route of a newer namespace on an older
//! namespace's host is not served and its status names the owner; static endpoints need the
//! configuration's leave.

use std::time::Duration;

use crate::support::cluster::*;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

fn hosted(name: &str, host: &str, path: &str) -> serde_json::Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayRoute",
        "metadata": {"name": name},
        "spec": {"hosts": [host], "path": path, "upstream": "u"}
    })
}

async fn get_host(gw: &Gateway, host: &str, path: &str) -> Option<Reply> {
    let req = Request::get(gw.url(path))
        .header("host", host)
        .body(Full::<Bytes>::default())
        .ok()?;
    send(&client(), req).await.ok()
}

/// The `Accepted` condition of `kind` `ns/name` once it is False.
async fn refused(client: &kube::Client, ns: &str, kind: &str, name: &str) -> serde_json::Value {
    eventually(T, &format!("{kind} {ns}/{name} Accepted=False"), || async {
        let (_, conds) = conditions(client, ns, kind, name).await?;
        condition(&conds, "Accepted")
            .filter(|c| c["status"] == "False")
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_namespace_cannot_take_a_host_and_is_told_who_owns_it() {
    let Some(client) = cluster().await else { return };
    // `gh-tena-` sorts before `gh-tenb-`: the owner even if both are created in one second.
    let owner = namespace(&client, "gh-tena").await;
    let intruder = namespace(&client, "gh-tenb").await;
    let host = format!("shop-{owner}.example.com");
    let (shop, other) = (upstream("the shop").await, upstream("the intruder").await);
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&[
            "--namespace",
            &owner,
            "--namespace",
            &intruder,
            "--lease-namespace",
            &owner,
        ])
        // Static endpoints (on loopback: the test's upstreams) for the owner's namespace only.
        .env("GATEWAY_STATIC_ENDPOINT_NAMESPACES", &owner)
        .spawn();

    apply(&client, &owner, static_upstream("u", &shop.url())).await;
    apply(&client, &owner, hosted("storefront", &host, "/*")).await;
    eventually(T, "the owner's route live", || async {
        let r = get_host(&gw, &host, "/checkout").await?;
        (r.status == 200 && r.text() == "the shop").then_some(())
    })
    .await;

    apply(&client, &intruder, static_upstream("u", &other.url())).await;
    apply(&client, &intruder, hosted("checkout", &host, "/checkout/*")).await;

    let accepted = refused(&client, &intruder, "GatewayRoute", "checkout").await;
    assert_eq!(accepted["reason"], "Conflicted", "{accepted}");
    let message = accepted["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&host) && message.contains(&format!("namespace {owner}")),
        "{accepted}"
    );
    let accepted = refused(&client, &intruder, "GatewayUpstream", "u").await;
    assert_eq!(accepted["reason"], "NotPermitted", "{accepted}");
    assert!(
        accepted["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("not allowed in namespace {intruder}"))),
        "{accepted}"
    );

    // The owner keeps its host, and its route its status.
    let r = get_host(&gw, &host, "/checkout").await.expect("an answer");
    assert_eq!((r.status, r.text()), (200, "the shop".to_string()));
    let (_, conds) = eventually(T, "the owner's route Programmed", || async {
        let (s, c) = conditions(&client, &owner, "GatewayRoute", "storefront").await?;
        condition(&c, "Programmed")
            .is_some_and(|p| p["status"] == "True")
            .then_some((s, c))
    })
    .await;
    assert_eq!(condition(&conds, "Accepted").expect("Accepted")["status"], "True");
    assert_eq!(other.hits(), 0);
}
