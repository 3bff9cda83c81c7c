//! Header work on the way through: hop-by-hop removal, the client's fields (and those of them
//! that do not go upstream as sent), request ids and W3C trace context, and the forwarding
//! fields set on the request going upstream.
//!
//! Order (each file uses only those before it): `hop`, `owned`, `client`, `ids`, `forwarding`.

mod client;
mod forwarding;
mod hop;
mod ids;
mod owned;
#[cfg(test)]
mod tests;

pub use client::{is_host, ClientFields};
pub use forwarding::{Forwarding, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
/// For the own client's tests, whose field roles must know every one of them.
#[cfg(test)]
pub(in crate::proxy) use hop::HOP_BY_HOP;
pub use hop::{accepts_trailers, strip_hop_by_hop};
pub use ids::{request_id_from, traceparent_text, TRACEPARENT, X_REQUEST_ID};
pub use owned::strip_client_fields;
