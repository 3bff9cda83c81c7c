//! Request policy through the real binary: authentication (JWT verification, roles, key
//! rotation, the admin API's token) and rate limits (memory, Redis shared by replicas, Redis
//! going away), and RoutePolicies on Gateway API HTTPRoutes.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod ratelimit;
mod route_policy;
