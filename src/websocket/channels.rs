//! The channels alive on this process, each with its subscribers and its history, and the two
//! things done to them: adding a subscriber (with its `subscribed` answer and the replay) and
//! delivering a message to the subscribers.
//!
//! A channel exists while it has subscribers or history: it is created by the first Subscribe
//! or by a message kept in history, and removed when it has neither: with its last subscriber
//! when it keeps no history, else by [`Channels::sweep`] once its history has expired. At most
//! `websocket.limits.max_channels` exist at once; the series of
//! `websocket_channel_subscribers` exist only for channels with subscribers, so they are
//! bounded by the same number. A message is encoded once, queued for every subscriber in
//! order, then written (see [`Courier::write_out`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::client::ClientConnection;
use super::delivery::{Courier, Delivery};
use super::history::{self, History, HistoryBounds, HistoryEntry};
use super::locks::{lock, read, write};
use super::outbox::{self, Pushed};
use super::protocol::{self, ProtocolError};
use crate::routing::channels::ChannelPolicy;
use crate::telemetry::WsMetrics;

struct Channel {
    subs: RwLock<HashMap<u64, Arc<ClientConnection>>>,
    history: Mutex<History>,
    /// Set, under the write lock of `subs`, when the channel leaves the map: whoever finds it
    /// set after taking `subs` looks the channel up again.
    removed: AtomicBool,
}

impl Channel {
    fn new(history_bytes: Arc<AtomicUsize>) -> Self {
        Channel {
            subs: RwLock::default(),
            history: Mutex::new(History::new(history_bytes)),
            removed: AtomicBool::new(false),
        }
    }
}

/// One channel as the admin API lists it.
pub(crate) struct ChannelSummary {
    pub name: String,
    pub subscribers: usize,
    pub history: usize,
}

/// Every live channel by name.
pub(crate) struct Channels {
    map: RwLock<HashMap<String, Arc<Channel>>>,
    metrics: WsMetrics,
    /// `None`: no cap on the number of channels.
    max: Option<usize>,
    bounds: HistoryBounds,
    /// Bytes kept in the history of all channels.
    history_bytes: Arc<AtomicUsize>,
}

impl Channels {
    /// No more than `max` channels at once, their history within `bounds`.
    pub(crate) fn new(metrics: WsMetrics, max: Option<usize>, bounds: HistoryBounds) -> Self {
        Channels {
            map: RwLock::default(),
            metrics,
            max,
            bounds,
            history_bytes: Arc::default(),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Channel>> {
        read(&self.map).get(name).cloned()
    }

    /// The channel, created when it does not exist and the cap leaves room for it.
    fn get_or_create(&self, name: &str) -> Result<Arc<Channel>, ProtocolError> {
        if let Some(c) = self.get(name) {
            return Ok(c);
        }
        let mut all = write(&self.map);
        if let Some(c) = all.get(name) {
            return Ok(c.clone());
        }
        if let Some(max) = self.max.filter(|m| all.len() >= *m) {
            return Err(ProtocolError::new(
                "too_many_channels",
                format!("the gateway holds its maximum of {max} channels; try again later"),
            ));
        }
        let c = Arc::new(Channel::new(self.history_bytes.clone()));
        all.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Queues `frame` for the subscribers of `channel` (only the connections of `target` when
    /// set) and writes it out; keeps it in the channel's history when `keep` > 0 (creating the
    /// channel if the cap allows). Returns the connections it was queued for.
    pub(crate) fn deliver(
        &self,
        courier: &Courier,
        channel: &str,
        frame: &Utf8Bytes,
        target: Option<&Arc<str>>,
        keep: u32,
    ) -> usize {
        // Looked up again when the channel found was removed before its lock was taken.
        loop {
            let ch = if keep > 0 {
                match self.get_or_create(channel) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(channel, "a message is not kept: {}", e.message);
                        return 0;
                    }
                }
            } else {
                match self.get(channel) {
                    Some(c) => c,
                    None => return 0,
                }
            };
            if let Some(n) = self.deliver_to(&ch, courier, frame, target, keep) {
                return n;
            }
        }
    }

    /// `deliver` on one channel; `None` when it was removed before its lock was taken.
    fn deliver_to(
        &self,
        ch: &Channel,
        courier: &Courier,
        frame: &Utf8Bytes,
        target: Option<&Arc<str>>,
        keep: u32,
    ) -> Option<usize> {
        let mut delivered = 0usize;
        let mut slow = Vec::new();
        let bytes = outbox::text(frame);
        let mut queued = Vec::new();
        {
            let subs = read(&ch.subs);
            if ch.removed.load(Ordering::Acquire) {
                return None;
            }
            if keep > 0 {
                let entry = HistoryEntry {
                    frame: frame.clone(),
                    target: target.cloned(),
                };
                lock(&ch.history).record(entry, keep as usize, Instant::now(), &self.bounds);
            }
            for conn in subs.values() {
                if let Some(t) = target {
                    if !conn.user_is(t) {
                        continue;
                    }
                }
                match conn.out.push(bytes.clone(), 1) {
                    Pushed::Queued => {
                        delivered += 1;
                        queued.push(conn.clone());
                    }
                    Pushed::Full => slow.push(conn.clone()),
                    Pushed::Closed => {}
                }
            }
        }
        courier.write_out(queued);
        for c in slow {
            courier.drop_slow(&c);
        }
        Some(delivered)
    }

    /// Adds `conn` (of `user`) to the subscribers of `channel` within its `max_subscribers`:
    /// answers `subscribed`, then replays what `user` may see of the history (`stored`: as
    /// read from Redis, else this process's), then live messages follow.
    pub(crate) fn subscribe(
        &self,
        courier: &Courier,
        conn: &Arc<ClientConnection>,
        channel: &str,
        policy: &ChannelPolicy,
        user: Option<&str>,
        stored: Option<Vec<HistoryEntry>>,
    ) -> Result<(), ProtocolError> {
        // Looked up again when the channel found was removed before its lock was taken.
        loop {
            let ch = self.get_or_create(channel)?;
            let joined = {
                let mut subs = write(&ch.subs);
                if ch.removed.load(Ordering::Acquire) {
                    continue;
                }
                self.join(&mut subs, &ch, courier, conn, channel, policy, user, &stored)
            };
            if let Ok(true) = joined {
                conn.add_subscription(channel);
                courier.count_sent(conn.write_now());
            } else {
                // A channel created for a subscriber that did not join is not kept.
                self.forget_if_idle(channel);
            }
            return joined.map(|_| ());
        }
    }

    /// The part of `subscribe` under the write lock of the channel's subscribers; `Ok(false)`
    /// when the connection is gone (its queue was full or closed).
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        subs: &mut HashMap<u64, Arc<ClientConnection>>,
        ch: &Channel,
        courier: &Courier,
        conn: &Arc<ClientConnection>,
        channel: &str,
        policy: &ChannelPolicy,
        user: Option<&str>,
        stored: &Option<Vec<HistoryEntry>>,
    ) -> Result<bool, ProtocolError> {
        if subs.len() >= policy.max_subscribers as usize {
            return Err(ProtocolError::new(
                "channel_full",
                format!(
                    "channel `{channel}` has its maximum of {} subscribers",
                    policy.max_subscribers
                ),
            ));
        }
        // Queued under the lock, so that no live message overtakes the answer and the
        // replay; written once the subscription is recorded.
        if !courier.queue(conn, Delivery::Frame(protocol::subscribed(channel))) {
            return Ok(false);
        }
        let keep = policy.message_history as usize;
        let max_bytes = self.bounds.max_bytes;
        let replay = match stored {
            Some(entries) => history::replay(entries, user, keep, max_bytes),
            None => {
                let mut h = lock(&ch.history);
                h.expire(Instant::now(), self.bounds.max_age);
                history::replay(h.entries(), user, keep, max_bytes)
            }
        };
        if !replay.is_empty() && !courier.queue(conn, Delivery::Replay(replay)) {
            return Ok(false);
        }
        subs.insert(conn.seq, conn.clone());
        // Set under the lock, so that the gauge and the removal of its series keep the
        // order of the subscriptions they count.
        self.metrics
            .channel_subscribers
            .with_label_values(&[channel])
            .set(subs.len() as i64);
        Ok(true)
    }

    /// Removes subscriber `seq` from `channel`, and the channel with its last subscriber when it
    /// keeps no history.
    pub(crate) fn remove_subscriber(&self, channel: &str, seq: u64) {
        let Some(ch) = self.get(channel) else { return };
        let left = {
            let mut subs = write(&ch.subs);
            if subs.remove(&seq).is_none() {
                return;
            }
            let gauge = &self.metrics.channel_subscribers;
            if subs.is_empty() {
                let _ = gauge.remove_label_values(&[channel]);
            } else {
                gauge.with_label_values(&[channel]).set(subs.len() as i64);
            }
            subs.len()
        };
        if left == 0 {
            self.forget_if_idle(channel);
        }
    }

    /// Removes `channel` when it has no subscribers and no history.
    fn forget_if_idle(&self, channel: &str) {
        let mut all = write(&self.map);
        let Some(ch) = all.get(channel).cloned() else {
            return;
        };
        let subs = write(&ch.subs);
        if subs.is_empty() && lock(&ch.history).is_empty() {
            ch.removed.store(true, Ordering::Release);
            all.remove(channel);
        }
    }

    /// Drops history older than `history_max_age` as of `now` from every channel, and removes
    /// the channels left with neither subscribers nor history. Returns how many it removed.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let idle: Vec<String> = read(&self.map)
            .iter()
            .filter(|(_, ch)| {
                let empty = {
                    let mut h = lock(&ch.history);
                    h.expire(now, self.bounds.max_age);
                    h.is_empty()
                };
                empty && read(&ch.subs).is_empty()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &idle {
            self.forget_if_idle(name);
        }
        idle.len()
    }

    /// Channels alive now, and the bytes their history keeps.
    pub(crate) fn held(&self) -> (usize, usize) {
        (read(&self.map).len(), self.history_bytes.load(Ordering::Relaxed))
    }

    /// Every live channel, in no order.
    pub(crate) fn summaries(&self) -> Vec<ChannelSummary> {
        read(&self.map)
            .iter()
            .map(|(name, ch)| ChannelSummary {
                name: name.clone(),
                subscribers: read(&ch.subs).len(),
                history: lock(&ch.history).len(),
            })
            .collect()
    }

    /// Channels with at least one subscriber, and subscriptions over all channels.
    pub(crate) fn activity(&self) -> (usize, usize) {
        let all = read(&self.map);
        let subs: usize = all.values().map(|c| read(&c.subs).len()).sum();
        (all.values().filter(|c| !read(&c.subs).is_empty()).count(), subs)
    }
}
