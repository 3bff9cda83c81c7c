//! WebSocket helpers for the hub tests: tokens, a client that reads JSON frames, configs.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "hub-test-secret-of-at-least-32-bytes";
pub const WEBHOOK_TOKEN: &str = "hub-test-webhook";

/// A hub config: JWT secret, webhook token, and `extra` YAML under `websocket:` (indented 2).
pub fn hub_config(extra: &str) -> String {
    let mut s = format!(
        "auth:\n  jwt:\n    secret: \"{SECRET}\"\nobservability:\n  logging:\n    level: info\nwebsocket:\n  enabled: true\n  integration:\n    webhook:\n      enabled: true\n      path: /webhook/websocket\n      auth_token: \"{WEBHOOK_TOKEN}\"\n"
    );
    for line in extra.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

pub fn token(user: &str, roles: &[&str]) -> String {
    token_with(SECRET, json!({"user_id": user, "roles": roles}))
}

pub fn token_with(secret: &str, mut claims: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    claims["exp"] = json!(exp);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Stream,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Refused {
    Status(u16, String),
    Other(String),
}

pub async fn try_connect(port: u16, query: &str, headers: &[(&str, &str)]) -> Result<Client, Refused> {
    let url = format!("ws://127.0.0.1:{port}/ws{query}");
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err(Refused::Status(resp.status().as_u16(), body))
        }
        Err(e) => Err(Refused::Other(e.to_string())),
    }
}

pub async fn connect(port: u16, user: &str, roles: &[&str]) -> Client {
    try_connect(port, &format!("?token={}", token(user, roles)), &[])
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e:?}"))
}

pub async fn connect_anonymous(port: u16) -> Client {
    try_connect(port, "", &[]).await.unwrap()
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::text(t.to_string())).await.unwrap();
    }

    /// The next JSON text frame (pings and pongs skipped); panics after 5 s or on close.
    pub async fn recv(&mut self) -> Value {
        match self.next_event(Duration::from_secs(5)).await {
            Event::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame within `wait`, as an event.
    pub async fn next_event(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Event::Timeout,
                Ok(None) => return Event::Ended,
                Ok(Some(Err(e))) => return Event::Error(e.to_string()),
                Ok(Some(Ok(m))) => m,
            };
            match m {
                Message::Text(t) => return Event::Json(serde_json::from_str(t.as_str()).unwrap()),
                Message::Close(f) => return Event::Closed(f),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Binary(_) => return Event::Error("binary frame".into()),
            }
        }
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        match self.next_event(wait).await {
            Event::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        loop {
            match self.next_event(wait).await {
                Event::Json(_) => continue,
                Event::Closed(f) => return f.map(|f| u16::from(f.code)),
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn auth(&mut self, tok: &str) -> Value {
        self.send(json!({"type": "Auth", "data": {"token": tok}})).await;
        self.recv().await
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"type": "Subscribe", "data": {"channel": channel}}))
            .await;
        self.recv().await
    }

    pub async fn broadcast(&mut self, channel: &str, message: Value) {
        self.send(json!({"type": "Broadcast", "data": {"channel": channel, "message": message}}))
            .await;
    }
}

#[derive(Debug)]
pub enum Event {
    Json(Value),
    Closed(Option<CloseFrame>),
    Ended,
    Error(String),
    Timeout,
}

/// Asserts a `subscribed` answer for `channel`.
pub fn assert_subscribed(v: &Value, channel: &str) {
    assert_eq!(
        v,
        &json!({"type": "Custom", "data": {"action": "subscribed", "channel": channel}}),
        "expected subscribed"
    );
}

/// The `payload.message` of a broadcast frame (panics on anything else).
pub fn broadcast_message(v: &Value) -> &Value {
    assert_eq!(v["type"], "Custom", "{v}");
    assert_eq!(v["data"]["action"], "broadcast", "{v}");
    &v["data"]["payload"]["message"]
}

pub fn error_code(v: &Value) -> String {
    assert_eq!(v["type"], "Error", "{v}");
    v["data"]["code"].as_str().unwrap().to_string()
}

pub fn channel_yaml(name: &str, spec: &str) -> String {
    let mut s = format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: WebSocketChannel\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"
    );
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}
