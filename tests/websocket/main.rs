//! The WebSocket hub through the real binary: the SPEC §5 protocol, channel policies, the
//! webhook, admin endpoints, limits and shutdown, and tunnelled upgrades (websocket); what a
//! client may make the hub keep, and how fast it may come (hub_limits); replicas sharing Redis
//! (websocket_redis); replicas consuming from RabbitMQ (message_queue); the seed's own jest
//! suite (jest).

#[path = "../support/mod.rs"]
mod support;

mod hub_limits;
mod jest;
mod message_queue;
mod websocket;
mod websocket_redis;
