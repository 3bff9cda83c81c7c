//! The request pipeline, in the manner of pingora's phases: each phase a file, all reading one
//! request context ([`RequestCtx`](crate::proxy::context::RequestCtx)) that holds the routing
//! table the request arrived with.
//!
//! Order (each file uses only those before it): `state` (what requests share, the counting),
//! `route`, `admit` (authentication, rate limit, body size), `respond` (the gateway's own
//! answers and the finishing of every answer), `gateway` (the redirect and filters of a
//! Gateway API rule), then `handle`, which runs them top to bottom.

mod admit;
mod gateway;
mod handle;
mod respond;
mod route;
mod state;
#[cfg(test)]
mod tests;

pub use state::ProxyState;
