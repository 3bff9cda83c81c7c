//! Namespaces sharing one gateway, as a client sees it: a route of one namespace cannot take
//! the host of another, nor point at the gateway's own ports (the reproduction of the issue
//! "tenants can take each other's traffic", in a resources folder: Kubernetes mode compiles
//! the same way).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

/// HS256 tokens checked, no default rate limit.
const CONFIG: &str =
    "auth:\n  jwt:\n    secret: \"integration-test-secret-of-32-bytes!\"\n    algorithm: HS256\n\
                      middleware:\n  rate_limiting:\n    default_limit: 0\n";

/// A resource of `kind` in namespace `ns` with `spec` (indented lines). Its age is its
/// namespace's, as in a cluster where namespace shop was there first: a folder without
/// `creationTimestamp`s orders resources by namespace and name.
fn doc(kind: &str, ns: &str, name: &str, spec: &str) -> String {
    let created = if ns == "shop" {
        "2026-01-01T00:00:00Z"
    } else {
        "2026-06-01T00:00:00Z"
    };
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: {kind}\n\
         metadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec:\n{spec}"
    )
}

async fn get_host(gw: &Gateway, host: &str, path: &str) -> Reply {
    let req = Request::get(gw.url(path))
        .header("host", host)
        .body(Full::<Bytes>::default())
        .unwrap();
    send(&client(), req).await.unwrap()
}

/// Waits until `path` on `host` answers `status`.
async fn wait_host(gw: &Gateway, host: &str, path: &str, status: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = get_host(gw, host, path).await;
        if r.status == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{host}{path} answers {} {}; log:\n{}",
            r.status,
            r.text(),
            gw.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_route_of_another_namespace_cannot_serve_the_gateways_metrics_on_a_tenants_host() {
    let shop = Upstream::start("shop").await;
    let gw = Gateway::builder().config(CONFIG).start().await;
    // Namespace shop serves shop.example.com, every path behind a token. Namespace intruder
    // claims /checkout/* on the same host, rewritten to /metrics on the gateway's own metrics
    // port, and /peek on any host to the admin port's /ready, spelt as a number.
    let tenants = [
        doc("GatewayUpstream", "shop", "shop", &format!("  endpoints: [\"{}\"]\n", shop.url())),
        doc(
            "GatewayRoute",
            "shop",
            "storefront",
            "  hosts: [shop.example.com]\n  path: /*\n  upstream: shop\n  authRequired: true\n",
        ),
        doc(
            "GatewayUpstream",
            "intruder",
            "metrics",
            &format!("  endpoints: [\"http://127.0.0.1:{}\"]\n", gw.metrics),
        ),
        doc(
            "GatewayRoute",
            "intruder",
            "checkout",
            "  hosts: [shop.example.com]\n  path: /checkout/*\n  upstream: metrics\n  rewritePrefix: /metrics\n",
        ),
        doc(
            "GatewayUpstream",
            "intruder",
            "admin",
            &format!("  endpoints: [\"http://2130706433:{}\"]\n", gw.admin),
        ),
        doc(
            "GatewayRoute",
            "intruder",
            "peek",
            "  path: /peek\n  upstream: admin\n  rewritePrefix: /ready\n",
        ),
    ]
    .join("---\n");
    gw.write_resources("tenants.yaml", &tenants);
    wait_host(&gw, "shop.example.com", "/", 401).await;

    // The reproduction: no metrics, and no way past the token.
    for path in ["/checkout", "/checkout/x"] {
        let r = get_host(&gw, "shop.example.com", path).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert!(!r.text().contains("gateway_http_requests_total"), "{}", r.text());
    }
    // The admin port is no upstream either, however its address is spelt.
    let r = get_host(&gw, "elsewhere.example.com", "/peek").await;
    assert_eq!(r.status, 404, "{}", r.text());

    // `gatehouse check` says why, naming the owner.
    let config = gw.resources().with_file_name("check.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--resources")
        .arg(gw.resources())
        .env("GATEWAY_METRICS_PORT", gw.metrics.to_string())
        .env("GATEWAY_ADMIN_PORT", gw.admin.to_string())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let line = |what: &str| {
        report
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line for {what}:\n{report}"))
            .to_string()
    };
    let checkout = line("GatewayRoute intruder/checkout:");
    assert!(
        checkout.starts_with("rejected")
            && checkout.contains("Conflicted")
            && checkout.contains("namespace shop"),
        "{checkout}"
    );
    let metrics = line("GatewayUpstream intruder/metrics:");
    assert!(
        metrics.contains("NotPermitted") && metrics.contains("gateway's own metrics port"),
        "{metrics}"
    );
    let admin = line("GatewayUpstream intruder/admin:");
    assert!(admin.contains("gateway's own admin port"), "{admin}");
    assert!(line("GatewayRoute shop/storefront:").starts_with("ok"));
}

#[tokio::test]
async fn routes_without_hosts_do_not_answer_for_another_namespaces_host() {
    let (shop, other) = (Upstream::start("shop").await, Upstream::start("other").await);
    let tenants = [
        doc(
            "GatewayUpstream",
            "shop",
            "shop",
            &format!("  endpoints: [\"{}\"]\n", shop.url()),
        ),
        doc(
            "GatewayRoute",
            "shop",
            "api",
            "  hosts: [shop.example.com]\n  path: /api/*\n  upstream: shop\n  authRequired: true\n",
        ),
        doc(
            "GatewayRoute",
            "shop",
            "status",
            "  path: /status\n  upstream: shop\n",
        ),
        doc(
            "GatewayUpstream",
            "other",
            "other",
            &format!("  endpoints: [\"{}\"]\n", other.url()),
        ),
        doc(
            "GatewayRoute",
            "other",
            "checkout",
            "  path: /checkout/*\n  upstream: other\n",
        ),
    ]
    .join("---\n");
    let gw = Gateway::start(CONFIG, &[("tenants.yaml", &tenants)]).await;
    wait_host(&gw, "shop.example.com", "/api/x", 401).await;

    // shop.example.com is shop's: a path it does not route is a 404, not another tenant's
    // route (which would get the host's cookies and tokens).
    let r = get_host(&gw, "shop.example.com", "/checkout/pay").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(other.hits(), 0);
    // Its own route without hosts still answers there; hosts nobody claimed get the shared ones.
    let r = get_host(&gw, "shop.example.com", "/status").await;
    assert_eq!((r.status, r.json()["server"].as_str()), (200, Some("shop")));
    let r = get_host(&gw, "unclaimed.example.com", "/checkout/pay").await;
    assert_eq!((r.status, r.json()["server"].as_str()), (200, Some("other")));
}
