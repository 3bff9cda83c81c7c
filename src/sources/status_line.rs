//! The Gateway API status of one object as one line, in the style of a verdict's, for the
//! logs of both modes and `gatehouse check`: `rejected Gateway ns/name: Accepted=False
//! Programmed=False listeners=2 [Accepted InvalidParameters: ...] [listener https ResolvedRefs
//! InvalidCertificateRef: ...]`.
//!
//! A condition is a problem when it says the bad thing: `False` for the usual ones, `True` for
//! those of negative polarity (`Conflicted`, `OverlappingTLSConfig`, `PartiallyInvalid`).
//! Route parents of other controllers are not ours to report.

use std::fmt;

use serde_json::Value;

use crate::compile::gateway_api::{ApiKind, ApiStatus};

/// Conditions whose `True` is the problem.
const NEGATIVE: [&str; 3] = ["Conflicted", "OverlappingTLSConfig", "PartiallyInvalid"];

/// One object's status as a line. `controller`: our `controllerName`.
pub struct StatusLine<'a> {
    pub status: &'a ApiStatus,
    pub controller: &'a str,
}

/// A condition that is a problem, and where it sits (`""`, `listener NAME `, `parent REF `).
struct Problem<'a> {
    at: String,
    condition: &'a Value,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn conditions(v: &Value) -> &[Value] {
    v.get("conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_problem(c: &Value) -> bool {
    let status = text(c, "status");
    if NEGATIVE.contains(&text(c, "type")) {
        status == "True"
    } else {
        status != "True"
    }
}

/// `ns/name[/section][:port]` of a route parent.
fn parent_ref(p: &Value, route_ns: &str) -> String {
    let r = &p["parentRef"];
    let ns = r.get("namespace").and_then(Value::as_str).unwrap_or(route_ns);
    let mut out = format!("{ns}/{}", text(r, "name"));
    if let Some(s) = r.get("sectionName").and_then(Value::as_str) {
        out.push('/');
        out.push_str(s);
    }
    if let Some(port) = r.get("port").and_then(Value::as_i64) {
        out.push_str(&format!(":{port}"));
    }
    out
}

impl StatusLine<'_> {
    /// The route parents that are ours.
    fn parents(&self) -> impl Iterator<Item = &Value> {
        let list = self.status.status.get("parents").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter(|p| text(p, "controllerName") == self.controller)
    }

    fn listeners(&self) -> impl Iterator<Item = &Value> {
        let list = self.status.status.get("listeners").and_then(Value::as_array);
        list.into_iter().flatten()
    }

    fn problems(&self) -> Vec<Problem<'_>> {
        let ns = self.status.namespace.as_deref().unwrap_or_default();
        let mut out: Vec<Problem<'_>> = conditions(&self.status.status)
            .iter()
            .filter(|c| is_problem(c))
            .map(|condition| Problem {
                at: String::new(),
                condition,
            })
            .collect();
        for l in self.listeners() {
            let at = format!("listener {} ", text(l, "name"));
            out.extend(
                conditions(l)
                    .iter()
                    .filter(|c| is_problem(c))
                    .map(|condition| Problem {
                        at: at.clone(),
                        condition,
                    }),
            );
        }
        for p in self.parents() {
            let at = format!("parent {} ", parent_ref(p, ns));
            out.extend(
                conditions(p)
                    .iter()
                    .filter(|c| is_problem(c))
                    .map(|condition| Problem {
                        at: at.clone(),
                        condition,
                    }),
            );
        }
        out
    }

    /// `Accepted=False` anywhere: on the object, a listener or one of our route parents.
    pub fn is_rejected(&self) -> bool {
        self.problems()
            .iter()
            .any(|p| text(p.condition, "type") == "Accepted")
    }

    pub fn has_problem(&self) -> bool {
        !self.problems().is_empty()
    }

    /// `Kind ns/name` (`Kind name` for GatewayClasses).
    pub fn resource(&self) -> String {
        match &self.status.namespace {
            Some(ns) => format!("{} {ns}/{}", self.status.kind, self.status.name),
            None => format!("{} {}", self.status.kind, self.status.name),
        }
    }
}

impl fmt::Display for StatusLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems = self.problems();
        let word = if problems.iter().any(|p| text(p.condition, "type") == "Accepted") {
            "rejected"
        } else if !problems.is_empty() {
            "warning"
        } else {
            "ok"
        };
        write!(f, "{word:<8} {}:", self.resource())?;
        for c in conditions(&self.status.status) {
            write!(f, " {}={}", text(c, "type"), text(c, "status"))?;
        }
        match self.status.kind {
            ApiKind::Gateway => write!(f, " listeners={}", self.listeners().count())?,
            ApiKind::HTTPRoute => write!(f, " parents={}", self.parents().count())?,
            ApiKind::RoutePolicy => {
                let n = self.status.status["ancestors"].as_array().map_or(0, Vec::len);
                write!(f, " ancestors={n}")?
            }
            ApiKind::GatewayClass => {}
        }
        for p in &problems {
            let c = p.condition;
            write!(f, " [{}{} {}", p.at, text(c, "type"), text(c, "reason"))?;
            match text(c, "message") {
                "" => write!(f, "]")?,
                m => write!(f, ": {m}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(kind: ApiKind, ns: Option<&str>, status: Value) -> String {
        let s = ApiStatus {
            kind,
            namespace: ns.map(str::to_string),
            name: "x".into(),
            generation: Some(1),
            status: std::sync::Arc::new(status),
        };
        StatusLine {
            status: &s,
            controller: "gatehouse.dev/gateway-controller",
        }
        .to_string()
    }

    #[test]
    fn an_accepted_class_is_ok() {
        let l = line(
            ApiKind::GatewayClass,
            None,
            json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"}]}),
        );
        assert_eq!(l, "ok       GatewayClass x: Accepted=True");
    }

    #[test]
    fn gateway_problems_name_their_listener_and_negative_polarity_counts() {
        let l = line(
            ApiKind::Gateway,
            Some("ns"),
            json!({
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "a"},
                    {"type": "Programmed", "status": "False", "reason": "Invalid", "message": "no listener"}
                ],
                "listeners": [
                    {"name": "http", "conditions": [
                        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "a"},
                        {"type": "Conflicted", "status": "False", "reason": "NoConflicts", "message": "n"}]},
                    {"name": "https", "conditions": [
                        {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef", "message": "no secret"},
                        {"type": "Conflicted", "status": "True", "reason": "HostnameConflict", "message": "taken"}]}
                ]
            }),
        );
        assert_eq!(
            l,
            "warning  Gateway ns/x: Accepted=True Programmed=False listeners=2 \
             [Programmed Invalid: no listener] \
             [listener https ResolvedRefs InvalidCertificateRef: no secret] \
             [listener https Conflicted HostnameConflict: taken]"
        );
    }

    #[test]
    fn routes_report_only_our_parents() {
        let s = ApiStatus {
            kind: ApiKind::HTTPRoute,
            namespace: Some("apps".into()),
            name: "r".into(),
            generation: Some(2),
            status: std::sync::Arc::new(json!({"parents": [
                {"parentRef": {"name": "gw", "sectionName": "http"},
                 "controllerName": "gatehouse.dev/gateway-controller",
                 "conditions": [
                    {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no"},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "ok"}]},
                {"parentRef": {"name": "other", "namespace": "infra"},
                 "controllerName": "example.com/other",
                 "conditions": [{"type": "Accepted", "status": "False", "reason": "X", "message": "y"}]}
            ]})),
        };
        let l = StatusLine {
            status: &s,
            controller: "gatehouse.dev/gateway-controller",
        };
        assert!(l.is_rejected());
        assert_eq!(
            l.to_string(),
            "rejected HTTPRoute apps/r: parents=1 [parent apps/gw/http Accepted NotAllowedByListeners: no]"
        );
    }
}
