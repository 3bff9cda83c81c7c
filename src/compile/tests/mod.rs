use super::*;
use crate::api::{
    GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec, WebSocketChannel, WebSocketChannelSpec,
};
use crate::routing::Lookup;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

mod secrets;
mod tenancy;

fn upstream(name: &str, endpoints: &[&str]) -> GatewayUpstream {
    let mut u = GatewayUpstream::new(
        name,
        GatewayUpstreamSpec {
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    u.metadata.namespace = Some("default".into());
    u
}

fn route(name: &str, age: i64, spec: GatewayRouteSpec) -> GatewayRoute {
    let mut r = GatewayRoute::new(name, spec);
    r.metadata.namespace = Some("default".into());
    r.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(age).unwrap()));
    r.metadata.generation = Some(7);
    r
}

fn spec(path: &str, methods: &[&str]) -> GatewayRouteSpec {
    GatewayRouteSpec {
        path: path.into(),
        methods: methods.iter().map(|s| s.to_string()).collect(),
        upstream: "svc".into(),
        ..Default::default()
    }
}

fn verdict<'a>(c: &'a Compiled, name: &str) -> &'a Verdict {
    c.verdicts.iter().find(|v| v.name == name).expect("verdict")
}

fn reason(v: &Verdict, t: &str) -> (String, String) {
    let c = v.condition(t).expect("condition");
    (c.status.clone(), c.reason.clone())
}

fn snapshot(routes: Vec<GatewayRoute>) -> Snapshot {
    Snapshot {
        routes,
        upstreams: vec![upstream("svc", &["http://127.0.0.1:9"])],
        ..Default::default()
    }
}

#[test]
fn accepted_routes_are_programmed_with_generation() {
    let c = compile(
        &snapshot(vec![route("a", 1, spec("/a", &["GET"]))]),
        &CompileOptions::default(),
    );
    let v = verdict(&c, "a");
    assert_eq!(v.generation, Some(7));
    assert_eq!(reason(v, "Accepted"), ("True".into(), "Accepted".into()));
    assert_eq!(reason(v, "ResolvedRefs"), ("True".into(), "ResolvedRefs".into()));
    assert_eq!(reason(v, "Programmed"), ("True".into(), "Programmed".into()));
    assert!(matches!(
        c.table.lookup(None, "/a", &Method::GET),
        Lookup::Found(_)
    ));
    let u = verdict(&c, "svc");
    assert_eq!(
        u.endpoints,
        Some(crate::api::EndpointCounts { total: 1, healthy: 1 })
    );
    assert_eq!(reason(u, "Ready").0, "True");
}

#[test]
fn one_bad_route_never_takes_the_others_down() {
    let mut bad_timeout = spec("/t", &[]);
    bad_timeout.timeout = Some("soon".into());
    let c = compile(
        &snapshot(vec![
            route("good", 1, spec("/good", &[])),
            route("badpath", 2, spec("no-slash", &[])),
            route("badspec", 3, bad_timeout),
            route("badmethod", 4, spec("/m", &["FETCH"])),
        ]),
        &CompileOptions::default(),
    );
    assert_eq!(
        reason(verdict(&c, "badpath"), "Accepted"),
        ("False".into(), "InvalidPath".into())
    );
    assert_eq!(
        reason(verdict(&c, "badspec"), "Accepted"),
        ("False".into(), "InvalidSpec".into())
    );
    assert!(verdict(&c, "badspec")
        .condition("Accepted")
        .unwrap()
        .message
        .contains("timeout"));
    assert_eq!(reason(verdict(&c, "badmethod"), "Programmed").0, "False");
    assert!(matches!(
        c.table.lookup(None, "/good", &Method::GET),
        Lookup::Found(_)
    ));
    assert_eq!(c.table.routes().len(), 1);
}

#[test]
fn older_route_wins_a_conflict_and_newer_is_told_why() {
    let c = compile(
        &snapshot(vec![
            route("newer", 20, spec("/users/{name}", &["GET", "PUT"])),
            route("older", 10, spec("/users/{id}", &["GET"])),
            route("other-method", 30, spec("/users/{x}", &["DELETE"])),
        ]),
        &CompileOptions::default(),
    );
    let v = verdict(&c, "newer");
    assert_eq!(reason(v, "Accepted"), ("False".into(), "Conflicted".into()));
    assert!(v.condition("Accepted").unwrap().message.contains("default/older"));
    assert_eq!(reason(verdict(&c, "older"), "Accepted").0, "True");
    assert_eq!(
        reason(verdict(&c, "other-method"), "Accepted").0,
        "True",
        "disjoint methods coexist"
    );
    match c.table.lookup(None, "/users/1", &Method::PUT) {
        Lookup::MethodNotAllowed(allow) => assert_eq!(allow.allow_header(), "GET, DELETE"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_path_on_different_hosts_is_no_conflict() {
    let mut a = spec("/x", &[]);
    a.hosts = vec!["a.example.com".into()];
    let mut b = spec("/x", &[]);
    b.hosts = vec!["b.example.com".into()];
    let c = compile(
        &snapshot(vec![route("a", 1, a), route("b", 2, b)]),
        &CompileOptions::default(),
    );
    assert!(c.verdicts.iter().all(|v| !v.is_rejected()));
    let Lookup::Found(r) = c.table.lookup(Some("B.example.com:8080"), "/x", &Method::GET) else {
        panic!()
    };
    assert_eq!(r.name, "b");
    assert!(matches!(
        c.table.lookup(Some("c.example.com"), "/x", &Method::GET),
        Lookup::NotFound
    ));
}

#[test]
fn missing_or_rejected_upstream_is_a_resolved_refs_condition() {
    let mut s = snapshot(vec![route("r", 1, spec("/r", &[]))]);
    s.upstreams.clear();
    let c = compile(&s, &CompileOptions::default());
    let v = verdict(&c, "r");
    assert_eq!(reason(v, "Accepted").0, "True");
    assert_eq!(
        reason(v, "ResolvedRefs"),
        ("False".into(), "UpstreamNotFound".into())
    );
    assert_eq!(reason(v, "Programmed").0, "False");
    assert!(!v.is_rejected(), "unresolved refs are not a rejection");

    s.upstreams = vec![upstream("svc", &["not a url"])];
    let c = compile(&s, &CompileOptions::default());
    assert_eq!(
        reason(verdict(&c, "svc"), "Accepted"),
        ("False".into(), "InvalidSpec".into())
    );
    assert_eq!(
        reason(verdict(&c, "r"), "ResolvedRefs"),
        ("False".into(), "UpstreamNotAccepted".into())
    );
}

#[test]
fn upstream_needs_exactly_one_source() {
    let mut u = upstream("svc", &["http://a:1"]);
    u.spec.service = Some(crate::api::ServiceRef {
        name: "s".into(),
        port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80),
    });
    let c = compile(
        &Snapshot {
            upstreams: vec![u],
            ..Default::default()
        },
        &CompileOptions::default(),
    );
    assert!(verdict(&c, "svc")
        .condition("Accepted")
        .unwrap()
        .message
        .contains("exactly one"));
}

#[test]
fn service_upstreams_resolve_through_discovered_endpoints() {
    let mut u = upstream("svc", &[]);
    u.spec.service = Some(crate::api::ServiceRef {
        name: "users".into(),
        port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()),
    });
    let mut s = Snapshot {
        upstreams: vec![u],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    assert_eq!(
        reason(verdict(&c, "svc"), "ResolvedRefs"),
        ("False".into(), "ServiceNotFound".into())
    );
    s.services.insert(
        "default/users".into(),
        ServiceEndpoints {
            ports: vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: 3002,
                addresses: vec!["10.0.0.5".into(), "10.0.0.6".into()],
            }],
            addresses: Vec::new(),
        },
    );
    let c = compile(&s, &CompileOptions::default());
    let v = verdict(&c, "svc");
    assert_eq!(reason(v, "ResolvedRefs").0, "True");
    assert_eq!(v.endpoints.as_ref().unwrap().total, 2);
    assert_eq!(
        c.table.upstreams["default/svc"].endpoints[1].url,
        "http://10.0.0.6:3002"
    );
}

#[test]
fn reserved_paths_are_accepted_but_not_programmed() {
    let c = compile(
        &snapshot(vec![route("h", 1, spec("/health", &[]))]),
        &CompileOptions::default(),
    );
    let v = verdict(&c, "h");
    assert_eq!(reason(v, "Accepted").0, "True");
    assert!(v
        .condition("Programmed")
        .unwrap()
        .message
        .contains("gateway itself"));
}

#[test]
fn route_policies_compile() {
    let mut s = spec("/api/*", &[]);
    s.timeout = Some("0s".into());
    s.rewrite_prefix = Some("/v1".into());
    s.required_roles = vec!["user".into()];
    s.rate_limit = Some(crate::api::RouteRateLimit {
        requests: 5,
        window: "1m".into(),
        key: Some("header:x-key".into()),
    });
    let c = compile(&snapshot(vec![route("p", 1, s)]), &CompileOptions::default());
    let Lookup::Found(r) = c.table.lookup(None, "/api/users/1", &Method::GET) else {
        panic!()
    };
    assert_eq!(r.timeout, None, "0s disables the timeout");
    assert!(r.auth.required, "roles imply authentication");
    assert_eq!(r.rewrite.as_ref().unwrap().apply("/api/users/1"), "/v1/users/1");
    assert_eq!(r.rewrite.as_ref().unwrap().apply("/api"), "/v1");
    let rl = r.rate_limit.as_ref().unwrap();
    assert_eq!((rl.requests, rl.window.as_secs()), (5, 60));

    let mut bad = spec("/b", &[]);
    bad.rate_limit = Some(crate::api::RouteRateLimit {
        requests: 5,
        window: "1m".into(),
        key: Some("cookie".into()),
    });
    let c = compile(&snapshot(vec![route("b", 1, bad)]), &CompileOptions::default());
    assert!(verdict(&c, "b").is_rejected());
}

#[test]
fn default_cors_applies_unless_the_route_overrides() {
    let opts = CompileOptions {
        default_cors: Some(CorsPolicy {
            allowed_origins: vec!["*".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut own = spec("/own", &[]);
    own.cors = Some(CorsPolicy {
        allowed_origins: vec!["https://app.example.com".into()],
        ..Default::default()
    });
    let c = compile(
        &snapshot(vec![route("d", 1, spec("/d", &[])), route("o", 2, own)]),
        &opts,
    );
    let Lookup::Found(d) = c.table.lookup(None, "/d", &Method::GET) else {
        panic!()
    };
    assert!(d.cors.as_ref().unwrap().any_origin);
    let Lookup::Found(o) = c.table.lookup(None, "/own", &Method::GET) else {
        panic!()
    };
    assert!(o.cors.as_ref().unwrap().allows("https://app.example.com"));
    assert!(!o.cors.as_ref().unwrap().allows("https://evil.example.com"));
}

#[test]
fn channels_get_verdicts_and_duplicates_conflict() {
    let ch = |name: &str, channel: Option<&str>| {
        let mut c = WebSocketChannel::new(
            name,
            WebSocketChannelSpec {
                channel: channel.map(str::to_string),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("default".into());
        c
    };
    let s = Snapshot {
        channels: vec![ch("a", Some("news")), ch("b", Some("news")), ch("c", None)],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    assert_eq!(reason(verdict(&c, "a"), "Accepted").0, "True");
    assert_eq!(
        reason(verdict(&c, "b"), "Accepted"),
        ("False".into(), "Conflicted".into())
    );
    assert_eq!(reason(verdict(&c, "c"), "Accepted").0, "True");
}
