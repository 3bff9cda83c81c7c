//! Tests of the Gateway API compiler: status as the conformance suite reads it, and the
//! tables the listeners get.

use std::net::IpAddr;

use http::{HeaderMap, Method};
use serde_json::Value;

use super::*;
use crate::api::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::compile::{CompileOptions, ServiceEndpoints, ServicePort};
use crate::routing::Lookup;

const CLASS: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse, generation: 3}
spec: {controllerName: gatehouse.dev/gateway-controller}
";

fn snapshot(yaml: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for doc in format!("{CLASS}\n---\n{yaml}").split("\n---\n") {
        let v: Value = yaml_serde::from_str(doc).unwrap();
        match v["kind"].as_str().unwrap() {
            "GatewayClass" => s
                .gateway_api
                .classes
                .push(serde_json::from_value::<GatewayClass>(v).unwrap()),
            "Gateway" => s
                .gateway_api
                .gateways
                .push(serde_json::from_value::<Gateway>(v).unwrap()),
            "HTTPRoute" => s
                .gateway_api
                .routes
                .push(Arc::new(serde_json::from_value::<HTTPRoute>(v).unwrap())),
            "ReferenceGrant" => s
                .gateway_api
                .grants
                .push(serde_json::from_value::<ReferenceGrant>(v).unwrap()),
            "RoutePolicy" => s.gateway_api.policies.push(serde_json::from_value(v).unwrap()),
            k => panic!("{k}"),
        }
    }
    for (ns, name, addr) in [
        ("infra", "v1", "10.0.0.1"),
        ("infra", "v2", "10.0.0.2"),
        ("apps", "web", "10.0.0.3"),
    ] {
        s.services.insert(
            format!("{ns}/{name}"),
            ServiceEndpoints {
                ports: vec![ServicePort {
                    name: None,
                    port: 8080,
                    target_port: 3000,
                    addresses: vec![addr.into()],
                }],
                addresses: Vec::new(),
            },
        );
    }
    s
}

fn run(s: &Snapshot) -> GatewayApiCompiled {
    let gw = GatewayApiOptions {
        controller_name: crate::api::gateway_api::GATEWAY_CONTROLLER.into(),
        pool: vec!["127.0.1.1".parse().unwrap(), "127.0.1.2".parse().unwrap()],
        shared: None,
    };
    compile(s, &CompileOptions::default(), &gw, &RoutingTable::default(), None)
}

fn status<'a>(out: &'a GatewayApiCompiled, kind: ApiKind, name: &str) -> &'a Value {
    &out.status
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap()
        .status
}

/// `type=status/reason` of each condition.
fn conds(v: &Value) -> Vec<String> {
    v["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}/{}",
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap()
            )
        })
        .collect()
}

const GATEWAY: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 2}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: foo, port: 80, protocol: HTTP, hostname: foo.example.com}
  - {name: bad, port: 1111, protocol: UDP}
";

#[test]
fn the_class_is_accepted_and_lists_its_features() {
    let out = run(&snapshot(GATEWAY));
    let c = status(&out, ApiKind::GatewayClass, "gatehouse");
    assert_eq!(conds(c), ["Accepted=True/Accepted"]);
    assert_eq!(c["conditions"][0]["observedGeneration"], 3);
    let features: Vec<&str> = c["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut sorted = features.clone();
    sorted.sort();
    assert_eq!(features, sorted);
    assert!(features.contains(&"HTTPRoute") && features.contains(&"ReferenceGrant"));
}

#[test]
fn a_gateway_gets_an_address_and_judged_listeners() {
    let out = run(&snapshot(GATEWAY));
    let g = status(&out, ApiKind::Gateway, "gw");
    assert_eq!(
        conds(g),
        ["Accepted=True/ListenersNotValid", "Programmed=True/Programmed"]
    );
    assert_eq!(g["addresses"][0]["value"], "127.0.1.1");
    assert_eq!(g["addresses"][0]["type"], "IPAddress");
    let bad = &g["listeners"][2];
    assert_eq!(bad["supportedKinds"].as_array().unwrap().len(), 0);
    assert!(conds(bad).contains(&"Accepted=False/UnsupportedProtocol".to_string()));
    let http = &g["listeners"][0];
    assert!(conds(http).contains(&"Programmed=True/Programmed".to_string()));
    assert_eq!(http["supportedKinds"][0]["kind"], "HTTPRoute");
    // One socket: port 80 of the Gateway's address.
    let addrs: Vec<String> = out.listeners.sockets.iter().map(|s| s.addr.to_string()).collect();
    assert_eq!(addrs, ["127.0.1.1:80"]);
}

#[test]
fn gateways_keep_the_address_their_status_reports() {
    let s = snapshot(&format!(
        "{GATEWAY}\n---\n{}",
        "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, port: 80, protocol: HTTP}]
status:
  addresses: [{type: IPAddress, value: 127.0.1.1}]
"
    ));
    let out = run(&s);
    assert_eq!(
        status(&out, ApiKind::Gateway, "second")["addresses"][0]["value"],
        "127.0.1.1"
    );
    assert_eq!(
        status(&out, ApiKind::Gateway, "gw")["addresses"][0]["value"],
        "127.0.1.2"
    );
}

const ROUTES: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact, namespace: infra, generation: 5, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: Exact, value: /one}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /two}, headers: [{name: version, value: two}]}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /two}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing, namespace: infra, creationTimestamp: '2026-01-02T00:00:00Z'}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: nothing, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: section, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: nope}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hosts, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  hostnames: [bar.example.com]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cross, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  rules:
  - backendRefs: [{name: web, namespace: apps, port: 8080}]
";

fn parent(out: &GatewayApiCompiled, route: &str) -> Vec<String> {
    conds(&status(out, ApiKind::HTTPRoute, route)["parents"][0])
}

#[test]
fn routes_are_told_why_they_do_not_attach() {
    let out = run(&snapshot(&format!("{GATEWAY}\n---\n{ROUTES}")));
    assert_eq!(
        parent(&out, "exact"),
        ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
    );
    let p = &status(&out, ApiKind::HTTPRoute, "exact")["parents"][0];
    assert_eq!(p["controllerName"], "gatehouse.dev/gateway-controller");
    assert_eq!(p["parentRef"]["namespace"], "infra");
    assert_eq!(p["parentRef"]["group"], "gateway.networking.k8s.io");
    assert_eq!(p["conditions"][0]["observedGeneration"], 5);
    assert_eq!(
        parent(&out, "missing"),
        ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"]
    );
    assert_eq!(parent(&out, "section")[0], "Accepted=False/NoMatchingParent");
    assert_eq!(
        parent(&out, "elsewhere")[0],
        "Accepted=False/NotAllowedByListeners"
    );
    assert_eq!(
        parent(&out, "hosts")[0],
        "Accepted=False/NoMatchingListenerHostname"
    );
    assert_eq!(
        parent(&out, "cross"),
        ["Accepted=True/Accepted", "ResolvedRefs=False/RefNotPermitted"]
    );
    let g = status(&out, ApiKind::Gateway, "gw");
    assert_eq!(g["listeners"][0]["attachedRoutes"], 2);
    assert_eq!(g["listeners"][1]["attachedRoutes"], 1);
}

#[test]
fn a_reference_grant_lets_a_route_reach_another_namespace() {
    let grant = "
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: '', kind: Service}]
";
    let out = run(&snapshot(&format!("{GATEWAY}\n---\n{ROUTES}\n---\n{grant}")));
    assert_eq!(
        parent(&out, "cross"),
        ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
    );
}

#[test]
fn the_listener_table_orders_matches_as_the_gateway_api_does() {
    let out = run(&snapshot(&format!("{GATEWAY}\n---\n{ROUTES}")));
    let table = &out.listeners.sockets[0].table;
    assert!(table.is_strict());
    let upstream = |host: &str, path: &str, headers: &HeaderMap| -> Option<String> {
        match table.lookup_request(Some(host), path, &Method::GET, Some(headers), None) {
            Lookup::Found(r) => {
                let g = r.gateway.as_ref().unwrap();
                Some(g.choose(0).map_or("500".into(), |u| u.key.clone()))
            }
            _ => None,
        }
    };
    let none = HeaderMap::new();
    let mut two = HeaderMap::new();
    two.insert("version", "two".parse().unwrap());
    assert_eq!(
        upstream("any.host", "/one", &none).as_deref(),
        Some("infra/v1:8080")
    );
    assert_eq!(upstream("any.host", "/one/", &none), None);
    assert_eq!(
        upstream("any.host", "/two/x", &none).as_deref(),
        Some("infra/v1:8080")
    );
    assert_eq!(
        upstream("any.host", "/two/x", &two).as_deref(),
        Some("infra/v2:8080")
    );
    assert_eq!(upstream("any.host", "/twox", &none), None);
    assert_eq!(upstream("any.host", "/missing", &none).as_deref(), Some("500"));
    // The listener with hostname foo.example.com takes its host: the route without a
    // reference grant answers 500, and the host-less listener's routes are not searched.
    assert_eq!(upstream("foo.example.com", "/", &none).as_deref(), Some("500"));
    assert_eq!(upstream("foo.example.com", "/one", &none).as_deref(), Some("500"));
}

#[test]
fn what_the_crd_rules_refuse_is_refused_with_a_reason() {
    let bad = "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: 'no-slash'}}]
";
    let out = run(&snapshot(&format!("{GATEWAY}\n---\n{bad}")));
    assert_eq!(parent(&out, "bad")[0], "Accepted=False/UnsupportedValue");
    let _ = IpAddr::from([127, 0, 1, 1]);
}

#[test]
fn policies_apply_field_by_field_from_the_most_specific_target() {
    let policies = "
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {name: gateway-wide, namespace: infra, generation: 4}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  rateLimit: {requests: 10, window: 1m}
  authRequired: true
---
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {name: route, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: exact}]
  requiredRoles: [admin]
  timeout: 5s
---
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {name: lost, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: nowhere}]
  timeout: 1s
";
    let out = run(&snapshot(&format!("{GATEWAY}\n---\n{ROUTES}\n---\n{policies}")));
    let table = &out.listeners.sockets[0].table;
    let route =
        |path: &str| match table.lookup_request(Some("h"), path, &Method::GET, Some(&HeaderMap::new()), None)
        {
            Lookup::Found(r) => r.clone(),
            _ => panic!("{path}"),
        };
    let exact = route("/one");
    assert!(exact.auth.required);
    assert_eq!(exact.auth.roles, ["admin"]);
    assert_eq!(exact.timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(exact.rate_limit.as_ref().unwrap().requests, 10);
    let missing = route("/missing");
    assert!(missing.auth.required && missing.auth.roles.is_empty());
    assert_eq!(missing.rate_limit.as_ref().unwrap().requests, 10);

    let p = status(&out, ApiKind::RoutePolicy, "gateway-wide");
    assert_eq!(p["ancestors"][0]["ancestorRef"]["name"], "gw");
    assert_eq!(conds(&p["ancestors"][0]), ["Accepted=True/Accepted"]);
    assert_eq!(p["ancestors"][0]["conditions"][0]["observedGeneration"], 4);
    let lost = status(&out, ApiKind::RoutePolicy, "lost");
    assert_eq!(conds(&lost["ancestors"][0]), ["Accepted=False/TargetNotFound"]);
}

#[test]
fn a_backend_ref_may_name_a_gateway_upstream() {
    let route = "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: local, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - backendRefs: [{group: gatehouse.dev, kind: GatewayUpstream, name: dev}]
  - matches: [{path: {value: /other}}]
    backendRefs: [{group: gatehouse.dev, kind: GatewayUpstream, name: absent}]
";
    let mut s = snapshot(&format!("{GATEWAY}\n---\n{route}"));
    let mut up = crate::api::GatewayUpstream::new(
        "dev",
        crate::api::GatewayUpstreamSpec {
            endpoints: vec!["http://127.0.0.1:3000".into()],
            ..Default::default()
        },
    );
    up.metadata.namespace = Some("infra".into());
    s.upstreams.push(up);
    let options = CompileOptions {
        gateway_api: Some(GatewayApiOptions {
            controller_name: crate::api::gateway_api::GATEWAY_CONTROLLER.into(),
            pool: vec![IpAddr::from([127, 0, 1, 1])],
            shared: None,
        }),
        ..CompileOptions::default()
    };
    let out = crate::compile::compile(&s, &options);
    let st = out.gateway_status.iter().find(|x| x.name == "local").unwrap();
    assert_eq!(
        conds(&st.status["parents"][0]),
        ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"]
    );
    let table = &out.table.listeners.sockets[0].table;
    let headers = HeaderMap::new();
    let Lookup::Found(r) = table.lookup_request(Some("h"), "/x", &Method::GET, Some(&headers), None) else {
        panic!("no route")
    };
    let u = r.gateway.as_ref().unwrap().choose(0).unwrap();
    assert_eq!(u.key, "infra/dev");
    assert!(
        Arc::ptr_eq(u, &out.table.upstreams["infra/dev"]),
        "the GatewayUpstream's own upstream"
    );
}

/// What a compile serves and says, in order: every status, and each socket's routes.
fn outcome(out: &GatewayApiCompiled) -> (Vec<String>, Vec<String>) {
    let statuses = out
        .status
        .iter()
        .map(|s| format!("{} {:?}/{} {}", s.kind, s.namespace, s.name, s.status))
        .collect();
    let mut served = Vec::new();
    for socket in &out.listeners.sockets {
        for r in socket.table.routes() {
            let rule = r.gateway.as_ref().unwrap();
            let backends: Vec<_> = rule
                .backends
                .iter()
                .map(|b| b.upstream.as_ref().map(|u| u.key.clone()))
                .collect();
            served.push(format!(
                "{} {} {:?} {} {backends:?}",
                socket.addr, r.path, r.hosts, rule.source
            ));
        }
    }
    let mut upstreams: Vec<_> = out.upstreams.iter().map(|u| u.key.clone()).collect();
    upstreams.sort();
    served.push(format!("{upstreams:?}"));
    (statuses, served)
}

fn run_after(s: &Snapshot, prev: &Snapshot, cache: &RouteCache) -> GatewayApiCompiled {
    let gw = GatewayApiOptions {
        controller_name: crate::api::gateway_api::GATEWAY_CONTROLLER.into(),
        pool: vec!["127.0.1.1".parse().unwrap(), "127.0.1.2".parse().unwrap()],
        shared: None,
    };
    compile(
        s,
        &CompileOptions::default(),
        &gw,
        &RoutingTable::default(),
        Some((prev, cache)),
    )
}

fn route_status<'a>(out: &'a GatewayApiCompiled, name: &str) -> &'a Arc<Value> {
    &out.status
        .iter()
        .find(|s| s.kind == ApiKind::HTTPRoute && s.name == name)
        .unwrap()
        .status
}

#[test]
fn a_compile_after_another_reuses_unchanged_routes_and_ends_the_same() {
    let first = snapshot(&format!("{GATEWAY}\n---\n{ROUTES}"));
    let before = run(&first);
    // One route changed (a new object), one added, one deleted; the rest are the same objects.
    let mut next = first.clone();
    let routes = &mut next.gateway_api.routes;
    let i = routes
        .iter()
        .position(|r| r.metadata.name.as_deref() == Some("missing"))
        .unwrap();
    let mut changed = (*routes[i]).clone();
    changed.spec.rules[0].backend_refs[0].name = "v2".into();
    changed.metadata.namespace = Some("infra".into());
    routes[i] = Arc::new(changed);
    routes.retain(|r| r.metadata.name.as_deref() != Some("hosts"));
    let mut added = (*routes[0]).clone();
    added.metadata.name = Some("added".into());
    added.metadata.creation_timestamp = None;
    routes.push(Arc::new(added));

    let after = run_after(&next, &first, &before.cache);
    assert_eq!(outcome(&after), outcome(&run(&next)));
    assert!(Arc::ptr_eq(
        route_status(&before, "exact"),
        route_status(&after, "exact")
    ));
    assert!(!Arc::ptr_eq(
        route_status(&before, "missing"),
        route_status(&after, "missing")
    ));
    assert_eq!(
        parent(&after, "missing"),
        ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
    );
    // Attachments of reused routes are counted again.
    let g = status(&after, ApiKind::Gateway, "gw");
    assert_eq!(g["listeners"][0]["attachedRoutes"], 3);

    // A change to something routes read (a Service goes) is never hidden by the cache.
    let mut third = next.clone();
    third.services.remove("infra/v2");
    let again = run_after(&third, &next, &after.cache);
    assert_eq!(outcome(&again), outcome(&run(&third)));
    assert_eq!(
        parent(&again, "missing"),
        ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"]
    );
    // The same goes for a Gateway's listeners.
    let mut fourth = third.clone();
    fourth.gateway_api.gateways[0].spec.listeners.remove(0);
    let last = run_after(&fourth, &third, &again.cache);
    assert_eq!(outcome(&last), outcome(&run(&fourth)));
    assert_eq!(parent(&last, "exact")[0], "Accepted=False/NoMatchingParent");
}

#[test]
fn behind_one_service_gateways_report_its_address_and_share_ports_oldest_first() {
    let gateways = "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: first, namespace: infra, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: apps, creationTimestamp: '2026-01-02T00:00:00Z'}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: admin, port: 8081, protocol: HTTP}
  - {name: other, port: 9090, protocol: HTTP}
";
    let mut s = snapshot(gateways);
    s.services.insert(
        "gatehouse/edge".into(),
        ServiceEndpoints {
            ports: Vec::new(),
            addresses: vec!["203.0.113.9".into(), "gw.example.com".into()],
        },
    );
    let gw = GatewayApiOptions {
        controller_name: crate::api::gateway_api::GATEWAY_CONTROLLER.into(),
        pool: vec!["127.0.1.1".parse().unwrap()],
        shared: Some(SharedAddress {
            service: "gatehouse/edge".into(),
            bind: "0.0.0.0".parse().unwrap(),
            own_ports: vec![(8080, "proxy"), (8081, "admin")],
        }),
    };
    let run_shared =
        |s: &Snapshot| compile(s, &CompileOptions::default(), &gw, &RoutingTable::default(), None);
    let out = run_shared(&s);
    let first = status(&out, ApiKind::Gateway, "first");
    assert_eq!(
        conds(first),
        ["Accepted=True/Accepted", "Programmed=True/Programmed"]
    );
    assert_eq!(
        first["addresses"],
        serde_json::json!([{"type": "IPAddress", "value": "203.0.113.9"},
                           {"type": "Hostname", "value": "gw.example.com"}])
    );
    let second = status(&out, ApiKind::Gateway, "second");
    assert_eq!(second["addresses"], first["addresses"]);
    let listener = |name: &str| {
        let l = second["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap();
        conds(l)[0].clone()
    };
    assert_eq!(listener("http"), "Accepted=False/PortUnavailable");
    assert_eq!(listener("admin"), "Accepted=False/PortUnavailable");
    assert_eq!(listener("other"), "Accepted=True/Accepted");
    let sockets: Vec<(String, String)> = out
        .listeners
        .sockets
        .iter()
        .map(|s| (s.addr.to_string(), s.gateway.clone()))
        .collect();
    assert_eq!(
        sockets,
        [
            ("0.0.0.0:80".to_string(), "infra/first".to_string()),
            ("0.0.0.0:9090".to_string(), "apps/second".to_string())
        ]
    );

    // No Service (yet): still served on the pods, but not Programmed, and no address claimed.
    s.services.clear();
    let out = run_shared(&s);
    let first = status(&out, ApiKind::Gateway, "first");
    assert_eq!(conds(first)[1], "Programmed=False/AddressNotAssigned");
    assert!(first.get("addresses").is_none());
    assert_eq!(out.listeners.sockets.len(), 2);
}
