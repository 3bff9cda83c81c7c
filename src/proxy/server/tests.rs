//! The rules of Gateway API HTTPRoutes on a Gateway's socket, end to end: which table routes a
//! request, header, query and method matches, redirects, request and response filters, URL
//! rewrites, weighted backends and the rule without one. Tables are built by hand and
//! published; requests are real HTTP/1.1 on loopback (the helpers are the socket tests').
#![allow(clippy::unwrap_used)]

use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::gateways::tests::{
    backend, free_addr, get, main_table, rule, rule_route, socket, socket_table, wait_bound, Conn, Harness,
};
use crate::routing::gateway::{
    HeaderEdit, HeaderMatch, PathMatch, PathModifier, QueryMatch, Redirect, UrlRewrite,
};
use crate::routing::{GatewayRule, RoutingTable};

/// A harness with `table` published and its one socket, at `addr`, bound.
async fn serving(table: RoutingTable, addr: std::net::SocketAddr) -> Harness {
    let gw = Harness::start().await;
    gw.publish(table);
    wait_bound(addr).await;
    gw
}

fn edit(
    set: &[(&'static str, &'static str)],
    add: &[(&'static str, &'static str)],
    remove: &[&'static str],
) -> HeaderEdit {
    let pair =
        |(n, v): &(&'static str, &'static str)| (HeaderName::from_static(n), HeaderValue::from_static(v));
    HeaderEdit {
        set: set.iter().map(pair).collect(),
        add: add.iter().map(pair).collect(),
        remove: remove.iter().map(|n| HeaderName::from_static(n)).collect(),
    }
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

/// A request on a Gateway's socket is routed by that socket's table only, a request on the
/// proxy listener by the main table only; the backend gets the client's host. Once the live
/// table no longer lists the socket, its requests are not found.
#[tokio::test]
async fn requests_are_routed_by_the_table_of_the_socket_they_arrive_on() {
    let (main_up, gw_up) = (backend("main").await, backend("gateway").await);
    let addr = free_addr(30);
    let table = || {
        let t = socket_table(vec![rule_route(
            "gw",
            &["gw.example"],
            &[],
            rule(PathMatch::Prefix("/gw".into()), &[(&gw_up, 1)]),
        )]);
        main_table("/main/*", &main_up, vec![socket(addr, t)])
    };
    let gw = serving(table(), addr).await;

    let r = get(addr, "gw.example", "/gw/x", &[]).await;
    assert_eq!(r.backend(), "gateway");
    assert_eq!(r.sent("host").as_deref(), Some("gw.example"), "the client's host");
    let r = get(addr, "gw.example", "/main/x", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r.body), "route_not_found");
    assert_eq!(get(addr, "other.example", "/gw/x", &[]).await.status, 404);

    assert_eq!(get(gw.main, "gw.example", "/gw/x", &[]).await.status, 404);
    let r = get(gw.main, "gw.example", "/main/x", &[]).await;
    assert_eq!(r.backend(), "main");
    assert_ne!(
        r.sent("host").as_deref(),
        Some("gw.example"),
        "ordinary routes send the endpoint's host, as before"
    );

    // The socket is still bound, but the live table lists it no more.
    gw.store_only(main_table("/main/*", &main_up, Vec::new()));
    let r = get(addr, "gw.example", "/gw/x", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Rules on one path are tried in order: one whose header or query match fails, or whose
/// methods do not take the request's, gives way to the next; when none takes it, 404 (a
/// Gateway's table never answers 405).
#[tokio::test]
async fn header_query_and_method_matches_fall_through_to_the_next_rule() {
    let (one, two, three) = (backend("one").await, backend("two").await, backend("three").await);
    let mut by_header = rule(PathMatch::Prefix("/m".into()), &[(&one, 1)]);
    by_header.headers.push(HeaderMatch {
        name: HeaderName::from_static("version"),
        value: "one".into(),
    });
    let mut by_query = rule(PathMatch::Prefix("/m".into()), &[(&two, 1)]);
    by_query.query.push(QueryMatch {
        name: "animal".into(),
        value: "whale".into(),
    });
    let by_method = rule(PathMatch::Prefix("/m".into()), &[(&three, 1)]);
    let addr = free_addr(31);
    let t = socket_table(vec![
        rule_route("header", &[], &[], by_header),
        rule_route("query", &[], &[], by_query),
        rule_route("method", &[], &["POST"], by_method),
    ]);
    let _gw = serving(main_table("/main/*", &one, vec![socket(addr, t)]), addr).await;

    let mut c = Conn::open(addr).await;
    let mut send = async |method: Method, target: &str, fields: &[(&str, &str)]| {
        c.send(method, "gw.example", target, fields).await.unwrap()
    };
    assert_eq!(
        send(Method::GET, "/m", &[("version", "one")]).await.backend(),
        "one"
    );
    assert_eq!(
        send(Method::GET, "/m/x?animal=whale", &[("version", "two")])
            .await
            .backend(),
        "two"
    );
    assert_eq!(
        send(Method::POST, "/m?animal=dolphin", &[]).await.backend(),
        "three"
    );
    let r = send(Method::GET, "/m?animal=dolphin", &[("version", "two")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no 405 on a Gateway: {}", r.body);
    assert_eq!(error_code(&r.body), "route_not_found");
}

/// A redirect is answered by the gateway (the rule has no backend at all) with its status and
/// a `Location` of the request's URL with the filter's parts put in: without a port, a
/// filter's scheme brings its default port (left out), else the listener's port stays; the
/// query is kept.
#[tokio::test]
async fn redirects_are_answered_with_each_part_of_the_location() {
    let up = backend("unused").await;
    let addr = free_addr(32);
    let port = addr.port();
    let redirect = |path: PathMatch, r: Redirect| {
        let mut g = rule(path, &[]);
        g.redirect = Some(r);
        rule_route("redirect", &[], &[], g)
    };
    let to = |status: StatusCode| Redirect {
        scheme: None,
        hostname: None,
        path: None,
        port: None,
        status,
    };
    let t = socket_table(vec![
        redirect(
            PathMatch::Exact("/host".into()),
            Redirect {
                hostname: Some("example.org".into()),
                ..to(StatusCode::FOUND)
            },
        ),
        redirect(
            PathMatch::Exact("/scheme".into()),
            Redirect {
                scheme: Some("https".into()),
                ..to(StatusCode::MOVED_PERMANENTLY)
            },
        ),
        redirect(
            PathMatch::Exact("/http".into()),
            Redirect {
                scheme: Some("http".into()),
                ..to(StatusCode::FOUND)
            },
        ),
        redirect(
            PathMatch::Exact("/port".into()),
            Redirect {
                port: Some(8443),
                ..to(StatusCode::FOUND)
            },
        ),
        redirect(
            PathMatch::Prefix("/prefix/old".into()),
            Redirect {
                path: Some(PathModifier::Prefix("/new".into())),
                ..to(StatusCode::FOUND)
            },
        ),
        redirect(
            PathMatch::Exact("/full".into()),
            Redirect {
                path: Some(PathModifier::Full("/elsewhere".into())),
                hostname: Some("example.org".into()),
                port: Some(443),
                scheme: Some("https".into()),
                status: StatusCode::MOVED_PERMANENTLY,
            },
        ),
    ]);
    let _gw = serving(main_table("/main/*", &up, vec![socket(addr, t)]), addr).await;
    let host = format!("gw.example:{port}");
    let cases = [
        ("/host", 302, format!("http://example.org:{port}/host")),
        ("/scheme", 301, "https://gw.example/scheme".to_string()),
        ("/http?a=b", 302, "http://gw.example/http?a=b".to_string()),
        ("/port?x=1", 302, "http://gw.example:8443/port?x=1".to_string()),
        (
            "/prefix/old/rest?q=2",
            302,
            format!("http://gw.example:{port}/new/rest?q=2"),
        ),
        ("/full?q=3", 301, "https://example.org/elsewhere?q=3".to_string()),
    ];
    for (target, status, location) in cases {
        let r = get(addr, &host, target, &[]).await;
        assert_eq!(r.status.as_u16(), status, "{target}: {}", r.body);
        assert_eq!(r.headers["location"], location.as_str(), "{target}");
    }
}

/// A rule's request header filter reaches the backend (set replaces, add appends, remove
/// drops), and its response header filter reaches the client.
#[tokio::test]
async fn header_filters_reach_the_backend_and_the_client() {
    let up = backend("one").await;
    let mut g = rule(PathMatch::Prefix("/edited".into()), &[(&up, 1)]);
    g.request_headers = Some(edit(&[("x-set", "new")], &[("x-add", "two")], &["x-remove"]));
    g.response_headers = Some(edit(
        &[("x-resp", "set")],
        &[("x-also", "added")],
        &["x-from-backend"],
    ));
    let plain = rule(PathMatch::Prefix("/plain".into()), &[(&up, 1)]);
    let addr = free_addr(33);
    let t = socket_table(vec![
        rule_route("edited", &[], &[], g),
        rule_route("plain", &[], &[], plain),
    ]);
    let _gw = serving(main_table("/main/*", &up, vec![socket(addr, t)]), addr).await;
    let fields = [
        ("x-set", "old"),
        ("x-add", "one"),
        ("x-remove", "gone"),
        ("x-keep", "kept"),
    ];

    let r = get(addr, "gw.example", "/edited", &fields).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.sent("x-set").as_deref(), Some("new"));
    assert_eq!(r.sent("x-add").as_deref(), Some("one,two"));
    assert_eq!(r.sent("x-remove"), None);
    assert_eq!(r.sent("x-keep").as_deref(), Some("kept"));
    assert_eq!(r.headers["x-resp"], "set");
    assert_eq!(r.headers["x-also"], "added");
    assert!(!r.headers.contains_key("x-from-backend"));

    let r = get(addr, "gw.example", "/plain", &fields).await;
    assert_eq!(r.sent("x-set").as_deref(), Some("old"));
    assert_eq!(r.sent("x-remove").as_deref(), Some("gone"));
    assert_eq!(r.headers["x-from-backend"], "yes");
    assert!(!r.headers.contains_key("x-resp"));
}

/// A URL rewrite reaches the backend: the matched prefix replaced (the rest and the query
/// kept), the full path replaced, and the hostname as its `Host`.
#[tokio::test]
async fn url_rewrites_reach_the_backend() {
    let up = backend("one").await;
    let mut prefix = rule(PathMatch::Prefix("/prefix/one".into()), &[(&up, 1)]);
    prefix.rewrite = Some(UrlRewrite {
        hostname: None,
        path: Some(PathModifier::Prefix("/one".into())),
    });
    let mut full = rule(PathMatch::Prefix("/full".into()), &[(&up, 1)]);
    full.rewrite = Some(UrlRewrite {
        hostname: Some(HeaderValue::from_static("rewritten.example")),
        path: Some(PathModifier::Full("/replaced".into())),
    });
    let addr = free_addr(34);
    let t = socket_table(vec![
        rule_route("prefix", &[], &[], prefix),
        rule_route("full", &[], &[], full),
    ]);
    let _gw = serving(main_table("/main/*", &up, vec![socket(addr, t)]), addr).await;

    let r = get(addr, "gw.example", "/prefix/one/two?q=1", &[]).await;
    assert_eq!(r.json()["uri"], "/one/two?q=1");
    assert_eq!(r.sent("host").as_deref(), Some("gw.example"));
    let r = get(addr, "gw.example", "/prefix/one", &[]).await;
    assert_eq!(r.json()["uri"], "/one");
    let r = get(addr, "gw.example", "/full/x/y?q=1", &[]).await;
    assert_eq!(r.json()["uri"], "/replaced?q=1");
    assert_eq!(r.sent("host").as_deref(), Some("rewritten.example"));
    assert_eq!(r.sent("x-forwarded-host").as_deref(), Some("gw.example"));
}

/// Backends of weight 0, 1 and 3 get none, about a quarter and about three quarters of 400
/// requests (more than four standard deviations of slack either way).
#[tokio::test]
async fn weights_split_the_requests() {
    let (zero, a, b) = (backend("zero").await, backend("a").await, backend("b").await);
    let addr = free_addr(35);
    let t = socket_table(vec![rule_route(
        "split",
        &[],
        &[],
        rule(PathMatch::default(), &[(&zero, 0), (&a, 1), (&b, 3)]),
    )]);
    let _gw = serving(main_table("/main/*", &zero, vec![socket(addr, t)]), addr).await;
    let mut c = Conn::open(addr).await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..400 {
        let r = c.send(Method::GET, "gw.example", "/", &[]).await.unwrap();
        *counts.entry(r.backend()).or_default() += 1;
    }
    assert_eq!(counts.get("zero"), None, "{counts:?}");
    let (na, nb) = (counts["a"], counts["b"]);
    assert!((60..=140).contains(&na), "{counts:?}");
    assert!((260..=340).contains(&nb), "{counts:?}");
}

/// A rule with no backend for the request (none listed, all of weight 0, or one that does not
/// resolve) is answered 500 with the JSON error body.
#[tokio::test]
async fn a_rule_without_a_backend_answers_500() {
    let up = backend("one").await;
    let unresolved = {
        let mut g = rule(PathMatch::Prefix("/unresolved".into()), &[]);
        g.backends.push(crate::routing::gateway::WeightedBackend {
            upstream: None,
            weight: 1,
        });
        g
    };
    let rules: Vec<GatewayRule> = vec![
        rule(PathMatch::Prefix("/none".into()), &[]),
        rule(PathMatch::Prefix("/zero".into()), &[(&up, 0)]),
        unresolved,
    ];
    let addr = free_addr(36);
    let t = socket_table(rules.into_iter().map(|g| rule_route("r", &[], &[], g)).collect());
    let _gw = serving(main_table("/main/*", &up, vec![socket(addr, t)]), addr).await;
    for path in ["/none", "/zero", "/unresolved"] {
        let r = get(addr, "gw.example", path, &[]).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {}", r.body);
        assert_eq!(error_code(&r.body), "upstream_unavailable", "{path}");
    }
}
