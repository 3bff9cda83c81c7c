//! `WebSocketChannel` verdicts. Channel names and service events are global (clients and
//! backends name them without a namespace), so each belongs to one owner: the oldest resource
//! that declares it, the namespaces `tenancy.channels` lists, or, where the rules say so, the
//! static configuration that defines it.

use std::collections::BTreeMap;

use super::tenancy::{listed, names, Tenancy};
use super::{Invalid, Kind, Snapshot, Verdict};
use crate::api::{reasons, types, Condition, WebSocketChannel};
use crate::routing::channels::Declared;
use crate::routing::ChannelDefaults;
use crate::settings::parse_duration;

/// Verdicts for `WebSocketChannel`s; returns the accepted ones (oldest first).
pub(super) fn compile_channels<'s>(
    snapshot: &'s Snapshot,
    defaults: &ChannelDefaults,
    tenancy: &Tenancy,
    verdicts: &mut Vec<Verdict>,
) -> Vec<Declared<'s>> {
    let mut declared = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    // Event -> (namespace, resource, channel) of the first resource routing it.
    let mut events: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut channels: Vec<_> = snapshot.channels.iter().collect();
    channels.sort_by(|a, b| {
        (
            &a.metadata.creation_timestamp,
            &a.metadata.namespace,
            &a.metadata.name,
        )
            .cmp(&(
                &b.metadata.creation_timestamp,
                &b.metadata.namespace,
                &b.metadata.name,
            ))
    });
    for c in channels {
        let ns = c.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = c.metadata.name.clone().unwrap_or_default();
        let mut v = Verdict::new(Kind::WebSocketChannel, &ns, &name, c.metadata.generation);
        let channel = c.spec.channel.clone().unwrap_or_else(|| name.clone());
        let resource = format!("{ns}/{name}");
        let verdict = check(c, &channel, defaults)
            .map_err(|msg| (reasons::INVALID_SPEC, msg.to_string()))
            .and_then(|()| may_declare(&channel, &ns, defaults, tenancy))
            .and_then(|()| match seen.get(&channel) {
                Some(holder) => Err((
                    reasons::CONFLICTED,
                    format!("channel `{channel}` is already declared by the older WebSocketChannel {holder}"),
                )),
                None => Ok(()),
            })
            .and_then(|()| {
                c.spec
                    .events
                    .iter()
                    .try_for_each(|e| may_route(e, &channel, &ns, defaults, tenancy, &events))
            });
        match verdict {
            Err((reason, msg)) => v.reject(reason, msg),
            Ok(()) => {
                seen.insert(channel.clone(), resource.clone());
                for e in &c.spec.events {
                    events
                        .entry(e.clone())
                        .or_insert_with(|| (ns.clone(), resource.clone(), channel.clone()));
                }
                declared.push(Declared {
                    channel: channel.clone(),
                    resource,
                    spec: &c.spec,
                });
                v.set(Condition::new(
                    types::ACCEPTED,
                    true,
                    reasons::ACCEPTED,
                    format!("channel `{channel}`"),
                ));
            }
        }
        verdicts.push(v);
    }
    declared
}

/// The spec on its own.
fn check(c: &WebSocketChannel, channel: &str, defaults: &ChannelDefaults) -> Result<(), Invalid> {
    if channel.is_empty() || channel.len() > 128 || channel.chars().any(|ch| ch.is_control()) {
        return Err(Invalid::Field(format!(
            "channel name `{channel}` must be 1-128 printable characters"
        )));
    }
    if let Some(ttl) = c.spec.persistence.as_ref().and_then(|p| p.ttl.as_deref()) {
        parse_duration(ttl).map_err(|e| format!("persistence.ttl: {e}"))?;
    }
    if c.spec
        .rate_limit
        .as_ref()
        .is_some_and(|r| r.messages_per_minute == 0)
    {
        return Err("rateLimit.messagesPerMinute must be > 0".into());
    }
    defaults.base(channel).clone().overlay_resource(&c.spec)?;
    Ok(())
}

/// Whether namespace `ns` may declare `channel` at all: `tenancy.channels` decides where it
/// names the channel; otherwise a channel of the static configuration is the operator's when
/// the rules reserve them.
fn may_declare(
    channel: &str,
    ns: &str,
    defaults: &ChannelDefaults,
    tenancy: &Tenancy,
) -> Result<(), (&'static str, String)> {
    match tenancy.channels.get(channel) {
        Some(list) if listed(list, ns) => Ok(()),
        Some(list) => Err((
            reasons::NOT_PERMITTED,
            format!(
                "channel `{channel}` is reserved by tenancy.channels for namespace(s) {}; namespace {ns} is not listed",
                names(list)
            ),
        )),
        None if tenancy.reserve_config_channels && defaults.named.contains_key(channel) => Err((
            reasons::NOT_PERMITTED,
            format!(
                "channel `{channel}` is defined by the gateway configuration (websocket.channels.{channel}); tenancy.channels can let namespace {ns} declare it"
            ),
        )),
        None => Ok(()),
    }
}

/// Whether a channel of `ns` may route service event `event`: not one another namespace's
/// older channel routes, nor (when reserved) one the configuration maps to another channel.
fn may_route(
    event: &str,
    channel: &str,
    ns: &str,
    defaults: &ChannelDefaults,
    tenancy: &Tenancy,
    events: &BTreeMap<String, (String, String, String)>,
) -> Result<(), (&'static str, String)> {
    if tenancy.reserve_config_channels {
        if let Some(mapped) = defaults.event_mappings.get(event).filter(|m| *m != channel) {
            return Err((
                reasons::NOT_PERMITTED,
                format!(
                    "event `{event}` is routed to channel `{mapped}` by the gateway configuration (websocket.routing.service_events.mappings)"
                ),
            ));
        }
    }
    match events.get(event) {
        Some((owner, resource, to)) if owner != ns => Err((
            reasons::CONFLICTED,
            format!(
                "event `{event}` belongs to namespace {owner}: the older WebSocketChannel {resource} routes it to channel `{to}`"
            ),
        )),
        _ => Ok(()),
    }
}
