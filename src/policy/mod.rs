//! Request policies applied by the pipeline: CORS and rate limiting.

pub mod cors;
pub mod ratelimit;
