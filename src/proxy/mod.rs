//! The data plane: listeners and the request pipeline. It reads the routing table through a
//! `TableHandle` and knows nothing of where the table came from.

mod client;
mod error;
mod fields;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(all(test, not(fuzzing)))]
mod fuzzing;
mod h1;
pub mod headers;
mod path;
mod pipeline;
mod server;
mod stall;
pub mod tls;
mod upgrade;

pub use error::ProxyError;
pub use h1::ClientBody;
pub use pipeline::{Body, ProxyState};
pub use server::{bind, serve, serve_proxy, serve_simple, ConnLimits, Shutdown};
