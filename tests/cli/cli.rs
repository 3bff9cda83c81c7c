//! The command line as a user runs it: `check`, `crds`, mode selection, the seed configs.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use crate::support::*;

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("GATEWAY_CONFIG")
        .env("JWT_SECRET", "a-cli-test-secret-of-at-least-32-bytes")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn shared(path: &str) -> Option<String> {
    let p = format!("{}/../shared/{path}", env!("CARGO_MANIFEST_DIR"));
    std::path::Path::new(&p).exists().then_some(p)
}

#[test]
fn crds_folder_matches_what_the_binary_prints() {
    let (code, out, _) = gatehouse(&["crds"]);
    assert_eq!(code, 0);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/gatehouse.dev.yaml")).unwrap();
    assert!(
        out == committed,
        "crds/ is stale: run `cargo run -- crds > crds/gatehouse.dev.yaml`"
    );
    for needle in [
        "shortNames:\n    - grt",
        "- gup",
        "- wsc",
        "subresources:\n      status: {}",
        "x-kubernetes-list-type: map",
    ] {
        assert!(out.contains(needle), "missing {needle:?}");
    }
}

#[test]
fn check_prints_one_verdict_per_resource_and_exits_1_on_rejection() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, out, err) = gatehouse(&[
        "check",
        "--config",
        &format!("{root}/examples/gateway.yaml"),
        "--resources",
        &format!("{root}/examples/resources"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok       GatewayRoute default/demo: Accepted=True ResolvedRefs=True Programmed=True"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        format!(
            "{}---\n{}---\n{}---\n{}",
            upstream_yaml("u", &["http://127.0.0.1:1".into()]),
            route_yaml("fine", "/fine", "u", ""),
            route_yaml("bad", "/a/*/b", "u", ""),
            route_yaml("orphan", "/orphan", "nothing", "")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("junk.yaml"),
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {name: x}\nspec: {path: 3}\n",
    )
    .unwrap();
    let (code, out, _) = gatehouse(&["check", "--resources", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in:\n{out}"))
            .to_string()
    };
    assert!(line("default/fine").starts_with("ok"));
    assert!(line("default/bad").starts_with("rejected") && line("default/bad").contains("InvalidPath"));
    assert!(
        line("default/orphan").starts_with("warning") && line("default/orphan").contains("UpstreamNotFound")
    );
    assert!(line("junk.yaml#1").starts_with("rejected GatewayRoute default/x"));
}

#[test]
fn both_seed_configs_load_unchanged() {
    let Some(micro) = shared("seed/gateway-microservices.yaml") else {
        eprintln!("SKIPPED: ../shared/seed is not beside this checkout");
        return;
    };
    let (code, out, err) = gatehouse(&["check", "--config", &micro]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("9 routes programmed"), "{out}");
    for r in [
        "post-auth-login",
        "get-put-delete-api-v1-users-id",
        "get-api-v1-metrics",
    ] {
        assert!(
            out.contains(&format!("GatewayRoute default/{r}: Accepted=True")),
            "{r}:\n{out}"
        );
    }
    assert!(
        out.contains("default/get-health") && out.contains("UpstreamNotFound"),
        "{out}"
    );

    let ws = shared("seed/gateway-websocket.yaml").unwrap();
    let (code, out, err) = gatehouse(&["check", "--config", &ws]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("WebSocket hub"), "{out}");
}

#[tokio::test]
async fn run_serves_the_seed_config_with_inline_routes() {
    let Some(micro) = shared("seed/gateway-microservices.yaml") else {
        eprintln!("SKIPPED: ../shared/seed is not beside this checkout");
        return;
    };
    let config = std::fs::read_to_string(micro).unwrap();
    let gw = Gateway::builder()
        .config(&config)
        .env("JWT_SECRET", "a-seed-test-secret-of-at-least-32-bytes")
        .start()
        .await;
    let req = http::Request::get(format!("http://127.0.0.1:{}/admin/routes", gw.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Default::default())
        .unwrap();
    let routes = send(&client(), req).await.unwrap().json();
    assert_eq!(routes["routes"].as_array().unwrap().len(), 9, "{routes}");
    // The seed's hosts (auth-service, ...) do not resolve here: the route is live and says so.
    let r = send(
        &client(),
        http::Request::post(gw.url("/auth/login"))
            .body(Default::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let r = send(
        &client(),
        http::Request::get(gw.url("/auth/login"))
            .body(Default::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 405);
}

#[test]
fn run_without_any_source_exits_2_naming_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("run")
        .current_dir(dir.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("GATEWAY_CONFIG")
        .env_remove("GATEWAY_RESOURCES")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--resources") && err.contains("KUBECONFIG"), "{err}");
}

#[test]
fn a_bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.yaml");
    std::fs::write(&cfg, "server:\n  http_port: eighty\n").unwrap();
    let (code, out, _) = gatehouse(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("server.http_port"), "{out}");
}

#[test]
fn a_timeout_that_does_not_parse_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.yaml");
    for key in [
        "upstream_timeout",
        "keepalive_timeout",
        "connect_timeout",
        "shutdown_grace",
        "send_timeout",
        "read_timeout",
        "http2_idle_timeout",
        "tunnel_idle_timeout",
    ] {
        std::fs::write(&cfg, format!("server:\n  timeouts:\n    {key}: soon\n")).unwrap();
        let (code, out, _) = gatehouse(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 1, "{key}: {out}");
        assert!(out.contains(&format!("server.timeouts.{key}")), "{out}");
    }
}

#[test]
fn the_example_refuses_to_start_with_a_short_hmac_secret() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["run", "--config", &format!("{root}/examples/gateway.yaml")])
        .args(["--resources", &format!("{root}/examples/resources")])
        .env_remove("KUBECONFIG")
        .env_remove("GATEWAY_CONFIG")
        .env("JWT_SECRET", "change-me")
        // Ports of its own, so that a gateway that did start would not clash with anything.
        .env("GATEWAY_SERVER_HTTP_PORT", "0")
        .env("GATEWAY_SERVER_HTTPS_PORT", "0")
        .env("GATEWAY_ADMIN_PORT", "0")
        .env("GATEWAY_METRICS_PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit by itself; one that started serving is stopped after 20 s and fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if out.try_wait().unwrap().is_none() {
        out.kill().unwrap();
    }
    let out = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("JWT_SECRET") && err.contains("9 bytes") && err.contains("at least 32"),
        "{err}"
    );
    // `check` says the same.
    let (code, out, _) = {
        let o = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["check", "--config", &format!("{root}/examples/gateway.yaml")])
            .env("JWT_SECRET", "change-me")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            (),
        )
    };
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("at least 32"), "{out}");
}
