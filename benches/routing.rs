//! Route compile and lookup at 10,000 GatewayRoutes, and at 3,000 Gateway API HTTPRoutes on
//! one Gateway: `cargo bench --bench routing`.

use std::hint::black_box;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::api::{GatewayRoute, GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec};
use gatehouse::compile::{compile, compile_after, CompileOptions, Snapshot};
use gatehouse::routing::Lookup;
use http::Method;

/// 10,000 routes in the shapes real APIs have: exact, templated, prefix; some host-bound.
fn snapshot(n: usize) -> Snapshot {
    let mut up = GatewayUpstream::new(
        "svc",
        GatewayUpstreamSpec {
            endpoints: vec!["http://127.0.0.1:8080".into()],
            ..Default::default()
        },
    );
    up.metadata.namespace = Some("default".into());
    let mut routes = Vec::with_capacity(n);
    for i in 0..n {
        let (path, hosts) = match i % 4 {
            0 => (format!("/api/v1/service{i}/items"), vec![]),
            1 => (format!("/api/v1/service{i}/items/{{id}}"), vec![]),
            2 => (format!("/static/team{i}/*"), vec![]),
            _ => (
                format!("/tenant/{i}/orders/{{order}}/lines"),
                vec![format!("t{}.example.com", i % 50)],
            ),
        };
        let mut r = GatewayRoute::new(
            &format!("r{i}"),
            GatewayRouteSpec {
                path,
                hosts,
                methods: vec!["GET".into(), "POST".into()],
                upstream: "svc".into(),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("default".into());
        routes.push(r);
    }
    Snapshot {
        routes,
        upstreams: vec![up],
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let snap = snapshot(10_000);
    let opts = CompileOptions::default();
    c.bench_function("compile 10k routes", |b| {
        b.iter(|| black_box(compile(black_box(&snap), &opts)))
    });

    let compiled = compile(&snap, &opts);
    assert_eq!(compiled.table.routes().len(), 10_000);
    let table = compiled.table;
    let cases = [
        ("exact", None, "/api/v1/service4000/items"),
        ("template", None, "/api/v1/service4001/items/12345"),
        ("prefix", None, "/static/team4002/css/site.css"),
        (
            "host+template",
            Some("t3.example.com"),
            "/tenant/4003/orders/77/lines",
        ),
        ("miss", None, "/nothing/here/at/all"),
    ];
    let mut g = c.benchmark_group("lookup 10k routes");
    for (name, host, path) in cases {
        if name != "miss" {
            assert!(
                matches!(table.lookup(host, path, &Method::GET), Lookup::Found(_)),
                "{name}"
            );
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let found = matches!(
                    table.lookup(black_box(host), black_box(path), &Method::GET),
                    Lookup::Found(_)
                );
                black_box(found)
            })
        });
    }
    g.finish();
}

/// One Gateway and `n` HTTPRoutes: a host per 10 routes, prefix and exact paths, every third
/// rule with a header match in front of a plain one.
fn gateway_api_snapshot(n: usize) -> Snapshot {
    let mut docs = vec![
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "gatehouse"},
            "spec": {"controllerName": "gatehouse.dev/gateway-controller"}}),
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {"gatewayClassName": "gatehouse", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    ];
    for i in 0..n {
        let mut rules = vec![serde_json::json!({
            "matches": [{"path": {"type": "PathPrefix", "value": format!("/api/r{i}")}}],
            "backendRefs": [{"name": "svc", "port": 8080}]})];
        if i % 3 == 0 {
            rules.insert(
                0,
                serde_json::json!({
                "matches": [{"path": {"type": "PathPrefix", "value": format!("/api/r{i}")},
                             "headers": [{"name": "x-version", "value": "2"}]}],
                "backendRefs": [{"name": "svc", "port": 8080}]}),
            );
        }
        rules.push(serde_json::json!({
            "matches": [{"path": {"type": "Exact", "value": format!("/exact/r{i}")}}],
            "backendRefs": [{"name": "svc", "port": 8080}]}));
        docs.push(
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": format!("r{i}"), "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [format!("h{}.example.com", i / 10)],
                     "rules": rules}}),
        );
    }
    let mut s = Snapshot::default();
    for d in docs {
        match d["kind"].as_str() {
            Some("GatewayClass") => s
                .gateway_api
                .classes
                .push(serde_json::from_value(d).expect("a Gateway API object")),
            Some("Gateway") => s
                .gateway_api
                .gateways
                .push(serde_json::from_value(d).expect("a Gateway API object")),
            _ => s.gateway_api.routes.push(std::sync::Arc::new(
                serde_json::from_value(d).expect("a Gateway API object"),
            )),
        }
    }
    s.services.insert(
        "default/svc".into(),
        gatehouse::compile::ServiceEndpoints {
            ports: vec![gatehouse::compile::ServicePort {
                name: None,
                port: 8080,
                target_port: 3000,
                addresses: vec!["10.0.0.1".into()],
            }],
            addresses: Vec::new(),
        },
    );
    s
}

fn bench_gateway_api(c: &mut Criterion) {
    let snap = gateway_api_snapshot(3_000);
    let opts = CompileOptions {
        gateway_api: Some(gatehouse::compile::gateway_api::GatewayApiOptions {
            controller_name: "gatehouse.dev/gateway-controller".into(),
            pool: vec![std::net::IpAddr::from([127, 0, 1, 1])],
            shared: None,
        }),
        ..CompileOptions::default()
    };
    c.bench_function("compile 3k HTTPRoutes", |b| {
        b.iter(|| black_box(compile(black_box(&snap), &opts)))
    });
    let compiled = compile(&snap, &opts);
    // The next change: one more HTTPRoute, the others the same objects (what a watch gives).
    let mut next = snap.clone();
    let mut added = (*next.gateway_api.routes[0]).clone();
    added.metadata.name = Some("added".into());
    added.spec.hostnames = vec!["added.example.com".into()];
    next.gateway_api.routes.push(std::sync::Arc::new(added));
    c.bench_function("compile 3k HTTPRoutes after one added", |b| {
        b.iter(|| {
            black_box(compile_after(
                black_box(&next),
                &opts,
                Some((&snap, &compiled.cache)),
            ))
        })
    });
    let table = compiled.table.listeners.sockets[0].table.clone();
    let mut v2 = http::HeaderMap::new();
    v2.insert("x-version", http::HeaderValue::from_static("2"));
    let none = http::HeaderMap::new();
    let cases = [
        ("prefix", "h150.example.com", "/api/r1501/items/7", &none),
        ("prefix+header", "h150.example.com", "/api/r1500/items/7", &v2),
        (
            "header miss, next rule",
            "h150.example.com",
            "/api/r1500/items/7",
            &none,
        ),
        ("exact", "h150.example.com", "/exact/r1502", &none),
        ("miss", "h150.example.com", "/nothing", &none),
    ];
    let mut g = c.benchmark_group("lookup 3k HTTPRoutes");
    for (name, host, path, headers) in cases {
        let found = matches!(
            table.lookup_request(Some(host), path, &Method::GET, Some(headers), None),
            Lookup::Found(_)
        );
        assert_eq!(found, name != "miss", "{name}");
        g.bench_function(name, |b| {
            b.iter(|| {
                let found = matches!(
                    table.lookup_request(
                        black_box(Some(host)),
                        black_box(path),
                        &Method::GET,
                        Some(headers),
                        None
                    ),
                    Lookup::Found(_)
                );
                black_box(found)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench, bench_gateway_api
}
criterion_main!(benches);
