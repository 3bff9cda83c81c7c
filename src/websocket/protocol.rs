//! The hub's wire protocol (SPEC §5): JSON text frames `{"type": ..., "data": ...}`.
//!
//! In: `Auth`, `Subscribe`, `Unsubscribe`, `Broadcast`. Out: `Custom` (`auth_success`,
//! `subscribed`, `unsubscribed`, `broadcast`, and `message` for the admin API's direct sends)
//! and `Error` with a `code` and a `message`.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A client frame, parsed.
#[derive(Debug, PartialEq)]
pub enum ClientMessage {
    Auth { token: String },
    Subscribe { channel: String },
    Unsubscribe { channel: String },
    Broadcast { channel: String, message: Value },
}

/// Why a client frame was refused; becomes an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: &'static str,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 128;

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ProtocolError::new("invalid_json", format!("the frame is not JSON: {e}")))?;
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return Err(ProtocolError::new(
                "invalid_message",
                "a frame needs a string `type`: Auth, Subscribe, Unsubscribe or Broadcast",
            ));
        };
        let data = v.get("data").unwrap_or(&Value::Null);
        let field = |name: &str| -> Result<String, ProtocolError> {
            match data.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ProtocolError::new(
                    "invalid_message",
                    format!("{kind} needs a string `data.{name}`"),
                )),
            }
        };
        let channel = || -> Result<String, ProtocolError> {
            let c = field("channel")?;
            if c.is_empty() || c.len() > MAX_CHANNEL_LEN || c.chars().any(char::is_control) {
                return Err(ProtocolError::new(
                    "invalid_channel",
                    format!("a channel name is 1-{MAX_CHANNEL_LEN} printable characters"),
                ));
            }
            Ok(c)
        };
        match kind {
            "Auth" => Ok(ClientMessage::Auth {
                token: field("token")?,
            }),
            "Subscribe" => Ok(ClientMessage::Subscribe { channel: channel()? }),
            "Unsubscribe" => Ok(ClientMessage::Unsubscribe { channel: channel()? }),
            "Broadcast" => {
                let channel = channel()?;
                let message = data
                    .get("message")
                    .cloned()
                    .ok_or_else(|| ProtocolError::new("invalid_message", "Broadcast needs `data.message`"))?;
                Ok(ClientMessage::Broadcast { channel, message })
            }
            other => Err(ProtocolError::new(
                "unknown_type",
                format!("unknown message type `{other}`; expected Auth, Subscribe, Unsubscribe or Broadcast"),
            )),
        }
    }
}

fn frame(v: Value) -> Utf8Bytes {
    Utf8Bytes::from(v.to_string())
}

pub fn auth_success(user_id: &str) -> Utf8Bytes {
    frame(
        json!({"type": "Custom", "data": {"action": "auth_success", "authenticated": true, "user_id": user_id}}),
    )
}

pub fn subscribed(channel: &str) -> Utf8Bytes {
    frame(json!({"type": "Custom", "data": {"action": "subscribed", "channel": channel}}))
}

pub fn unsubscribed(channel: &str) -> Utf8Bytes {
    frame(json!({"type": "Custom", "data": {"action": "unsubscribed", "channel": channel}}))
}

/// A message on a channel, as every subscriber receives it.
pub fn broadcast(channel: &str, message: &Value, from: &str, timestamp: &str) -> Utf8Bytes {
    frame(
        json!({"type": "Custom", "data": {"action": "broadcast", "payload": {
            "channel": channel, "message": message, "from": from, "timestamp": timestamp,
        }}}),
    )
}

/// A message the admin API sends to one connection.
pub fn direct(message: &Value, from: &str, timestamp: &str) -> Utf8Bytes {
    frame(
        json!({"type": "Custom", "data": {"action": "message", "payload": {
            "message": message, "from": from, "timestamp": timestamp,
        }}}),
    )
}

pub fn error(e: &ProtocolError) -> Utf8Bytes {
    frame(json!({"type": "Error", "data": {"code": e.code, "message": e.message}}))
}

/// Now, RFC 3339 with milliseconds (`2025-01-02T03:04:05.678Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_client_frames() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Auth","data":{"token":"t"}}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Subscribe","data":{"channel":"c"}}"#),
            Ok(ClientMessage::Subscribe { channel: "c".into() })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Unsubscribe","data":{"channel":"c"}}"#),
            Ok(ClientMessage::Unsubscribe { channel: "c".into() })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Broadcast","data":{"channel":"c","message":{"a":1}}}"#),
            Ok(ClientMessage::Broadcast {
                channel: "c".into(),
                message: json!({"a": 1})
            })
        );
    }

    #[test]
    fn bad_frames_have_codes() {
        let code = |t: &str| ClientMessage::parse(t).err().map(|e| e.code);
        assert_eq!(code("not json"), Some("invalid_json"));
        assert_eq!(code(r#"{"data":{}}"#), Some("invalid_message"));
        assert_eq!(code(r#"{"type":"Dance","data":{}}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":"Subscribe","data":{}}"#), Some("invalid_message"));
        assert_eq!(
            code(r#"{"type":"Subscribe","data":{"channel":""}}"#),
            Some("invalid_channel")
        );
        assert_eq!(
            code(r#"{"type":"Broadcast","data":{"channel":"c"}}"#),
            Some("invalid_message")
        );
    }

    #[test]
    fn frames_match_the_spec() {
        let b: Value =
            serde_json::from_str(&broadcast("c", &json!({"text": "hi"}), "u1", "T")).expect("json");
        assert_eq!(
            b,
            json!({"type":"Custom","data":{"action":"broadcast","payload":{"channel":"c","message":{"text":"hi"},"from":"u1","timestamp":"T"}}})
        );
        let e: Value = serde_json::from_str(&error(&ProtocolError::new("forbidden", "no"))).expect("json");
        assert_eq!(
            e,
            json!({"type":"Error","data":{"code":"forbidden","message":"no"}})
        );
        let a: Value = serde_json::from_str(&auth_success("u")).expect("json");
        assert_eq!(a["data"]["authenticated"], json!(true));
        assert!(humantime::parse_rfc3339(&now_rfc3339()).is_ok());
    }
}
