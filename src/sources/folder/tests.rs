use super::*;

fn load(text: &str) -> Loaded {
    let mut l = Loaded::default();
    load_text(text, "t.yaml", &mut BTreeSet::new(), &mut l);
    l
}

#[test]
fn multi_document_files_with_secrets_and_problems() {
    let l = load(
        r#"
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {name: users}
spec: {endpoints: ["http://127.0.0.1:1"]}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: users, namespace: team-a}
spec: {path: /users, upstream: users}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: broken}
spec: {upstream: users}
---
apiVersion: v1
kind: Secret
metadata: {name: jwt}
data: {secret: aGVsbG8=}
stringData: {other: plain}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
"#,
    );
    assert_eq!(l.snapshot.upstreams.len(), 1);
    assert_eq!(l.snapshot.routes.len(), 1);
    assert_eq!(l.snapshot.routes[0].metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
    assert!(l.problems[0].message.contains("path"), "{}", l.problems[0]);
    assert_eq!(
        l.problems[0].resource.as_deref(),
        Some("GatewayRoute default/broken")
    );
    let data = l.snapshot.secrets[0].data.as_ref().expect("data");
    assert_eq!(data["secret"].0, b"hello");
    assert_eq!(data["other"].0, b"plain");
    assert_eq!(l.notes.len(), 1);
}

#[test]
fn gateway_api_objects_and_namespace_labels_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse, namespace: ignored}
spec: {controllerName: gatehouse.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {team: edge}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t}
"#;
    std::fs::write(dir.path().join("gw.yaml"), text).expect("write");
    let cfg = GatewayConfig::default();
    let l = load_all(&cfg, Some(dir.path()));
    let api = &l.snapshot.gateway_api;
    assert_eq!(api.classes.len(), 1);
    assert_eq!(api.classes[0].metadata.namespace, None, "cluster-scoped");
    assert_eq!(api.gateways[0].spec.listeners[0].port, 80);
    assert_eq!(api.routes[0].metadata.namespace.as_deref(), Some("default"));
    assert_eq!(api.grants[0].spec.to[0].kind, "Service");
    assert_eq!(api.namespaces["infra"]["team"], "edge");
    assert_eq!(api.namespaces["infra"]["kubernetes.io/metadata.name"], "infra");
    assert_eq!(
        api.namespaces["default"]["kubernetes.io/metadata.name"], "default",
        "a namespace a route lives in exists"
    );
    assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
    assert!(l.problems[0].message.contains("TCPRoute"), "{}", l.problems[0]);

    let off = GatewayConfig::from_yaml_str("gateway_api: {enabled: false}\n", &|_| None).expect("config");
    let l = load_all(&off, Some(dir.path()));
    assert_eq!(l.snapshot.gateway_api, Default::default());
    assert!(
        l.notes.iter().any(|n| n.contains("4 Gateway API object(s)")),
        "{:?}",
        l.notes
    );
}

#[test]
fn yaml_syntax_errors_are_problems_not_panics() {
    let l = load("kind: [unclosed\n");
    assert_eq!(l.problems.len(), 1);
    assert!(l.problems[0].message.contains("invalid YAML"));
}
