use std::sync::Arc;

use http::Method;

use super::*;
use crate::auth::AuthPolicy;
use crate::routing::{MethodSet, Route};
use crate::upstream::Upstream;

fn table(routes: &[(&str, &str, &[&str], &[&str])]) -> RoutingTable {
    let mut b = TableBuilder::default();
    let up = Arc::new(Upstream::empty("ns/u".into()));
    for (name, path, methods, hosts) in routes {
        let pattern = PathPattern::parse(path).expect("valid");
        b.add(
            Arc::new(Route {
                id: format!("ns/{name}"),
                namespace: "ns".into(),
                name: name.to_string(),
                path: path.to_string(),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                methods: MethodSet::parse(methods).expect("methods"),
                upstream: up.clone(),
                timeout: None,
                auth: AuthPolicy::default(),
                rate_limit: None,
                cors: None,
                rewrite: None,
                websocket: false,
                tls_secret: None,
                gateway: None,
                series: Default::default(),
            }),
            &pattern,
        );
    }
    b.build()
}

fn found(t: &RoutingTable, host: Option<&str>, path: &str, m: Method) -> Option<String> {
    match t.lookup(host, path, &m) {
        Lookup::Found(r) => Some(r.name.clone()),
        _ => None,
    }
}

#[test]
fn exact_beats_template_beats_prefix_and_longest_prefix_wins() {
    let t = table(&[
        ("all", "/*", &[], &[]),
        ("api", "/api/*", &[], &[]),
        ("users-prefix", "/api/users/*", &[], &[]),
        ("user", "/api/users/{id}", &[], &[]),
        ("me", "/api/users/me", &[], &[]),
        ("profile", "/api/users/{id}/profile", &[], &[]),
    ]);
    let f = |p| found(&t, None, p, Method::GET);
    assert_eq!(f("/api/users/me").as_deref(), Some("me"));
    assert_eq!(f("/api/users/42").as_deref(), Some("user"));
    assert_eq!(f("/api/users/42/profile").as_deref(), Some("profile"));
    assert_eq!(f("/api/users/42/other").as_deref(), Some("users-prefix"));
    assert_eq!(
        f("/api/users").as_deref(),
        Some("users-prefix"),
        "a prefix matches its own path"
    );
    assert_eq!(f("/api/orders").as_deref(), Some("api"));
    assert_eq!(
        f("/apix").as_deref(),
        Some("all"),
        "prefixes match whole segments"
    );
    assert_eq!(f("/").as_deref(), Some("all"));
    assert_eq!(
        f("/api/users/").as_deref(),
        Some("users-prefix"),
        "a parameter never matches an empty segment"
    );
}

#[test]
fn templates_backtrack_from_static_to_parameter() {
    let t = table(&[
        ("a", "/a/b/c", &[], &[]),
        ("b", "/a/{x}/d", &[], &[]),
        ("c", "/a/b/{y}/e", &[], &[]),
    ]);
    assert_eq!(found(&t, None, "/a/b/d", Method::GET).as_deref(), Some("b"));
    assert_eq!(found(&t, None, "/a/b/z/e", Method::GET).as_deref(), Some("c"));
    assert_eq!(found(&t, None, "/a/b/c/d", Method::GET), None);
}

#[test]
fn method_mismatch_falls_through_then_405_with_allow() {
    let t = table(&[
        ("exact-get", "/items/list", &["GET"], &[]),
        ("tmpl-post", "/items/{id}", &["POST"], &[]),
        ("prefix-delete", "/items/*", &["DELETE"], &[]),
    ]);
    assert_eq!(
        found(&t, None, "/items/list", Method::POST).as_deref(),
        Some("tmpl-post")
    );
    assert_eq!(
        found(&t, None, "/items/list", Method::DELETE).as_deref(),
        Some("prefix-delete")
    );
    match t.lookup(None, "/items/list", &Method::PUT) {
        Lookup::MethodNotAllowed(allow) => assert_eq!(allow.allow_header(), "GET, POST, DELETE"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.lookup(None, "/nothing", &Method::PUT),
        Lookup::NotFound
    ));
}

#[test]
fn host_routes_beat_hostless_and_wildcards_take_the_longest_suffix() {
    let t = table(&[
        ("any", "/x", &[], &[]),
        ("exact-host", "/*", &[], &["api.example.com"]),
        ("wild", "/x", &[], &["*.example.com"]),
        ("wilder", "/x", &[], &["*.eu.example.com"]),
    ]);
    assert_eq!(
        found(&t, Some("api.example.com"), "/x", Method::GET).as_deref(),
        Some("exact-host")
    );
    assert_eq!(
        found(&t, Some("API.Example.com:443"), "/x", Method::GET).as_deref(),
        Some("exact-host")
    );
    assert_eq!(
        found(&t, Some("shop.example.com"), "/x", Method::GET).as_deref(),
        Some("wild")
    );
    // The trailing dot of a fully qualified name names the same host.
    assert_eq!(
        found(&t, Some("api.example.com."), "/x", Method::GET).as_deref(),
        Some("exact-host")
    );
    assert_eq!(
        found(&t, Some("shop.example.com.:8080"), "/x", Method::GET).as_deref(),
        Some("wild")
    );
    assert_eq!(
        found(&t, Some("a.eu.example.com"), "/x", Method::GET).as_deref(),
        Some("wilder")
    );
    assert_eq!(
        found(&t, Some("example.com"), "/x", Method::GET).as_deref(),
        Some("any")
    );
    assert_eq!(found(&t, None, "/x", Method::GET).as_deref(), Some("any"));
    assert_eq!(found(&t, Some("other.org"), "/y", Method::GET), None);
}

#[test]
fn prefix_routes_with_parameters() {
    let t = table(&[("v", "/api/{version}/*", &[], &[]), ("s", "/api/v1/*", &[], &[])]);
    assert_eq!(
        found(&t, None, "/api/v1/users", Method::GET).as_deref(),
        Some("s")
    );
    assert_eq!(
        found(&t, None, "/api/v2/users", Method::GET).as_deref(),
        Some("v")
    );
}
