//! The data plane: listeners and the request pipeline. It reads the routing table through a
//! `TableHandle` and knows nothing of where the table came from.
//!
//! A request goes through the phases of `pipeline` (in the manner of pingora's): the
//! gateway's own answers, the route, admission, the forward to the upstream, the response;
//! all read one request context (`context`), which holds the routing table the request
//! arrived with.
//!
//! # Order
//!
//! Every arrow inside the proxy points down: a file uses only files of lower rows, never one
//! of its own row or above (`tests.rs` checks this table, and the order each folder's
//! `mod.rs` gives for its own files).
//!
//! | row | files | what they are |
//! |---|---|---|
//! | 0 | error, fields, path, stall, tls, headers | errors and their JSON; HTTP/1.1 field helpers; path normal form; stall clocks; TLS edges; header work |
//! | 1 | client | the own HTTP/1.1 client: pool, request head, response head, response body |
//! | 2 | body, context | the bodies that cross the gateway; the request context |
//! | 3 | forward | endpoint choice and rewrite, one attempt (deadline, send, classify), retries, tunnels |
//! | 4 | pipeline | the phases of one request: state, route, admit, respond, handle |
//! | 5 | server | accept loops, the HTTP/1.1 fast path (parse, write), the general server, the Gateways' sockets |
//! | 6 | fuzzing | entry points of the fuzz targets |

mod body;
mod client;
mod context;
mod error;
mod fields;
mod forward;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(all(test, not(fuzzing)))]
mod fuzzing;
pub mod headers;
mod path;
mod pipeline;
mod server;
mod stall;
#[cfg(test)]
mod tests;
pub mod tls;

pub use body::{Body, ClientBody};
pub use error::ProxyError;
pub use pipeline::ProxyState;
pub use server::{
    bind, serve, serve_gateways, serve_proxy, serve_simple, ConnLimits, GatewaySockets, Shutdown,
};
