//! The listeners: accept loops for the proxy ports (plain and TLS) and the small internal
//! servers, the HTTP/1.1 fast path that serves most requests on the connection's own task, the
//! general (hyper) server that takes every other connection, and the sockets of the Gateway
//! API Gateways that the live table lists.
//!
//! Order (each file uses only those before it): `limits`, `rewind`, `h1` (the fast path),
//! `idle` (the idle clock of HTTP/2 connections), `accept`, `gateways` (bound and unbound as
//! tables are published).

mod accept;
mod gateways;
pub(super) mod h1;
mod idle;
mod limits;
mod rewind;
#[cfg(test)]
mod tests;

pub use accept::{bind, serve, serve_proxy, serve_simple, Shutdown};
pub use gateways::{serve_gateways, GatewaySockets};
pub use limits::ConnLimits;
