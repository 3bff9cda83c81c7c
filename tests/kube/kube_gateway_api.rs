//! The Gateway API in Kubernetes mode: its objects and their references reach the snapshot
//! (status kept, a status change alone no recompile), the status writer writes what the
//! compiler gives once with transition times, and without the Gateway API CRDs the gateway
//! still starts, serves GatewayRoutes and picks the CRDs up once they are installed.
//! Needs `eval "$(.ci/kube-apiserver.sh start)"` (see support::services::KUBE_HOW_TO_START).
//!
//! The CRDs are the chart's copies of upstream's (charts/gatehouse/files/gateway-api/), made
//! installable on the test API server (Kubernetes 1.20) as the conformance harness does it:
//! no CEL rules, and string fields nullable (that build refuses empty strings otherwise).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::compile::gateway_api::{ApiKind, ApiStatus};
use gatehouse::compile::CompileOptions;
use gatehouse::controller::{gateway_api, GatewayStatusFeed, WriterStats};
use gatehouse::routing::TableHandle;
use gatehouse::settings::GatewayConfig;
use gatehouse::sources::kube::{start, KubeOptions, KubeSource};
use gatehouse::sources::Publisher;
use gatehouse::telemetry::Metrics;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use crate::support::cluster::*;
use crate::support::*;

const T: Duration = Duration::from_secs(20);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The controllerName of this file's classes: no gateway of another test takes them.
const TEST_CONTROLLER: &str = "gatehouse.dev/test-controller";

/// The standard Gateway API CRDs as the chart ships them (files/gateway-api/*.yaml).
pub fn gateway_api_crds() -> Vec<Value> {
    let dir = format!("{ROOT}/charts/gatehouse/files/gateway-api");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("files/gateway-api")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("read CRD");
            let yaml: yaml_serde::Value = yaml_serde::from_str(&text).expect("CRD YAML");
            serde_json::to_value(yaml).expect("CRD as JSON")
        })
        .collect()
}

/// A CRD made installable on kube-apiserver 1.20, as the conformance harness's
/// `transform_crd`: `x-kubernetes-validations` removed, `nullable: true` on every string
/// schema but list-map keys and items of set/map lists.
pub fn for_kubernetes_1_20(mut crd: Value) -> Value {
    fn walk(node: &mut Value, no_null: bool, item_keys: &[String]) {
        match node {
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, false, &[])),
            Value::Object(map) => {
                map.remove("x-kubernetes-validations");
                if map.get("type").is_some_and(|t| t == "string")
                    && !map.get("nullable").is_some_and(|n| n == true)
                    && !no_null
                {
                    map.insert("nullable".into(), Value::Bool(true));
                }
                let list_type = map.contains_key("x-kubernetes-list-type");
                let keys: Vec<String> = map
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                for (k, v) in map.iter_mut() {
                    match k.as_str() {
                        "properties" => {
                            for (name, sub) in v.as_object_mut().into_iter().flatten() {
                                walk(sub, item_keys.contains(name), &[]);
                            }
                        }
                        "items" => walk(v, list_type, &keys),
                        "additionalProperties" | "allOf" | "anyOf" | "oneOf" | "not" => walk(v, false, &[]),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    for v in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
        walk(&mut v["schema"]["openAPIV3Schema"], false, &[]);
    }
    crd
}

/// Installs (or updates) the Gateway API CRDs and waits until they are established.
pub async fn install_gateway_api_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in gateway_api_crds() {
        let crd = for_kubernetes_1_20(crd);
        let name = crd["metadata"]["name"].as_str().expect("name").to_string();
        api.patch(
            &name,
            &PatchParams::apply("gatehouse-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        names.push(name);
    }
    established(&api, names).await;
}

/// Deletes the Gateway API CRDs (and so every object of them) and waits until they are gone.
pub async fn delete_gateway_api_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = gateway_api_crds()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    for name in &names {
        let _ = api.delete(name, &Default::default()).await;
    }
    for name in names {
        eventually(Duration::from_secs(60), &format!("CRD {name} deleted"), || {
            let api = api.clone();
            let name = name.clone();
            async move { matches!(api.get_opt(&name).await, Ok(None)).then_some(()) }
        })
        .await;
    }
}

fn resource(kind: &str) -> (ApiResource, bool) {
    let (version, plural, cluster) = match kind {
        "GatewayClass" => ("v1", "gatewayclasses", true),
        "Gateway" => ("v1", "gateways", false),
        "HTTPRoute" => ("v1", "httproutes", false),
        "ReferenceGrant" => ("v1beta1", "referencegrants", false),
        k => panic!("not a Gateway API kind: {k}"),
    };
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", version, kind);
    (ApiResource::from_gvk_with_plural(&gvk, plural), cluster)
}

/// The API of a Gateway API kind (in `ns` unless cluster-scoped).
pub fn api_of(client: &Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    match resource(kind) {
        (ar, true) => Api::all_with(client.clone(), &ar),
        (ar, false) => Api::namespaced_with(client.clone(), ns, &ar),
    }
}

/// Server-side applies a Gateway API object (`kind` from the JSON) in `ns`.
pub async fn apply_api(client: &Client, ns: &str, obj: Value) -> DynamicObject {
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    api_of(client, &kind, ns)
        .patch(
            &name,
            &PatchParams::apply("kubectl-test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"))
}

/// The object's status as the API server holds it.
pub async fn status_of(client: &Client, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let obj = api_of(client, kind, ns).get_opt(name).await.ok()??;
    obj.data.get("status").cloned()
}

pub fn gateway_class(name: &str, controller: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": controller}
    })
}

pub fn gateway(name: &str, class: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {"gatewayClassName": class, "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
             "tls": {"certificateRefs": [{"name": "cert"}]}}
        ]}
    })
}

pub fn http_route(name: &str, gateway: &str, backends: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": gateway}], "hostnames": ["a.example.com"],
                 "rules": [{"backendRefs": backends}]}
    })
}

/// The Kubernetes-mode source on `ns` with its own publisher (nothing served), and the
/// publisher's metrics (to count publishes).
fn source(client: &Client, ns: &str) -> (KubeSource, Metrics) {
    let metrics = Metrics::new().expect("metrics");
    let publisher = Arc::new(Publisher::new(
        TableHandle::default(),
        CompileOptions::default(),
        metrics.clone(),
    ));
    let source = start(
        client.clone(),
        &GatewayConfig::default(),
        KubeOptions {
            namespaces: vec![ns.to_string()],
            home_namespace: ns.to_string(),
            endpoints_api: None,
        },
        publisher,
    );
    (source, metrics)
}

fn publishes(metrics: &Metrics) -> u64 {
    ["success", "partial", "failure"]
        .iter()
        .map(|r| metrics.config_reloads_total.with_label_values(&[*r]).get())
        .sum()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_objects_and_their_references_reach_the_snapshot() {
    let Some(client) = cluster().await else { return };
    install_gateway_api_crds(&client).await;
    let ns = namespace(&client, "gh-gwapi").await;
    let class = unique("gh-class");
    let (source, metrics) = source(&client, &ns);
    let store = source.store.clone();

    apply_api(&client, "", gateway_class(&class, TEST_CONTROLLER)).await;
    apply_api(&client, &ns, gateway("gw", &class)).await;
    apply_api(
        &client,
        &ns,
        http_route(
            "r",
            "gw",
            json!([{"name": "svc", "port": 80}, {"name": "missing", "port": 80},
                   {"group": "example.com", "kind": "Bucket", "name": "not-a-service"}]),
        ),
    )
    .await;
    apply_api(&client, &ns, json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "grant"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "elsewhere"}],
                 "to": [{"group": "", "kind": "Service"}]}
    }))
    .await;
    apply(
        &client,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
        }),
    )
    .await;
    apply(
        &client,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"},
            "type": "Opaque", "stringData": {"tls.crt": "c", "tls.key": "k"}
        }),
    )
    .await;
    let labelled = json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"gateway-test": "yes"}}
    });
    Api::<k8s_openapi::api::core::v1::Namespace>::all((*client).clone())
        .patch(&ns, &PatchParams::apply("kubectl-test"), &Patch::Apply(&labelled))
        .await
        .expect("label the namespace");

    let snap = eventually(T, "the Gateway API objects and their references", || async {
        let (snap, _) = store.snapshot();
        let api = &snap.gateway_api;
        let ready = api
            .classes
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(&class))
            && api.gateways.len() == 1
            && api.routes.len() == 1
            && api.grants.len() == 1
            && api
                .namespaces
                .get(&ns)
                .is_some_and(|l| l.get("gateway-test").is_some())
            && snap.services.contains_key(&format!("{ns}/svc"))
            && snap
                .secrets
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some("cert"));
        ready.then_some(snap)
    })
    .await;
    let api = &snap.gateway_api;
    assert_eq!(api.gateways[0].spec.listeners.len(), 2);
    assert_eq!(api.routes[0].spec.parent_refs[0].name, "gw");
    assert_eq!(api.grants[0].spec.to[0].kind, "Service");
    assert_eq!(
        api.namespaces.len(),
        1,
        "only the watched namespace: {:?}",
        api.namespaces
    );
    // A Service that exists has an entry (here without ready endpoints); one that does not
    // exist has none; other kinds of backends are not Services.
    let svc = &snap.services[&format!("{ns}/svc")];
    assert_eq!(svc.ports.len(), 1);
    assert!(svc.ports[0].addresses.is_empty());
    assert!(!snap.services.contains_key(&format!("{ns}/missing")));
    assert!(!snap.services.contains_key(&format!("{ns}/not-a-service")));

    // Status is kept, and a change of status alone is no reason to compile again. Other tests
    // change GatewayClasses (watched cluster-wide) meanwhile: a quiet try out of a few says it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(publishes(&metrics) > 0, "nothing was published");
    let mut quiet = false;
    for attempt in 0..5 {
        let before = publishes(&metrics);
        let other_parent = json!({"parents": [{
            "parentRef": {"name": "elsewhere"}, "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": format!("theirs, try {attempt}"),
                            "lastTransitionTime": "2024-01-01T00:00:00Z"}]
        }]});
        api_of(&client, "HTTPRoute", &ns)
            .patch_status(
                "r",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": other_parent})),
            )
            .await
            .expect("patch status");
        let message = format!("theirs, try {attempt}");
        eventually(T, "the route's status in the store", || async {
            let held = store.api_status(ApiKind::HTTPRoute, Some(&ns), "r")?;
            (held["parents"][0]["conditions"][0]["message"] == message.as_str()).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if publishes(&metrics) == before {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "every change of status alone was compiled");
    let before = publishes(&metrics);
    let (snap, _) = store.snapshot();
    assert_eq!(
        snap.gateway_api.routes[0]
            .status
            .as_ref()
            .map(|s| s["parents"][0]["controllerName"].clone()),
        Some(json!("example.com/other")),
        "the snapshot carries the status"
    );
    // A spec change is one.
    apply_api(
        &client,
        &ns,
        http_route("r", "gw", json!([{"name": "svc", "port": 80}])),
    )
    .await;
    eventually(T, "a publish after a spec change", || async {
        (publishes(&metrics) > before).then_some(())
    })
    .await;

    api_of(&client, "GatewayClass", "")
        .delete(&class, &Default::default())
        .await
        .expect("delete class");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_writer_writes_gateway_api_status_once_with_transition_times() {
    let Some(client) = cluster().await else { return };
    install_gateway_api_crds(&client).await;
    let ns = namespace(&client, "gh-gwstatus").await;
    let class = unique("gh-class");
    let (source, _) = source(&client, &ns);
    let store = source.store.clone();
    apply_api(&client, "", gateway_class(&class, TEST_CONTROLLER)).await;
    apply_api(&client, &ns, gateway("gw", &class)).await;
    apply_api(
        &client,
        &ns,
        http_route("r", "gw", json!([{"name": "svc", "port": 80}])),
    )
    .await;
    // Another controller's parent entry, which our writes must keep.
    let theirs = json!({
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "elsewhere"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    });
    api_of(&client, "HTTPRoute", &ns)
        .patch_status(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": [theirs]}})),
        )
        .await
        .expect("patch status");
    eventually(T, "the objects in the store", || async {
        let seen = store.api_status(ApiKind::GatewayClass, None, &class).is_some()
            && store.api_status(ApiKind::Gateway, Some(&ns), "gw").is_some()
            && store
                .api_status(ApiKind::HTTPRoute, Some(&ns), "r")
                .is_some_and(|s| s["parents"][0]["controllerName"] == "example.com/other");
        seen.then_some(())
    })
    .await;

    let cond = |t: &str, ok: bool, reason: &str| {
        json!({"type": t, "status": if ok { "True" } else { "False" }, "reason": reason,
               "message": format!("{t} says {ok}"), "observedGeneration": 1})
    };
    let statuses = |accepted: bool| {
        Arc::new(vec![
            ApiStatus {
                kind: ApiKind::GatewayClass,
                namespace: None,
                name: class.clone(),
                generation: Some(1),
                status: std::sync::Arc::new(json!({"conditions": [cond("Accepted", true, "Accepted")]})),
            },
            ApiStatus {
                kind: ApiKind::Gateway,
                namespace: Some(ns.clone()),
                name: "gw".into(),
                generation: Some(1),
                status: std::sync::Arc::new(json!({
                    "addresses": [{"type": "IPAddress", "value": "127.0.1.9"}],
                    "conditions": [cond("Accepted", accepted, if accepted { "Accepted" } else { "Invalid" }),
                                   cond("Programmed", true, "Programmed")],
                    "listeners": [
                        {"name": "http", "attachedRoutes": 1,
                         "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                         "conditions": [cond("Accepted", true, "Accepted")]},
                        {"name": "https", "attachedRoutes": 0,
                         "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                         "conditions": [cond("ResolvedRefs", false, "InvalidCertificateRef")]}
                    ]
                })),
            },
            ApiStatus {
                kind: ApiKind::HTTPRoute,
                namespace: Some(ns.clone()),
                name: "r".into(),
                generation: Some(1),
                status: std::sync::Arc::new(json!({"parents": [{
                    "parentRef": {"name": "gw"}, "controllerName": TEST_CONTROLLER,
                    "conditions": [cond("Accepted", true, "Accepted"), cond("ResolvedRefs", false, "BackendNotFound")]
                }]})),
            },
        ])
    };
    let (status_tx, status_rx) = tokio::sync::watch::channel(Arc::new(Vec::new()));
    let (_leader_tx, leader_rx) = tokio::sync::watch::channel(true);
    let stats = Arc::new(WriterStats::default());
    let writer = tokio::spawn(gateway_api::run(
        (*client).clone(),
        GatewayStatusFeed {
            lookup: store.clone(),
            status: status_rx,
            controller_name: TEST_CONTROLLER.into(),
        },
        leader_rx,
        stats.clone(),
    ));
    status_tx.send_replace(statuses(true));

    let gw_status = eventually(T, "the Gateway's status written", || async {
        let s = status_of(&client, "Gateway", &ns, "gw").await?;
        (s["listeners"].as_array()?.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(gw_status["addresses"][0]["value"], "127.0.1.9");
    let every_condition = |s: &Value| -> Vec<Value> {
        let mut out: Vec<Value> = s["conditions"].as_array().cloned().unwrap_or_default();
        for l in s["listeners"].as_array().into_iter().flatten() {
            out.extend(l["conditions"].as_array().cloned().unwrap_or_default());
        }
        for p in s["parents"].as_array().into_iter().flatten() {
            out.extend(p["conditions"].as_array().cloned().unwrap_or_default());
        }
        out
    };
    for c in every_condition(&gw_status) {
        assert!(
            c["lastTransitionTime"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{c}"
        );
        assert!(c["message"].as_str().is_some_and(|m| !m.is_empty()), "{c}");
        assert_eq!(c["observedGeneration"], 1, "{c}");
    }
    let route_status = eventually(T, "the route's status written", || async {
        let s = status_of(&client, "HTTPRoute", &ns, "r").await?;
        (s["parents"].as_array()?.len() == 2).then_some(s)
    })
    .await;
    let parents = route_status["parents"].as_array().expect("parents");
    assert_eq!(parents[0]["controllerName"], TEST_CONTROLLER);
    assert_eq!(
        parents[1], theirs,
        "the other controller's entry is kept as it was"
    );
    let class_status = eventually(T, "the class's status written", || async {
        let s = status_of(&client, "GatewayClass", "", &class).await?;
        (s["conditions"][0]["reason"] == "Accepted").then_some(s)
    })
    .await;
    assert!(class_status["conditions"][0]["lastTransitionTime"].is_string());
    assert_eq!(stats.api_patches.load(Ordering::Relaxed), 3);

    // The same content again, before and after the watch has seen the writes: nothing sent.
    status_tx.send_replace(statuses(true));
    eventually(T, "the writes seen by the watch", || async {
        let s = store.api_status(ApiKind::Gateway, Some(&ns), "gw")?;
        (s["listeners"].as_array()?.len() == 2).then_some(())
    })
    .await;
    status_tx.send_replace(statuses(true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stats.api_patches.load(Ordering::Relaxed),
        3,
        "the same status was written again"
    );
    assert_eq!(stats.failures.load(Ordering::Relaxed), 0);

    // One condition changes: only its time moves.
    let time_of = |s: &Value, t: &str| {
        s["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == t))
            .map(|c| c["lastTransitionTime"].clone())
    };
    tokio::time::sleep(Duration::from_millis(1100)).await; // a moved time shows
    status_tx.send_replace(statuses(false));
    let changed = eventually(T, "Accepted=False written", || async {
        let s = status_of(&client, "Gateway", &ns, "gw").await?;
        let accepted = s["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Accepted")?
            .clone();
        (accepted["status"] == "False").then_some(s)
    })
    .await;
    assert_ne!(time_of(&changed, "Accepted"), time_of(&gw_status, "Accepted"));
    assert_eq!(time_of(&changed, "Programmed"), time_of(&gw_status, "Programmed"));
    assert_eq!(
        changed["listeners"][1]["conditions"][0]["lastTransitionTime"],
        gw_status["listeners"][1]["conditions"][0]["lastTransitionTime"]
    );
    assert_eq!(stats.api_patches.load(Ordering::Relaxed), 4);

    // Someone else rewrites the Gateway's status while the compiled status stays the very
    // same: the next round puts ours back (an unchanged status is passed over only while the
    // object is unchanged too).
    let same = statuses(false);
    status_tx.send_replace(same.clone());
    eventually(T, "Accepted=False seen by the watch", || async {
        let s = store.api_status(ApiKind::Gateway, Some(&ns), "gw")?;
        (s["conditions"][0]["status"] == "False").then_some(())
    })
    .await;
    api_of(&client, "Gateway", &ns)
        .patch_status(
            "gw",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .expect("patch status");
    eventually(T, "the foreign write seen by the watch", || async {
        let s = store.api_status(ApiKind::Gateway, Some(&ns), "gw")?;
        s["conditions"].as_array()?.is_empty().then_some(())
    })
    .await;
    status_tx.send_replace(same);
    eventually(T, "our status written back", || async {
        let s = status_of(&client, "Gateway", &ns, "gw").await?;
        (s["conditions"].as_array()?.len() == 2).then_some(())
    })
    .await;
    assert_eq!(stats.api_patches.load(Ordering::Relaxed), 5);

    writer.abort();
    api_of(&client, "GatewayClass", "")
        .delete(&class, &Default::default())
        .await
        .expect("delete class");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gateway_api_crds_the_gateway_serves_routes_and_finds_them_later() {
    // Alone: the Gateway API CRDs go away for a while.
    let Some(client) = cluster_alone().await else {
        return;
    };
    delete_gateway_api_crds(&client).await;
    let ns = namespace(&client, "gh-nogwapi").await;
    let up = upstream("served without the Gateway API").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    apply(&client, &ns, static_upstream("u", &up.url())).await;
    apply(&client, &ns, route("r", "/plain", "u")).await;
    assert_eq!(
        gw.wait_for("/plain", 200, T).await,
        "served without the Gateway API"
    );
    eventually(T, "the missing Gateway API said once", || async {
        let log = gw.log();
        (log.matches("the Gateway API is not installed").count() == 1).then_some(())
    })
    .await;
    assert!(!gw.log().contains("failed, retrying"), "{}", gw.log());

    // Installed later: the watches find the CRDs at their next look (every 30 s).
    install_gateway_api_crds(&client).await;
    eventually(
        Duration::from_secs(50),
        "the Gateway API watched once installed",
        || async {
            let log = gw.log();
            (log.contains(&format!("HTTPRoute in namespace {ns} is served now"))
                && log.contains("GatewayClass (cluster-scoped) is served now"))
            .then_some(())
        },
    )
    .await;
    assert_eq!(gw.get("/plain").map(|r| r.status), Some(200));
}

/// What a gateway running as `user` needs of the Gateway API is granted: watching the kinds
/// (GatewayClasses cluster-wide, the others and the Namespace in `namespaces`, empty: all) and
/// writing the status of a GatewayClass, a Gateway and an HTTPRoute in `ns`, both through
/// the gateway's own code.
pub async fn rbac_is_enough(admin: &Client, user: Client, namespaces: Vec<String>, ns: &str) {
    let class = unique("gh-rbac-class");
    apply_api(admin, "", gateway_class(&class, TEST_CONTROLLER)).await;
    apply_api(admin, ns, gateway("gw", &class)).await;
    apply_api(
        admin,
        ns,
        http_route("r", "gw", json!([{"name": "svc", "port": 80}])),
    )
    .await;
    let publisher = Arc::new(Publisher::new(
        TableHandle::default(),
        CompileOptions::default(),
        Metrics::new().expect("metrics"),
    ));
    let source = start(
        user.clone(),
        &GatewayConfig::default(),
        KubeOptions {
            namespaces,
            home_namespace: ns.to_string(),
            endpoints_api: None,
        },
        publisher,
    );
    let store = source.store.clone();
    eventually(
        T,
        "the Gateway API objects watched with the release's RBAC",
        || async {
            let (snap, _) = store.snapshot();
            let api = &snap.gateway_api;
            let seen = api
                .classes
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(&class))
                && api
                    .gateways
                    .iter()
                    .any(|g| g.metadata.namespace.as_deref() == Some(ns))
                && api
                    .routes
                    .iter()
                    .any(|r| r.metadata.namespace.as_deref() == Some(ns))
                && api.namespaces.contains_key(ns);
            seen.then_some(())
        },
    )
    .await;
    let accepted = json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                          "message": "written with the release's RBAC", "observedGeneration": 1}]});
    let status = |kind, namespace: Option<&str>, name: &str, status: Value| ApiStatus {
        kind,
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
        generation: Some(1),
        status: std::sync::Arc::new(status),
    };
    let statuses = vec![
        status(ApiKind::GatewayClass, None, &class, accepted.clone()),
        status(ApiKind::Gateway, Some(ns), "gw", accepted),
        status(
            ApiKind::HTTPRoute,
            Some(ns),
            "r",
            json!({"parents": [{"parentRef": {"name": "gw"}, "controllerName": TEST_CONTROLLER,
                   "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                   "message": "written with the release's RBAC", "observedGeneration": 1}]}]}),
        ),
    ];
    let (_status_tx, status_rx) = tokio::sync::watch::channel(Arc::new(statuses));
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
    let stats = Arc::new(WriterStats::default());
    let writer = tokio::spawn(gateway_api::run(
        user,
        GatewayStatusFeed {
            lookup: store.clone(),
            status: status_rx,
            controller_name: TEST_CONTROLLER.into(),
        },
        leader_rx,
        stats.clone(),
    ));
    leader_tx.send_replace(true);
    eventually(T, "status written with the release's RBAC", || async {
        (stats.api_patches.load(Ordering::Relaxed) == 3).then_some(())
    })
    .await;
    assert_eq!(stats.failures.load(Ordering::Relaxed), 0);
    for (kind, namespace, name) in [
        ("GatewayClass", "", class.as_str()),
        ("Gateway", ns, "gw"),
        ("HTTPRoute", ns, "r"),
    ] {
        let s = status_of(admin, kind, namespace, name).await.expect("status");
        assert!(
            s.to_string().contains("written with the release's RBAC"),
            "{kind} {name}: {s}"
        );
    }
    writer.abort();
    drop(source);
    let _ = api_of(admin, "GatewayClass", "")
        .delete(&class, &Default::default())
        .await;
}
