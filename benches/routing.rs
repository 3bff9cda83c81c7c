//! Route compile and lookup at 10,000 routes: `cargo bench --bench routing`.

use std::hint::black_box;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::api::{GatewayRoute, GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec};
use gatehouse::compile::{compile, CompileOptions, Snapshot};
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
