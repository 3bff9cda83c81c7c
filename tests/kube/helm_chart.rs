//! The Helm chart for real: `charts/gatehouse` linted by Helm's own library and installed with
//! `helm upgrade --install` (tests/helm/chart.py, helm-sdkpy) into the test kube-apiserver, once
//! with default values and once with every optional feature on. The objects the API server then
//! holds are checked as an operator would (RBAC rules, probes, ports, ServiceMonitor selector),
//! and the gateway binary runs under each release's ServiceAccount token, with the release's
//! configuration and environment, until routes are Programmed: the RBAC the chart grants is
//! enough, the Gateway API's included (its CRDs installed, the watches and the status writes
//! made with the release's ServiceAccount). Keeps manifests/install.yaml equal to the chart's
//! rendering.
//!
//! Needs `.ci/services/helm.sh` (GATEHOUSE_TEST_HELM_PYTHON) and `.ci/kube-apiserver.sh`
//! (GATEHOUSE_TEST_KUBECONFIG); `scripts/test.sh` starts both.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use crate::kube_gateway_api::{
    api_of, apply_api, delete_gateway_api_crds, for_kubernetes_1_20, gateway_api_crds,
    install_gateway_api_crds, rbac_is_enough, status_of,
};
use crate::support::cluster::*;
use crate::support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const T: Duration = Duration::from_secs(30);
/// The release manifests/install.yaml is rendered as.
const RELEASE: &str = "gatehouse";
const RELEASE_NS: &str = "gatehouse-system";
/// The release with every optional feature on (its ServiceAccount token is in
/// `kubeconfig-full-sa`, see .ci/kube-apiserver.sh).
const FULL: &str = "full";
const FULL_NS: &str = "gatehouse-full";
const FULL_NAME: &str = "full-gatehouse";

const INSTALL_HEADER: &str = "\
# Gatehouse for `kubectl apply -f manifests/install.yaml`: charts/gatehouse rendered with its
# default values as release `gatehouse` in namespace gatehouse-system, for Kubernetes 1.22+.
# Set the image to the one you built from the Dockerfile (e.g. `kubectl -n gatehouse-system
# set image deployment/gatehouse gatehouse=REGISTRY/gatehouse:TAG`), and create your routes.
# For the Gateway API, the cluster needs its CRDs, and a GatewayClass with controllerName
# gatehouse.dev/gateway-controller (the chart creates one when the cluster has the CRDs).
#
# Generated, do not edit; a test fails when it differs from the chart. Regenerate with
#   GATEHOUSE_UPDATE_INSTALL_YAML=1 scripts/test.sh --test kube helm_chart
# (`helm template gatehouse charts/gatehouse -n gatehouse-system` prints the same objects).
---
apiVersion: v1
kind: Namespace
metadata:
  name: gatehouse-system
";

fn chart() -> String {
    format!("{ROOT}/charts/gatehouse")
}

/// Runs tests/helm/chart.py (the test checked `services::helm_python()` first); its JSON
/// answer, or the test fails with Helm's message.
fn helm(args: &[&str]) -> Value {
    let python = services::helm_python().expect("the test checks for Helm first");
    let mut cmd = Command::new(python);
    cmd.arg(format!("{ROOT}/tests/helm/chart.py")).args(args);
    if args[0] != "lint" {
        cmd.env("KUBECONFIG", kubeconfig());
    }
    let out = cmd.output().expect("run tests/helm/chart.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chart.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("chart.py {args:?}: {e}: {stdout}"))
}

fn upgrade(release: &str, ns: &str, chart: &str, values: &Value) -> Value {
    let rel = helm(&["upgrade", release, ns, chart, &values.to_string()]);
    assert_eq!(rel["status"], "deployed", "{rel}");
    rel
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn dynamic(client: &Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// The object as the API server holds it, or None.
async fn object(client: &Client, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    let ar = match kind {
        "Deployment" => resource("apps/v1", kind, "deployments"),
        "Service" => resource("v1", kind, "services"),
        "ServiceAccount" => resource("v1", kind, "serviceaccounts"),
        "ConfigMap" => resource("v1", kind, "configmaps"),
        "PodDisruptionBudget" => resource("policy/v1beta1", kind, "poddisruptionbudgets"),
        "HorizontalPodAutoscaler" => resource("autoscaling/v2beta2", kind, "horizontalpodautoscalers"),
        "NetworkPolicy" => resource("networking.k8s.io/v1", kind, "networkpolicies"),
        "ServiceMonitor" => resource("monitoring.coreos.com/v1", kind, "servicemonitors"),
        "CustomResourceDefinition" => resource("apiextensions.k8s.io/v1", kind, "customresourcedefinitions"),
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => resource(
            "rbac.authorization.k8s.io/v1",
            kind,
            &format!("{}s", kind.to_ascii_lowercase()),
        ),
        "GatewayRoute" => resource("gatehouse.dev/v1alpha1", kind, "gatewayroutes"),
        "GatewayClass" => resource("gateway.networking.k8s.io/v1", kind, "gatewayclasses"),
        k => panic!("no resource for {k}"),
    };
    let obj = dynamic(client, &ar, ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {kind} {name}: {e}"))?;
    Some(serde_json::to_value(obj).unwrap())
}

async fn must(client: &Client, kind: &str, ns: Option<&str>, name: &str) -> Value {
    object(client, kind, ns, name)
        .await
        .unwrap_or_else(|| panic!("{kind} {ns:?}/{name} is not in the cluster"))
}

/// Server-side apply of any object (namespaced when it names a namespace).
async fn apply_any(client: &Client, obj: &Value, plural: &str) {
    let ar = resource(
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
        plural,
    );
    let name = obj["metadata"]["name"].as_str().unwrap();
    dynamic(client, &ar, obj["metadata"]["namespace"].as_str())
        .patch(
            name,
            &PatchParams::apply("kubectl-test").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Every YAML document of a file that is not empty.
fn docs(text: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|d| <yaml_serde::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn doc_of<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    all.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The rules manifests/rbac.yaml grants, by kind (ClusterRole, Role).
fn manifest_rules(kind: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/manifests/rbac.yaml")).unwrap();
    doc_of(&docs(&text), kind)["rules"].clone()
}

/// manifests/install.yaml as the chart renders it: the release's manifest after a header and
/// the Namespace. This API server (1.20) has only policy/v1beta1 PodDisruptionBudgets, which the
/// chart picks here; the file is for current clusters, which get policy/v1 (the same spec).
fn install_yaml(manifest: &str) -> String {
    let body = manifest.replace(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget",
    );
    format!("{INSTALL_HEADER}{body}")
}

fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

/// Name → port of a container's or Service's ports.
fn ports(list: &Value, key: &str) -> Vec<(String, i64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p[key].as_i64().unwrap()))
        .collect()
}

fn labels_contain(labels: &Value, subset: &Value) -> bool {
    subset
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The environment the Deployment gives the gateway (plain values), with what the pod would
/// get from the downward API and the Secrets it refers to, and the ConfigMap's configuration as
/// a file: the process then runs as a replica of the release would.
async fn release_env(
    client: &Client,
    deploy: &Value,
    ns: &str,
    dir: &Path,
    secrets: &[(&str, &str)],
) -> Vec<(String, String)> {
    let c = container(deploy);
    let cm_name = deploy["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap()["configMap"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let cm = must(client, "ConfigMap", Some(ns), &cm_name).await;
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, cm["data"]["gateway.yaml"].as_str().unwrap()).unwrap();
    let mut env = Vec::new();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        if let Some(v) = e["value"].as_str() {
            env.push((name.to_string(), v.to_string()));
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            env.push((name.to_string(), ns.to_string()));
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            env.push((name.to_string(), format!("{ns}-test-pod")));
        } else if e["valueFrom"]["secretKeyRef"].is_object() {
            let (_, v) = secrets
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap_or_else(|| panic!("no test value for {name}"));
            env.push((name.to_string(), v.to_string()));
        }
    }
    // Loopback only (the harness picks free ports) on a shared machine.
    env.push(("GATEWAY_BIND_ADDRESS".into(), "127.0.0.1".into()));
    // The config file's path inside the pod becomes the local copy.
    for (k, v) in env.iter_mut() {
        if k == "GATEWAY_CONFIG" {
            *v = config.display().to_string();
        }
    }
    env
}

async fn programmed(client: &Client, ns: &str, name: &str) -> bool {
    let Some((status, conds)) = conditions(client, ns, "GatewayRoute", name).await else {
        return false;
    };
    condition(&conds, "Programmed").is_some_and(|c| c["status"] == "True")
        && status["observedGeneration"] == 1
}

/// A static upstream on loopback and a route to it in `ns` (its path named after `ns`: routes
/// of earlier runs stay in the cluster); waits until the gateway serves it and its status says
/// Programmed.
async fn route_goes_live(client: &Client, gw: &Gateway, ns: &str) {
    let up = upstream("chart ok").await;
    let path = format!("/{ns}");
    apply(client, ns, static_upstream("u", &up.url())).await;
    apply(client, ns, route("r", &path, "u")).await;
    gw.wait_for(&path, 200, T).await;
    eventually(T, &format!("GatewayRoute {ns}/r Programmed"), || async {
        programmed(client, ns, "r").await.then_some(())
    })
    .await;
}

/// A Lease left by a gateway that was killed (this test's, or another test's in the same
/// namespace) would hold status writing back until it expires: removed before and after.
async fn free_lease(client: &Client, ns: &str) {
    let ar = resource("coordination.k8s.io/v1", "Lease", "leases");
    let _ = dynamic(client, &ar, Some(ns))
        .delete("gatehouse-status-writer", &Default::default())
        .await;
}

fn no_forbidden(gw: &Gateway) {
    let log = gw.log();
    // A denied call logs the API server's `Forbidden` answer.
    assert!(
        !log.to_ascii_lowercase().contains("forbidden"),
        "forbidden requests:\n{log}"
    );
}

#[test]
fn the_chart_lints_clean() {
    if services::helm_python().is_none() {
        return;
    }
    // chart.py exits 1 (and the helper panics) on any lint warning or error.
    let res = helm(&["lint", &chart()]);
    assert_eq!(res["errors"], json!([]), "{res:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_with_defaults_and_with_every_option_and_its_rbac_is_enough() {
    // The CRDs as `kubectl apply -f crds/` leaves them: the release takes them over.
    // Alone: the CRDs change owner and version, and the releases run in gatehouse-system.
    let Some(client) = cluster_alone().await else {
        return;
    };
    if services::helm_python().is_none() {
        return;
    }
    // manifests/install.yaml is rendered for a cluster without the Gateway API CRDs. The
    // release of an earlier run may hold a GatewayClass: Helm removes it only while it knows
    // the kind.
    install_gateway_api_crds(&client).await;
    let no_class = json!({"gatewayAPI": {"gatewayClass": {"create": false}}});
    upgrade(RELEASE, RELEASE_NS, &chart(), &no_class);
    delete_gateway_api_crds(&client).await;
    default_release(&client).await;
    crds_upgrade_with_the_release(&client).await;
    full_release(&client).await;
}

async fn default_release(client: &Client) {
    let rel = upgrade(RELEASE, RELEASE_NS, &chart(), &json!({}));
    let manifest = rel["manifest"].as_str().unwrap();

    // manifests/install.yaml is this rendering.
    let want = install_yaml(manifest);
    let path = format!("{ROOT}/manifests/install.yaml");
    if std::env::var_os("GATEHOUSE_UPDATE_INSTALL_YAML").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "manifests/install.yaml is stale: regenerate it with\n  \
         GATEHOUSE_UPDATE_INSTALL_YAML=1 scripts/test.sh --test kube helm_chart"
    );
    // No Gateway API CRDs, no GatewayClass: Helm could not create it.
    assert!(!manifest.contains("kind: GatewayClass"));
    assert!(!manifest.contains("gateway.networking.k8s.io_"));
    assert!(object(client, "ClusterRole", None, "gatehouse-cluster")
        .await
        .is_none());

    // With the CRDs in the cluster, the next upgrade creates the GatewayClass.
    install_gateway_api_crds(client).await;
    let rel = upgrade(RELEASE, RELEASE_NS, &chart(), &json!({}));
    assert!(rel["manifest"].as_str().unwrap().contains("kind: GatewayClass"));
    let class = must(client, "GatewayClass", None, "gatehouse").await;
    assert_eq!(
        class["spec"]["controllerName"],
        "gatehouse.dev/gateway-controller"
    );
    assert_eq!(
        class["metadata"]["annotations"]["meta.helm.sh/release-name"],
        RELEASE
    );

    // Deployment: replicas, probes, ports, resources, non-root read-only, anti-affinity.
    let deploy = must(client, "Deployment", Some(RELEASE_NS), RELEASE).await;
    assert_eq!(deploy["spec"]["replicas"], 3);
    let pod = &deploy["spec"]["template"]["spec"];
    let c = container(&deploy);
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(
        ports(&c["ports"], "containerPort"),
        [
            ("http", 8080),
            ("https", 8443),
            ("admin", 8081),
            ("metrics", 9090)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/health", "port": "http", "scheme": "HTTP"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/ready", "port": "http", "scheme": "HTTP"})
    );
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "250m", "memory": "256Mi"})
    );
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "500m", "memory": "512Mi"})
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    let selector = &deploy["spec"]["selector"]["matchLabels"];
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["podAffinityTerm"]["labelSelector"]["matchLabels"], *selector);
    assert_eq!(anti["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    assert!(
        c["image"].as_str().unwrap().starts_with("gatehouse:"),
        "{}",
        c["image"]
    );

    // Services: the edge one (LoadBalancer) with the proxy ports only; the admin API and the
    // metrics on a ClusterIP one. Both select the Deployment's pods.
    let svc = must(client, "Service", Some(RELEASE_NS), RELEASE).await;
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        ports(&svc["spec"]["ports"], "port"),
        [("http", 80), ("https", 443)].map(|(n, p)| (n.to_string(), p))
    );
    let internal = must(
        client,
        "Service",
        Some(RELEASE_NS),
        &format!("{RELEASE}-internal"),
    )
    .await;
    assert_eq!(internal["spec"]["type"], "ClusterIP");
    assert_eq!(
        ports(&internal["spec"]["ports"], "port"),
        [("admin", 8081), ("metrics", 9090)].map(|(n, p)| (n.to_string(), p))
    );
    for p in svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .chain(internal["spec"]["ports"].as_array().unwrap())
    {
        assert_eq!(p["targetPort"], p["name"], "{p}");
    }
    assert_eq!(svc["spec"]["selector"], *selector);
    assert_eq!(internal["spec"]["selector"], *selector);
    // The Gateways' listener ports on their own Service, whose address they report; the pods
    // may bind ports below 1024.
    let gateways = must(
        client,
        "Service",
        Some(RELEASE_NS),
        &format!("{RELEASE}-gateways"),
    )
    .await;
    assert_eq!(gateways["spec"]["type"], "LoadBalancer");
    assert_eq!(gateways["spec"]["selector"], *selector);
    assert_eq!(
        ports(&gateways["spec"]["ports"], "port"),
        [("listener-80", 80), ("listener-443", 443)].map(|(n, p)| (n.to_string(), p))
    );
    for p in gateways["spec"]["ports"].as_array().unwrap() {
        assert_eq!(p["targetPort"], p["port"], "{p}");
    }
    assert!(
        pod["securityContext"]["sysctls"].as_array().is_some_and(
            |s| s.contains(&json!({"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}))
        ),
        "{}",
        pod["securityContext"]
    );
    let cm = must(client, "ConfigMap", Some(RELEASE_NS), RELEASE).await;
    let config: Value = serde_json::to_value(
        yaml_serde::from_str::<yaml_serde::Value>(cm["data"]["gateway.yaml"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["gateway_api"]["service"],
        json!({"name": format!("{RELEASE}-gateways"), "namespace": RELEASE_NS})
    );
    assert!(labels_contain(
        &deploy["spec"]["template"]["metadata"]["labels"],
        selector
    ));

    let pdb = must(client, "PodDisruptionBudget", Some(RELEASE_NS), RELEASE).await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *selector);
    // Off by default.
    assert!(
        object(client, "HorizontalPodAutoscaler", Some(RELEASE_NS), RELEASE)
            .await
            .is_none()
    );
    assert!(object(client, "NetworkPolicy", Some(RELEASE_NS), RELEASE)
        .await
        .is_none());
    assert!(!manifest.contains("kind: ServiceMonitor"));

    // RBAC: exactly manifests/rbac.yaml's rules, bound to the release's ServiceAccount.
    must(client, "ServiceAccount", Some(RELEASE_NS), RELEASE).await;
    let cr = must(client, "ClusterRole", None, RELEASE).await;
    assert_eq!(cr["rules"], manifest_rules("ClusterRole"));
    let crb = must(client, "ClusterRoleBinding", None, RELEASE).await;
    assert_eq!(crb["roleRef"]["name"], RELEASE);
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NS}])
    );
    let role = must(client, "Role", Some(RELEASE_NS), "gatehouse-leader").await;
    assert_eq!(role["rules"], manifest_rules("Role"));
    must(client, "RoleBinding", Some(RELEASE_NS), "gatehouse-leader").await;

    // The CRDs belong to the release now, and survive `helm uninstall`.
    for crd in ["gatewayroutes", "gatewayupstreams", "websocketchannels"] {
        let obj = must(
            client,
            "CustomResourceDefinition",
            None,
            &format!("{crd}.gatehouse.dev"),
        )
        .await;
        let ann = &obj["metadata"]["annotations"];
        assert_eq!(ann["meta.helm.sh/release-name"], RELEASE, "{crd}");
        assert_eq!(ann["meta.helm.sh/release-namespace"], RELEASE_NS, "{crd}");
        assert_eq!(ann["helm.sh/resource-policy"], "keep", "{crd}");
    }

    // The examples, against the real CRD schemas, with their Services. Deleted first so that
    // the status seen below is written by this run's gateway.
    let examples = example_docs();
    for d in examples
        .iter()
        .filter(|d| d["apiVersion"] == "gatehouse.dev/v1alpha1")
    {
        let kind = d["kind"].as_str().unwrap();
        delete(
            client,
            "microservices",
            "gatehouse.dev/v1alpha1",
            kind,
            d["metadata"]["name"].as_str().unwrap(),
        )
        .await;
    }
    for d in &examples {
        let plural = match d["kind"].as_str().unwrap() {
            "Namespace" => "namespaces",
            "GatewayRoute" => "gatewayroutes",
            "GatewayUpstream" => "gatewayupstreams",
            "WebSocketChannel" => "websocketchannels",
            k => panic!("unexpected kind {k} in manifests/examples"),
        };
        apply_any(client, d, plural).await;
    }
    for (svc, port) in [
        ("auth-service", 3001),
        ("user-service", 3002),
        ("metrics-service", 3003),
    ] {
        apply(
            client,
            "microservices",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
                   "spec": {"selector": {"app": svc}, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}}),
        )
        .await;
    }

    // The gateway under the release's ServiceAccount (all namespaces, as the default values).
    let dir = tempfile::tempdir().unwrap();
    let env = release_env(client, &deploy, RELEASE_NS, dir.path(), &[]).await;
    free_lease(client, RELEASE_NS).await;
    let gw = Gateway::builder()
        .kubeconfig(&kube_dir().join("kubeconfig-sa"))
        .envs(&env)
        .spawn();
    let ns = namespace(client, "gh-chart").await;
    route_goes_live(client, &gw, &ns).await;
    gateway_behind_the_service(client, &ns).await;
    for d in examples.iter().filter(|d| d["kind"] == "GatewayRoute") {
        let name = d["metadata"]["name"].as_str().unwrap();
        eventually(
            T,
            &format!("example GatewayRoute {name} Programmed"),
            || async move { programmed(client, "microservices", name).await.then_some(()) },
        )
        .await;
    }
    // What the probes ask answers on the port they name.
    gw.wait_for("/health", 200, T).await;
    gw.wait_for("/ready", 200, T).await;
    let (code, body) = get_blocking(gw.metrics, "/metrics")
        .map(|r| (r.status, r.text()))
        .unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("gateway_http_requests_total"), "{body}");
    gateway_api_watched(&gw, "all namespaces");
    no_forbidden(&gw);
    drop(gw);
    free_lease(client, RELEASE_NS).await;
    // What the status writer needs of the Gateway API, as this release's ServiceAccount.
    let sa = client_from(&kube_dir().join("kubeconfig-sa")).await;
    rbac_is_enough(client, sa, Vec::new(), &ns).await;
}

/// A Gateway of the release's class, as the default values serve it: it reports the address
/// of the Service `<release>-gateways` and is served on the pod's own address (here the
/// loopback address the test binds), its listener on its own port.
async fn gateway_behind_the_service(client: &Client, ns: &str) {
    let port = free_port();
    apply_api(
        client,
        ns,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge"},
               "spec": {"gatewayClassName": "gatehouse",
                        "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}),
    )
    .await;
    let svc = must(
        client,
        "Service",
        Some(RELEASE_NS),
        &format!("{RELEASE}-gateways"),
    )
    .await;
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    eventually(T, "the Gateway reports the Service's address", || {
        let ip = ip.clone();
        async move {
            let s = status_of(client, "Gateway", ns, "edge").await?;
            let programmed = s["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Programmed" && c["status"] == "True");
            (programmed && s["addresses"] == json!([{"type": "IPAddress", "value": ip}])).then_some(())
        }
    })
    .await;
    // No route attached: the listener answers 404 from the gateway itself.
    eventually(T, "the Gateway's listener served", || async {
        get_blocking(port, "/").filter(|r| r.status == 404).map(|_| ())
    })
    .await;
    api_of(client, "Gateway", ns)
        .delete("edge", &Default::default())
        .await
        .expect("delete the Gateway");
}

/// The gateway's log shows every Gateway API kind listed (its debug lines), so the watches the
/// RBAC must allow did run.
fn gateway_api_watched(gw: &Gateway, scope: &str) {
    let log = gw.log();
    for what in [
        "GatewayClass (cluster-scoped)".to_string(),
        format!("Gateway in {scope}"),
        format!("HTTPRoute in {scope}"),
        format!("ReferenceGrant in {scope}"),
    ] {
        assert!(
            log.contains(&format!("listed {what}:")),
            "{what} not listed:\n{log}"
        );
    }
}

fn example_docs() -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{ROOT}/manifests/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| docs(&std::fs::read_to_string(f).unwrap()))
        .collect()
}

/// `helm upgrade` with a newer chart changes the CRDs in the cluster (they are templates, not
/// the chart's crds/ folder, which Helm never upgrades); upgrading back restores them.
async fn crds_upgrade_with_the_release(client: &Client) {
    let copy = tempfile::tempdir().unwrap();
    let dst = copy.path().join("gatehouse");
    copy_dir(Path::new(&chart()), &dst);
    let crds = std::fs::read_to_string(dst.join("files/crds.yaml")).unwrap();
    let marked = crds.replacen(
        "    shortNames:\n    - grt\n",
        "    shortNames:\n    - grt\n    - grtx\n",
        1,
    );
    assert_ne!(crds, marked, "files/crds.yaml no longer has the `grt` short name");
    std::fs::write(dst.join("files/crds.yaml"), marked).unwrap();
    let meta = std::fs::read_to_string(dst.join("Chart.yaml")).unwrap();
    std::fs::write(
        dst.join("Chart.yaml"),
        meta.replace("\nversion: ", "\nversion: 99.0.0-upgrade+was-"),
    )
    .unwrap();

    let short_names = |obj: Value| obj["spec"]["names"]["shortNames"].clone();
    upgrade(RELEASE, RELEASE_NS, dst.to_str().unwrap(), &json!({}));
    let crd = must(
        client,
        "CustomResourceDefinition",
        None,
        "gatewayroutes.gatehouse.dev",
    )
    .await;
    assert!(
        crd["metadata"]["labels"]["helm.sh/chart"]
            .as_str()
            .unwrap()
            .starts_with("gatehouse-99.0.0-upgrade"),
        "{}",
        crd["metadata"]["labels"]
    );
    assert_eq!(short_names(crd), json!(["grt", "grtx"]));

    upgrade(RELEASE, RELEASE_NS, &chart(), &json!({}));
    let crd = must(
        client,
        "CustomResourceDefinition",
        None,
        "gatewayroutes.gatehouse.dev",
    )
    .await;
    assert_eq!(short_names(crd), json!(["grt"]));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The minimal ServiceMonitor CRD a cluster with the Prometheus Operator has.
async fn service_monitor_crd(client: &Client) {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                      "plural": "servicemonitors", "singular": "servicemonitor"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    apply_any(client, &crd, "customresourcedefinitions").await;
    eventually(T, "ServiceMonitor CRD established", || async {
        let crd = object(
            client,
            "CustomResourceDefinition",
            None,
            "servicemonitors.monitoring.coreos.com",
        )
        .await?;
        let established = crd["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        established.then_some(())
    })
    .await;
}

fn full_values(apps: &str) -> Value {
    json!({
        // The CRDs belong to the release `gatehouse`: one release per cluster installs them.
        "crds": {"install": false},
        // The Gateway API's belong to this one.
        "gatewayAPI": {"installCRDs": true, "gatewayClass": {"create": true, "name": "gatehouse-full"},
                       "service": {"enabled": false}, "addresses": ["127.0.1.200-127.0.1.210"]},
        "commonLabels": {"team": "edge"},
        "watchNamespaces": [apps],
        "controller": {"leaseDuration": "10s", "endpointsApi": "auto", "workerThreads": 2},
        "config": {
            "server": {"http_port": 8080, "https_port": 8443, "admin_port": 8081, "metrics_port": 9090,
                       "bind_address": "0.0.0.0", "timeouts": {"request_timeout": "30s", "shutdown_grace": "20s"}},
            "auth": {"jwt": {"algorithm": "HS256", "issuer": "auth-service", "audience": "api-gateway"}},
            "middleware": {
                "rate_limiting": {"default_limit": 1000, "route_limits": {"/auth/login": 10, "/auth/register": 5}},
                "cors": {"allowed_origins": ["*"], "allowed_methods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                         "allowed_headers": ["Content-Type", "Authorization"], "max_age": 3600}
            },
            "observability": {"metrics": {"prometheus_enabled": true, "endpoint_path": "/metrics"},
                              "logging": {"level": "info", "format": "json"}},
            "websocket": {"enabled": true, "server": {"path": "/ws", "max_connections": 10000}}
        },
        "secrets": {
            "jwt": {"name": "gatehouse-jwt", "key": "secret"},
            "webhookAuthToken": {"name": "gatehouse-webhook", "key": "token"},
            "adminToken": {"name": "gatehouse-admin", "key": "token"}
        },
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "service": {"type": "LoadBalancer", "annotations": {"example.com/lb": "internal"},
                    "loadBalancerSourceRanges": ["10.0.0.0/8"], "externalTrafficPolicy": "Local"},
        "podAnnotations": {"example.com/team": "edge"},
        "affinityPreset": {"podAntiAffinity": "hard"},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": FULL}}}],
        "priorityClassName": "",
        "podDisruptionBudget": {"enabled": true, "minAvailable": 1},
        "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 6,
                        "targetCPUUtilizationPercentage": 75, "targetMemoryUtilizationPercentage": 80},
        "networkPolicy": {
            "enabled": true,
            "proxyFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "egress": {"restrict": true, "apiServerCidrs": ["10.0.0.1/32"],
                       "rules": [
                           {"to": [{"podSelector": {"matchLabels": {"app": "auth-service"}}}],
                            "ports": [{"protocol": "TCP", "port": 3001}]},
                           {"to": [{"podSelector": {"matchLabels": {"app": "user-service"}}}],
                            "ports": [{"protocol": "TCP", "port": 3002}]}
                       ]}
        },
        "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}, "interval": "30s",
                           "scrapeTimeout": "10s", "port": "metrics", "path": "/metrics"},
        "dashboard": {"enabled": true, "labels": {"grafana_dashboard": "1"},
                      "annotations": {"grafana_folder": "Gatehouse"}}
    })
}

/// A copy of the chart whose Gateway API CRDs the test API server (1.20) can install (see
/// kube_gateway_api::for_kubernetes_1_20); the rest as it is.
fn chart_for_kubernetes_1_20() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let dst = copy.path().join("gatehouse");
    copy_dir(Path::new(&chart()), &dst);
    for crd in gateway_api_crds() {
        let file = format!(
            "gateway.networking.k8s.io_{}.yaml",
            crd["spec"]["names"]["plural"].as_str().unwrap()
        );
        let path = dst.join("files/gateway-api").join(file);
        assert!(path.exists(), "{}", path.display());
        std::fs::write(path, for_kubernetes_1_20(crd).to_string()).unwrap();
    }
    copy
}

async fn full_release(client: &Client) {
    service_monitor_crd(client).await;
    // A fresh watched namespace per run: the status seen below is this run's.
    let apps = namespace(client, "gh-full-apps").await;
    let copy = chart_for_kubernetes_1_20();
    let chart = copy.path().join("gatehouse");
    let rel = upgrade(FULL, FULL_NS, chart.to_str().unwrap(), &full_values(&apps));
    let manifest = rel["manifest"].as_str().unwrap();
    assert!(
        !manifest.contains("group: gatehouse.dev"),
        "crds.install=false still renders CRDs"
    );

    // The Gateway API CRDs and the GatewayClass belong to this release; the CRDs survive
    // `helm uninstall`. The addresses are the configuration's.
    for crd in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
        "grpcroutes",
    ] {
        let obj = must(
            client,
            "CustomResourceDefinition",
            None,
            &format!("{crd}.gateway.networking.k8s.io"),
        )
        .await;
        let ann = &obj["metadata"]["annotations"];
        assert_eq!(ann["meta.helm.sh/release-name"], FULL, "{crd}");
        assert_eq!(ann["helm.sh/resource-policy"], "keep", "{crd}");
        assert_eq!(ann["gateway.networking.k8s.io/channel"], "standard", "{crd}");
        assert_eq!(obj["metadata"]["labels"]["team"], "edge", "{crd}");
    }
    let class = must(client, "GatewayClass", None, "gatehouse-full").await;
    assert_eq!(
        class["spec"]["controllerName"],
        "gatehouse.dev/gateway-controller"
    );
    let cm = must(client, "ConfigMap", Some(FULL_NS), FULL_NAME).await;
    let config: Value = serde_json::to_value(
        yaml_serde::from_str::<yaml_serde::Value>(cm["data"]["gateway.yaml"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["gateway_api"]["addresses"],
        json!(["127.0.1.200-127.0.1.210"])
    );
    assert!(config["gateway_api"].get("service").is_none());
    assert!(
        object(client, "Service", Some(FULL_NS), &format!("{FULL_NAME}-gateways"))
            .await
            .is_none()
    );

    let deploy = must(client, "Deployment", Some(FULL_NS), FULL_NAME).await;
    let selector = deploy["spec"]["selector"]["matchLabels"].clone();
    let pod = &deploy["spec"]["template"]["spec"];
    let c = container(&deploy);
    assert_eq!(deploy["metadata"]["labels"]["team"], "edge");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
            ["labelSelector"]["matchLabels"],
        selector
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    // Secrets by reference only.
    let env = c["env"].as_array().unwrap();
    for (var, secret, key) in [
        ("JWT_SECRET", "gatehouse-jwt", "secret"),
        ("WEBHOOK_AUTH_TOKEN", "gatehouse-webhook", "token"),
        ("GATEWAY_ADMIN_TOKEN", "gatehouse-admin", "token"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("no {var}"));
        assert_eq!(
            e["valueFrom"]["secretKeyRef"],
            json!({"name": secret, "key": key}),
            "{var}"
        );
    }
    let plain = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
    assert_eq!(plain("GATEWAY_NAMESPACE"), Some(json!(apps)));
    assert_eq!(plain("GATEWAY_LEASE_DURATION"), Some(json!("10s")));
    assert_eq!(plain("GATEWAY_WORKER_THREADS"), Some(json!("2")));
    assert_eq!(plain("RUST_BACKTRACE"), Some(json!("1")));
    assert!(!manifest.contains("secret: ") && !manifest.contains("kind: Secret"));

    let svc = must(client, "Service", Some(FULL_NS), FULL_NAME).await;
    assert_eq!(svc["spec"]["loadBalancerSourceRanges"], json!(["10.0.0.0/8"]));
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(svc["metadata"]["annotations"]["example.com/lb"], "internal");

    // ServiceMonitor: selects the internal Service (only) by its labels and scrapes a port it
    // has; the edge Service has no metrics port.
    let internal = must(client, "Service", Some(FULL_NS), &format!("{FULL_NAME}-internal")).await;
    let sm = must(client, "ServiceMonitor", Some(FULL_NS), FULL_NAME).await;
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    let selects =
        |svc: &Value| labels_contain(&svc["metadata"]["labels"], &sm["spec"]["selector"]["matchLabels"]);
    assert!(
        selects(&internal) && !selects(&svc),
        "ServiceMonitor selector {} must match only the internal Service's labels {}",
        sm["spec"]["selector"],
        internal["metadata"]["labels"]
    );
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"], json!([FULL_NS]));
    let ep = &sm["spec"]["endpoints"][0];
    assert!(internal["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == ep["port"]));
    assert!(!svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "admin" || p["name"] == "metrics"));
    assert_eq!(
        (
            ep["interval"].as_str(),
            ep["scrapeTimeout"].as_str(),
            ep["path"].as_str()
        ),
        (Some("30s"), Some("10s"), Some("/metrics"))
    );

    let pdb = must(client, "PodDisruptionBudget", Some(FULL_NS), FULL_NAME).await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let hpa = must(client, "HorizontalPodAutoscaler", Some(FULL_NS), FULL_NAME).await;
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], FULL_NAME);
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].as_i64(),
            hpa["spec"]["maxReplicas"].as_i64()
        ),
        (Some(2), Some(6))
    );
    assert_eq!(hpa["spec"]["metrics"].as_array().unwrap().len(), 2);
    // Replicas are the autoscaler's: the Deployment does not set them.
    let rendered_deploy = docs(manifest)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    assert!(rendered_deploy["spec"].get("replicas").is_none());

    let np = must(client, "NetworkPolicy", Some(FULL_NS), FULL_NAME).await;
    assert_eq!(np["spec"]["podSelector"]["matchLabels"], selector);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["name"],
        "ingress-nginx"
    );
    assert_eq!(ingress[0]["ports"][0]["port"], 8080);
    let egress_ports: Vec<_> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap().iter().map(|p| p["port"].clone()))
        .collect();
    for p in [53, 443, 3001, 3002] {
        assert!(
            egress_ports.contains(&json!(p)),
            "egress port {p} missing: {egress_ports:?}"
        );
    }

    let dash = must(
        client,
        "ConfigMap",
        Some(FULL_NS),
        &format!("{FULL_NAME}-dashboard"),
    )
    .await;
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dash["data"]["gatehouse.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "gatehouse");

    // Namespaced RBAC: RoleBindings in the watched namespace and the release's, no
    // ClusterRoleBinding; Secrets only through a Role in each of those namespaces, not through
    // the ClusterRole.
    let cr = must(client, "ClusterRole", None, FULL_NAME).await;
    let mut without_secrets = manifest_rules("ClusterRole");
    for rule in without_secrets.as_array_mut().unwrap() {
        if let Some(res) = rule["resources"].as_array_mut() {
            res.retain(|r| r != "secrets");
        }
    }
    assert_ne!(without_secrets, manifest_rules("ClusterRole"));
    assert_eq!(cr["rules"], without_secrets);
    assert!(object(client, "ClusterRoleBinding", None, FULL_NAME)
        .await
        .is_none());
    for ns in [apps.as_str(), FULL_NS] {
        let rb = must(client, "RoleBinding", Some(ns), FULL_NAME).await;
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULL_NAME})
        );
        let secrets_role = format!("{FULL_NAME}-secrets");
        let role = must(client, "Role", Some(ns), &secrets_role).await;
        assert_eq!(
            role["rules"],
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}])
        );
        let rb = must(client, "RoleBinding", Some(ns), &secrets_role).await;
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": secrets_role})
        );
    }
    // The cluster-scoped kinds of the Gateway API (GatewayClasses) and Namespaces through a
    // ClusterRoleBinding of their own.
    let cluster = must(client, "ClusterRole", None, &format!("{FULL_NAME}-cluster")).await;
    assert_eq!(
        cluster["rules"],
        json!([
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gatewayclasses"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gatewayclasses/status"], "verbs": ["patch", "update"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
        ])
    );
    let crb = must(
        client,
        "ClusterRoleBinding",
        None,
        &format!("{FULL_NAME}-cluster"),
    )
    .await;
    assert_eq!(crb["roleRef"]["name"], format!("{FULL_NAME}-cluster"));
    // No Secrets role anywhere else.
    assert!(
        object(client, "Role", Some("default"), &format!("{FULL_NAME}-secrets"))
            .await
            .is_none()
    );

    // The release's configuration is one the gateway accepts, examples included.
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("JWT_SECRET", "a-test-secret-of-more-than-32-bytes-for-hs256"),
        ("WEBHOOK_AUTH_TOKEN", "webhook-token"),
        ("GATEWAY_ADMIN_TOKEN", "admin-token"),
    ];
    let env = release_env(client, &deploy, FULL_NS, dir.path(), &secrets).await;
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--resources", &format!("{ROOT}/manifests/examples")])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gatehouse check with the release's config:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The gateway under this release's ServiceAccount: only the watched namespace.
    free_lease(client, FULL_NS).await;
    let gw = Gateway::builder()
        .kubeconfig(&kube_dir().join("kubeconfig-full-sa"))
        .envs(&env)
        .spawn();
    route_goes_live(client, &gw, &apps).await;
    gateway_api_watched(&gw, &format!("namespace {apps}"));
    no_forbidden(&gw);
    drop(gw);
    free_lease(client, FULL_NS).await;
    let sa = client_from(&kube_dir().join("kubeconfig-full-sa")).await;
    rbac_is_enough(client, sa, vec![apps.clone()], &apps).await;
}
