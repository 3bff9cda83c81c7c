//! Three gateways sharing one real Redis: fan-out of client broadcasts and webhook calls to
//! every replica's subscribers (exactly once), and persistent history across a restart.
//! Needs `GATEHOUSE_TEST_REDIS_URL` (scripts/test.sh starts a redis-server and sets it).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::ws::*;
use common::*;
use http::Request;
use http_body_util::Full;
use serde_json::json;

fn redis_url() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("GATEHOUSE_TEST_REDIS_URL is not set: run the tests with scripts/test.sh (it starts redis-server)")
    })
}

fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{n:x}")
}

async fn replica(redis: &str, files: &[(&str, &str)]) -> Gateway {
    let gw = Gateway::start_env(&hub_config(""), files, &[("GATEWAY_REDIS_URL", redis)]).await;
    // Wait for the fan-out subscription, so that nothing published after this is missed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let req = Request::get(format!(
            "http://127.0.0.1:{}/admin/websocket/statistics",
            gw.admin
        ))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::default())
        .unwrap();
        let stats = send(&client(), req).await.unwrap().json();
        if stats["redis"]["connected"] == true {
            return gw;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica never connected to Redis: {stats}\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn broadcasts_and_webhooks_reach_every_replica_once() {
    let redis = redis_url();
    let channel = unique("fanout");
    let gws = [
        replica(&redis, &[]).await,
        replica(&redis, &[]).await,
        replica(&redis, &[]).await,
    ];
    let mut clients = Vec::new();
    for (i, gw) in gws.iter().enumerate() {
        let mut c = connect(gw.http, &format!("user{i}"), &[]).await;
        assert_subscribed(&c.subscribe(&channel).await, &channel);
        clients.push(c);
    }
    clients[0].broadcast(&channel, json!({"text": "from A"})).await;
    for c in clients.iter_mut() {
        let v = c.recv().await;
        assert_eq!(broadcast_message(&v), &json!({"text": "from A"}));
        assert_eq!(v["data"]["payload"]["from"], "user0");
    }
    let hook = format!("http://127.0.0.1:{}/webhook/websocket", gws[1].http);
    let req = Request::post(hook)
        .header("authorization", format!("Bearer {WEBHOOK_TOKEN}"))
        .body(Full::new(Bytes::from(
            json!({"type": "channel_broadcast", "channel": channel, "message": {"text": "from B"}})
                .to_string(),
        )))
        .unwrap();
    let r = send(&client(), req).await.unwrap();
    assert_eq!((r.status, r.json()), (202, json!({"delivered": 1})));
    for c in clients.iter_mut() {
        assert_eq!(broadcast_message(&c.recv().await), &json!({"text": "from B"}));
    }
    // Exactly once: nothing else arrives.
    for c in clients.iter_mut() {
        c.quiet(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn persistent_history_survives_a_restart() {
    let redis = redis_url();
    let channel = unique("persist");
    let res = channel_yaml(
        "persisted",
        &format!("channel: {channel}\nmessageHistory: 3\npersistence: {{enabled: true, ttl: 1h}}"),
    );
    let files = [("c.yaml", res.as_str())];
    {
        let a = replica(&redis, &files).await;
        let mut c = connect(a.http, "writer", &[]).await;
        c.subscribe(&channel).await;
        for i in 0..5 {
            c.broadcast(&channel, json!({"n": i})).await;
            c.recv().await;
        }
        // The write to Redis is asynchronous; give it a moment before the restart.
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.sigterm();
    }
    let b = replica(&redis, &files).await;
    let mut late = connect(b.http, "reader", &[]).await;
    assert_subscribed(&late.subscribe(&channel).await, &channel);
    for i in 2..5 {
        assert_eq!(broadcast_message(&late.recv().await), &json!({"n": i}));
    }
    late.quiet(Duration::from_millis(200)).await;
}
