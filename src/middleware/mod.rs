//! The middleware the pipeline applies to requests (the `middleware` section of `gateway.yaml`):
//! CORS and rate limiting.

pub mod cors;
pub mod ratelimit;
