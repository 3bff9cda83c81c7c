//! Secrets in Kubernetes mode: only the Secrets the configuration refers to are watched, and
//! their changes reach the snapshot live. Needs `eval "$(.ci/kube-apiserver.sh start)"`.

use std::sync::Arc;
use std::time::Duration;

use crate::support::cluster::*;
use gatehouse::compile::CompileOptions;
use gatehouse::routing::TableHandle;
use gatehouse::settings::{GatewayConfig, JwtConfig, SecretKeyRef};
use gatehouse::sources::kube::{start, KubeOptions};
use gatehouse::sources::Publisher;
use gatehouse::telemetry::Metrics;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

fn secret(name: &str, value: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "type": "Opaque", "stringData": {"secret": value}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_secrets_are_watched_and_applied_live() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-secrets").await;
    let mut cfg = GatewayConfig::default();
    cfg.auth.jwt = Some(JwtConfig {
        secret_ref: Some(SecretKeyRef {
            name: "jwt".into(),
            namespace: Some(ns.clone()),
            key: Some("secret".into()),
        }),
        ..Default::default()
    });
    let publisher = Arc::new(Publisher::new(
        TableHandle::default(),
        CompileOptions::default(),
        Metrics::new().expect("metrics"),
    ));
    let source = start(
        client.clone(),
        &cfg,
        KubeOptions {
            namespaces: vec![ns.clone()],
            home_namespace: ns.clone(),
            endpoints_api: None,
        },
        publisher,
    );
    let value_of = |name: &'static str| {
        let store = source.store.clone();
        move || {
            let (snap, _) = store.snapshot();
            snap.secrets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
                .and_then(|s| {
                    s.data
                        .as_ref()?
                        .get("secret")
                        .map(|v| String::from_utf8_lossy(&v.0).to_string())
                })
        }
    };
    let jwt = value_of("jwt");
    let cert = value_of("cert");

    apply(&client, &ns, secret("unrelated", "nobody asked")).await;
    apply(&client, &ns, secret("jwt", "key-1")).await;
    eventually(T, "jwt secret in the snapshot", || async {
        (jwt()? == "key-1").then_some(())
    })
    .await;

    // Rotation applies live.
    apply(&client, &ns, secret("jwt", "key-2")).await;
    eventually(T, "rotated jwt secret", || async {
        (jwt()? == "key-2").then_some(())
    })
    .await;

    // A route's TLS Secret is watched while the route refers to it.
    apply(&client, &ns, secret("cert", "pem")).await;
    assert_eq!(cert(), None, "not referenced yet");
    apply(&client, &ns, json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayRoute",
        "metadata": {"name": "tls"},
        "spec": {"path": "/tls", "upstream": "u", "hosts": ["a.example.com"], "tls": {"secretName": "cert"}}
    }))
    .await;
    eventually(T, "route TLS secret", || async {
        (cert()? == "pem").then_some(())
    })
    .await;
    delete(&client, &ns, "gatehouse.dev/v1alpha1", "GatewayRoute", "tls").await;
    eventually(T, "TLS secret forgotten", || async {
        cert().is_none().then_some(())
    })
    .await;

    // Deleting the referenced Secret removes it.
    delete(&client, &ns, "v1", "Secret", "jwt").await;
    eventually(T, "jwt secret gone", || async { jwt().is_none().then_some(()) }).await;

    let (snap, _) = source.store.snapshot();
    assert!(
        snap.secrets
            .iter()
            .all(|s| s.metadata.name.as_deref() != Some("unrelated")),
        "an unreferenced Secret was loaded"
    );
}
