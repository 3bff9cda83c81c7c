//! The channels alive on this process, each with its subscribers and its history, and the two
//! things done to them: adding a subscriber (with its `subscribed` answer and the replay) and
//! delivering a message to the subscribers.
//!
//! A channel exists while it has subscribers or history: it is created by the first Subscribe
//! or by a message kept in history, and removed with its last subscriber when it keeps no
//! history. A message is encoded once, queued for every subscriber in order, then written
//! (see [`Courier::write_out`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::client::ClientConnection;
use super::delivery::{Courier, Delivery};
use super::history::{self, History, HistoryEntry};
use super::locks::{lock, read, write};
use super::outbox::{self, Pushed};
use super::protocol::{self, ProtocolError};
use crate::routing::channels::ChannelPolicy;
use crate::telemetry::WsMetrics;

#[derive(Default)]
struct Channel {
    subs: RwLock<HashMap<u64, Arc<ClientConnection>>>,
    history: Mutex<History>,
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
}

impl Channels {
    pub(crate) fn new(metrics: WsMetrics) -> Self {
        Channels {
            map: RwLock::default(),
            metrics,
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Channel>> {
        read(&self.map).get(name).cloned()
    }

    fn get_or_create(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = self.get(name) {
            return c;
        }
        write(&self.map).entry(name.to_string()).or_default().clone()
    }

    /// Queues `frame` for the subscribers of `channel` (only the connections of `target` when
    /// set) and writes it out; keeps it in the channel's history when `keep` > 0. Returns the
    /// connections it was queued for.
    pub(crate) fn deliver(
        &self,
        courier: &Courier,
        channel: &str,
        frame: &Utf8Bytes,
        target: Option<&Arc<str>>,
        keep: u32,
    ) -> usize {
        let ch = if keep > 0 {
            self.get_or_create(channel)
        } else {
            match self.get(channel) {
                Some(c) => c,
                None => return 0,
            }
        };
        let mut delivered = 0usize;
        let mut slow = Vec::new();
        let bytes = outbox::text(frame);
        let mut queued = Vec::new();
        {
            let subs = read(&ch.subs);
            if keep > 0 {
                let entry = HistoryEntry {
                    frame: frame.clone(),
                    target: target.cloned(),
                };
                lock(&ch.history).record(entry, keep as usize);
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
        delivered
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
        let ch = self.get_or_create(channel);
        let count = {
            let mut subs = write(&ch.subs);
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
                return Ok(());
            }
            let keep = policy.message_history as usize;
            let replay = match stored {
                Some(entries) => history::replay(&entries, user, keep),
                None => history::replay(lock(&ch.history).entries(), user, keep),
            };
            if !replay.is_empty() && !courier.queue(conn, Delivery::Replay(replay)) {
                return Ok(());
            }
            subs.insert(conn.seq, conn.clone());
            subs.len()
        };
        conn.add_subscription(channel);
        courier.count_sent(conn.write_now());
        self.metrics
            .channel_subscribers
            .with_label_values(&[channel])
            .set(count as i64);
        Ok(())
    }

    /// Removes subscriber `seq` from `channel`, and the channel with its last subscriber when it
    /// keeps no history.
    pub(crate) fn remove_subscriber(&self, channel: &str, seq: u64) {
        let Some(ch) = self.get(channel) else { return };
        let left = {
            let mut subs = write(&ch.subs);
            subs.remove(&seq);
            subs.len()
        };
        let gauge = &self.metrics.channel_subscribers;
        if left == 0 {
            let _ = gauge.remove_label_values(&[channel]);
            let mut all = write(&self.map);
            if read(&ch.subs).is_empty() && lock(&ch.history).is_empty() {
                all.remove(channel);
            }
        } else {
            gauge.with_label_values(&[channel]).set(left as i64);
        }
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
