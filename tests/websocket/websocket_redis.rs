//! Three gateways sharing one real Redis: fan-out of client broadcasts and webhook calls to
//! every replica's subscribers (exactly once), persistent history across a restart, and
//! messages backends publish on Redis pub/sub channels.
//! Needs `GATEHOUSE_TEST_REDIS_URL` (scripts/test.sh starts a redis-server and sets it); skips
//! without it, or fails where services are required (tests/support/services.rs).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::services::redis_url;
use crate::support::ws::*;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;

fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{n:x}")
}

async fn replica(redis: &str, files: &[(&str, &str)]) -> Gateway {
    replica_with(redis, &hub_config(""), files).await
}

async fn replica_with(redis: &str, config: &str, files: &[(&str, &str)]) -> Gateway {
    let gw = Gateway::builder()
        .config(config)
        .resources(files)
        .env("GATEWAY_REDIS_URL", redis)
        .start()
        .await;
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
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn broadcasts_and_webhooks_reach_every_replica_once() {
    let Some(redis) = redis_url() else { return };
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
    let Some(redis) = redis_url() else { return };
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

#[tokio::test]
async fn backends_publish_on_redis_channels_and_each_replica_delivers_once() {
    let Some(redis) = redis_url() else { return };
    let alerts = unique("alerts");
    // `hub_config` ends inside `integration:`; the seed's redis_pubsub block goes next to the webhook.
    let config = format!(
        "{}    redis_pubsub:\n      enabled: true\n      channels: [\"{alerts}\"]\n",
        hub_config("")
    );
    let gws = [
        replica_with(&redis, &config, &[]).await,
        replica_with(&redis, &config, &[]).await,
    ];
    let mut a = connect(gws[0].http, "u1", &[]).await;
    let mut b = connect(gws[1].http, "u2", &[]).await;
    let mut b_u1 = connect(gws[1].http, "u1", &[]).await;
    for c in [&mut a, &mut b, &mut b_u1] {
        assert_subscribed(&c.subscribe(&alerts).await, &alerts);
    }
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut publish = async |payload: String| -> i64 {
        redis::cmd("PUBLISH")
            .arg(&alerts)
            .arg(payload)
            .query_async(&mut con)
            .await
            .unwrap()
    };

    // Any JSON: a broadcast on the hub channel of the same name, on both replicas.
    let heard = publish(json!({"level": "high"}).to_string()).await;
    assert_eq!(heard, 2, "each replica subscribes once");
    for c in [&mut a, &mut b, &mut b_u1] {
        let v = c.recv().await;
        assert_eq!(broadcast_message(&v), &json!({"level": "high"}));
        assert_eq!(v["data"]["payload"]["from"], "system");
        assert_eq!(v["data"]["payload"]["channel"], alerts.as_str());
    }
    // A webhook body: a user notification reaches only that user's connections, on any replica.
    publish(json!({"type": "user_notification", "target_user": "u1", "message": {"n": 1}}).to_string()).await;
    // Text that is not JSON arrives as a JSON string.
    publish("disk full".to_string()).await;
    for c in [&mut a, &mut b_u1] {
        assert_eq!(broadcast_message(&c.recv().await), &json!({"n": 1}));
    }
    for c in [&mut a, &mut b, &mut b_u1] {
        assert_eq!(broadcast_message(&c.recv().await), &json!("disk full"));
    }
    // A body that names a type but is malformed is refused (logged) and the channel keeps working.
    publish(json!({"type": "user_notification", "message": {}}).to_string()).await;
    publish(json!({"after": true}).to_string()).await;
    for c in [&mut a, &mut b, &mut b_u1] {
        assert_eq!(broadcast_message(&c.recv().await), &json!({"after": true}));
        c.quiet(Duration::from_millis(300)).await;
    }
}
