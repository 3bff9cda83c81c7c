//! The WebSocket hub through the real binary: the SPEC §5 protocol, channel policies from
//! resources and config, the webhook, the admin endpoints, limits, timeouts and shutdown.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::ws::*;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

async fn post(url: &str, token: &str, body: Value) -> Reply {
    send(
        &client(),
        Request::post(url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap(),
    )
    .await
    .unwrap()
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{}{path}", gw.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    send(&client(), req).await.unwrap()
}

#[tokio::test]
async fn protocol_round_trip_and_errors_keep_the_connection_open() {
    let gw = Gateway::start(&hub_config(""), &[]).await;
    let mut a = connect(gw.http, "alice", &["user"]).await;
    let mut b = connect_anonymous(gw.http).await;

    let ok = a.auth(&token("alice", &["user"])).await;
    assert_eq!(
        ok,
        json!({"type":"Custom","data":{"action":"auth_success","authenticated":true,"user_id":"alice"}})
    );
    // Not yet authenticated: refused, connection stays.
    b.send(json!({"type":"Subscribe","data":{"channel":"room"}}))
        .await;
    assert_eq!(error_code(&b.recv().await), "unauthorized");
    assert_eq!(b.auth(&token("bob", &[])).await["data"]["user_id"], "bob");

    assert_subscribed(&a.subscribe("room").await, "room");
    assert_subscribed(&b.subscribe("room").await, "room");
    a.broadcast("room", json!({"text": "hello"})).await;
    for c in [&mut a, &mut b] {
        let v = c.recv().await;
        assert_eq!(broadcast_message(&v), &json!({"text": "hello"}));
        let p = &v["data"]["payload"];
        assert_eq!(p["channel"], "room");
        assert_eq!(p["from"], "alice");
        assert!(
            humantime::parse_rfc3339(p["timestamp"].as_str().unwrap()).is_ok(),
            "{p}"
        );
    }

    a.send_text("{not json").await;
    assert_eq!(error_code(&a.recv().await), "invalid_json");
    a.send(json!({"type": "Dance", "data": {}})).await;
    assert_eq!(error_code(&a.recv().await), "unknown_type");
    a.broadcast("elsewhere", json!(1)).await;
    assert_eq!(error_code(&a.recv().await), "not_subscribed");
    a.send(json!({"type":"Auth","data":{"token":"garbage"}})).await;
    assert_eq!(error_code(&a.recv().await), "unauthorized");

    a.send(json!({"type":"Unsubscribe","data":{"channel":"room"}}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type":"Custom","data":{"action":"unsubscribed","channel":"room"}})
    );
    b.broadcast("room", json!({"text": "after"})).await;
    assert_eq!(broadcast_message(&b.recv().await), &json!({"text": "after"}));
    a.quiet(Duration::from_millis(300)).await;

    // A bad token at the upgrade is a 401, not an open socket.
    match try_connect(gw.http, "?token=nope", &[]).await {
        Err(Refused::Status(401, body)) => assert!(body.contains("unauthorized"), "{body}"),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let plain = get(&gw.url("/ws")).await.unwrap();
    assert_eq!(plain.status, 426);
}

#[tokio::test]
async fn channel_policies_from_resources_and_config_apply_live() {
    let cfg = hub_config(
        "channels:\n  default:\n    max_subscribers: 2\n    message_history: 3\n  public:\n    require_auth: false\nserver:\n  allow_anonymous: true",
    );
    let staff = channel_yaml(
        "staff",
        "requiredRoles: [staff]\npublishRoles: [lead]\nmessageHistory: 2\nrateLimit: {messagesPerMinute: 60, burst: 2}",
    );
    let gw = Gateway::start(&cfg, &[("staff.yaml", &staff)]).await;

    // History: the default keeps 3; a late subscriber gets them in order after `subscribed`.
    let mut a = connect(gw.http, "a", &[]).await;
    a.subscribe("news").await;
    for i in 0..5 {
        a.broadcast("news", json!({"n": i})).await;
        a.recv().await;
    }
    let mut b = connect(gw.http, "b", &[]).await;
    assert_subscribed(&b.subscribe("news").await, "news");
    for i in 2..5 {
        assert_eq!(broadcast_message(&b.recv().await), &json!({"n": i}));
    }
    // maxSubscribers 2 (default).
    let mut c = connect(gw.http, "c", &[]).await;
    assert_eq!(error_code(&c.subscribe("news").await), "channel_full");
    // public: anonymous allowed by config.
    let mut anon = connect_anonymous(gw.http).await;
    assert_subscribed(&anon.subscribe("public").await, "public");
    assert_eq!(error_code(&anon.subscribe("news").await), "unauthorized");

    // requiredRoles / publishRoles / rateLimit from the resource.
    assert_eq!(error_code(&c.subscribe("staff").await), "forbidden");
    let mut lead = connect(gw.http, "lead", &["staff", "lead"]).await;
    let mut member = connect(gw.http, "member", &["staff"]).await;
    assert_subscribed(&lead.subscribe("staff").await, "staff");
    assert_subscribed(&member.subscribe("staff").await, "staff");
    member.broadcast("staff", json!("hi")).await;
    assert_eq!(error_code(&member.recv().await), "forbidden");
    for _ in 0..2 {
        lead.broadcast("staff", json!("ok")).await;
        assert_eq!(broadcast_message(&lead.recv().await), &json!("ok"));
    }
    lead.broadcast("staff", json!("too many")).await;
    assert_eq!(error_code(&lead.recv().await), "rate_limited");

    // Live change: staff opens up to everyone.
    write_atomic(
        &gw.resources().join("staff.yaml"),
        &channel_yaml("staff", "messageHistory: 2\nmaxSubscribers: 10"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.subscribe("staff").await;
        if v["type"] == "Custom" {
            assert_subscribed(&v, "staff");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "policy change never applied: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // History of staff (2 kept) was replayed to c.
    assert_eq!(broadcast_message(&c.recv().await), &json!("ok"));
    assert_eq!(broadcast_message(&c.recv().await), &json!("ok"));
}

#[tokio::test]
async fn origins_user_specific_channels_and_the_webhook() {
    let notifications = channel_yaml(
        "notifications",
        "userSpecific: true\nevents: [user.created]\nallowedOrigins: [\"https://app.example.com\"]",
    );
    let cfg = hub_config(
        "routing:\n  service_events:\n    enabled: true\n    mappings:\n      system.alert: alerts",
    );
    let gw = Gateway::start(&cfg, &[("n.yaml", &notifications)]).await;

    // Only one channel restricts origins, the default admits any: the upgrade is allowed,
    // the restricted channel is not.
    let tok = token("u1", &[]);
    let mut evil = try_connect(
        gw.http,
        &format!("?token={tok}"),
        &[("origin", "https://evil.example")],
    )
    .await
    .unwrap();
    assert_eq!(error_code(&evil.subscribe("notifications").await), "forbidden");
    let mut u1 = try_connect(
        gw.http,
        &format!("?token={tok}"),
        &[("origin", "https://app.example.com")],
    )
    .await
    .unwrap();
    let mut u1b = connect(gw.http, "u1", &[]).await;
    let mut u2 = connect(gw.http, "u2", &[]).await;
    for c in [&mut u1, &mut u1b, &mut u2] {
        assert_subscribed(&c.subscribe("notifications").await, "notifications");
    }
    let mut alerts = connect(gw.http, "ops", &[]).await;
    alerts.subscribe("alerts").await;

    let hook = gw.url("/webhook/websocket");
    let r = post(
        &hook,
        "wrong",
        json!({"type":"channel_broadcast","channel":"alerts","message":{}}),
    )
    .await;
    assert_eq!(r.status, 401);

    // user_notification: only u1's two connections.
    let r = post(
        &hook,
        WEBHOOK_TOKEN,
        json!({"type":"user_notification","target_user":"u1","channel":"notifications","message":{"title":"Welcome!"}}),
    )
    .await;
    assert_eq!((r.status, r.json()), (202, json!({"delivered": 2})));
    for c in [&mut u1, &mut u1b] {
        let v = c.recv().await;
        assert_eq!(broadcast_message(&v), &json!({"title":"Welcome!"}));
        assert_eq!(v["data"]["payload"]["from"], "system");
    }
    u2.quiet(Duration::from_millis(200)).await;

    // A client Broadcast on a user-specific channel reaches only the sender's connections.
    u2.broadcast("notifications", json!("mine")).await;
    assert_eq!(broadcast_message(&u2.recv().await), &json!("mine"));
    u1.quiet(Duration::from_millis(200)).await;

    // event: routed by the resource's events and by the config mappings.
    let r = post(
        &hook,
        WEBHOOK_TOKEN,
        json!({"type":"event","event":"user.created","message":{"id":7}}),
    )
    .await;
    assert_eq!(r.json(), json!({"delivered": 3}));
    let r = post(
        &hook,
        WEBHOOK_TOKEN,
        json!({"type":"event","event":"system.alert","message":{"x":1}}),
    )
    .await;
    assert_eq!(r.json(), json!({"delivered": 1}));
    assert_eq!(broadcast_message(&alerts.recv().await), &json!({"x":1}));
    let r = post(
        &hook,
        WEBHOOK_TOKEN,
        json!({"type":"channel_broadcast","channel":"alerts","message":"all"}),
    )
    .await;
    assert_eq!((r.status, r.json()), (202, json!({"delivered": 1})));
    let r = post(&hook, WEBHOOK_TOKEN, json!({"type":"nonsense"})).await;
    assert_eq!(r.status, 400);

    // History on a user-specific channel is replayed per user.
    let mut late_u2 = connect(gw.http, "u2", &[]).await;
    late_u2.subscribe("notifications").await;
    assert_eq!(broadcast_message(&late_u2.recv().await), &json!("mine"));
    assert_eq!(broadcast_message(&late_u2.recv().await), &json!({"id":7}));
    late_u2.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn admin_endpoints_and_metrics() {
    let gw = Gateway::start(&hub_config(""), &[]).await;
    let mut a = connect(gw.http, "alice", &["user"]).await;
    a.subscribe("ops").await;

    let list = admin(&gw, "GET", "/admin/websocket/connections", None).await;
    assert_eq!(list.status, 200);
    let conns = list.json()["connections"].as_array().unwrap().clone();
    assert_eq!(conns.len(), 1);
    let id = conns[0]["id"].as_str().unwrap().to_string();
    assert_eq!(conns[0]["user_id"], "alice");
    assert_eq!(conns[0]["subscriptions"], json!(["ops"]));

    let one = admin(&gw, "GET", &format!("/admin/websocket/connections/{id}"), None).await;
    assert_eq!(one.json()["id"], id.as_str());
    assert_eq!(
        admin(&gw, "GET", "/admin/websocket/connections/nope", None)
            .await
            .status,
        404
    );

    let sent = admin(
        &gw,
        "POST",
        &format!("/admin/websocket/connections/{id}/send"),
        Some(json!({"message": {"type": "direct_message", "text": "Hello from admin!"}})),
    )
    .await;
    assert_eq!(sent.status, 200);
    let v = a.recv().await;
    assert_eq!(v["data"]["action"], "message");
    assert_eq!(v["data"]["payload"]["message"]["text"], "Hello from admin!");

    let b = admin(
        &gw,
        "POST",
        "/admin/websocket/channels/ops/broadcast",
        Some(json!({"message": {"title": "Maintenance Notice"}})),
    )
    .await;
    assert_eq!(b.json()["delivered"], 1);
    let v = a.recv().await;
    assert_eq!(broadcast_message(&v)["title"], "Maintenance Notice");
    assert_eq!(v["data"]["payload"]["from"], "admin");

    let channels = admin(&gw, "GET", "/admin/websocket/channels", None).await.json();
    let ops = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ops")
        .unwrap()
        .clone();
    assert_eq!(ops["subscribers"], 1);
    let stats = admin(&gw, "GET", "/admin/websocket/statistics", None)
        .await
        .json();
    assert_eq!(stats["connections"]["active"], 1);

    let text = gw.metrics_text().await;
    for series in [
        "websocket_connections_total 1",
        "websocket_connections_by_state{state=\"connected\"} 1",
        "websocket_messages_sent_total",
        "websocket_messages_received_total 1",
        "websocket_channel_subscribers{channel=\"ops\"} 1",
        "websocket_connection_duration_seconds_bucket",
        "websocket_message_size_bytes_bucket",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }

    let del = admin(&gw, "DELETE", &format!("/admin/websocket/connections/{id}"), None).await;
    assert_eq!(del.status, 200);
    assert_eq!(a.close_code(Duration::from_secs(5)).await, Some(1000));
    // Unauthenticated admin calls are refused.
    let anon = get(&format!(
        "http://127.0.0.1:{}/admin/websocket/statistics",
        gw.admin
    ))
    .await
    .unwrap();
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn limits_timeouts_and_slow_consumers() {
    let cfg = hub_config(
        "server:\n  max_connections: 3\n  max_message_size: 1024\n  ping_interval: 300ms\n  pong_timeout: 300ms\n  idle_timeout: 2s",
    );
    let gw = Gateway::start(&cfg, &[]).await;
    let mut big = connect(gw.http, "a", &[]).await;
    big.send_text(&format!("\"{}\"", "x".repeat(4096))).await;
    assert_eq!(big.close_code(Duration::from_secs(5)).await, Some(1009));

    // Idle: no data either way for 2 s closes with 1000 (pings alone do not count).
    let mut idle = connect(gw.http, "b", &[]).await;
    let start = std::time::Instant::now();
    assert_eq!(idle.close_code(Duration::from_secs(6)).await, Some(1000));
    assert!(start.elapsed() >= Duration::from_millis(1500));

    // A client that never answers pings is dropped after ping_interval + pong_timeout. A raw
    // TCP client that completes the handshake but never reads or answers does just that.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
        .await
        .unwrap();
    let tok = token("mute", &[]);
    raw.write_all(format!("GET /ws?token={tok} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = raw.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    let start = std::time::Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the silent client was never dropped"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(4));

    // max_connections 3: the 4th upgrade is 503.
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(connect(gw.http, &format!("h{i}"), &[]).await);
    }
    match try_connect(gw.http, &format!("?token={}", token("x", &[])), &[]).await {
        Err(Refused::Status(503, _)) => {}
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    drop(held);
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_and_the_others_keep_up() {
    let gw = Gateway::start(&hub_config("channels:\n  default:\n    message_history: 0"), &[]).await;
    // The slow client subscribes, then stops reading; its socket buffers fill.
    let mut slow = connect(gw.http, "slow", &[]).await;
    slow.subscribe("firehose").await;
    let mut fast = connect(gw.http, "fast", &[]).await;
    fast.subscribe("firehose").await;
    let hook = gw.url("/webhook/websocket");
    // 64 KiB messages: the slow client's socket buffers and its queue of 256 fill well
    // before 800 messages.
    let payload = "y".repeat(64 * 1024);
    let mut received = 0usize;
    for i in 0..800 {
        let r = post(
            &hook,
            WEBHOOK_TOKEN,
            json!({"type":"channel_broadcast","channel":"firehose","message":{"i": i, "p": payload}}),
        )
        .await;
        assert_eq!(r.status, 202);
        let v = fast.recv().await;
        assert_eq!(broadcast_message(&v)["i"], i);
        received += 1;
    }
    assert_eq!(received, 800);
    let text = gw.metrics_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("websocket_slow_consumers_disconnected_total"))
        .unwrap_or_default();
    assert_eq!(line, "websocket_slow_consumers_disconnected_total 1");
    let stats = admin(&gw, "GET", "/admin/websocket/statistics", None)
        .await
        .json();
    assert_eq!(stats["connections"]["active"], 1, "{stats}");
    drop(slow);
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001() {
    let gw = Gateway::start(&hub_config(""), &[]).await;
    let mut a = connect(gw.http, "a", &[]).await;
    a.subscribe("x").await;
    gw.sigterm();
    assert_eq!(a.close_code(Duration::from_secs(10)).await, Some(1001));
}

#[tokio::test]
#[allow(clippy::result_large_err)]
async fn routes_with_websocket_true_tunnel_upgrades_to_the_upstream() {
    // An echo WebSocket server as the upstream.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut path = String::new();
                let cb =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                        path = req.uri().to_string();
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
                    return;
                };
                use futures_util::{SinkExt, StreamExt};
                let _ = ws
                    .send(tokio_tungstenite::tungstenite::Message::text(format!(
                        "path {path}"
                    )))
                    .await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let files = [
        ("u.yaml", upstream_yaml("echo", &[format!("http://{addr}")])),
        (
            "r.yaml",
            route_yaml("echo", "/live/*", "echo", "websocket: true\nrewritePrefix: /"),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let gw = Gateway::start(BASE_CONFIG, &files).await;
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/live/feed?x=1", gw.http))
            .await
            .unwrap();
    assert_eq!(resp.status(), 101);
    use futures_util::{SinkExt, StreamExt};
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(first.to_text().unwrap(), "path /feed?x=1");
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping me"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.to_text().unwrap(), "ping me");
    // Without websocket: true on the route, the hub path is still the gateway's own.
    assert_eq!(get(&gw.url("/ws")).await.unwrap().status, 404);
}

/// A route with `websocket: true` tunnels WebSocket and nothing else: the upstream is asked for
/// `Upgrade: websocket` whatever else the client listed (`h2c` would give the client a tunnel
/// in which it sends requests the gateway never routes or authorises), and an upstream that
/// switches to another protocol anyway gets the client a 502, not a tunnel.
#[tokio::test]
async fn upgrades_to_anything_but_websocket_are_not_tunnelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let heads = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                heads
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
                    )
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let files = [
        ("u.yaml", upstream_yaml("up", &[format!("http://{addr}")])),
        ("r.yaml", route_yaml("up", "/live/*", "up", "websocket: true")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let gw = Gateway::start(BASE_CONFIG, &files).await;
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", gw.http))
        .await
        .unwrap();
    c.write_all(
        b"GET /live/x HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c, websocket\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got).to_string();
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].contains("\r\nupgrade: websocket\r\n"), "{}", heads[0]);
    assert!(
        !heads[0].contains("h2c") && !heads[0].contains("http2-settings"),
        "{}",
        heads[0]
    );
}
