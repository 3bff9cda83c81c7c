//! A channel's recent messages, replayed to a new subscriber before live ones. A message meant
//! for one user (a user notification, or a client's message on a user-specific channel) is
//! kept with its target and replayed only to that user. History is bounded by count (the
//! channel's `messageHistory`), by bytes per channel and over all channels, and by age.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One message kept for replay; `target` set for messages meant for one user.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub frame: Utf8Bytes,
    pub target: Option<Arc<str>>,
}

impl HistoryEntry {
    /// Whether a connection of `user` (`None`: anonymous) may be shown this message.
    pub fn visible_to(&self, user: Option<&str>) -> bool {
        self.target.as_deref().is_none_or(|t| Some(t) == user)
    }

    /// What keeping it costs: the frame and the target's name.
    pub fn size(&self) -> usize {
        self.frame.len() + self.target.as_deref().map_or(0, str::len)
    }
}

/// How much one channel's history, and all of them together, may keep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryBounds {
    /// Bytes per channel.
    pub max_bytes: usize,
    /// Bytes over all channels.
    pub max_total_bytes: usize,
    /// `None`: messages do not expire.
    pub max_age: Option<Duration>,
}

impl HistoryBounds {
    /// No bound but the count.
    #[cfg(test)]
    pub(crate) const NONE: HistoryBounds = HistoryBounds {
        max_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
        max_age: None,
    };
}

/// The last messages of one channel, oldest first, with the time each was kept. Its bytes
/// also count in a total shared by every channel (`total`), which it keeps up to date as it
/// gains and loses messages.
#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<(Instant, HistoryEntry)>,
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl History {
    /// An empty history whose bytes count in `total`.
    pub(crate) fn new(total: Arc<AtomicUsize>) -> Self {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            total,
        }
    }

    /// Keeps `entry` as of `now`: drops what expired, then the oldest beyond `keep` messages
    /// or the channel's bytes. A message larger than the channel's bytes, or one that the
    /// total has no room for, is not kept. Returns whether it was.
    pub(crate) fn record(
        &mut self,
        entry: HistoryEntry,
        keep: usize,
        now: Instant,
        b: &HistoryBounds,
    ) -> bool {
        self.expire(now, b.max_age);
        let size = entry.size();
        if keep == 0 || size > b.max_bytes {
            self.trim(keep, 0, b.max_bytes);
            return false;
        }
        self.trim(keep - 1, size, b.max_bytes);
        let before = self.total.fetch_add(size, Ordering::AcqRel);
        if before.saturating_add(size) > b.max_total_bytes {
            self.total.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        self.bytes += size;
        self.entries.push_back((now, entry));
        true
    }

    /// Drops the oldest entries until at most `keep` remain and `room` more bytes fit in
    /// `max_bytes`.
    fn trim(&mut self, keep: usize, room: usize, max_bytes: usize) {
        while self.entries.len() > keep
            || (!self.entries.is_empty() && self.bytes.saturating_add(room) > max_bytes)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, e)) = self.entries.pop_front() {
            let size = e.size();
            self.bytes -= size;
            self.total.fetch_sub(size, Ordering::AcqRel);
        }
    }

    /// Drops the messages kept longer than `max_age` before `now`.
    pub(crate) fn expire(&mut self, now: Instant, max_age: Option<Duration>) {
        let Some(age) = max_age else { return };
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > age)
        {
            self.pop_oldest();
        }
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.entries.iter().map(|(_, e)| e)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes this channel keeps.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The frames replayed to `user` from `entries` (oldest first): those they may see, the last
/// `keep` of them, and of those no more than the newest `max_bytes`.
pub(crate) fn replay<'a>(
    entries: impl IntoIterator<Item = &'a HistoryEntry>,
    user: Option<&str>,
    keep: usize,
    max_bytes: usize,
) -> Vec<Utf8Bytes> {
    let mut frames: Vec<Utf8Bytes> = entries
        .into_iter()
        .filter(|e| e.visible_to(user))
        .map(|e| e.frame.clone())
        .collect();
    frames.drain(..frames.len().saturating_sub(keep));
    let mut bytes = 0usize;
    let fit = frames
        .iter()
        .rev()
        .take_while(|f| {
            bytes = bytes.saturating_add(f.len());
            bytes <= max_bytes
        })
        .count();
    frames.drain(..frames.len() - fit);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &'static str, target: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            frame: Utf8Bytes::from_static(text),
            target: target.map(Arc::from),
        }
    }

    fn history() -> History {
        History::new(Arc::default())
    }

    #[test]
    fn history_keeps_the_newest_messages() {
        let mut h = history();
        let now = Instant::now();
        for text in ["1", "2", "3", "4"] {
            h.record(entry(text, None), 3, now, &HistoryBounds::NONE);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(replay(h.entries(), None, 10, usize::MAX), ["2", "3", "4"]);
        h.record(entry("5", None), 0, now, &HistoryBounds::NONE);
        assert!(h.is_empty());
    }

    #[test]
    fn history_is_bounded_by_bytes_per_channel_and_in_total() {
        let total = Arc::new(AtomicUsize::new(0));
        let bounds = HistoryBounds {
            max_bytes: 10,
            max_total_bytes: 15,
            max_age: None,
        };
        let now = Instant::now();
        let mut a = History::new(total.clone());
        for text in ["aaaa", "bbbb", "cccc"] {
            assert!(a.record(entry(text, None), 100, now, &bounds));
        }
        // 12 bytes do not fit in 10: the oldest went.
        assert_eq!(replay(a.entries(), None, 100, usize::MAX), ["bbbb", "cccc"]);
        assert_eq!((a.bytes(), total.load(Ordering::Relaxed)), (8, 8));
        assert!(
            !a.record(entry("eleven byte", None), 100, now, &bounds),
            "larger than a channel"
        );
        assert_eq!(a.len(), 2, "a message too large to keep leaves the rest");
        let mut b = History::new(total.clone());
        assert!(b.record(entry("dddddd", None), 100, now, &bounds));
        assert!(
            !b.record(entry("ee", None), 100, now, &bounds),
            "the total is full"
        );
        assert_eq!(total.load(Ordering::Relaxed), 14);
        // A channel makes room from its own history first.
        assert!(b.record(entry("ffffff", None), 100, now, &bounds));
        assert_eq!(replay(b.entries(), None, 100, usize::MAX), ["ffffff"]);
        drop(b);
        assert_eq!(
            total.load(Ordering::Relaxed),
            8,
            "a dropped history gives its bytes back"
        );
        // A user's name counts too.
        assert_eq!(entry("ab", Some("alice")).size(), 7);
    }

    #[test]
    fn history_forgets_messages_older_than_its_age() {
        let total = Arc::new(AtomicUsize::new(0));
        let bounds = HistoryBounds {
            max_age: Some(Duration::from_secs(60)),
            ..HistoryBounds::NONE
        };
        let t0 = Instant::now();
        let mut h = History::new(total.clone());
        h.record(entry("old", None), 10, t0, &bounds);
        h.record(entry("new", None), 10, t0 + Duration::from_secs(30), &bounds);
        h.expire(t0 + Duration::from_secs(60), bounds.max_age);
        assert_eq!(h.len(), 2, "exactly the age is not older");
        h.expire(t0 + Duration::from_secs(61), bounds.max_age);
        assert_eq!(replay(h.entries(), None, 10, usize::MAX), ["new"]);
        h.record(entry("later", None), 10, t0 + Duration::from_secs(100), &bounds);
        assert_eq!(replay(h.entries(), None, 10, usize::MAX), ["later"]);
        assert_eq!(total.load(Ordering::Relaxed), 5);
        h.expire(t0 + Duration::from_secs(1000), None);
        assert_eq!(h.len(), 1, "without an age nothing expires");
    }

    #[test]
    fn a_replay_shows_a_user_their_own_messages_and_the_newest_last() {
        let entries = [
            entry("all 1", None),
            entry("alice 1", Some("alice")),
            entry("bob 1", Some("bob")),
            entry("all 2", None),
            entry("alice 2", Some("alice")),
        ];
        assert_eq!(
            replay(&entries, Some("alice"), 10, usize::MAX),
            ["all 1", "alice 1", "all 2", "alice 2"]
        );
        assert_eq!(replay(&entries, Some("bob"), 2, usize::MAX), ["bob 1", "all 2"]);
        assert_eq!(replay(&entries, None, 10, usize::MAX), ["all 1", "all 2"]);
        assert!(replay(&entries, None, 0, usize::MAX).is_empty());
        // No more than `max_bytes` of the newest (from Redis, history may be larger).
        assert_eq!(replay(&entries, Some("alice"), 10, 14), ["all 2", "alice 2"]);
        assert!(replay(&entries, None, 10, 4).is_empty());
    }
}
