//! The services some tests need (Redis, RabbitMQ, a real kube-apiserver, Helm, Node), and the one rule
//! for a missing one: under `scripts/test.sh` (which sets `GATEHOUSE_TEST_REQUIRE_SERVICES=1`)
//! and in CI (`CI=true`) the test fails; in a plain `cargo test` it prints
//! `SKIPPED: <why and how to start it>` and returns.

use std::io::Write;
use std::path::PathBuf;

/// Whether a missing service fails the test rather than skipping it.
pub fn required() -> bool {
    set("GATEHOUSE_TEST_REQUIRE_SERVICES") || set("CI")
}

/// A flag variable: set, and not empty, `0` or `false`.
fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

/// Says the running test cannot run: `what` is missing, `how` to provide it. Panics when
/// services are required; otherwise prints `SKIPPED: ...` and the test returns.
pub fn missing(what: &str, how: &str) {
    if required() {
        panic!(
            "{what} (GATEHOUSE_TEST_REQUIRE_SERVICES or CI is set, so this is a failure, not a skip): {how}"
        );
    }
    skipped(&format!("{what}: {how}"));
}

/// Prints `SKIPPED: <test>: <why>` where it is seen: on the test process's stderr itself, past
/// the output capture of the test harness, so that a plain `cargo test` shows it.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

/// The value of the environment variable `var`, or None after `missing(what, how)`.
fn from_env(var: &str, what: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            missing(&format!("{var} is not set ({what})"), how);
            None
        }
    }
}

/// The shared Redis of the tests (`redis://127.0.0.1:PORT`).
pub fn redis_url() -> Option<String> {
    from_env(
        "GATEHOUSE_TEST_REDIS_URL",
        "no Redis",
        "start one with `eval \"$(.ci/services/redis.sh)\"`, or run scripts/test.sh, which starts every service",
    )
}

/// Whether `redis-server` can be run here (for tests that start and stop their own).
pub fn redis_server() -> bool {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        missing(
            "redis-server is not installed",
            "install it (`.ci/services/redis.sh` does), or run scripts/test.sh",
        );
    }
    found
}

/// The shared RabbitMQ broker of the tests (`amqp://guest:guest@127.0.0.1:PORT/%2f`).
pub fn amqp_url() -> Option<String> {
    from_env(
        "GATEHOUSE_TEST_AMQP_URL",
        "no RabbitMQ",
        "start one with `eval \"$(.ci/services/rabbitmq.sh)\"`, or run scripts/test.sh, which starts every service",
    )
}

/// How to start the test kube-apiserver (one line: it follows `SKIPPED:`).
pub const KUBE_HOW_TO_START: &str = "these tests need a real kube-apiserver: run \
    `eval \"$(.ci/kube-apiserver.sh start)\"` (it exports GATEHOUSE_TEST_KUBECONFIG and \
    GATEHOUSE_TEST_KUBE_DIR; `.ci/kube-apiserver.sh stop \"$GATEHOUSE_TEST_KUBE_DIR\"` stops it) and \
    cargo test again, or run scripts/test.sh, which starts every service";

/// The kubeconfig of the test kube-apiserver.
pub fn kubeconfig() -> Option<PathBuf> {
    from_env(
        "GATEHOUSE_TEST_KUBECONFIG",
        "no kube-apiserver",
        KUBE_HOW_TO_START,
    )
    .map(PathBuf::from)
}

/// The Python of the virtualenv with helm-sdkpy (tests/helm/chart.py runs with it).
pub fn helm_python() -> Option<PathBuf> {
    from_env(
        "GATEHOUSE_TEST_HELM_PYTHON",
        "no Helm",
        "these tests need Helm (helm-sdkpy): run \
         `eval \"$(.ci/services/helm.sh | sed 's/^/export /')\"` and cargo test again, \
         or run scripts/test.sh, which starts every service",
    )
    .map(PathBuf::from)
}

/// Whether Node's `npm` and `npx` run here (the seed's jest test needs them).
pub fn node() -> bool {
    let runs = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let found = runs("npm") && runs("npx");
    if !found {
        missing(
            "npm and npx are not on PATH",
            "install Node 18+ with npm (Debian: `apt-get install nodejs npm`)",
        );
    }
    found
}
