//! What a resource's status holds, compared with what the compiler decided for it, so that the
//! status writer writes only changes and the watch cache can say "already written".

use serde_json::json;

use super::{Kind, Verdict};
use crate::api::{Condition, EndpointCounts, API_VERSION};

/// The status fields Gatehouse owns, common to the three kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusView {
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub endpoints: Option<EndpointCounts>,
}

impl StatusView {
    /// Equal in everything but `lastTransitionTime`: the test for "nothing to write".
    pub fn same_ignoring_time(&self, other: &StatusView) -> bool {
        self.observed_generation == other.observed_generation
            && self.endpoints == other.endpoints
            && self.conditions.len() == other.conditions.len()
            && self.conditions.iter().all(|c| {
                other
                    .conditions
                    .iter()
                    .any(|o| same_words(o, c) && o.observed_generation == c.observed_generation)
            })
    }

    /// The server-side apply body for the status subresource of `kind`.
    pub fn apply_body(&self, kind: Kind, name: &str) -> serde_json::Value {
        let mut status = json!({
            "observedGeneration": self.observed_generation,
            "conditions": self.conditions,
        });
        if let (Some(e), Some(obj)) = (&self.endpoints, status.as_object_mut()) {
            obj.insert("endpoints".into(), json!(e));
        }
        json!({
            "apiVersion": API_VERSION,
            "kind": kind.to_string(),
            "metadata": {"name": name},
            "status": status,
        })
    }
}

/// Whether `current` already says what `verdict` asks for, transition times aside: the same
/// answer as `current.same_ignoring_time(&desired(verdict, Some(current), now))`, without
/// building the desired status (the writer asks this of every object after every publish).
pub fn satisfies(current: &StatusView, verdict: &Verdict) -> bool {
    current.observed_generation == verdict.generation
        && current.endpoints == verdict.endpoints
        && current.conditions.len() == verdict.conditions.len()
        && current.conditions.iter().all(|o| {
            verdict
                .conditions
                .iter()
                .any(|c| same_words(o, c) && o.observed_generation == verdict.generation)
        })
}

/// Same type, status, reason and message (generation and time are compared by the callers).
fn same_words(a: &Condition, b: &Condition) -> bool {
    a.type_ == b.type_ && a.status == b.status && a.reason == b.reason && a.message == b.message
}

/// Where the writer reads the status each object has now (the watch cache).
pub trait StatusLookup: Send + Sync {
    fn status(&self, kind: Kind, namespace: &str, name: &str) -> Option<StatusView>;

    /// Whether the object's status already says what `verdict` asks for (see `satisfies`).
    fn satisfied(&self, verdict: &Verdict) -> bool {
        self.status(verdict.kind, &verdict.namespace, &verdict.name)
            .is_some_and(|c| satisfies(&c, verdict))
    }
}
