//! The seed's own jest test (`tests/js/websocket-integration.test.js`, unchanged) against the
//! real binary on localhost:8080, started with the seed's `gateway-websocket.yaml` and
//! `JWT_SECRET=your-secret-key` and `auth.jwt.allow_weak_secret` (its Redis at `redis:6379` does not exist here, which the hub
//! must shrug off). Needs Node and npm (skips without them, or fails where services are
//! required); installs `tests/js/node_modules` with `npm ci` when it is missing. Port 8080
//! must be free (the test file hard-codes it).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::support::*;

#[tokio::test]
async fn seed_jest_suite_passes_against_the_gateway() {
    if !services::node() {
        return;
    }
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if std::net::TcpListener::bind("127.0.0.1:8080").is_err() {
        panic!(
            "port 8080 is taken: the seed's jest test connects to ws://localhost:8080; \
             stop whatever listens there and run again"
        );
    }
    if !js.join("node_modules").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&js)
            .status()
            .expect("npm is needed for this test (Node 18+ and npm)");
        assert!(status.success(), "npm ci failed in {}", js.display());
    }
    let mut config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway-websocket.yaml"),
    )
    .unwrap();
    // The seed's test signs with a 15-byte secret, which the gateway refuses unless told.
    assert!(!config.contains("\nauth:"), "the seed file has no auth section");
    config.push_str("\nauth:\n  jwt:\n    allow_weak_secret: true\n");
    let gw = Gateway::builder()
        .config(&config)
        .env("GATEWAY_SERVER_HTTP_PORT", "8080")
        .env("JWT_SECRET", "your-secret-key")
        .env("WEBHOOK_AUTH_TOKEN", "your-webhook-secret")
        .start()
        .await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("npx")
            .args(["jest", "--runInBand", "--ci", "websocket-integration.test.js"])
            .current_dir(&js)
            .output()
            .expect("npx runs jest")
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "jest failed:\n{text}\ngateway log:\n{}",
        gw.log()
    );
    assert!(text.contains("3 passed"), "{text}");
}
