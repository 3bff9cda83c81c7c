//! Kubernetes mode against a real kube-apiserver: routes go live, status is honest and written
//! once, broken resources do not take others down, Services and Secrets are followed.
//! Needs `eval "$(.ci/kube-apiserver.sh start)"` first (see support::services::KUBE_HOW_TO_START).

use std::time::Duration;

use crate::support::cluster::*;
use crate::support::*;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_go_live_with_honest_status_written_once() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-live").await;
    let up = upstream("hello from upstream").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();

    apply(&client, &ns, static_upstream("users", &up.url())).await;
    apply(&client, &ns, route("users", "/users/{id}", "users")).await;
    apply(&client, &ns, route("broken", "/bad/x{id}", "users")).await;
    apply(&client, &ns, route("orphan", "/orphan", "missing")).await;

    assert_eq!(gw.wait_for("/users/42", 200, T).await, "hello from upstream");

    // Route status: all three conditions True with the generation acted on.
    let (status, conds) = eventually(T, "route status", || async {
        let (s, c) = conditions(&client, &ns, "GatewayRoute", "users").await?;
        (c.len() == 3).then_some((s, c))
    })
    .await;
    assert_eq!(status["observedGeneration"], 1);
    for t in ["Accepted", "ResolvedRefs", "Programmed"] {
        let c = condition(&conds, t).unwrap_or_else(|| panic!("{t} missing: {conds:?}"));
        assert_eq!(c["status"], "True", "{c}");
        assert_eq!(c["observedGeneration"], 1);
        assert!(c["lastTransitionTime"].is_string());
    }

    // The broken route is rejected with a reason and a message; the others keep serving.
    let (_, conds) = eventually(T, "broken route status", || async {
        conditions(&client, &ns, "GatewayRoute", "broken").await
    })
    .await;
    let accepted = condition(&conds, "Accepted").expect("Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidPath");
    assert!(
        accepted["message"].as_str().is_some_and(|m| m.contains("x{id}")),
        "{accepted}"
    );
    assert_eq!(
        condition(&conds, "Programmed").expect("Programmed")["status"],
        "False"
    );

    let (_, conds) = eventually(T, "orphan route status", || async {
        let (s, c) = conditions(&client, &ns, "GatewayRoute", "orphan").await?;
        (c.len() == 3).then_some((s, c))
    })
    .await;
    assert_eq!(condition(&conds, "Accepted").expect("Accepted")["status"], "True");
    let refs = condition(&conds, "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(refs["status"], "False");
    assert_eq!(refs["reason"], "UpstreamNotFound");

    // Upstream status: Ready with endpoint counts.
    let (status, conds) = eventually(T, "upstream status", || async {
        conditions(&client, &ns, "GatewayUpstream", "users").await
    })
    .await;
    assert_eq!(condition(&conds, "Ready").expect("Ready")["status"], "True");
    assert_eq!(status["endpoints"], json!({"total": 1, "healthy": 1}));

    // No write loop: nothing changes on the server while nothing changes in the spec.
    let rv = |o: kube::api::DynamicObject| o.metadata.resource_version;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("gatehouse.dev", "v1alpha1", "GatewayRoute"),
            "gatewayroutes",
        ),
    );
    let before = rv(api.get("users").await.expect("get"));
    let first_time = condition(&conds, "Ready").expect("Ready")["lastTransitionTime"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        before,
        rv(api.get("users").await.expect("get")),
        "status was rewritten without a change"
    );

    // A new generation: observedGeneration follows, unchanged conditions keep their time.
    let accepted_time = {
        let (_, c) = conditions(&client, &ns, "GatewayRoute", "users")
            .await
            .expect("status");
        condition(&c, "Accepted").expect("Accepted")["lastTransitionTime"].clone()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await; // make a moved time visible
    apply(
        &client,
        &ns,
        json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayRoute",
            "metadata": {"name": "users"},
            "spec": {"path": "/people/{id}", "upstream": "users"}
        }),
    )
    .await;
    gw.wait_for("/people/7", 200, T).await;
    let (_, conds) = eventually(T, "observedGeneration 2", || async {
        let (s, c) = conditions(&client, &ns, "GatewayRoute", "users").await?;
        (s["observedGeneration"] == 2).then_some((s, c))
    })
    .await;
    let accepted = condition(&conds, "Accepted").expect("Accepted");
    assert_eq!(accepted["observedGeneration"], 2);
    assert_eq!(
        accepted["lastTransitionTime"], accepted_time,
        "time moved without a status change"
    );
    assert_eq!(gw.get("/users/42").map(|r| r.status), Some(404));
    let (_, conds) = conditions(&client, &ns, "GatewayUpstream", "users")
        .await
        .expect("status");
    assert_eq!(
        condition(&conds, "Ready").expect("Ready")["lastTransitionTime"],
        first_time
    );

    // Deleting the route takes it out of the table.
    delete(&client, &ns, "gatehouse.dev/v1alpha1", "GatewayRoute", "users").await;
    eventually(T, "route gone", || async {
        (gw.get("/people/7")?.status == 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_flag_limits_what_is_watched() {
    let Some(client) = cluster().await else { return };
    let watched = namespace(&client, "gh-watched").await;
    let other = namespace(&client, "gh-other").await;
    let up = upstream("ok").await;
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &watched, "--lease-namespace", &watched])
        .spawn();
    for ns in [&watched, &other] {
        apply(&client, ns, static_upstream("u", &up.url())).await;
    }
    apply(&client, &other, route("r", "/other", "u")).await;
    apply(&client, &watched, route("r", "/watched", "u")).await;
    gw.wait_for("/watched", 200, T).await;
    assert_eq!(gw.get("/other").map(|r| r.status), Some(404));
    // Not watched, so no status either.
    assert!(conditions(&client, &other, "GatewayRoute", "r").await.is_none());
}

fn service(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    })
}

fn slice(name: &str, service: &str, ready: &[(&str, bool)]) -> serde_json::Value {
    let endpoints: Vec<_> = ready
        .iter()
        .map(|(a, r)| json!({"addresses": [a], "conditions": {"ready": r}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

fn endpoints(name: &str, ready: &[&str], not_ready: &[&str]) -> serde_json::Value {
    let addrs = |v: &[&str]| v.iter().map(|a| json!({"ip": a})).collect::<Vec<_>>();
    // An empty subset is invalid: no addresses at all means no subsets.
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        json!([{
            "addresses": addrs(ready),
            "notReadyAddresses": addrs(not_ready),
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }])
    };
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name},
        "subsets": subsets
    })
}

/// Who answers `GET /who` over `n` requests (round robin spreads them).
fn answers(gw: &Gateway, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| gw.get("/who"))
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .collect()
}

async fn follows_service_endpoints(use_slices: bool, third: u8) {
    let Some(client) = cluster().await else { return };
    let Some(mut net) = Netns::create(&format!("ep{third}"), third, &[2, 3]) else {
        return;
    };
    let a = net.serve(2, 8080, "a");
    let b = net.serve(3, 8080, "b");
    let ns = namespace(&client, "gh-svc").await;
    let api = if use_slices { "auto" } else { "endpoints" };
    let gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&[
            "--namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--endpoints-api",
            api,
        ])
        .spawn();
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let publish = |ready: Vec<(&'static str, bool)>| {
        let client = client.clone();
        let ns = ns.clone();
        let (a, b) = (a.clone(), b.clone());
        async move {
            let addr = |h: &str| if h == "a" { a.clone() } else { b.clone() };
            if use_slices {
                let list: Vec<(String, bool)> = ready.iter().map(|(h, r)| (addr(h), *r)).collect();
                let refs: Vec<(&str, bool)> = list.iter().map(|(h, r)| (h.as_str(), *r)).collect();
                apply(&client, &ns, slice("web-1", "web", &refs)).await;
            } else {
                let r: Vec<String> = ready.iter().filter(|x| x.1).map(|(h, _)| addr(h)).collect();
                let n: Vec<String> = ready.iter().filter(|x| !x.1).map(|(h, _)| addr(h)).collect();
                let r: Vec<&str> = r.iter().map(String::as_str).collect();
                let n: Vec<&str> = n.iter().map(String::as_str).collect();
                apply(&client, &ns, endpoints("web", &r, &n)).await;
            }
        }
    };

    apply(
        &client,
        &ns,
        json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayUpstream",
            "metadata": {"name": "web"},
            "spec": {"service": {"name": "web", "port": 80}}
        }),
    )
    .await;
    apply(&client, &ns, route("who", "/who", "web")).await;
    // No Service yet: ResolvedRefs=False ServiceNotFound.
    let (_, conds) = eventually(T, "ServiceNotFound", || async {
        let (s, c) = conditions(&client, &ns, "GatewayUpstream", "web").await?;
        (condition(&c, "ResolvedRefs")?["reason"] == "ServiceNotFound").then_some((s, c))
    })
    .await;
    assert_eq!(
        condition(&conds, "ResolvedRefs").expect("refs")["status"],
        "False"
    );

    apply(&client, &ns, service("web")).await;
    publish(vec![("a", true)]).await;
    assert_eq!(gw.wait_for("/who", 200, T).await, "a");

    // Scale up: both answer.
    publish(vec![("a", true), ("b", true)]).await;
    eventually(T, "both endpoints", || async {
        (answers(&gw, 6) == set(&["a", "b"])).then_some(())
    })
    .await;
    eventually(T, "endpoint count 2", || async {
        let (s, _) = conditions(&client, &ns, "GatewayUpstream", "web").await?;
        (s["endpoints"]["total"] == 2).then_some(())
    })
    .await;

    // Not ready addresses are excluded.
    publish(vec![("a", false), ("b", true)]).await;
    eventually(T, "only b", || async {
        (answers(&gw, 6) == set(&["b"])).then_some(())
    })
    .await;

    // Scale to zero: 503 and Ready=False.
    publish(vec![]).await;
    gw.wait_for("/who", 503, T).await;
    eventually(T, "Ready=False", || async {
        let (_, c) = conditions(&client, &ns, "GatewayUpstream", "web").await?;
        (condition(&c, "Ready")?["reason"] == "NoEndpoints").then_some(())
    })
    .await;
    drop(gw);
    drop(net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_upstream_follows_endpoint_slices() {
    follows_service_endpoints(true, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_upstream_follows_v1_endpoints() {
    follows_service_endpoints(false, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rbac_manifest_is_enough() {
    // Alone: the cluster-wide RBAC, and a Lease in gatehouse-system as the chart's release has.
    let Some(client) = cluster_alone().await else {
        return;
    };
    // Apply manifests/rbac.yaml as the admin.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml")).expect("rbac");
    for doc in yaml_serde::Deserializer::from_str(&text) {
        let v = <yaml_serde::Value as serde::Deserialize>::deserialize(doc).expect("yaml");
        if v.is_null() {
            continue;
        }
        let v: serde_json::Value = serde_json::to_value(v).expect("json");
        let (group, version) = v["apiVersion"]
            .as_str()
            .expect("apiVersion")
            .split_once('/')
            .unwrap_or(("", "v1"));
        let kind = v["kind"].as_str().expect("kind");
        let plural = match kind {
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            "ServiceAccount" => "serviceaccounts",
            "Namespace" => "namespaces",
            k => panic!("unexpected kind {k}"),
        };
        let ar = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(group, version, kind),
            plural,
        );
        let name = v["metadata"]["name"].as_str().expect("name");
        let api: kube::Api<kube::api::DynamicObject> = match v["metadata"]["namespace"].as_str() {
            Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &ar),
            None => kube::Api::all_with(client.clone(), &ar),
        };
        api.patch(
            name,
            &kube::api::PatchParams::apply("kubectl-test").force(),
            &kube::api::Patch::Apply(&v),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
    let ns = namespace(&client, "gh-rbac").await;
    let up = upstream("rbac ok").await;
    apply(&client, &ns, static_upstream("u", &up.url())).await;
    apply(&client, &ns, route("r", "/rbac", "u")).await;
    apply(
        &client,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"},
            "type": "Opaque", "stringData": {"tls.crt": "x"}
        }),
    )
    .await;
    apply(&client, &ns, json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "GatewayRoute",
        "metadata": {"name": "tls"},
        "spec": {"path": "/tls", "upstream": "u", "hosts": ["a.example.com"], "tls": {"secretName": "cert"}}
    }))
    .await;
    // The ServiceAccount's token (see .ci/kube-apiserver.sh): everything it needs, nothing more.
    let sa = kube_dir().join("kubeconfig-sa");
    let gw = Gateway::builder()
        .kubeconfig(&sa)
        .args(&["--namespace", &ns, "--lease-namespace", "gatehouse-system"])
        .spawn();
    gw.wait_for("/rbac", 200, T).await;
    eventually(T, "status written by the ServiceAccount", || async {
        let (s, _) = conditions(&client, &ns, "GatewayRoute", "r").await?;
        (s["observedGeneration"] == 1).then_some(())
    })
    .await;
    let log = gw.log();
    // A denied call logs the API server's `Forbidden` answer (a bare "403" could be a port).
    assert!(
        !log.to_ascii_lowercase().contains("forbidden"),
        "forbidden requests:\n{log}"
    );
}

#[test]
fn without_any_configuration_it_exits_2_naming_both_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("GATEWAY_CONFIG")
        .env_remove("GATEWAY_RESOURCES")
        .output()
        .expect("run gatehouse");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Standalone mode") && err.contains("Kubernetes mode"),
        "{err}"
    );
}

/// Upstream status says how many endpoints pass their health checks now, not just how many
/// there are, and `Ready` goes False when none does — written when a check changes its mind,
/// with no spec change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_follows_endpoint_health() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "gh-health").await;
    let up = upstream("ok").await;
    let (dead, dead2) = (free_port(), free_port());
    let _gw = Gateway::builder()
        .kubeconfig(&kubeconfig())
        .args(&["--namespace", &ns, "--lease-namespace", &ns])
        .spawn();
    let mut u = static_upstream("svc", &up.url());
    u["spec"]["endpoints"] = json!([up.url(), format!("http://127.0.0.1:{dead}")]);
    u["spec"]["healthCheck"] = json!({
        "path": "/health", "interval": "200ms", "timeout": "500ms",
        "healthyThreshold": 1, "unhealthyThreshold": 1
    });
    apply(&client, &ns, u.clone()).await;

    let conds = eventually(T, "1 of 2 endpoints healthy", || async {
        let (s, c) = conditions(&client, &ns, "GatewayUpstream", "svc").await?;
        (s["endpoints"] == json!({"total": 2, "healthy": 1})).then_some(c)
    })
    .await;
    let ready = condition(&conds, "Ready").expect("Ready");
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(ready["message"], "1 of 2 endpoint(s) healthy", "{ready}");

    // Both endpoints dead: the new one starts healthy, then its check fails.
    u["spec"]["endpoints"] = json!([
        format!("http://127.0.0.1:{dead}"),
        format!("http://127.0.0.1:{dead2}")
    ]);
    apply(&client, &ns, u).await;
    let conds = eventually(T, "no endpoint healthy", || async {
        let (s, c) = conditions(&client, &ns, "GatewayUpstream", "svc").await?;
        (s["endpoints"] == json!({"total": 2, "healthy": 0}) && s["observedGeneration"] == 2).then_some(c)
    })
    .await;
    let ready = condition(&conds, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "NoHealthyEndpoints", "{ready}");
    assert_eq!(condition(&conds, "Accepted").expect("Accepted")["status"], "True");
}
