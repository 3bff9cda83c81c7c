//! A channel's recent messages, replayed to a new subscriber before live ones. A message meant
//! for one user (a user notification, or a client's message on a user-specific channel) is
//! kept with its target and replayed only to that user.

use std::collections::VecDeque;
use std::sync::Arc;

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
}

/// The last messages of one channel, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History(VecDeque<HistoryEntry>);

impl History {
    /// Appends `entry` and forgets the oldest beyond `keep`.
    pub(crate) fn record(&mut self, entry: HistoryEntry, keep: usize) {
        self.0.push_back(entry);
        while self.0.len() > keep {
            self.0.pop_front();
        }
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.0.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The frames replayed to `user` from `entries` (oldest first): those they may see, the last
/// `keep` of them.
pub(crate) fn replay<'a>(
    entries: impl IntoIterator<Item = &'a HistoryEntry>,
    user: Option<&str>,
    keep: usize,
) -> Vec<Utf8Bytes> {
    let mut frames: Vec<Utf8Bytes> = entries
        .into_iter()
        .filter(|e| e.visible_to(user))
        .map(|e| e.frame.clone())
        .collect();
    frames.drain(..frames.len().saturating_sub(keep));
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

    #[test]
    fn history_keeps_the_newest_messages() {
        let mut h = History::default();
        for text in ["1", "2", "3", "4"] {
            h.record(entry(text, None), 3);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(replay(h.entries(), None, 10), ["2", "3", "4"]);
        h.record(entry("5", None), 0);
        assert!(h.is_empty());
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
            replay(&entries, Some("alice"), 10),
            ["all 1", "alice 1", "all 2", "alice 2"]
        );
        assert_eq!(replay(&entries, Some("bob"), 2), ["bob 1", "all 2"]);
        assert_eq!(replay(&entries, None, 10), ["all 1", "all 2"]);
        assert!(replay(&entries, None, 0).is_empty());
    }
}
