//! The proxy end to end: the real binary in front of real upstreams on loopback, with real
//! clients. Routing, errors, h2c and gRPC (proxy), the listener's own HTTP/1.1 path
//! (server_http1), the HTTP/1.1 client towards upstreams (upstream_http1), upstream protection
//! (upstream_policy), TLS (tls), live reload and shutdown (reload), and tracing (tracing).

#[path = "../support/mod.rs"]
mod support;

mod framing;
mod proxy;
mod reload;
mod server_http1;
mod tls;
mod tracing;
mod upstream_http1;
mod upstream_policy;
