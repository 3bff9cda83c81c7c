//! Gatehouse: a Kubernetes ingress controller and API gateway with a WebSocket hub.
//!
//! ```text
//!  Kubernetes API ─┐                                        ┌─> status patches (leader only)
//!  (or a folder)   ├─ watch ─> Snapshot ─> compile() ─> RoutingTable ─> ArcSwap ─> proxy / ws hub
//!  Secrets, Slices ┘           (plain data)  (pure)     + verdicts        (lock-free read per request)
//! ```
//!
//! `sources` build snapshots, `compile` turns them into a table and verdicts, `routing` holds
//! the compiled model and the one handle to the live table, and `proxy` serves requests from
//! it. The proxy never imports `kube`; `compile` never touches a socket.
//!
//! # The floor plan
//!
//! Every arrow points down: a module uses only modules of lower layers, never one of its own
//! layer or above (`tests/layers.rs` reads this table and fails on any import that breaks it).
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | 0 | api, wire | the external contract: resource types, condition reasons, the JSON error body, host names |
//! | 1 | settings | the static configuration (`gateway.yaml`) |
//! | 2 | telemetry | logs, metrics, tracing |
//! | 3 | auth, tls, upstream | JWT keys and checks, certificates, upstream endpoints and their live state |
//! | 4 | routing | the compiled model: table, path patterns, channel policies, the `ArcSwap` handle |
//! | 5 | compile, middleware, websocket | snapshot to table (pure); rate limits and CORS; the hub |
//! | 6 | proxy | listeners and the request pipeline |
//! | 7 | sources, admin | where snapshots come from (folder, Kubernetes); the admin API |
//! | 8 | controller | status writer and leader lease |
//! | 9 | app | the command line and the wiring of both modes |

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod compile;
pub mod controller;
pub mod middleware;
pub mod proxy;
pub mod routing;
pub mod settings;
pub mod sources;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod websocket;
pub mod wire;
