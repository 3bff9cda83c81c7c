//! Namespaces sharing the gateway: hosts, static endpoints, upstream TLS and channels each
//! belong to someone, and a namespace that reaches for another's gets a condition naming it.

use super::*;
use crate::api::{RouteTls, UpstreamTls};
use crate::settings::TenancyConfig;
use crate::tls::tests::{self_signed, tls_secret};

fn in_ns<T: kube::Resource>(mut r: T, ns: &str) -> T {
    r.meta_mut().namespace = Some(ns.into());
    r
}

/// A route of `ns`, `age` seconds old, for `hosts`, to upstream `svc` of its namespace.
fn route_of(ns: &str, name: &str, age: i64, hosts: &[&str], path: &str) -> GatewayRoute {
    let mut s = spec(path, &[]);
    s.hosts = hosts.iter().map(|h| h.to_string()).collect();
    in_ns(route(name, age, s), ns)
}

fn svc_in(ns: &str) -> GatewayUpstream {
    in_ns(upstream("svc", &["http://192.0.2.10:8080"]), ns)
}

fn found<'t>(c: &'t Compiled, host: &str, path: &str) -> Option<&'t str> {
    match c.table.lookup(Some(host), path, &Method::GET) {
        Lookup::Found(r) => Some(r.id.as_str()),
        _ => None,
    }
}

fn message(v: &Verdict, t: &str) -> String {
    v.condition(t).expect("condition").message.clone()
}

fn options(tenancy: Tenancy) -> CompileOptions {
    CompileOptions {
        tenancy,
        ..CompileOptions::default()
    }
}

fn kubernetes(cfg: &str) -> Tenancy {
    let cfg: TenancyConfig = yaml_serde::from_str(cfg).expect("tenancy yaml");
    Tenancy::kubernetes(&cfg, vec![(8080, "proxy"), (8081, "admin"), (9090, "metrics")])
}

fn hosts(cfg: &str) -> Tenancy {
    let cfg: TenancyConfig = yaml_serde::from_str(cfg).expect("tenancy yaml");
    Tenancy::standalone(&cfg, Vec::new())
}

#[test]
fn a_host_belongs_to_the_first_namespace_that_claims_it() {
    let s = Snapshot {
        routes: vec![
            route_of("shop", "storefront", 1, &["shop.example.com"], "/*"),
            route_of("intruder", "checkout", 2, &["SHOP.example.com"], "/checkout/*"),
            route_of("shop", "more", 3, &["shop.example.com"], "/api/*"),
        ],
        upstreams: vec![svc_in("shop"), svc_in("intruder")],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    let v = verdict(&c, "checkout");
    assert_eq!(reason(v, "Accepted"), ("False".into(), "Conflicted".into()));
    let m = message(v, "Accepted");
    assert!(
        m.contains("shop.example.com") && m.contains("namespace shop") && m.contains("shop/storefront"),
        "{m}"
    );
    assert_eq!(reason(v, "Programmed").0, "False");
    assert_eq!(
        reason(verdict(&c, "more"), "Accepted").0,
        "True",
        "the owner adds routes"
    );
    assert_eq!(
        found(&c, "shop.example.com", "/checkout"),
        Some("shop/storefront")
    );
    assert_eq!(found(&c, "shop.example.com", "/api/x"), Some("shop/more"));
}

#[test]
fn a_wildcard_owns_the_names_below_it_that_nobody_claimed_before() {
    // team-a's wildcard first: team-b can take neither a name nor a narrower wildcard below it.
    let s = Snapshot {
        routes: vec![
            route_of("team-a", "wild", 1, &["*.example.com"], "/*"),
            route_of("team-b", "exact", 2, &["pay.example.com"], "/*"),
            route_of("team-b", "narrower", 3, &["*.pay.example.com"], "/*"),
        ],
        upstreams: vec![svc_in("team-a"), svc_in("team-b")],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    for name in ["exact", "narrower"] {
        let v = verdict(&c, name);
        assert_eq!(reason(v, "Accepted"), ("False".into(), "Conflicted".into()));
        let m = message(v, "Accepted");
        assert!(
            m.contains("under *.example.com") && m.contains("namespace team-a"),
            "{m}"
        );
    }

    // team-b's name first: team-a's newer wildcard gets everything else below it, and
    // requests for team-b's name never go on to it.
    let s = Snapshot {
        routes: vec![
            route_of("team-b", "exact", 1, &["pay.example.com"], "/api/*"),
            route_of("team-a", "wild", 2, &["*.example.com"], "/*"),
        ],
        upstreams: vec![svc_in("team-a"), svc_in("team-b")],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    assert!(c.verdicts.iter().all(|v| !v.is_rejected()));
    assert_eq!(found(&c, "pay.example.com", "/api/1"), Some("team-b/exact"));
    assert_eq!(found(&c, "pay.example.com", "/other"), None);
    assert_eq!(found(&c, "www.example.com", "/other"), Some("team-a/wild"));
}

#[test]
fn routes_without_hosts_never_answer_for_a_claimed_host() {
    let mut s = Snapshot {
        routes: vec![
            route_of("shop", "storefront", 1, &["shop.example.com"], "/api/*"),
            route_of("shop", "status", 2, &[], "/status"),
            route_of("other", "catch-all", 3, &[], "/checkout/*"),
        ],
        upstreams: vec![svc_in("shop"), svc_in("other")],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    assert!(
        c.verdicts.iter().all(|v| !v.is_rejected()),
        "host-less routes are shared"
    );
    assert_eq!(found(&c, "shop.example.com", "/checkout/pay"), None);
    assert_eq!(
        found(&c, "unclaimed.example.com", "/checkout/pay"),
        Some("other/catch-all")
    );
    assert_eq!(found(&c, "192.0.2.1", "/checkout/pay"), Some("other/catch-all"));
    // The owner's own routes without hosts still answer on its host.
    assert_eq!(found(&c, "shop.example.com", "/status"), Some("shop/status"));
    // A 405 is not made of another namespace's routes either.
    assert!(matches!(
        c.table
            .lookup(Some("shop.example.com"), "/checkout/x", &Method::POST),
        Lookup::NotFound
    ));

    // The claim holds while the owner's route is not programmed (its upstream is missing).
    s.upstreams
        .retain(|u| u.metadata.namespace.as_deref() != Some("shop"));
    let c = compile(&s, &CompileOptions::default());
    assert_eq!(reason(verdict(&c, "storefront"), "Programmed").0, "False");
    assert_eq!(found(&c, "shop.example.com", "/checkout/pay"), None);
}

#[test]
fn tenancy_hosts_shares_and_reserves() {
    let s = Snapshot {
        routes: vec![
            route_of("shop", "storefront", 1, &["shop.example.com"], "/*"),
            route_of("checkout", "checkout", 2, &["shop.example.com"], "/checkout/*"),
            route_of("intruder", "intruder", 3, &["shop.example.com"], "/x/*"),
            route_of("intruder", "wild", 4, &["*.example.com"], "/*"),
            route_of("intruder", "no-host", 5, &[], "/y"),
            route_of("edge", "default-backend", 6, &[], "/*"),
            route_of("edge", "pinned", 7, &["api.example.com"], "/*"),
        ],
        upstreams: vec![
            svc_in("shop"),
            svc_in("checkout"),
            svc_in("intruder"),
            svc_in("edge"),
        ],
        ..Default::default()
    };
    let c = compile(
        &s,
        &options(hosts(
            "hosts:\n  shop.example.com: [shop, checkout]\n  '*': [edge]\n  '*.example.com': [edge]\n",
        )),
    );
    assert_eq!(reason(verdict(&c, "checkout"), "Accepted").0, "True", "shared");
    assert_eq!(
        found(&c, "shop.example.com", "/checkout/1"),
        Some("checkout/checkout")
    );
    for (name, words) in [
        (
            "intruder",
            "reserved by tenancy.hosts for namespace(s) shop, checkout",
        ),
        ("wild", "reserved by tenancy.hosts for namespace(s) edge"),
        ("no-host", "routes without hosts"),
    ] {
        let v = verdict(&c, name);
        assert_eq!(reason(v, "Accepted"), ("False".into(), "NotPermitted".into()));
        assert!(
            message(v, "Accepted").contains(words),
            "{}",
            message(v, "Accepted")
        );
    }
    // A pinned wildcard decides the names below it.
    assert_eq!(reason(verdict(&c, "pinned"), "Accepted").0, "True");
    assert_eq!(reason(verdict(&c, "default-backend"), "Accepted").0, "True");

    // A wildcard may not swallow a host pinned to other namespaces.
    let s = Snapshot {
        routes: vec![route_of("intruder", "wild", 1, &["*.example.com"], "/*")],
        upstreams: vec![svc_in("intruder")],
        ..Default::default()
    };
    let c = compile(&s, &options(hosts("hosts:\n  shop.example.com: [shop]\n")));
    let v = verdict(&c, "wild");
    assert_eq!(reason(v, "Accepted"), ("False".into(), "NotPermitted".into()));
    assert!(message(v, "Accepted").contains("covers shop.example.com"));
}

#[test]
fn a_namespace_never_serves_its_certificate_on_another_namespaces_host() {
    let (wild_crt, wild_key) = self_signed(&["*.example.com"]);
    let (def_crt, def_key) = self_signed(&["default.local"]);
    let mut wild = tls_secret("wild", &wild_crt, &wild_key);
    wild.metadata.namespace = Some("team-b".into());
    let mut a = route_of("team-a", "pay", 1, &["pay.example.com"], "/*");
    a.spec.tls = None;
    let mut b = route_of("team-b", "wild", 2, &["*.example.com"], "/*");
    b.spec.tls = Some(RouteTls {
        secret_name: "wild".into(),
    });
    let s = Snapshot {
        routes: vec![a, b],
        upstreams: vec![svc_in("team-a"), svc_in("team-b")],
        secrets: vec![wild, tls_secret("fallback", &def_crt, &def_key)],
        ..Default::default()
    };
    let c = compile(
        &s,
        &CompileOptions {
            default_certificate: Some(("default".into(), "fallback".into())),
            ..CompileOptions::default()
        },
    );
    assert!(c.verdicts.iter().all(|v| !v.has_problem()), "{:?}", c.verdicts);
    let served = |sni: &str| c.table.tls.resolve(Some(sni)).map(|k| k.cert[0].clone());
    let default = c.table.tls.resolve(None).map(|k| k.cert[0].clone());
    assert_eq!(served("pay.example.com"), default);
    assert_ne!(served("www.example.com"), default);
}

#[test]
fn kubernetes_mode_refuses_static_endpoints_unless_allowed() {
    let svc_ref = |ns: &str| {
        let mut u = in_ns(upstream("discovered", &[]), ns);
        u.spec.service = Some(crate::api::ServiceRef {
            name: "web".into(),
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80),
        });
        u
    };
    let s = Snapshot {
        upstreams: vec![
            in_ns(
                upstream("external", &["https://api.partner.example:443"]),
                "team-a",
            ),
            in_ns(upstream("public-ip", &["http://203.0.113.7:80"]), "legacy"),
            in_ns(upstream("pod-ip", &["http://10.42.0.17:8080"]), "legacy"),
            in_ns(upstream("metadata", &["http://169.254.169.254"]), "legacy"),
            in_ns(upstream("loopback", &["http://127.0.0.1:3000"]), "legacy"),
            in_ns(upstream("metrics", &["http://127.1:9090"]), "legacy"),
            in_ns(upstream("localhost", &["http://localhost:8081"]), "legacy"),
            svc_ref("team-a"),
        ],
        ..Default::default()
    };
    let c = compile(
        &s,
        &options(kubernetes("static_endpoints:\n  namespaces: [legacy]\n")),
    );
    let refused = |name: &str, words: &str| {
        let v = verdict(&c, name);
        assert_eq!(
            reason(v, "Accepted"),
            ("False".into(), "NotPermitted".into()),
            "{name}"
        );
        let m = message(v, "Accepted");
        assert!(m.contains(words), "{name}: {m}");
        assert!(!c.table.upstreams.contains_key(&format!("{}/{name}", v.namespace)));
    };
    refused("external", "not allowed in namespace team-a");
    refused("pod-ip", "private addresses");
    refused("metadata", "link-local");
    refused("loopback", "loopback");
    refused("metrics", "port 9090 is the gateway's own metrics port");
    refused("localhost", "port 8081 is the gateway's own admin port");
    assert_eq!(reason(verdict(&c, "public-ip"), "Accepted").0, "True");
    assert_eq!(
        reason(verdict(&c, "discovered"), "Accepted").0,
        "True",
        "Services are fine"
    );

    let c = compile(
        &s,
        &options(kubernetes(
            "static_endpoints:\n  namespaces: ['*']\n  allow_private: true\n  allow_loopback: true\n",
        )),
    );
    for name in ["external", "pod-ip", "loopback"] {
        assert_eq!(reason(verdict(&c, name), "Accepted").0, "True", "{name}");
    }
    for name in ["metadata", "metrics", "localhost"] {
        assert_eq!(reason(verdict(&c, name), "Accepted").1, "NotPermitted", "{name}");
    }
}

#[test]
fn standalone_folders_keep_loopback_upstreams_but_not_the_gateways_own_ports() {
    let s = Snapshot {
        routes: vec![
            route_of("default", "app", 1, &[], "/app/*"),
            route_of("default", "peek", 2, &[], "/peek/*"),
        ],
        upstreams: vec![
            in_ns(upstream("svc", &["http://127.0.0.1:3000"]), "default"),
            in_ns(upstream("metrics", &["http://127.0.0.1:9090"]), "default"),
        ],
        ..Default::default()
    };
    let mut peek = s.clone();
    peek.routes[1].spec.upstream = "metrics".into();
    let tenancy = Tenancy::standalone(&TenancyConfig::default(), vec![(9090, "metrics")]);
    let c = compile(&peek, &options(tenancy));
    assert_eq!(reason(verdict(&c, "svc"), "Accepted").0, "True");
    let v = verdict(&c, "metrics");
    assert_eq!(reason(v, "Accepted"), ("False".into(), "NotPermitted".into()));
    assert_eq!(
        reason(verdict(&c, "peek"), "ResolvedRefs"),
        ("False".into(), "UpstreamNotAccepted".into())
    );
    assert_eq!(found(&c, "any", "/peek/x"), None);
    assert_eq!(found(&c, "any", "/app/x"), Some("default/app"));
}

#[test]
fn upstream_tls_is_each_upstreams_own() {
    let https = |ns: &str, server_name: &str| {
        let mut u = in_ns(upstream("api", &["https://10.0.0.9:443"]), ns);
        u.spec.tls = Some(UpstreamTls {
            ca_secret_name: None,
            server_name: Some(server_name.into()),
        });
        u
    };
    let s = Snapshot {
        upstreams: vec![https("team-a", "a.internal"), https("team-b", "evil.internal")],
        ..Default::default()
    };
    let c = compile(&s, &CompileOptions::default());
    let name = |key: &str| {
        c.table
            .tls
            .upstream(key)
            .and_then(|t| t.server_name.as_ref())
            .map(|n| n.to_str().to_string())
    };
    assert_eq!(name("team-a/api").as_deref(), Some("a.internal"));
    assert_eq!(name("team-b/api").as_deref(), Some("evil.internal"));
    // One endpoint, two pools: a connection made for one is never lent to the other.
    let key = |k: &str| c.table.upstreams[k].endpoints[0].pool_key.clone();
    assert_ne!(key("team-a/api"), key("team-b/api"));
    assert_eq!(
        crate::upstream::upstream_of_pool_key(key("team-b/api").as_str()).as_deref(),
        Some("team-b/api")
    );
}

fn channel(ns: &str, name: &str, age: i64, spec: WebSocketChannelSpec) -> WebSocketChannel {
    let mut c = in_ns(WebSocketChannel::new(name, spec), ns);
    c.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(age).unwrap()));
    c
}

fn with_events(events: &[&str]) -> WebSocketChannelSpec {
    WebSocketChannelSpec {
        events: events.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn channel_names_and_events_have_one_owner() {
    let ws: crate::settings::WebSocketConfig = yaml_serde::from_str(
        "channels:\n  admin-alerts:\n    required_roles: [admin]\nrouting:\n  service_events:\n    enabled: true\n    mappings:\n      system.alert: admin-alerts\n",
    )
    .expect("websocket yaml");
    let defaults = crate::routing::ChannelDefaults::from_config(&ws).expect("valid");
    let s = Snapshot {
        channels: vec![
            channel("team-b", "admin-alerts", 1, WebSocketChannelSpec::default()),
            channel("team-a", "orders", 2, with_events(&["order.created"])),
            channel("team-b", "spy", 3, with_events(&["order.created"])),
            channel("team-b", "alerts-too", 4, with_events(&["system.alert"])),
            channel("team-a", "orders-archive", 5, with_events(&["order.created"])),
            channel("ops", "ops-alerts", 6, {
                let mut s = with_events(&["system.alert"]);
                s.channel = Some("admin-alerts".into());
                s
            }),
        ],
        ..Default::default()
    };
    let kube = |cfg: &str| CompileOptions {
        channels: defaults.clone(),
        tenancy: kubernetes(cfg),
        ..CompileOptions::default()
    };
    let c = compile(&s, &kube("{}"));
    let rejected = |c: &Compiled, name: &str, why: (&str, &str)| {
        let v = verdict(c, name);
        assert_eq!(reason(v, "Accepted"), ("False".into(), why.0.into()), "{name}");
        assert!(
            message(v, "Accepted").contains(why.1),
            "{name}: {}",
            message(v, "Accepted")
        );
    };
    rejected(
        &c,
        "admin-alerts",
        ("NotPermitted", "defined by the gateway configuration"),
    );
    rejected(&c, "spy", ("Conflicted", "belongs to namespace team-a"));
    rejected(
        &c,
        "alerts-too",
        ("NotPermitted", "routed to channel `admin-alerts`"),
    );
    rejected(
        &c,
        "ops-alerts",
        ("NotPermitted", "defined by the gateway configuration"),
    );
    assert_eq!(reason(verdict(&c, "orders"), "Accepted").0, "True");
    assert_eq!(
        reason(verdict(&c, "orders-archive"), "Accepted").0,
        "True",
        "one namespace routes its event to several channels"
    );
    assert_eq!(
        c.table.channels.policy("admin-alerts").required_roles,
        ["admin"],
        "the configuration's policy stands"
    );
    assert_eq!(
        c.table.channels.channels_for_event("order.created"),
        ["orders", "orders-archive"]
    );

    // tenancy.channels hands the name to ops, which may then take its mapped event too.
    let c = compile(&s, &kube("channels:\n  admin-alerts: [ops]\n"));
    rejected(
        &c,
        "admin-alerts",
        (
            "NotPermitted",
            "reserved by tenancy.channels for namespace(s) ops",
        ),
    );
    assert_eq!(reason(verdict(&c, "ops-alerts"), "Accepted").0, "True");

    // Standalone: the folder may layer resources over the configuration's channels.
    let c = compile(
        &s,
        &CompileOptions {
            channels: defaults.clone(),
            ..CompileOptions::default()
        },
    );
    assert_eq!(reason(verdict(&c, "admin-alerts"), "Accepted").0, "True");
    rejected(&c, "spy", ("Conflicted", "belongs to namespace team-a"));
}
