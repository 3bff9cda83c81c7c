//! The bounds of `websocket.limits` and the rate limit on the hub's paths, through the real
//! binary and real WebSocket clients: what a client may make the hub keep (subscriptions,
//! channels, history), how long a socket without a token may hold a slot, and how fast a
//! client may connect and send.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::ws::*;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

async fn webhook(gw: &Gateway, body: Value) -> Reply {
    send(
        &client(),
        Request::post(gw.url("/webhook/websocket"))
            .header("authorization", format!("Bearer {WEBHOOK_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap(),
    )
    .await
    .unwrap()
}

async fn statistics(gw: &Gateway) -> Value {
    gw.admin_json("/admin/websocket/statistics").await
}

/// The reproduction: with `max_connections: 5`, five idle sockets without a token held
/// every slot, and an authenticated client got 503 for as long as they stayed. Now each has
/// `auth_timeout` to authenticate, then it is closed with 1008 and its slot is free.
#[tokio::test]
async fn sockets_without_a_token_must_authenticate_in_time_and_then_free_their_slots() {
    let cfg = hub_config("server:\n  max_connections: 5\nlimits:\n  auth_timeout: 2s");
    let gw = Gateway::start(&cfg, &[]).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_anonymous(gw.http).await);
    }
    // One of them authenticates in time and stays.
    let mut late = connect_anonymous(gw.http).await;
    assert_eq!(late.auth(&token("late", &[])).await["data"]["user_id"], "late");
    match try_connect(gw.http, &format!("?token={}", token("alice", &[])), &[]).await {
        Err(Refused::Status(503, _)) => {}
        other => panic!("every slot is taken for now: {:?}", other.map(|_| ())),
    }
    for c in &mut idle {
        assert_eq!(c.close_code(Duration::from_secs(5)).await, Some(1008));
    }
    drop(idle);
    // Their slots are free once the close handshakes are done.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while statistics(&gw).await["connections"]["active"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the slots were never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut alice = connect(gw.http, "alice", &[]).await;
    assert_subscribed(&alice.subscribe("room").await, "room");
    assert_subscribed(&late.subscribe("room").await, "room");
    let stats = statistics(&gw).await;
    assert_eq!(stats["connections"]["active"], 2, "{stats}");
    assert_eq!(stats["connections"]["anonymous"], 0, "{stats}");
}

#[tokio::test]
async fn a_connection_subscribes_to_at_most_max_subscriptions_per_connection() {
    let cfg = hub_config("limits:\n  max_subscriptions_per_connection: 3");
    let gw = Gateway::start(&cfg, &[]).await;
    let mut a = connect(gw.http, "a", &[]).await;
    for c in ["c1", "c2", "c3"] {
        assert_subscribed(&a.subscribe(c).await, c);
    }
    let refused = a.subscribe("c4").await;
    assert_eq!(error_code(&refused), "too_many_subscriptions");
    assert_subscribed(&a.subscribe("c1").await, "c1");
    a.send(json!({"type": "Unsubscribe", "data": {"channel": "c1"}}))
        .await;
    assert_eq!(a.recv().await["data"]["action"], "unsubscribed");
    assert_subscribed(&a.subscribe("c4").await, "c4");
    // Another connection has its own.
    let mut b = connect(gw.http, "a", &[]).await;
    for c in ["c1", "c2", "c3"] {
        assert_subscribed(&b.subscribe(c).await, c);
    }
}

/// Channels in total are capped; a channel left with neither subscribers nor history goes,
/// and with it its `websocket_channel_subscribers` series.
#[tokio::test]
async fn the_hub_holds_at_most_max_channels_and_their_series_go_with_them() {
    let cfg = hub_config("limits:\n  max_channels: 2\nchannels:\n  default:\n    message_history: 0");
    let gw = Gateway::start(&cfg, &[]).await;
    let mut a = connect(gw.http, "a", &[]).await;
    let mut b = connect(gw.http, "b", &[]).await;
    assert_subscribed(&a.subscribe("x").await, "x");
    assert_subscribed(&b.subscribe("y").await, "y");
    let refused = b.subscribe("z").await;
    assert_eq!(error_code(&refused), "too_many_channels");
    assert!(
        refused["data"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 2 channels"),
        "{refused}"
    );
    let text = gw.metrics_text().await;
    assert!(
        text.contains("websocket_channel_subscribers{channel=\"x\"} 1"),
        "{text}"
    );

    a.send(json!({"type": "Unsubscribe", "data": {"channel": "x"}}))
        .await;
    assert_eq!(a.recv().await["data"]["action"], "unsubscribed");
    assert_subscribed(&b.subscribe("z").await, "z");
    let text = gw.metrics_text().await;
    assert!(!text.contains("channel=\"x\""), "{text}");
    assert!(
        text.contains("websocket_channel_subscribers{channel=\"z\"} 1"),
        "{text}"
    );
    drop(b);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.metrics_text().await.contains("websocket_channel_subscribers{") {
        assert!(
            std::time::Instant::now() < deadline,
            "series outlived their channels"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(statistics(&gw).await["retained"]["channels"], 0);
}

/// History is kept by bytes as well as by count, and only for `history_max_age`; a channel
/// whose history has expired goes.
#[tokio::test]
async fn history_is_bounded_by_bytes_and_age() {
    let cfg = hub_config("limits:\n  history_max_bytes: 4096\n  history_max_age: 2s");
    let gw = Gateway::start(&cfg, &[]).await;
    for (i, size) in [1500, 1500, 1500, 5000].into_iter().enumerate() {
        let r = webhook(
            &gw,
            json!({"type": "channel_broadcast", "channel": "feed", "message": {"i": i, "p": "x".repeat(size)}}),
        )
        .await;
        assert_eq!(r.status, 202);
    }
    let mut a = connect(gw.http, "a", &[]).await;
    assert_subscribed(&a.subscribe("feed").await, "feed");
    // 5000 bytes is more than a channel keeps; of the others the newest two fit in 4096.
    assert_eq!(broadcast_message(&a.recv().await)["i"], 1);
    assert_eq!(broadcast_message(&a.recv().await)["i"], 2);
    a.quiet(Duration::from_millis(200)).await;
    drop(a);
    // Older than two seconds: not replayed, and the channel is gone (swept every second).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(statistics(&gw).await["retained"]["channels"], 0);
    let mut b = connect(gw.http, "b", &[]).await;
    assert_subscribed(&b.subscribe("feed").await, "feed");
    b.quiet(Duration::from_millis(300)).await;
}

/// The hub's paths count against `middleware.rate_limiting` like any request: the upgrade
/// beyond `default_limit` is a 429.
#[tokio::test]
async fn upgrades_are_rate_limited_per_client_ip() {
    let mut cfg = hub_config("");
    cfg.push_str("middleware:\n  rate_limiting:\n    default_limit: 3\n    window: 60s\n");
    let gw = Gateway::start(&cfg, &[]).await;
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(connect(gw.http, &format!("u{i}"), &[]).await);
    }
    match try_connect(gw.http, &format!("?token={}", token("u3", &[])), &[]).await {
        Err(Refused::Status(429, body)) => assert!(body.contains("rate_limited"), "{body}"),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    // The webhook path is limited the same way (it, too, is answered by the hub).
    let r = webhook(
        &gw,
        json!({"type": "channel_broadcast", "channel": "c", "message": 1}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

/// Each connection's frames are held to `messages_per_second` after a `message_burst`.
#[tokio::test]
async fn a_connection_that_sends_too_fast_is_told_so_and_stays_open() {
    let cfg = hub_config("limits:\n  messages_per_second: 1\n  message_burst: 3");
    let gw = Gateway::start(&cfg, &[]).await;
    let mut a = connect(gw.http, "a", &[]).await;
    for i in 0..5 {
        a.send(json!({"type": "Subscribe", "data": {"channel": format!("c{i}")}}))
            .await;
    }
    let answers: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let f = a.recv().await;
            v.push(match f["type"].as_str() {
                Some("Error") => error_code(&f),
                _ => f["data"]["action"].as_str().unwrap().to_string(),
            });
        }
        v
    };
    assert_eq!(
        answers,
        [
            "subscribed",
            "subscribed",
            "subscribed",
            "rate_limited",
            "rate_limited"
        ]
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_subscribed(&a.subscribe("c9").await, "c9");
}
