//! The proxy end to end: the real binary in front of real upstreams on loopback, with real
//! clients. Routing, errors, h2c and gRPC (proxy), the listener's own HTTP/1.1 path
//! (server_http1), the HTTP/1.1 client towards upstreams (upstream_http1), upstream protection
//! (upstream_policy), TLS (tls), live reload and shutdown (reload), tracing (tracing), other
//! spellings of a path (paths), the client's fields that do not go upstream as sent
//! (client_fields), and namespaces sharing the gateway (tenants).

#[path = "../support/mod.rs"]
mod support;

mod client_fields;
mod framing;
mod paths;
mod proxy;
mod reload;
mod server_http1;
mod tenants;
mod tls;
mod tracing;
mod upstream_http1;
mod upstream_policy;
