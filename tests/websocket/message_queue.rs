//! Gateways consuming from a real RabbitMQ: every replica's subscribers get each message once
//! (with and without the Redis fan-out beside it), the intake comes back after the broker was
//! stopped and started again, a malformed message is rejected, counted and skipped, and the
//! URL can come from a Secret of the resources folder (and change there).
//! Needs `GATEHOUSE_TEST_AMQP_URL` (scripts/test.sh starts a broker with
//! .ci/services/rabbitmq.sh and sets it); skips without it, or fails where services are
//! required (tests/support/services.rs).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::services::{amqp_url, redis_url};
use crate::support::ws::*;
use crate::support::*;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};

fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{n:x}")
}

fn config(amqp: &str, exchange: &str) -> String {
    // `hub_config` ends inside `integration:`; message_queue goes next to the webhook.
    format!(
        "{}    message_queue:\n      enabled: true\n      type: rabbitmq\n      url: \"{amqp}\"\n      exchange: \"{exchange}\"\n",
        hub_config("")
    )
}

/// The value of an unlabelled series in the metrics text.
async fn metric(gw: &Gateway, name: &str) -> Option<f64> {
    let text = gw.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `websocket_queue_connected` is `want` (the queue is bound when it is 1).
async fn wait_connected(gw: &Gateway, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if metric(gw, "websocket_queue_connected").await == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "websocket_queue_connected never became {want}:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replica(builder: GatewayBuilder, amqp: &str, exchange: &str) -> Gateway {
    let gw = builder.config(&config(amqp, exchange)).start().await;
    wait_connected(&gw, 1.0, Duration::from_secs(15)).await;
    gw
}

/// A publisher on the test broker.
struct Publisher {
    channel: lapin::Channel,
    exchange: String,
    _conn: Connection,
}

impl Publisher {
    async fn new(amqp: &str, exchange: &str) -> Publisher {
        let conn = Connection::connect(amqp, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Publisher {
            channel,
            exchange: exchange.to_string(),
            _conn: conn,
        }
    }

    async fn publish(&self, routing_key: &str, body: &[u8]) {
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn publish_json(&self, routing_key: &str, body: Value) {
        self.publish(routing_key, body.to_string().as_bytes()).await;
    }
}

/// Two replicas (sharing Redis when `redis` is given), a client on each subscribed to one
/// channel: a message published once reaches each client exactly once.
async fn each_replica_delivers_once(amqp: &str, redis: Option<&str>) {
    let exchange = unique("ws-events");
    let channel = unique("orders");
    let builder = || match redis {
        Some(r) => Gateway::builder().env("GATEWAY_REDIS_URL", r),
        None => Gateway::builder(),
    };
    let gws = [
        replica(builder(), amqp, &exchange).await,
        replica(builder(), amqp, &exchange).await,
    ];
    if redis.is_some() {
        // Wait for the fan-out subscriptions too: a queued message shared through Redis
        // would then show up twice.
        for gw in &gws {
            let deadline = Instant::now() + Duration::from_secs(10);
            while gw.admin_json("/admin/websocket/statistics").await["redis"]["connected"] != true {
                assert!(
                    Instant::now() < deadline,
                    "never connected to Redis:\n{}",
                    gw.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let mut clients = Vec::new();
    for (i, gw) in gws.iter().enumerate() {
        let mut c = connect(gw.http, &format!("user{i}"), &[]).await;
        assert_subscribed(&c.subscribe(&channel).await, &channel);
        clients.push(c);
    }
    let user1_again = {
        let mut c = connect(gws[1].http, "user0", &[]).await;
        assert_subscribed(&c.subscribe(&channel).await, &channel);
        c
    };
    clients.push(user1_again);
    let publisher = Publisher::new(amqp, &exchange).await;
    publisher
        .publish_json(
            "anything",
            json!({"type": "channel_broadcast", "channel": channel, "message": {"n": 1}}),
        )
        .await;
    for c in clients.iter_mut() {
        let v = c.recv().await;
        assert_eq!(broadcast_message(&v), &json!({"n": 1}));
        assert_eq!(v["data"]["payload"]["from"], "system");
    }
    // A user notification reaches that user's connections on every replica, once.
    publisher
        .publish_json(
            "",
            json!({"type": "user_notification", "target_user": "user0", "channel": channel, "message": "yours"}),
        )
        .await;
    assert_eq!(broadcast_message(&clients[0].recv().await), &json!("yours"));
    assert_eq!(broadcast_message(&clients[2].recv().await), &json!("yours"));
    for c in clients.iter_mut() {
        c.quiet(Duration::from_millis(400)).await;
    }
    for gw in &gws {
        assert_eq!(
            metric(gw, "websocket_queue_messages_consumed_total").await,
            Some(2.0)
        );
    }
}

#[tokio::test]
async fn each_replica_delivers_a_queued_message_once_to_its_own_subscribers() {
    let Some(amqp) = amqp_url() else { return };
    each_replica_delivers_once(&amqp, None).await;
}

#[tokio::test]
async fn with_the_redis_fan_out_beside_it_a_queued_message_is_still_delivered_once() {
    let Some(amqp) = amqp_url() else { return };
    let Some(redis) = redis_url() else { return };
    each_replica_delivers_once(&amqp, Some(&redis)).await;
}

#[tokio::test]
async fn the_routing_key_names_the_event_and_a_malformed_message_is_rejected_and_counted() {
    let Some(amqp) = amqp_url() else { return };
    let exchange = unique("ws-events");
    let channel = unique("orders");
    let config = format!(
        "{}  routing:\n    service_events:\n      enabled: true\n      mappings:\n        \"order.created\": \"{channel}\"\n",
        config(&amqp, &exchange)
    );
    let gw = Gateway::builder().config(&config).start().await;
    wait_connected(&gw, 1.0, Duration::from_secs(15)).await;
    let mut c = connect(gw.http, "u", &[]).await;
    assert_subscribed(&c.subscribe(&channel).await, &channel);
    let publisher = Publisher::new(&amqp, &exchange).await;
    publisher.publish("order.created", b"not json {").await;
    publisher.publish("order.created", br#"{"type": "dance"}"#).await;
    publisher
        .publish_json("order.created", json!({"message": {"id": 7}}))
        .await;
    // The consumer went on past the rejected ones.
    assert_eq!(broadcast_message(&c.recv().await), &json!({"id": 7}));
    c.quiet(Duration::from_millis(300)).await;
    assert_eq!(
        metric(&gw, "websocket_queue_messages_rejected_total").await,
        Some(2.0)
    );
    assert_eq!(
        metric(&gw, "websocket_queue_messages_consumed_total").await,
        Some(1.0)
    );
    assert!(
        gw.log().contains("rejects a malformed message from RabbitMQ"),
        "{}",
        gw.log()
    );
}

/// A broker of the test's own (in its own folder, so that stopping it disturbs no other
/// test), started and stopped with .ci/services/rabbitmq.sh.
struct OwnBroker {
    dir: std::path::PathBuf,
    url: String,
    /// `None` once stopped.
    pid: Option<String>,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/services/rabbitmq.sh");

impl OwnBroker {
    /// Starts one in `dir`; again on the same port when `dir` held one before.
    fn start_in(dir: &std::path::Path) -> OwnBroker {
        let out = std::process::Command::new("bash")
            .arg(SCRIPT)
            .env("GATEHOUSE_RABBITMQ_DIR", dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_string()
        };
        OwnBroker {
            dir: dir.to_path_buf(),
            url: var("GATEHOUSE_TEST_AMQP_URL"),
            pid: Some(var("RABBITMQ_PID")),
        }
    }

    /// Stops the broker by the PID it was started with, keeping its folder (and so its port).
    fn kill(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = std::process::Command::new("bash")
                .args([SCRIPT, "stop", &pid])
                .env("GATEHOUSE_RABBITMQ_DIR", &self.dir)
                .status();
        }
    }
}

#[tokio::test]
async fn the_gateway_serves_while_the_broker_is_down_and_resumes_when_it_is_back() {
    // The shared broker tells that RabbitMQ runs here; this test stops one of its own.
    if amqp_url().is_none() {
        return;
    }
    let exchange = unique("ws-events");
    let channel = unique("orders");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broker");
    let start = {
        let dir = dir.clone();
        move || OwnBroker::start_in(&dir)
    };
    let broker = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    let gw = replica(Gateway::builder(), &broker.url, &exchange).await;
    let mut c = connect(gw.http, "u", &[]).await;
    assert_subscribed(&c.subscribe(&channel).await, &channel);
    let body = |n: u32| json!({"type": "channel_broadcast", "channel": channel, "message": n});
    {
        let p = Publisher::new(&broker.url, &exchange).await;
        p.publish_json("", body(1)).await;
        assert_eq!(broadcast_message(&c.recv().await), &json!(1));
    }

    tokio::task::spawn_blocking(move || {
        let mut b = broker;
        b.kill();
    })
    .await
    .unwrap();
    wait_connected(&gw, 0.0, Duration::from_secs(10)).await;
    // Still serving and ready; the log says the intake is down, without the password.
    let ready = get(&format!("http://127.0.0.1:{}/ready", gw.admin))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);
    let mut other = connect(gw.http, "v", &[]).await;
    assert_subscribed(&other.subscribe(&channel).await, &channel);
    // (replayed from the channel's history)
    assert_eq!(broadcast_message(&other.recv().await), &json!(1));
    let log = gw.log();
    assert!(log.contains("the RabbitMQ intake is down"), "{log}");
    assert!(log.contains("guest:***@127.0.0.1"), "{log}");
    assert!(!log.contains("guest:guest"), "{log}");

    // Started again in the same folder: the same port; the gateway reconnects by itself.
    let broker = tokio::task::spawn_blocking(start).await.unwrap();
    wait_connected(&gw, 1.0, Duration::from_secs(40)).await;
    let p = Publisher::new(&broker.url, &exchange).await;
    p.publish_json("", body(2)).await;
    assert_eq!(broadcast_message(&c.recv().await), &json!(2));
    assert_eq!(broadcast_message(&other.recv().await), &json!(2));
    c.quiet(Duration::from_millis(200)).await;
}

/// A `v1/Secret` of the resources folder holding `url` under the key `amqp`, as `stringData`
/// or base64 `data`.
fn url_secret(url: &str, base64_data: bool) -> String {
    use base64::Engine;
    let entry = if base64_data {
        format!(
            "data:\n  amqp: {}\n",
            base64::engine::general_purpose::STANDARD.encode(url)
        )
    } else {
        format!("stringData:\n  amqp: \"{url}\"\n")
    };
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: mq\n  namespace: default\n{entry}")
}

#[tokio::test]
async fn the_url_comes_from_a_secret_and_a_new_one_there_is_used_at_once() {
    let Some(amqp) = amqp_url() else { return };
    let exchange = unique("ws-events");
    let channel = unique("orders");
    // Only url_secret_ref: the credentials live in the Secret of the resources folder.
    let config = format!(
        "{}    message_queue:\n      enabled: true\n      type: rabbitmq\n      url_secret_ref: {{name: mq, key: amqp}}\n      exchange: \"{exchange}\"\n",
        hub_config("")
    );
    let gw = Gateway::builder()
        .config(&config)
        .resource("secret.yaml", &url_secret(&amqp, false))
        .start()
        .await;
    wait_connected(&gw, 1.0, Duration::from_secs(15)).await;
    let mut c = connect(gw.http, "u", &[]).await;
    assert_subscribed(&c.subscribe(&channel).await, &channel);
    let publisher = Publisher::new(&amqp, &exchange).await;
    let body = |n: u32| json!({"type": "channel_broadcast", "channel": channel, "message": n});
    publisher.publish_json("", body(1)).await;
    assert_eq!(broadcast_message(&c.recv().await), &json!(1));

    // Another URL in the Secret (base64 `data` now; the same broker and vhost spelt
    // otherwise, as after a password rotation): the intake reconnects with it.
    let other = format!("{}%2F", amqp.strip_suffix("%2f").unwrap());
    assert_ne!(other, amqp);
    gw.write_resources("secret.yaml", &url_secret(&other, true));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gw.log().contains("the RabbitMQ URL in the Secret changed") {
        assert!(Instant::now() < deadline, "never reconnected:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_connected(&gw, 1.0, Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log().contains("%2F") {
        assert!(Instant::now() < deadline, "never consumed again:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.publish_json("", body(2)).await;
    assert_eq!(broadcast_message(&c.recv().await), &json!(2));
    c.quiet(Duration::from_millis(300)).await;

    // A value that is no AMQP URL is a logged problem; the running connection stays.
    gw.write_resources(
        "secret.yaml",
        &url_secret("redis://guest:guest@127.0.0.1:1", false),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log().contains("must start with amqp:// or amqps://") {
        assert!(Instant::now() < deadline, "no problem logged:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.publish_json("", body(3)).await;
    assert_eq!(broadcast_message(&c.recv().await), &json!(3));
    let log = gw.log();
    assert!(!log.contains("guest:guest"), "{log}");
}
