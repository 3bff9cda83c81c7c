//! The listeners: accept loops for the proxy ports (plain and TLS) and the small internal
//! servers, the HTTP/1.1 fast path that serves most requests on the connection's own task, and
//! the general (hyper) server that takes every other connection.
//!
//! Order (each file uses only those before it): `limits`, `rewind`, `h1` (the fast path),
//! `idle` (the idle clock of HTTP/2 connections), `accept`.

mod accept;
pub(super) mod h1;
mod idle;
mod limits;
mod rewind;

pub use accept::{bind, serve, serve_proxy, serve_simple, Shutdown};
pub use limits::ConnLimits;
