//! What the integration tests share: the `gatehouse` binary on free loopback ports (one builder
//! for standalone and Kubernetes mode), one test upstream with modes, one HTTP reply type and
//! client, a raw HTTP/1.1 connection, resource YAML, the services some tests need (Redis, RabbitMQ, a kube-apiserver, Helm, Node)
//! and whether a missing one skips or fails, the WebSocket client, and the cluster helpers.
//!
//! Each test binary (tests/AREA/main.rs) includes this folder with
//! `#[path = "../support/mod.rs"] mod support;`.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod cluster;
pub mod gateway;
pub mod ports;
pub mod raw;
pub mod scripted;
pub mod services;
pub mod upstream;
pub mod web;
pub mod ws;
pub mod yaml;

pub use gateway::{Gateway, GatewayBuilder};
pub use ports::free_port;
pub use upstream::{Mode, Upstream};
pub use web::{client, get, get_blocking, h2c_client, send, send_raw_blocking, Reply, TestClient};
pub use yaml::{resources, route_yaml, upstream_yaml, write_atomic};

/// The admin API token every standalone gateway of the tests is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A config with no default rate limit and logs at `info` (some tests read them).
pub const BASE_CONFIG: &str =
    "middleware:\n  rate_limiting:\n    default_limit: 0\nobservability:\n  logging:\n    level: info\n";
