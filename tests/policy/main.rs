//! Request policy through the real binary: authentication (JWT verification, roles, key
//! rotation, the admin API's token) and rate limits (memory, Redis shared by replicas, Redis
//! going away).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod ratelimit;
