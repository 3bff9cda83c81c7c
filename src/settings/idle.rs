//! The idle timeouts of long-lived connections, under `server.timeouts` (flattened into
//! [`Timeouts`](super::Timeouts)): HTTP/2 client connections and proxied WebSocket tunnels,
//! which the keep-alive timeout of HTTP/1.1 does not reach.

use serde::{de, Deserialize, Deserializer};

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct IdleTimeouts {
    /// How long an HTTP/2 client connection may have no open stream before it is closed
    /// (GOAWAY, then close); `0s`: never.
    #[serde(deserialize_with = "http2_idle_timeout")]
    pub http2_idle_timeout: String,
    /// How long a proxied WebSocket tunnel may carry no byte either way before both of its
    /// connections are closed; `0s`: never.
    #[serde(deserialize_with = "tunnel_idle_timeout")]
    pub tunnel_idle_timeout: String,
}

fn http2_idle_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    duration_text(d, "http2_idle_timeout")
}

fn tunnel_idle_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    duration_text(d, "tunnel_idle_timeout")
}

/// A duration's text (a bare number is seconds). Its error names `key` itself: a flattened
/// section's errors carry only the path of the section around it.
fn duration_text<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Text(String),
        Seconds(u64),
    }
    match Text::deserialize(d) {
        Ok(Text::Text(s)) => Ok(s),
        Ok(Text::Seconds(n)) => Ok(n.to_string()),
        Err(_) => Err(de::Error::custom(format!(
            "{key}: expected a duration such as `60s`"
        ))),
    }
}

impl Default for IdleTimeouts {
    fn default() -> Self {
        IdleTimeouts {
            // As `keepalive_timeout`: an idle HTTP/2 connection costs what an idle HTTP/1.1
            // one does (nginx has used one keep-alive timeout for both since 1.19.7).
            http2_idle_timeout: "60s".into(),
            // As Envoy's stream idle timeout and the hub's `idle_timeout`: well above the
            // 20 to 60 s between the pings of WebSocket clients and servers, so only tunnels
            // whose peers are gone are closed.
            tunnel_idle_timeout: "300s".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::GatewayConfig;

    fn timeouts(yaml: &str) -> Result<super::IdleTimeouts, String> {
        GatewayConfig::from_yaml_str(yaml, &|_| None)
            .map(|c| c.server.timeouts.idle)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn idle_timeouts_sit_under_server_timeouts_with_their_defaults() {
        let t = timeouts("server:\n  timeouts:\n    send_timeout: 5s\n").unwrap();
        assert_eq!(
            (t.http2_idle_timeout.as_str(), t.tunnel_idle_timeout.as_str()),
            ("60s", "300s")
        );
        let t = timeouts("server:\n  timeouts:\n    http2_idle_timeout: 2m\n    tunnel_idle_timeout: 30\n")
            .unwrap();
        assert_eq!(
            (t.http2_idle_timeout.as_str(), t.tunnel_idle_timeout.as_str()),
            ("2m", "30")
        );
        let err = timeouts("server:\n  timeouts:\n    tunnel_idle_timeout: [1]\n").unwrap_err();
        assert!(err.contains("tunnel_idle_timeout"), "{err}");
    }
}
