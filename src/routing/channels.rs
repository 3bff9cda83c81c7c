//! Channel policies: `websocket.channels` of the static config (`default` and named channels,
//! `routing.service_events`, `routing.persistence`) layered under `WebSocketChannel` resources,
//! compiled into the `ChannelTable` that is published with the routing table.
//!
//! Layering: a resource's unset fields fall back to the config's settings for that channel
//! name, whose unset fields fall back to `channels.default`, whose unset fields take the
//! built-in values below. Empty lists count as unset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::api::WebSocketChannelSpec;
use crate::settings::{parse_duration, ChannelSettings, DurationError, WebSocketConfig};

/// A channel setting or `WebSocketChannel` spec no policy can be built from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ChannelError {
    #[error("messageHistory may be at most {MAX_HISTORY}")]
    History,
    #[error("rateLimit.messagesPerMinute must be > 0")]
    ZeroMessages,
    #[error("rateLimit.burst must be > 0")]
    ZeroBurst,
    #[error("persistence.ttl: {0}")]
    Ttl(DurationError),
    #[error("persistence.ttl must be > 0")]
    ZeroTtl,
    #[error("rate_limiting needs messages_per_minute")]
    NoRate,
    #[error("rate_limiting.messages_per_minute must be > 0")]
    ZeroRate,
    #[error("websocket.routing.persistence.ttl: {0}")]
    DefaultTtl(DurationError),
    /// A problem inside the static config key `key`.
    #[error("{key}: {source}")]
    At { key: String, source: Box<ChannelError> },
}

impl ChannelError {
    fn at(self, key: &str) -> ChannelError {
        ChannelError::At {
            key: key.to_string(),
            source: Box::new(self),
        }
    }
}

/// Per-connection message rate on one channel (token bucket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatePolicy {
    pub per_minute: u32,
    pub burst: u32,
}

/// Where a channel's policy came from (shown by the admin API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    BuiltIn,
    /// `websocket.channels.NAME`.
    Config(String),
    /// `namespace/name` of a `WebSocketChannel`.
    Resource(String),
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::BuiltIn => f.write_str("built-in default"),
            PolicySource::Config(n) => write!(f, "websocket.channels.{n}"),
            PolicySource::Resource(r) => write!(f, "WebSocketChannel {r}"),
        }
    }
}

/// The compiled policy of one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPolicy {
    pub max_subscribers: u32,
    pub message_history: u32,
    pub require_auth: bool,
    pub user_specific: bool,
    /// Any one of these roles may subscribe; empty = anyone `require_auth` admits.
    pub required_roles: Vec<String>,
    /// Any one of these roles may Broadcast; empty = any subscriber.
    pub publish_roles: Vec<String>,
    /// Browser origins allowed; empty or `*` = any.
    pub allowed_origins: Vec<String>,
    pub rate_limit: Option<RatePolicy>,
    /// `Some(ttl)`: history is kept in Redis for `ttl`.
    pub persistence: Option<Duration>,
    pub source: PolicySource,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        ChannelPolicy {
            max_subscribers: 1000,
            message_history: 100,
            require_auth: true,
            user_specific: false,
            required_roles: Vec::new(),
            publish_roles: Vec::new(),
            allowed_origins: Vec::new(),
            rate_limit: None,
            persistence: None,
            source: PolicySource::BuiltIn,
        }
    }
}

/// Largest history a channel may keep, whatever it asks for.
pub const MAX_HISTORY: u32 = 10_000;

impl ChannelPolicy {
    /// Whether a browser at `origin` may use this channel.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        origin_allowed(&self.allowed_origins, origin)
    }

    /// Whether someone with `roles` may subscribe.
    pub fn may_subscribe(&self, roles: &[String]) -> bool {
        any_role(&self.required_roles, roles)
    }

    /// Whether someone with `roles` may Broadcast from a client.
    pub fn may_publish(&self, roles: &[String]) -> bool {
        any_role(&self.publish_roles, roles)
    }

    fn overlay_settings(
        &mut self,
        s: &ChannelSettings,
        default_ttl: Option<Duration>,
    ) -> Result<(), ChannelError> {
        if let Some(v) = s.max_subscribers {
            self.max_subscribers = v;
        }
        if let Some(v) = s.message_history {
            self.message_history = v.min(MAX_HISTORY);
        }
        if let Some(v) = s.require_auth {
            self.require_auth = v;
        }
        if let Some(v) = s.user_specific {
            self.user_specific = v;
        }
        if s.access_control.as_deref() == Some("user_specific") {
            self.user_specific = true;
        }
        set_list(&mut self.required_roles, &s.required_roles);
        set_list(&mut self.publish_roles, &s.publish_roles);
        set_list(&mut self.allowed_origins, &s.allowed_origins);
        if let Some(v) = &s.rate_limiting {
            self.rate_limit = Some(rate_from_yaml(v)?);
        }
        if self.persistence.is_none() {
            self.persistence = default_ttl;
        }
        Ok(())
    }

    /// Lays a `WebSocketChannel` spec over this (inherited) policy.
    pub fn overlay_resource(&mut self, spec: &WebSocketChannelSpec) -> Result<(), ChannelError> {
        if let Some(v) = spec.max_subscribers {
            self.max_subscribers = v;
        }
        if let Some(v) = spec.message_history {
            if v > MAX_HISTORY {
                return Err(ChannelError::History);
            }
            self.message_history = v;
        }
        if let Some(v) = spec.require_auth {
            self.require_auth = v;
        }
        if let Some(v) = spec.user_specific {
            self.user_specific = v;
        }
        set_list(&mut self.required_roles, &spec.required_roles);
        set_list(&mut self.publish_roles, &spec.publish_roles);
        set_list(&mut self.allowed_origins, &spec.allowed_origins);
        if let Some(r) = &spec.rate_limit {
            if r.messages_per_minute == 0 {
                return Err(ChannelError::ZeroMessages);
            }
            let burst = r.burst.unwrap_or(r.messages_per_minute);
            if burst == 0 {
                return Err(ChannelError::ZeroBurst);
            }
            self.rate_limit = Some(RatePolicy {
                per_minute: r.messages_per_minute,
                burst,
            });
        }
        if let Some(p) = &spec.persistence {
            self.persistence = if p.enabled {
                let ttl = match p.ttl.as_deref() {
                    Some(t) => parse_duration(t).map_err(ChannelError::Ttl)?,
                    None => self.persistence.unwrap_or(DEFAULT_TTL),
                };
                if ttl.is_zero() {
                    return Err(ChannelError::ZeroTtl);
                }
                Some(ttl)
            } else {
                None
            };
        }
        Ok(())
    }
}

/// History TTL when persistence is enabled without one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

fn set_list(into: &mut Vec<String>, from: &[String]) {
    if !from.is_empty() {
        *into = from.iter().map(|s| s.trim().to_string()).collect();
    }
}

fn any_role(required: &[String], have: &[String]) -> bool {
    required.is_empty() || required.iter().any(|r| have.contains(r))
}

/// `None` origin (not a browser) is always allowed; otherwise the list must be empty, hold `*`
/// or hold the origin (case-insensitive).
pub fn origin_allowed(list: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(o) => list.is_empty() || list.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
    }
}

/// The seed's `{messages_per_minute, burst_limit}` (or `burst`).
fn rate_from_yaml(v: &yaml_serde::Value) -> Result<RatePolicy, ChannelError> {
    let num = |k: &str| v.get(k).and_then(yaml_serde::Value::as_u64);
    let per_minute = num("messages_per_minute")
        .ok_or(ChannelError::NoRate)?
        .min(u64::from(u32::MAX)) as u32;
    if per_minute == 0 {
        return Err(ChannelError::ZeroRate);
    }
    let burst = num("burst_limit")
        .or_else(|| num("burst"))
        .map_or(per_minute, |b| b.min(u64::from(u32::MAX)) as u32)
        .max(1);
    Ok(RatePolicy { per_minute, burst })
}

/// The static half of channel policy, from `gateway.yaml`; part of `CompileOptions`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelDefaults {
    pub default: ChannelPolicy,
    /// `websocket.channels.NAME` other than `default`, already layered over it.
    pub named: BTreeMap<String, ChannelPolicy>,
    /// `routing.service_events.mappings` (when enabled): event -> channel.
    pub event_mappings: BTreeMap<String, String>,
}

impl ChannelDefaults {
    /// Reads the `websocket` section. Errors name the key.
    pub fn from_config(ws: &WebSocketConfig) -> Result<Self, ChannelError> {
        let default_ttl = if ws.routing.persistence.enabled {
            Some(match ws.routing.persistence.ttl.as_deref() {
                Some(t) => parse_duration(t).map_err(ChannelError::DefaultTtl)?,
                None => DEFAULT_TTL,
            })
        } else {
            None
        };
        let mut default = ChannelPolicy {
            require_auth: ws.server.require_auth,
            ..ChannelPolicy::default()
        };
        if let Some(rl) = ws.security.as_ref().and_then(|s| s.get("rate_limiting")) {
            default.rate_limit =
                Some(rate_from_yaml(rl).map_err(|e| e.at("websocket.security.rate_limiting"))?);
        }
        if let Some(s) = ws.channels.get("default") {
            default
                .overlay_settings(s, default_ttl)
                .map_err(|e| e.at("websocket.channels.default"))?;
            default.source = PolicySource::Config("default".into());
        } else {
            default.persistence = default_ttl;
        }
        let mut named = BTreeMap::new();
        for (name, s) in ws.channels.iter().filter(|(n, _)| n.as_str() != "default") {
            let mut p = default.clone();
            p.overlay_settings(s, default_ttl)
                .map_err(|e| e.at(&format!("websocket.channels.{name}")))?;
            p.source = PolicySource::Config(name.clone());
            named.insert(name.clone(), p);
        }
        let event_mappings = if ws.routing.service_events.enabled {
            ws.routing.service_events.mappings.clone()
        } else {
            BTreeMap::new()
        };
        Ok(ChannelDefaults {
            default,
            named,
            event_mappings,
        })
    }

    /// The inherited policy of `channel` before any resource applies.
    pub fn base(&self, channel: &str) -> &ChannelPolicy {
        self.named.get(channel).unwrap_or(&self.default)
    }
}

/// One accepted `WebSocketChannel`: channel name, `namespace/name`, spec.
pub struct Declared<'a> {
    pub channel: String,
    pub resource: String,
    pub spec: &'a WebSocketChannelSpec,
}

/// Channel policies as of one routing table: read per Subscribe / Broadcast / webhook call.
#[derive(Debug, Default)]
pub struct ChannelTable {
    policies: HashMap<String, Arc<ChannelPolicy>>,
    default: Arc<ChannelPolicy>,
    events: HashMap<String, Vec<String>>,
    any_origin: bool,
    origins: Vec<String>,
}

impl ChannelTable {
    /// Layers accepted resources over the static defaults. A resource that fails to overlay is
    /// skipped (compile already rejected it).
    pub fn build(defaults: &ChannelDefaults, declared: &[Declared<'_>]) -> Self {
        let mut policies: HashMap<String, Arc<ChannelPolicy>> = defaults
            .named
            .iter()
            .map(|(n, p)| (n.clone(), Arc::new(p.clone())))
            .collect();
        let mut events: HashMap<String, Vec<String>> = HashMap::new();
        for (event, channel) in &defaults.event_mappings {
            events.entry(event.clone()).or_default().push(channel.clone());
        }
        for d in declared {
            let mut p = defaults.base(&d.channel).clone();
            if p.overlay_resource(d.spec).is_err() {
                continue;
            }
            p.source = PolicySource::Resource(d.resource.clone());
            policies.insert(d.channel.clone(), Arc::new(p));
            for e in &d.spec.events {
                let list = events.entry(e.clone()).or_default();
                if !list.contains(&d.channel) {
                    list.push(d.channel.clone());
                }
            }
        }
        let mut any_origin = defaults.default.allowed_origins.is_empty();
        let mut origins = Vec::new();
        for p in policies.values().map(|p| &**p).chain([&defaults.default]) {
            if p.allowed_origins.is_empty() || p.allowed_origins.iter().any(|o| o == "*") {
                any_origin = true;
            }
            origins.extend(p.allowed_origins.iter().cloned());
        }
        ChannelTable {
            policies,
            default: Arc::new(defaults.default.clone()),
            events,
            any_origin,
            origins,
        }
    }

    /// The policy of `channel`: its resource, its config entry, or the default.
    pub fn policy(&self, channel: &str) -> Arc<ChannelPolicy> {
        self.policies
            .get(channel)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }

    /// Channels configured by name (config entries and resources), sorted.
    pub fn configured(&self) -> Vec<(&str, &Arc<ChannelPolicy>)> {
        let mut v: Vec<_> = self.policies.iter().map(|(k, p)| (k.as_str(), p)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Channels an event is routed to.
    pub fn channels_for_event(&self, event: &str) -> &[String] {
        self.events.get(event).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether any channel admits a browser at `origin` (checked at the upgrade).
    pub fn origin_allowed_anywhere(&self, origin: Option<&str>) -> bool {
        self.any_origin || origin_allowed(&self.origins, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChannelPersistence, ChannelRateLimit};

    fn seed() -> WebSocketConfig {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gateway-websocket.yaml"
        ))
        .expect("the seed's websocket config is in tests/fixtures");
        crate::settings::GatewayConfig::from_yaml_str(&text, &|_| None)
            .expect("the seed loads")
            .websocket
    }

    #[test]
    fn seed_channels_layer_over_the_default() {
        let d = ChannelDefaults::from_config(&seed()).expect("valid");
        assert_eq!(d.default.max_subscribers, 1000);
        assert_eq!(d.default.message_history, 100);
        assert_eq!(d.default.persistence, Some(DEFAULT_TTL));
        let public = d.base("public");
        assert!(!public.require_auth);
        assert_eq!(public.max_subscribers, 10_000);
        assert!(d.base("notifications").user_specific);
        assert_eq!(d.base("admin").required_roles, ["admin"]);
        assert_eq!(d.base("anything-else"), &d.default);
        assert_eq!(
            d.event_mappings.get("system.alert").map(String::as_str),
            Some("admin")
        );
    }

    #[test]
    fn resources_override_config_and_add_events() {
        let d = ChannelDefaults::from_config(&seed()).expect("valid");
        let spec = WebSocketChannelSpec {
            max_subscribers: Some(2),
            message_history: Some(3),
            publish_roles: vec!["editor".into()],
            allowed_origins: vec!["https://app.example.com".into()],
            rate_limit: Some(ChannelRateLimit {
                messages_per_minute: 60,
                burst: Some(5),
            }),
            events: vec!["order.created".into(), "user.created".into()],
            persistence: Some(ChannelPersistence {
                enabled: true,
                ttl: Some("1h".into()),
            }),
            ..Default::default()
        };
        let t = ChannelTable::build(
            &d,
            &[Declared {
                channel: "notifications".into(),
                resource: "default/notifications".into(),
                spec: &spec,
            }],
        );
        let p = t.policy("notifications");
        assert_eq!((p.max_subscribers, p.message_history), (2, 3));
        assert!(p.user_specific, "inherited from websocket.channels.notifications");
        assert!(p.may_publish(&["editor".into()]) && !p.may_publish(&["user".into()]));
        assert_eq!(
            p.rate_limit,
            Some(RatePolicy {
                per_minute: 60,
                burst: 5
            })
        );
        assert_eq!(p.persistence, Some(Duration::from_secs(3600)));
        assert!(!p.allows_origin(Some("https://evil.example")));
        assert!(p.allows_origin(None));
        assert_eq!(t.channels_for_event("order.created"), ["notifications"]);
        assert_eq!(t.channels_for_event("user.created"), ["notifications"]);
        assert!(t.channels_for_event("nope").is_empty());
        assert_eq!(t.policy("other").source, PolicySource::Config("default".into()));
    }

    #[test]
    fn origins_are_checked_at_the_upgrade_only_when_every_channel_restricts() {
        let mut d = ChannelDefaults::default();
        d.default.allowed_origins = vec!["https://a.example".into()];
        let t = ChannelTable::build(&d, &[]);
        assert!(t.origin_allowed_anywhere(Some("https://A.example")));
        assert!(!t.origin_allowed_anywhere(Some("https://b.example")));
        assert!(t.origin_allowed_anywhere(None));
        let open = ChannelTable::build(&ChannelDefaults::default(), &[]);
        assert!(open.origin_allowed_anywhere(Some("https://b.example")));
    }

    #[test]
    fn invalid_specs_are_errors() {
        let mut p = ChannelPolicy::default();
        let spec = WebSocketChannelSpec {
            rate_limit: Some(ChannelRateLimit {
                messages_per_minute: 0,
                burst: None,
            }),
            ..Default::default()
        };
        assert!(p.overlay_resource(&spec).is_err());
        let spec = WebSocketChannelSpec {
            message_history: Some(MAX_HISTORY + 1),
            ..Default::default()
        };
        assert!(p.overlay_resource(&spec).is_err());
    }
}
