//! Request policies applied by the pipeline: CORS (rate limiting joins here).

pub mod cors;
