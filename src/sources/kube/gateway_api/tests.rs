use super::*;
use serde_json::json;

fn decode<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("decodes")
}

fn route(ns: &str, name: &str, backends: serde_json::Value) -> HTTPRoute {
    decode(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backends}]}
    }))
}

fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
    decode(json!({"metadata": {"name": name, "labels": labels}}))
}

#[test]
fn status_is_kept_but_a_status_change_alone_is_not_a_change() {
    let mut c = GatewayApiCache::default();
    let r = route("a", "r", json!([{"name": "svc", "port": 80}]));
    assert!(c.apply(Change::Upsert(r.clone()), None));
    let mut with_status = r.clone();
    with_status.status = Some(json!({"parents": [{"controllerName": "x"}]}));
    assert!(!c.apply(Change::Upsert(with_status), None), "status only");
    assert_eq!(
        c.status(ApiKind::HTTPRoute, Some("a"), "r"),
        Some(json!({"parents": [{"controllerName": "x"}]}))
    );
    assert_eq!(
        c.objects().routes[0].status,
        Some(json!({"parents": [{"controllerName": "x"}]}))
    );
    let mut moved = r;
    moved.spec.hostnames = vec!["a.example.com".into()];
    assert!(c.apply(Change::Upsert(moved), None), "a spec change is one");
    assert_eq!(c.status(ApiKind::HTTPRoute, Some("a"), "nope"), None);
    assert!(c.apply(Change::Resync(Vec::<HTTPRoute>::new()), Some("a")));
    assert!(c.objects().routes.is_empty());
    assert!(
        c.apply(Change::Resync(Vec::<HTTPRoute>::new()), None),
        "a completed list is news even when nothing changed: it may be the first"
    );
}

#[test]
fn gateway_classes_are_cluster_scoped() {
    let mut c = GatewayApiCache::default();
    let class: GatewayClass = decode(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "gatehouse"},
        "spec": {"controllerName": "gatehouse.dev/gateway-controller"}
    }));
    c.apply(Change::Upsert(class.clone()), None);
    // A namespaced watcher's scope does not apply to them.
    c.apply(Change::Resync(vec![class]), Some("a"));
    assert_eq!(
        c.status(ApiKind::GatewayClass, None, "gatehouse"),
        Some(serde_json::Value::Null)
    );
    assert_eq!(c.objects().classes.len(), 1);
}

#[test]
fn references_are_service_backends_and_listener_certificates() {
    let mut c = GatewayApiCache::default();
    c.apply(
        Change::Upsert(route(
            "apps",
            "r",
            json!([
                {"name": "same", "port": 80},
                {"name": "other", "namespace": "backends", "port": 80},
                {"group": "", "kind": "Service", "name": "explicit", "port": 80},
                {"group": "example.com", "kind": "Bucket", "name": "not-a-service"},
                {"kind": "ConfigMap", "name": "not-a-service-either"}
            ]),
        )),
        None,
    );
    let gw: Gateway = decode(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {"gatewayClassName": "gatehouse", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [
                {"name": "cert"},
                {"group": "", "kind": "Secret", "name": "shared", "namespace": "certs"},
                {"group": "example.com", "kind": "Vault", "name": "no"}
            ]}}
        ]}
    }));
    c.apply(Change::Upsert(gw), None);
    let (services, secrets) = c.references();
    let pairs = |s: BTreeSet<(String, String)>| {
        s.into_iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(services), ["apps/explicit", "apps/same", "backends/other"]);
    assert_eq!(pairs(secrets), ["certs/shared", "infra/cert"]);
}

#[test]
fn namespaces_keep_only_labels_and_a_watcher_by_name_replaces_only_its_own() {
    let mut c = GatewayApiCache::default();
    assert!(c.apply_namespaces(
        Change::Resync(vec![
            namespace("a", json!({"team": "a"})),
            namespace("b", json!({}))
        ]),
        None
    ));
    assert!(!c.apply_namespaces(Change::Upsert(namespace("a", json!({"team": "a"}))), None));
    assert!(c.apply_namespaces(
        Change::Resync(vec![namespace("a", json!({"team": "x"}))]),
        Some("a")
    ));
    let ns = c.objects().namespaces;
    assert_eq!(ns["a"]["team"], "x");
    assert!(ns.contains_key("b"), "another watcher's namespace stays");
    assert!(c.apply_namespaces(Change::Resync(Vec::new()), Some("b")));
    assert!(!c.objects().namespaces.contains_key("b"));
    assert!(c.apply_namespaces(Change::Delete(namespace("a", json!({}))), None));
    assert!(c.objects().namespaces.is_empty());
}
