//! The hub in-process, without sockets: each test client is a registered connection whose
//! outbox writes into memory, and each test asserts the frames that client receives.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::auth::{Identity, TokenVerifier, VerifyError};
use super::client::{ClientConnection, Opened};
use super::error::Error;
use super::hub::Hub;
use super::protocol;
use super::settings::{HubLimits, HubSettings, QUEUE_CAPACITY};
use crate::routing::channels::{ChannelDefaults, ChannelPolicy, ChannelTable, RatePolicy};
use crate::routing::{RoutingTable, TableHandle};
use crate::settings::WebSocketLimits;
use crate::telemetry::Metrics;

/// A socket that takes every write at once and keeps the bytes.
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for Recorder {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.lock().expect("wire").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct NoTokens;

impl TokenVerifier for NoTokens {
    fn verify(&self, _: &str) -> Result<Identity, VerifyError> {
        Err(VerifyError::NotConfigured)
    }
}

/// A connected client: what the hub wrote to its socket so far, read frame by frame.
struct Client {
    conn: Arc<ClientConnection>,
    wire: Arc<Mutex<Vec<u8>>>,
    read: usize,
}

impl Client {
    /// The text frames received since the last call, each summed up in one line (see
    /// [`describe`]).
    fn received(&mut self) -> Vec<String> {
        let wire = self.wire.lock().expect("wire");
        let mut out = Vec::new();
        let mut at = self.read;
        while at < wire.len() {
            let (opcode, short) = (wire[at] & 0x0f, usize::from(wire[at + 1] & 0x7f));
            assert_eq!(wire[at + 1] & 0x80, 0, "server frames are not masked");
            let (len, header) = match short {
                126 => (usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]])), 4),
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&wire[at + 2..at + 10]);
                    (usize::try_from(u64::from_be_bytes(b)).expect("length"), 10)
                }
                n => (n, 2),
            };
            assert_eq!(opcode, 1, "a text frame");
            let text = &wire[at + header..at + header + len];
            out.push(describe(&serde_json::from_slice(text).expect("JSON frame")));
            at += header + len;
        }
        self.read = at;
        out
    }

    fn id(&self) -> &str {
        &self.conn.id
    }
}

/// One line per frame: `subscribed C`, `unsubscribed C`, `C: MESSAGE from SENDER`,
/// `direct: MESSAGE from SENDER`, `auth U` or `error CODE`.
fn describe(v: &Value) -> String {
    let data = &v["data"];
    if v["type"] == "Error" {
        return format!("error {}", data["code"].as_str().expect("code"));
    }
    let p = &data["payload"];
    match data["action"].as_str().expect("action") {
        "subscribed" => format!("subscribed {}", data["channel"].as_str().expect("channel")),
        "unsubscribed" => format!("unsubscribed {}", data["channel"].as_str().expect("channel")),
        "broadcast" => format!(
            "{}: {} from {}",
            p["channel"].as_str().expect("channel"),
            p["message"],
            p["from"].as_str().expect("from")
        ),
        "message" => format!(
            "direct: {} from {}",
            p["message"],
            p["from"].as_str().expect("from")
        ),
        "auth_success" => format!("auth {}", data["user_id"].as_str().expect("user")),
        other => panic!("unexpected action {other}"),
    }
}

fn settings() -> HubSettings {
    HubSettings {
        path: "/ws".into(),
        webhook_path: None,
        webhook_token: None,
        webhook_max_body: 1 << 20,
        max_connections: 100,
        idle_timeout: std::time::Duration::ZERO,
        max_message_size: 64 * 1024,
        ping_interval: std::time::Duration::ZERO,
        pong_timeout: std::time::Duration::from_secs(10),
        require_auth: false,
        allow_anonymous: true,
        queue_capacity: QUEUE_CAPACITY,
        redis_url: None,
        pubsub_channels: Vec::new(),
        message_queue: None,
        limits: HubLimits::from_config(&WebSocketLimits::default()).expect("the default limits"),
    }
}

/// The default policy of these tests: open to anyone, no history unless a test says so.
fn open() -> ChannelPolicy {
    ChannelPolicy {
        require_auth: false,
        message_history: 0,
        ..ChannelPolicy::default()
    }
}

/// A hub whose table holds `named` channel policies over [`open`], and `events`.
fn hub_with(settings: HubSettings, named: &[(&str, ChannelPolicy)], events: &[(&str, &str)]) -> Hub {
    let defaults = ChannelDefaults {
        default: open(),
        named: named.iter().map(|(n, p)| (n.to_string(), p.clone())).collect(),
        event_mappings: events
            .iter()
            .map(|(e, c)| (e.to_string(), c.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let mut table = RoutingTable::default();
    table.channels = Arc::new(ChannelTable::build(&defaults, &[]));
    let handle = TableHandle::default();
    handle.store(Arc::new(table));
    Hub::new(
        settings,
        handle,
        Arc::new(NoTokens),
        Metrics::new().expect("metrics"),
    )
}

fn hub(named: &[(&str, ChannelPolicy)]) -> Hub {
    hub_with(settings(), named, &[])
}

fn user(id: &str, roles: &[&str]) -> Option<Identity> {
    Some(Identity {
        user_id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    })
}

/// A client that reads everything at once.
fn connect(hub: &Hub, identity: Option<Identity>) -> Client {
    let conn = connect_stalled(hub, identity);
    let wire = Arc::new(Mutex::new(Vec::new()));
    conn.out.attach(Box::pin(Recorder(wire.clone())));
    Client { conn, wire, read: 0 }
}

/// A connection whose socket never takes a byte: everything stays queued.
fn connect_stalled(hub: &Hub, identity: Option<Identity>) -> Arc<ClientConnection> {
    assert!(hub.reserve(), "a free slot");
    hub.register(Opened {
        peer: "127.0.0.1:40000".parse().expect("addr"),
        origin: None,
        user_agent: None,
        identity,
    })
}

/// Subscribe as the client sends it; the error code is what its `Error` frame would say.
fn subscribe(hub: &Hub, conn: &Arc<ClientConnection>, channel: &str) -> Result<(), &'static str> {
    hub.subscribe(conn, channel)
        .now_or_never()
        .expect("without Redis, Subscribe does not wait")
        .map_err(|e| e.code)
}

/// A client's Broadcast with a bucket that has tokens (`rate_ok`: what the bucket says).
fn client_broadcast(
    hub: &Hub,
    c: &Client,
    channel: &str,
    message: Value,
    rate_ok: bool,
) -> Result<usize, &'static str> {
    hub.client_broadcast(&c.conn, channel, &message, |_| rate_ok)
        .map_err(|e| e.code)
}

fn with_history(n: u32) -> ChannelPolicy {
    ChannelPolicy {
        message_history: n,
        ..open()
    }
}

#[test]
fn a_broadcast_reaches_every_subscriber_of_its_channel_and_nobody_else() {
    let hub = hub(&[]);
    let (mut a, mut a2, mut b, mut c) = (
        connect(&hub, None),
        connect(&hub, None),
        connect(&hub, None),
        connect(&hub, None),
    );
    subscribe(&hub, &a.conn, "news").expect("subscribed");
    subscribe(&hub, &a2.conn, "news").expect("subscribed");
    subscribe(&hub, &b.conn, "sports").expect("subscribed");
    assert_eq!(hub.publish("news", &json!({"text": "hi"}), "admin", None), 2);
    assert_eq!(
        a.received(),
        ["subscribed news", r#"news: {"text":"hi"} from admin"#]
    );
    assert_eq!(
        a2.received(),
        ["subscribed news", r#"news: {"text":"hi"} from admin"#]
    );
    assert_eq!(b.received(), ["subscribed sports"]);
    assert!(c.received().is_empty());
    assert_eq!(hub.publish("weather", &json!(1), "admin", None), 0);
}

#[test]
fn a_new_subscriber_is_replayed_the_kept_history_then_live_messages() {
    let hub = hub(&[("feed", with_history(3))]);
    for i in 1..=5 {
        assert_eq!(hub.publish("feed", &json!(i), "system", None), 0);
    }
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "feed").expect("subscribed");
    assert_eq!(
        a.received(),
        [
            "subscribed feed",
            "feed: 3 from system",
            "feed: 4 from system",
            "feed: 5 from system"
        ]
    );
    hub.publish("feed", &json!(6), "system", None);
    assert_eq!(a.received(), ["feed: 6 from system"]);
    // The history keeps the newest three for the next subscriber.
    let mut b = connect(&hub, None);
    subscribe(&hub, &b.conn, "feed").expect("subscribed");
    assert_eq!(
        b.received(),
        [
            "subscribed feed",
            "feed: 4 from system",
            "feed: 5 from system",
            "feed: 6 from system"
        ]
    );
}

#[test]
fn a_channel_without_history_keeps_nothing_for_later_subscribers() {
    let hub = hub(&[]);
    assert_eq!(hub.publish("scratch", &json!("lost"), "system", None), 0);
    assert_eq!(hub.channels_json()["total"], 0, "publishing created no channel");
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "scratch").expect("subscribed");
    assert_eq!(a.received(), ["subscribed scratch"]);
}

#[test]
fn subscribing_twice_answers_again_without_a_second_replay() {
    let hub = hub(&[("feed", with_history(10))]);
    hub.publish("feed", &json!("old"), "system", None);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "feed").expect("subscribed");
    subscribe(&hub, &a.conn, "feed").expect("subscribed again");
    assert_eq!(
        a.received(),
        ["subscribed feed", r#"feed: "old" from system"#, "subscribed feed"]
    );
    assert_eq!(hub.publish("feed", &json!("new"), "system", None), 1);
    assert_eq!(a.received(), [r#"feed: "new" from system"#]);
}

#[test]
fn a_user_notification_reaches_only_that_users_connections_now_and_in_replays() {
    let hub = hub(&[("inbox", with_history(10))]);
    let mut alice = connect(&hub, user("alice", &[]));
    let mut alice_phone = connect(&hub, user("alice", &[]));
    let mut bob = connect(&hub, user("bob", &[]));
    let mut anonymous = connect(&hub, None);
    for c in [&alice, &alice_phone, &bob, &anonymous] {
        subscribe(&hub, &c.conn, "inbox").expect("subscribed");
    }
    assert_eq!(
        hub.publish("inbox", &json!("for alice"), "system", Some("alice")),
        2
    );
    hub.publish("inbox", &json!("for all"), "system", None);
    let both = [
        "subscribed inbox",
        r#"inbox: "for alice" from system"#,
        r#"inbox: "for all" from system"#,
    ];
    assert_eq!(alice.received(), both);
    assert_eq!(alice_phone.received(), both);
    assert_eq!(
        bob.received(),
        ["subscribed inbox", r#"inbox: "for all" from system"#]
    );
    assert_eq!(
        anonymous.received(),
        ["subscribed inbox", r#"inbox: "for all" from system"#]
    );
    let mut bob_later = connect(&hub, user("bob", &[]));
    subscribe(&hub, &bob_later.conn, "inbox").expect("subscribed");
    assert_eq!(
        bob_later.received(),
        ["subscribed inbox", r#"inbox: "for all" from system"#]
    );
    let mut alice_later = connect(&hub, user("alice", &[]));
    subscribe(&hub, &alice_later.conn, "inbox").expect("subscribed");
    assert_eq!(alice_later.received(), both);
}

#[test]
fn a_full_channel_refuses_subscribers_until_one_leaves() {
    let vip = ChannelPolicy {
        max_subscribers: 2,
        ..open()
    };
    let hub = hub(&[("vip", vip)]);
    let (a, b, mut c) = (connect(&hub, None), connect(&hub, None), connect(&hub, None));
    subscribe(&hub, &a.conn, "vip").expect("first");
    subscribe(&hub, &b.conn, "vip").expect("second");
    assert_eq!(subscribe(&hub, &c.conn, "vip"), Err("channel_full"));
    assert!(c.received().is_empty());
    assert!(!c.conn.is_subscribed("vip"));
    assert_eq!(hub.publish("vip", &json!(1), "system", None), 2);
    hub.unsubscribe(&a.conn, "vip");
    subscribe(&hub, &c.conn, "vip").expect("a seat is free");
    assert_eq!(c.received(), ["subscribed vip"]);
}

#[test]
fn unsubscribing_stops_delivery_and_removes_a_channel_left_with_nothing() {
    let hub = hub(&[("kept", with_history(5))]);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "live").expect("subscribed");
    subscribe(&hub, &a.conn, "kept").expect("subscribed");
    hub.publish("kept", &json!("x"), "system", None);
    assert_eq!(
        hub.statistics_json()["channels"],
        json!({"active": 2, "subscriptions": 2})
    );
    hub.unsubscribe(&a.conn, "live");
    hub.unsubscribe(&a.conn, "kept");
    // Unsubscribing from a channel one never joined is answered the same way.
    hub.unsubscribe(&a.conn, "never");
    assert_eq!(
        a.received(),
        [
            "subscribed live",
            "subscribed kept",
            r#"kept: "x" from system"#,
            "unsubscribed live",
            "unsubscribed kept",
            "unsubscribed never",
        ]
    );
    assert_eq!(hub.publish("live", &json!("y"), "system", None), 0);
    assert_eq!(hub.publish("kept", &json!("z"), "system", None), 0);
    assert!(a.received().is_empty());
    assert!(a.conn.subscriptions().is_empty());
    // `live` is gone; `kept` stays for its history.
    let channels = hub.channels_json();
    let names: Vec<&str> = channels["channels"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(channels["channels"][0]["subscribers"], 0);
    assert_eq!(channels["channels"][0]["history"], 2);
    assert_eq!(
        hub.statistics_json()["channels"],
        json!({"active": 0, "subscriptions": 0})
    );
}

#[test]
fn a_closed_connection_leaves_its_channels_and_frees_its_slot() {
    let hub = hub_with(
        HubSettings {
            max_connections: 2,
            ..settings()
        },
        &[],
        &[],
    );
    let a = connect(&hub, None);
    let mut b = connect(&hub, None);
    assert!(!hub.reserve(), "both slots are taken");
    subscribe(&hub, &a.conn, "room").expect("subscribed");
    subscribe(&hub, &b.conn, "room").expect("subscribed");
    hub.unregister(&a.conn);
    assert_eq!(hub.active(), 1);
    assert!(hub.connection(a.id()).is_none());
    assert_eq!(hub.publish("room", &json!("hi"), "system", None), 1);
    assert_eq!(b.received(), ["subscribed room", r#"room: "hi" from system"#]);
    let stats = hub.statistics_json();
    assert_eq!(stats["connections"]["active"], 1);
    assert_eq!(stats["connections"]["accepted_total"], 2);
    assert_eq!(stats["connections"]["closed_total"], 1);
    assert_eq!(stats["channels"], json!({"active": 1, "subscriptions": 1}));
    // Unregistering twice counts once.
    hub.unregister(&a.conn);
    assert_eq!(hub.statistics_json()["connections"]["closed_total"], 1);
    assert!(hub.reserve(), "the slot is free again");
}

#[test]
fn subscribe_refusals_leave_the_client_outside() {
    let private = ChannelPolicy {
        require_auth: true,
        ..open()
    };
    let staff = ChannelPolicy {
        required_roles: vec!["staff".into()],
        ..open()
    };
    let hub = hub(&[("private", private), ("staff", staff)]);
    let mut anonymous = connect(&hub, None);
    assert_eq!(subscribe(&hub, &anonymous.conn, "private"), Err("unauthorized"));
    assert_eq!(subscribe(&hub, &anonymous.conn, "staff"), Err("unauthorized"));
    let mut guest = connect(&hub, user("guest", &["visitor"]));
    assert_eq!(subscribe(&hub, &guest.conn, "staff"), Err("forbidden"));
    subscribe(&hub, &guest.conn, "private").expect("authenticated");
    assert_eq!(hub.publish("staff", &json!(1), "system", None), 0);
    assert!(anonymous.received().is_empty());
    assert_eq!(guest.received(), ["subscribed private"]);
    assert_eq!(guest.conn.subscriptions(), ["private"]);
}

#[test]
fn anonymous_clients_need_a_hub_that_admits_them() {
    let hub = hub_with(
        HubSettings {
            require_auth: true,
            allow_anonymous: false,
            ..settings()
        },
        &[],
        &[],
    );
    let anonymous = connect(&hub, None);
    assert_eq!(subscribe(&hub, &anonymous.conn, "news"), Err("unauthorized"));
    let mut alice = connect(&hub, user("alice", &[]));
    subscribe(&hub, &alice.conn, "news").expect("authenticated");
    assert_eq!(alice.received(), ["subscribed news"]);
}

#[test]
fn a_client_broadcast_needs_a_subscription_a_publish_role_and_a_token() {
    let chat = ChannelPolicy {
        publish_roles: vec!["writer".into()],
        rate_limit: Some(RatePolicy {
            per_minute: 60,
            burst: 1,
        }),
        ..open()
    };
    let hub = hub(&[("chat", chat)]);
    let mut writer = connect(&hub, user("w1", &["writer"]));
    let mut reader = connect(&hub, user("r1", &["reader"]));
    assert_eq!(
        client_broadcast(&hub, &writer, "chat", json!("early"), true),
        Err("not_subscribed")
    );
    subscribe(&hub, &writer.conn, "chat").expect("subscribed");
    subscribe(&hub, &reader.conn, "chat").expect("subscribed");
    assert_eq!(
        client_broadcast(&hub, &reader, "chat", json!("no"), true),
        Err("forbidden")
    );
    assert_eq!(
        client_broadcast(&hub, &writer, "chat", json!("hello"), true),
        Ok(2)
    );
    assert_eq!(
        client_broadcast(&hub, &writer, "chat", json!("again"), false),
        Err("rate_limited")
    );
    let seen = ["subscribed chat", r#"chat: "hello" from w1"#];
    assert_eq!(writer.received(), seen);
    assert_eq!(reader.received(), seen);
}

#[test]
fn an_anonymous_client_broadcasts_as_anonymous() {
    let hub = hub(&[]);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "lobby").expect("subscribed");
    assert_eq!(client_broadcast(&hub, &a, "lobby", json!("hey"), true), Ok(1));
    assert_eq!(
        a.received(),
        ["subscribed lobby", r#"lobby: "hey" from anonymous"#]
    );
}

#[test]
fn on_a_user_specific_channel_a_client_reaches_only_its_own_users_connections() {
    let mine = ChannelPolicy {
        user_specific: true,
        ..open()
    };
    let hub = hub(&[("mine", mine)]);
    let mut alice = connect(&hub, user("alice", &[]));
    let mut alice_tab = connect(&hub, user("alice", &[]));
    let mut bob = connect(&hub, user("bob", &[]));
    for c in [&alice, &alice_tab, &bob] {
        subscribe(&hub, &c.conn, "mine").expect("subscribed");
    }
    assert_eq!(client_broadcast(&hub, &alice, "mine", json!("note"), true), Ok(2));
    assert_eq!(
        alice.received(),
        ["subscribed mine", r#"mine: "note" from alice"#]
    );
    assert_eq!(
        alice_tab.received(),
        ["subscribed mine", r#"mine: "note" from alice"#]
    );
    assert_eq!(bob.received(), ["subscribed mine"]);
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_the_others_go_on() {
    let hub = hub_with(
        HubSettings {
            queue_capacity: 2,
            ..settings()
        },
        &[],
        &[],
    );
    let stalled = connect_stalled(&hub, None);
    let mut reader = connect(&hub, None);
    subscribe(&hub, &stalled, "ticks").expect("subscribed");
    subscribe(&hub, &reader.conn, "ticks").expect("subscribed");
    // `subscribed` and the first tick fill the stalled client's two slots.
    assert_eq!(hub.publish("ticks", &json!(1), "system", None), 2);
    assert!(!stalled.cancel.is_cancelled());
    assert_eq!(hub.publish("ticks", &json!(2), "system", None), 1);
    assert!(stalled.cancel.is_cancelled(), "dropped as a slow consumer");
    assert_eq!(stalled.queued(), 2);
    assert_eq!(
        reader.received(),
        ["subscribed ticks", "ticks: 1 from system", "ticks: 2 from system"]
    );
    let stats = hub.statistics_json();
    assert_eq!(stats["connections"]["slow_consumers_disconnected_total"], 1);
    assert_eq!(stats["messages"]["published_total"], 2);
    assert_eq!(stats["messages"]["delivered_total"], 3);
    // Dropped once, however many messages it misses.
    hub.publish("ticks", &json!(3), "system", None);
    assert_eq!(
        hub.statistics_json()["connections"]["slow_consumers_disconnected_total"],
        1
    );
}

#[test]
fn an_event_is_published_on_the_channels_it_is_mapped_to() {
    let hub = hub_with(settings(), &[], &[("order.created", "orders")]);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "orders").expect("subscribed");
    assert_eq!(
        hub.publish_event("order.created", &json!({"id": 7}), "billing"),
        1
    );
    assert_eq!(
        hub.publish_event("order.deleted", &json!({"id": 7}), "billing"),
        0
    );
    assert_eq!(
        a.received(),
        ["subscribed orders", r#"orders: {"id":7} from billing"#]
    );
}

#[test]
fn frames_from_other_replicas_are_delivered_as_they_came_and_kept() {
    let hub = hub(&[("news", with_history(5))]);
    let mut alice = connect(&hub, user("alice", &[]));
    let mut bob = connect(&hub, user("bob", &[]));
    subscribe(&hub, &alice.conn, "news").expect("subscribed");
    subscribe(&hub, &bob.conn, "news").expect("subscribed");
    let frame = protocol::broadcast("news", &json!("remote"), "elsewhere", "T");
    assert_eq!(hub.deliver_remote("news", frame.clone(), None), 2);
    assert_eq!(
        hub.deliver_remote("news", Utf8Bytes::from_static("{}"), Some("carol")),
        0
    );
    let private = protocol::broadcast("news", &json!("psst"), "elsewhere", "T");
    assert_eq!(hub.deliver_remote("news", private, Some("alice")), 1);
    assert_eq!(
        alice.received(),
        [
            "subscribed news",
            r#"news: "remote" from elsewhere"#,
            r#"news: "psst" from elsewhere"#
        ]
    );
    assert_eq!(
        bob.received(),
        ["subscribed news", r#"news: "remote" from elsewhere"#]
    );
    let mut later = connect(&hub, None);
    subscribe(&hub, &later.conn, "news").expect("subscribed");
    assert_eq!(
        later.received(),
        ["subscribed news", r#"news: "remote" from elsewhere"#]
    );
    // Not published here: nothing counts as published.
    assert_eq!(hub.statistics_json()["messages"]["published_total"], 0);
}

#[test]
fn backend_messages_on_pubsub_channels_are_delivered_on_the_channel_of_the_same_name() {
    let hub = hub(&[]);
    let mut alice = connect(&hub, user("alice", &[]));
    let mut bob = connect(&hub, user("bob", &[]));
    subscribe(&hub, &alice.conn, "alerts").expect("subscribed");
    subscribe(&hub, &bob.conn, "alerts").expect("subscribed");
    let n = |payload: &str| {
        hub.deliver_backend_message("alerts", payload.as_bytes())
            .expect("delivered")
    };
    assert_eq!(n("disk full"), 2);
    assert_eq!(n(r#"{"level": "high"}"#), 2);
    assert_eq!(
        n(r#"{"type": "user_notification", "target_user": "alice", "message": "yours"}"#),
        1
    );
    assert_eq!(
        n(r#"{"type": "channel_broadcast", "channel": "other", "message": 1}"#),
        0
    );
    assert!(matches!(
        hub.deliver_backend_message("alerts", br#"{"type": "dance"}"#),
        Err(Error::BackendMessage(_))
    ));
    assert_eq!(
        alice.received(),
        [
            "subscribed alerts",
            r#"alerts: "disk full" from system"#,
            r#"alerts: {"level":"high"} from system"#,
            r#"alerts: "yours" from system"#,
        ]
    );
    assert_eq!(
        bob.received(),
        [
            "subscribed alerts",
            r#"alerts: "disk full" from system"#,
            r#"alerts: {"level":"high"} from system"#,
        ]
    );
}

#[test]
fn queue_messages_take_the_webhook_shapes_and_the_routing_key_stands_in_for_event() {
    let hub = hub_with(settings(), &[], &[("order.created", "orders")]);
    let mut alice = connect(&hub, user("alice", &[]));
    subscribe(&hub, &alice.conn, "orders").expect("subscribed");
    let n = |key: &str, payload: &str| hub.deliver_queue_message(key, payload.as_bytes());
    let ok = |r: Result<usize, Error>| r.expect("delivered");
    assert_eq!(
        ok(n(
            "x",
            r#"{"type": "channel_broadcast", "channel": "orders", "message": 1}"#
        )),
        1
    );
    assert_eq!(
        ok(n(
            "",
            r#"{"type": "user_notification", "target_user": "alice", "channel": "orders", "message": 2}"#
        )),
        1
    );
    assert_eq!(
        ok(n(
            "",
            r#"{"type": "event", "event": "order.created", "message": 3}"#
        )),
        1
    );
    // The routing key names the event when the body does not.
    assert_eq!(ok(n("order.created", r#"{"type": "event", "message": 4}"#)), 1);
    assert_eq!(ok(n("order.created", r#"{"message": 5}"#)), 1);
    // ... but never overrides it.
    assert_eq!(
        ok(n(
            "order.created",
            r#"{"type": "event", "event": "order.deleted", "message": 6}"#
        )),
        0
    );
    for bad in [
        "not json",
        "[1]",
        r#"{"type": "dance"}"#,
        r#"{"message": 7}"#,
        r#"{"type": "channel_broadcast"}"#,
    ] {
        assert!(matches!(n("", bad), Err(Error::QueueMessage(_))), "{bad}");
    }
    assert_eq!(
        alice.received(),
        [
            "subscribed orders",
            "orders: 1 from system",
            "orders: 2 from system",
            "orders: 3 from system",
            "orders: 4 from system",
            "orders: 5 from system",
        ]
    );
}

#[test]
fn the_admin_api_sends_to_and_closes_connections_by_id() {
    let hub = hub(&[]);
    let mut a = connect(&hub, user("alice", &["admin"]));
    subscribe(&hub, &a.conn, "ops").expect("subscribed");
    assert_eq!(hub.send_direct(a.id(), &json!({"hello": 1}), "admin"), Some(true));
    assert_eq!(hub.send_direct("nobody", &json!(1), "admin"), None);
    assert_eq!(
        a.received(),
        ["subscribed ops", r#"direct: {"hello":1} from admin"#]
    );
    let listed = hub.connections_json();
    assert_eq!(listed["total"], 1);
    let one = hub.connection_json(a.id()).expect("listed");
    assert_eq!(one["user_id"], "alice");
    assert_eq!(one["subscriptions"], json!(["ops"]));
    assert_eq!(one["messages_sent"], 2);
    assert_eq!(one["state"], "connected");
    assert!(!hub.disconnect("nobody"));
    assert!(hub.disconnect(a.id()));
    assert!(a.conn.is_closing());
    assert_eq!(
        hub.connection_json(a.id()).expect("still open")["state"],
        "closing"
    );
}

/// Settings with `websocket.limits` changed by `f`.
fn limited(f: impl FnOnce(&mut HubLimits)) -> HubSettings {
    let mut s = settings();
    f(&mut s.limits);
    s
}

/// The channels of `websocket_channel_subscribers` and their values.
fn subscriber_series(hub: &Hub) -> Vec<(String, i64)> {
    use prometheus::core::Collector;
    let mut v: Vec<(String, i64)> = hub.metrics.ws.channel_subscribers.collect()[0]
        .get_metric()
        .iter()
        .map(|m| {
            (
                m.get_label()[0].value().to_string(),
                m.get_gauge().get_value() as i64,
            )
        })
        .collect();
    v.sort();
    v
}

/// The channels the hub holds now (configured ones without subscribers or history aside).
fn channel_names(hub: &Hub) -> Vec<String> {
    let mut v: Vec<String> = hub.channels.summaries().into_iter().map(|c| c.name).collect();
    v.sort();
    v
}

#[test]
fn a_connection_holds_at_most_max_subscriptions_channels() {
    let hub = hub_with(limited(|l| l.max_subscriptions = Some(2)), &[], &[]);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "one").expect("first");
    subscribe(&hub, &a.conn, "two").expect("second");
    assert_eq!(subscribe(&hub, &a.conn, "three"), Err("too_many_subscriptions"));
    subscribe(&hub, &a.conn, "one").expect("one it holds is answered again");
    assert_eq!(
        channel_names(&hub),
        ["one", "two"],
        "the refusal created no channel"
    );
    // The cap is per connection.
    let b = connect(&hub, None);
    subscribe(&hub, &b.conn, "three").expect("another connection");
    hub.unsubscribe(&a.conn, "one");
    subscribe(&hub, &a.conn, "three").expect("room again");
    assert_eq!(
        a.received(),
        [
            "subscribed one",
            "subscribed two",
            "subscribed one",
            "unsubscribed one",
            "subscribed three"
        ]
    );
}

#[test]
fn the_hub_keeps_at_most_max_channels() {
    let hub = hub_with(
        limited(|l| l.max_channels = Some(2)),
        &[("kept", with_history(10))],
        &[],
    );
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "one").expect("first channel");
    assert_eq!(hub.publish("kept", &json!("x"), "system", None), 0);
    assert_eq!(channel_names(&hub), ["kept", "one"]);
    // A third channel neither by Subscribe nor by history.
    assert_eq!(subscribe(&hub, &a.conn, "two"), Err("too_many_channels"));
    let mut kept_too = ChannelPolicy {
        message_history: 10,
        ..open()
    };
    kept_too.max_subscribers = 5;
    let hub2 = hub_with(
        limited(|l| l.max_channels = Some(1)),
        &[("a", kept_too.clone()), ("b", kept_too)],
        &[],
    );
    assert_eq!(hub2.publish("a", &json!(1), "system", None), 0);
    assert_eq!(hub2.publish("b", &json!(2), "system", None), 0);
    assert_eq!(channel_names(&hub2), ["a"], "`b` was delivered, not kept");
    // Existing channels go on; one that goes makes room.
    let mut b = connect(&hub, None);
    subscribe(&hub, &b.conn, "one").expect("an existing channel");
    assert_eq!(hub.publish("one", &json!("hi"), "system", None), 2);
    hub.unsubscribe(&a.conn, "one");
    hub.unregister(&b.conn);
    assert_eq!(channel_names(&hub), ["kept"]);
    subscribe(&hub, &a.conn, "two").expect("room again");
    assert_eq!(
        a.received(),
        [
            "subscribed one",
            r#"one: "hi" from system"#,
            "unsubscribed one",
            "subscribed two"
        ]
    );
    assert_eq!(b.received(), ["subscribed one", r#"one: "hi" from system"#]);
}

#[test]
fn subscriber_series_exist_only_for_channels_with_subscribers() {
    let hub = hub(&[("kept", with_history(10))]);
    let a = connect(&hub, None);
    let b = connect(&hub, None);
    for c in ["room", "kept"] {
        subscribe(&hub, &a.conn, c).expect("subscribed");
    }
    subscribe(&hub, &b.conn, "room").expect("subscribed");
    hub.publish("kept", &json!(1), "system", None);
    assert_eq!(
        subscriber_series(&hub),
        [("kept".to_string(), 1), ("room".to_string(), 2)]
    );
    hub.unsubscribe(&b.conn, "room");
    hub.unsubscribe(&b.conn, "room");
    assert_eq!(
        subscriber_series(&hub),
        [("kept".to_string(), 1), ("room".to_string(), 1)]
    );
    hub.unregister(&a.conn);
    assert!(subscriber_series(&hub).is_empty());
    // `kept` stays for its history, without a series.
    assert_eq!(channel_names(&hub), ["kept"]);
}

#[test]
fn history_is_kept_within_its_bytes_and_its_age() {
    let frame = |n: usize| {
        protocol::broadcast(
            "feed",
            &json!("x".repeat(n)),
            "system",
            "2025-01-01T00:00:00.000Z",
        )
        .len()
    };
    // Room for two messages of 100 characters, not three.
    let max = 2 * frame(100) + 10;
    let hub = hub_with(
        limited(|l| {
            l.history_max_bytes = Some(max);
            l.history_max_age = Some(std::time::Duration::from_secs(60));
        }),
        &[("feed", with_history(100))],
        &[],
    );
    for i in 0..3 {
        hub.publish("feed", &json!(format!("{i}{}", "x".repeat(99))), "system", None);
    }
    hub.publish("feed", &json!("y".repeat(max)), "system", None);
    let mut a = connect(&hub, None);
    subscribe(&hub, &a.conn, "feed").expect("subscribed");
    let got = a.received();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[1].starts_with(r#"feed: "1x"#) && got[2].starts_with(r#"feed: "2x"#),
        "{got:?}"
    );
    let stats = hub.statistics_json();
    assert_eq!(stats["retained"]["channels"], 1);
    assert!(stats["retained"]["history_bytes"].as_u64().expect("bytes") <= max as u64);
    // Once the history is older than its age, the channel goes with its last subscriber.
    hub.unregister(&a.conn);
    let now = std::time::Instant::now();
    assert_eq!(hub.sweep(now), 0, "the history is young");
    assert_eq!(hub.sweep(now + std::time::Duration::from_secs(61)), 1);
    assert!(channel_names(&hub).is_empty());
    assert_eq!(hub.statistics_json()["retained"]["history_bytes"], 0);
    let mut b = connect(&hub, None);
    subscribe(&hub, &b.conn, "feed").expect("subscribed");
    assert_eq!(b.received(), ["subscribed feed"]);
}

/// The issue's recipe: subscribe to `c{i}`, send large broadcasts, unsubscribe, repeat.
/// What the hub keeps stays within `max_channels` and `history_max_total_bytes`.
#[test]
fn subscribing_publishing_and_leaving_in_a_loop_keeps_the_hub_bounded() {
    let kept = ChannelPolicy {
        message_history: 100,
        ..open()
    };
    let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let named: Vec<(&str, ChannelPolicy)> = names.iter().map(|n| (n.as_str(), kept.clone())).collect();
    let (per_channel, total) = (32 * 1024, 1024 * 1024);
    let hub = hub_with(
        limited(|l| {
            l.max_channels = Some(20);
            l.history_max_bytes = Some(per_channel);
            l.history_max_total_bytes = Some(total);
        }),
        &named,
        &[],
    );
    let mut a = connect(&hub, user("mallory", &[]));
    let big = json!("z".repeat(8 * 1024));
    let mut refused = 0;
    for i in 0..100 {
        let c = format!("c{i}");
        match subscribe(&hub, &a.conn, &c) {
            Ok(()) => {
                for _ in 0..10 {
                    client_broadcast(&hub, &a, &c, big.clone(), true).expect("published");
                }
                hub.unsubscribe(&a.conn, &c);
            }
            Err(code) => {
                assert_eq!(code, "too_many_channels");
                refused += 1;
            }
        }
        a.received();
    }
    let held = hub.statistics_json()["retained"].clone();
    assert!(held["channels"].as_u64().expect("channels") <= 20, "{held}");
    assert!(
        held["history_bytes"].as_u64().expect("bytes") <= total as u64,
        "{held}"
    );
    assert!(refused >= 80, "{refused}");
}
