//! What the admin API shows of the hub: connections, channels with their policies, and
//! statistics, as JSON.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::client::ClientConnection;
use super::hub::Hub;
use crate::routing::channels::ChannelPolicy;

impl Hub {
    pub fn connection_json(&self, id: &str) -> Option<Value> {
        self.connection(id).map(|c| connection_json(&c))
    }

    pub fn connections_json(&self) -> Value {
        let list: Vec<Value> = self.connections().iter().map(|c| connection_json(c)).collect();
        json!({"connections": list, "total": list.len()})
    }

    /// Channels with local subscribers or history, and every configured channel.
    pub fn channels_json(&self) -> Value {
        let table = self.table.load();
        let mut out: BTreeMap<String, Value> = Default::default();
        for ch in self.channels.summaries() {
            let p = table.channels.policy(&ch.name);
            let v = channel_json(&ch.name, &p, ch.subscribers, ch.history);
            out.insert(ch.name, v);
        }
        for (name, p) in table.channels.configured() {
            out.entry(name.to_string())
                .or_insert_with(|| channel_json(name, p, 0, 0));
        }
        let list: Vec<Value> = out.into_values().collect();
        json!({"channels": list, "total": list.len()})
    }

    pub fn statistics_json(&self) -> Value {
        let m = &self.messages;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (channels, subscriptions) = self.channels.activity();
        let (held_channels, history_bytes) = self.channels.held();
        let limits = &self.settings.limits;
        let conns = self.connections();
        let authenticated = conns.iter().filter(|c| c.identity().is_some()).count();
        let totals = self.connections.totals();
        json!({
            "node_id": self.node_id,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "connections": {
                "active": conns.len(),
                "authenticated": authenticated,
                "anonymous": conns.len() - authenticated,
                "max": self.settings.max_connections,
                "accepted_total": totals.accepted,
                "closed_total": totals.closed,
                "refused_total": totals.refused,
                "slow_consumers_disconnected_total": self.courier.slow_total(),
            },
            "channels": {"active": channels, "subscriptions": subscriptions},
            "retained": {
                "channels": held_channels,
                "max_channels": limits.max_channels,
                "history_bytes": history_bytes,
                "history_max_total_bytes": limits.history_max_total_bytes,
            },
            "messages": {
                "received_total": ld(&m.received),
                "published_total": ld(&m.published),
                "delivered_total": ld(&m.delivered),
                "webhook_calls_total": ld(&m.webhook_calls),
            },
            "redis": self.fanout.get().map(|f| f.status_json()).unwrap_or(json!({"configured": false})),
        })
    }
}

fn connection_json(c: &ClientConnection) -> Value {
    let identity = c.identity();
    json!({
        "id": c.id,
        "user_id": identity.as_ref().map(|i| i.user_id.clone()),
        "roles": identity.as_ref().map(|i| i.roles.clone()).unwrap_or_default(),
        "authenticated": identity.is_some(),
        "remote_addr": c.peer.to_string(),
        "origin": c.origin,
        "user_agent": c.user_agent,
        "connected_at": humantime::format_rfc3339_seconds(c.connected_at).to_string(),
        "connected_seconds": c.connected_for().as_secs(),
        "idle_seconds": c.last_activity().elapsed().as_secs(),
        "state": if c.is_closing() { "closing" } else { "connected" },
        "subscriptions": c.subscriptions(),
        "messages_sent": c.messages_sent(),
        "messages_received": c.messages_received(),
        "queued": c.queued(),
    })
}

fn channel_json(name: &str, p: &ChannelPolicy, subscribers: usize, history: usize) -> Value {
    json!({
        "name": name,
        "subscribers": subscribers,
        "history": history,
        "policy": {
            "source": p.source.to_string(),
            "max_subscribers": p.max_subscribers,
            "message_history": p.message_history,
            "require_auth": p.require_auth,
            "user_specific": p.user_specific,
            "required_roles": p.required_roles,
            "publish_roles": p.publish_roles,
            "allowed_origins": p.allowed_origins,
            "rate_limit": p.rate_limit.as_ref().map(|r| json!({"messages_per_minute": r.per_minute, "burst": r.burst})),
            "persistence_ttl_seconds": p.persistence.map(|d| d.as_secs()),
        },
    })
}
