//! The data plane: listeners and the request pipeline. It reads the routing table through a
//! `TableHandle` and knows nothing of where the table came from.

mod body;
mod client;
mod error;
mod fields;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(all(test, not(fuzzing)))]
mod fuzzing;
pub mod headers;
mod path;
mod pipeline;
mod server;
mod stall;
pub mod tls;
mod upgrade;

pub use body::{Body, ClientBody};
pub use error::ProxyError;
pub use pipeline::ProxyState;
pub use server::{bind, serve, serve_proxy, serve_simple, ConnLimits, Shutdown};
