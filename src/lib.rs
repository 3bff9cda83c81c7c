//! Gatehouse: a Kubernetes ingress controller and API gateway with a WebSocket hub.
//!
//! ```text
//!  Kubernetes API ─┐                                        ┌─> status patches (leader only)
//!  (or a folder)   ├─ watch ─> Snapshot ─> compile() ─> RoutingTable ─> ArcSwap ─> proxy / ws hub
//!  Secrets, Slices ┘           (plain data)  (pure)     + verdicts        (lock-free read per request)
//! ```
//!
//! `sources` build snapshots, `compile` turns them into a table and verdicts, `routing` holds
//! the live table, and `proxy` serves requests from it. The proxy never imports `kube`.

pub mod admin;
pub mod api;
pub mod auth;
pub mod check;
pub mod cli;
pub mod compile;
pub mod controller;
pub mod gateway;
pub mod policy;
pub mod proxy;
pub mod routing;
pub mod settings;
pub mod sources;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod websocket;
