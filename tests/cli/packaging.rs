//! Packaging checks that need no cluster: the chart's copy of the CRDs, its version, the RBAC
//! and CRDs in manifests/install.yaml, the examples through `gatehouse check`, the dashboard's
//! metric names, the Dockerfile's final stage and the e2e script's honesty about what it needs.
//! The chart installed for real is tests/kube/helm_chart.rs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn docs(text: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|d| <yaml_serde::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_chart_ships_the_generated_crds() {
    assert!(
        read("charts/gatehouse/files/crds.yaml") == read("crds/gatehouse.dev.yaml"),
        "charts/gatehouse/files/crds.yaml differs from crds/gatehouse.dev.yaml: run\n  \
         cp crds/gatehouse.dev.yaml charts/gatehouse/files/crds.yaml\nand regenerate manifests/install.yaml"
    );
}

#[test]
fn the_chart_deploys_this_version() {
    let chart: yaml_serde::Value = yaml_serde::from_str(&read("charts/gatehouse/Chart.yaml")).unwrap();
    assert_eq!(chart["appVersion"].as_str(), Some(env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_value_is_in_the_schema() {
    let schema: Value = serde_json::from_str(&read("charts/gatehouse/values.schema.json")).unwrap();
    let values: Value = serde_json::to_value(
        yaml_serde::from_str::<yaml_serde::Value>(&read("charts/gatehouse/values.yaml")).unwrap(),
    )
    .unwrap();
    let known = schema["properties"].as_object().unwrap();
    for (k, v) in values.as_object().unwrap() {
        let s = known
            .get(k)
            .unwrap_or_else(|| panic!("values.yaml key {k} is not in values.schema.json"));
        if let (Some(inner), Some(props)) = (v.as_object(), s["properties"].as_object()) {
            if s["additionalProperties"] == false {
                for k2 in inner.keys() {
                    assert!(
                        props.contains_key(k2),
                        "values.yaml key {k}.{k2} is not in values.schema.json"
                    );
                }
            }
        }
    }
}

#[test]
fn install_yaml_grants_exactly_what_rbac_yaml_grants() {
    let install = docs(&read("manifests/install.yaml"));
    let rbac = docs(&read("manifests/rbac.yaml"));
    for (kind, name) in [("ClusterRole", "gatehouse"), ("Role", "gatehouse-leader")] {
        assert_eq!(
            find(&install, kind, name)["rules"],
            find(&rbac, kind, name)["rules"],
            "{kind} {name}: the chart and manifests/rbac.yaml disagree"
        );
    }
    for (kind, name) in [
        ("ClusterRoleBinding", "gatehouse"),
        ("RoleBinding", "gatehouse-leader"),
    ] {
        assert_eq!(
            find(&install, kind, name)["subjects"],
            find(&rbac, kind, name)["subjects"]
        );
        assert_eq!(
            find(&install, kind, name)["roleRef"],
            find(&rbac, kind, name)["roleRef"]
        );
    }
    // Everything namespaced lands in gatehouse-system, created first.
    assert_eq!(install[0]["kind"], "Namespace");
    assert_eq!(install[0]["metadata"]["name"], "gatehouse-system");
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ];
    for d in &install {
        if !cluster_scoped.contains(&d["kind"].as_str().unwrap()) {
            assert_eq!(
                d["metadata"]["namespace"], "gatehouse-system",
                "{} {}",
                d["kind"], d["metadata"]["name"]
            );
        }
    }
}

#[test]
fn install_yaml_carries_the_generated_crds() {
    let install = docs(&read("manifests/install.yaml"));
    let crds = docs(&read("crds/gatehouse.dev.yaml"));
    assert_eq!(crds.len(), 4);
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let shipped = find(&install, "CustomResourceDefinition", name);
        // Helm writes `minimum: 0.0` back as `minimum: 0`: the same number.
        assert_eq!(
            numbers_as_f64(&shipped["spec"]),
            numbers_as_f64(&crd["spec"]),
            "CRD {name} in manifests/install.yaml is stale"
        );
        assert_eq!(
            shipped["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
}

fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect()),
        other => other.clone(),
    }
}

/// The seed's routes and channels (gateway-microservices.yaml, gateway-websocket.yaml) that
/// manifests/examples carries; its `/health` route is the gateway's own.
const SEED_ROUTES: &[(&str, &[&str])] = &[
    ("/auth/login", &["POST"]),
    ("/auth/register", &["POST"]),
    ("/auth/refresh", &["POST"]),
    ("/auth/forgot-password", &["POST"]),
    ("/api/v1/users", &["GET", "POST"]),
    ("/api/v1/users/{id}", &["GET", "PUT", "DELETE"]),
    ("/api/v1/users/{id}/profile", &["GET", "PUT"]),
    ("/api/v1/admin/users", &["GET", "POST", "PUT", "DELETE"]),
    ("/api/v1/metrics", &["GET"]),
];

#[test]
fn the_examples_are_the_seeds_and_pass_check() {
    let mut all = Vec::new();
    for e in std::fs::read_dir(format!("{ROOT}/manifests/examples")).unwrap() {
        all.extend(docs(&std::fs::read_to_string(e.unwrap().path()).unwrap()));
    }
    for (path, methods) in SEED_ROUTES {
        let r = all
            .iter()
            .find(|d| d["kind"] == "GatewayRoute" && d["spec"]["path"] == *path)
            .unwrap_or_else(|| panic!("no example route for {path}"));
        assert_eq!(r["spec"]["methods"], serde_json::json!(methods), "{path}");
    }
    let ups: BTreeSet<_> = all
        .iter()
        .filter(|d| d["kind"] == "GatewayUpstream")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        ups,
        BTreeSet::from(["auth-service", "metrics-service", "user-service"])
    );
    let channels: BTreeSet<_> = all
        .iter()
        .filter(|d| d["kind"] == "WebSocketChannel")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(channels, BTreeSet::from(["admin", "notifications", "public"]));

    // As a deployment runs it: JWT_SECRET from the Secret the chart refers to.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--resources", &format!("{ROOT}/manifests/examples")])
        .current_dir(dir.path())
        .env_remove("GATEWAY_CONFIG")
        .env("JWT_SECRET", "an-example-secret-of-at-least-32-bytes!")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gatehouse check --resources manifests/examples:\n{report}"
    );
    assert!(!report.lines().any(|l| l.starts_with("rejected")), "{report}");
}

/// SPEC §7: the series the gateway exports.
const SPEC_METRICS: &[&str] = &[
    "gateway_http_requests_total",
    "gateway_http_request_duration_seconds",
    "gateway_upstream_requests_total",
    "gateway_upstream_endpoints",
    "gateway_circuit_breaker_open",
    "gateway_rate_limited_total",
    "gateway_config_reloads_total",
    "gateway_routes",
    "gateway_tls_certificate_expiry_seconds",
    "gateway_config_propagation_seconds",
    "websocket_connections_total",
    "websocket_connections_by_state",
    "websocket_messages_sent_total",
    "websocket_messages_received_total",
    "websocket_channel_subscribers",
    "websocket_connection_duration_seconds",
    "websocket_message_size_bytes",
];

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_plots_the_spec_metrics() {
    let dash: Value = serde_json::from_str(&read("charts/gatehouse/dashboards/gatehouse.json")).unwrap();
    assert_eq!(dash["uid"], "gatehouse");
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(!all.is_empty());
    let mut used = BTreeSet::new();
    for e in &all {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("gateway_") || word.starts_with("websocket_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .filter(|b| SPEC_METRICS.contains(b))
                    .unwrap_or(word);
                assert!(
                    SPEC_METRICS.contains(&base),
                    "dashboard uses {word}, not a SPEC §7 metric: {e}"
                );
                used.insert(base.to_string());
            }
        }
    }
    // Requests, errors (status), latency, upstream health, breakers, rate limits, WebSocket.
    for m in [
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds",
        "gateway_upstream_endpoints",
        "gateway_upstream_requests_total",
        "gateway_circuit_breaker_open",
        "gateway_rate_limited_total",
        "websocket_connections_total",
    ] {
        assert!(used.contains(m), "the dashboard has no panel on {m}");
    }
    assert!(
        all.iter().any(|e| e.contains("status=~\"5..\"")),
        "no error panel"
    );
}

#[test]
fn the_image_runs_the_binary_as_non_root_without_a_shell() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    let last = &lines[*froms.last().unwrap()..];
    let base = last[0];
    assert!(
        base.contains("distroless") || base.contains("scratch"),
        "final stage {base} may have a shell"
    );
    assert!(
        !last.iter().any(|l| l.starts_with("RUN ")),
        "RUN in the final stage needs a shell"
    );
    let user = last
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the final stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER (runAsNonRoot checks it)");
    assert_ne!(uid, 0);
    let entry = last
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    assert!(
        entry.starts_with('['),
        "ENTRYPOINT in shell form needs a shell: {entry}"
    );
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore should keep target/ and the rest out"
    );
}

#[test]
fn the_e2e_script_says_when_this_machine_cannot_run_it() {
    let check = Command::new("bash")
        .args(["-n", &format!("{ROOT}/e2e/run.sh")])
        .status()
        .unwrap();
    assert!(check.success(), "e2e/run.sh has a syntax error");
    // A PATH with none of docker, kind, kubectl, helm: the script must stop before doing anything.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "cat", "sed"] {
        let path = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
    }
    let out = Command::new(bin.path().join("bash"))
        .arg(format!("{ROOT}/e2e/run.sh"))
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot run") && err.contains("docker") && err.contains("kind"),
        "{err}"
    );
}
