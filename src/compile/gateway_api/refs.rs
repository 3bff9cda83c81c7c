//! References between objects: ReferenceGrants, namespace selectors, host names, conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::api::gateway_api::{ReferenceGrant, GATEWAY_GROUP};

/// A JSON object of `fields`, moved in (`json!` would copy a `Value` by serializing it).
pub(super) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A condition as the Gateway API writes it (the status writer adds `lastTransitionTime`).
pub(super) fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Value {
    object([
        ("type", Value::from(type_)),
        ("status", Value::from(if status { "True" } else { "False" })),
        ("reason", Value::from(reason)),
        ("message", Value::from(message)),
        ("observedGeneration", Value::from(generation.unwrap_or(0))),
    ])
}

/// Whether a ReferenceGrant in `to_ns` lets a `from_kind` (of `from_group`) in `from_ns`
/// refer to the `to_kind` (of `to_group`) named `to_name` there.
pub(super) fn granted(
    grants: &[ReferenceGrant],
    (from_group, from_kind, from_ns): (&str, &str, &str),
    (to_group, to_kind, to_ns, to_name): (&str, &str, &str, &str),
) -> bool {
    grants
        .iter()
        .filter(|g| g.metadata.namespace.as_deref().unwrap_or("default") == to_ns)
        .any(|g| {
            let from = g
                .spec
                .from
                .iter()
                .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns);
            let to = g.spec.to.iter().any(|t| {
                t.group == to_group
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n.is_empty() || n == to_name)
            });
            from && to
        })
}

/// The namespace a reference names (`ns`, or the referrer's own when absent or empty), or
/// `RefNotPermitted` when it is another namespace and no ReferenceGrant there lets the referrer
/// (`from`: group, kind, namespace) refer to the `to_kind` (of `to_group`) named `name`.
pub(super) fn reference_namespace<'a>(
    grants: &[ReferenceGrant],
    from: (&str, &str, &'a str),
    ns: Option<&'a str>,
    (to_group, to_kind, name): (&str, &str, &str),
) -> Result<&'a str, (&'static str, String)> {
    let own = from.2;
    let ns = ns.filter(|n| !n.is_empty()).unwrap_or(own);
    if ns != own && !granted(grants, from, (to_group, to_kind, ns, name)) {
        return Err((
            "RefNotPermitted",
            format!("{to_kind} {ns}/{name} is in another namespace and no ReferenceGrant there allows it"),
        ));
    }
    Ok(ns)
}

/// The group of a parent or route kind as written (`None` is the Gateway API's own).
pub(super) fn api_group(group: Option<&str>) -> &str {
    group.unwrap_or(GATEWAY_GROUP)
}

/// Whether `selector` selects an object with `labels`.
pub(super) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(m) = &selector.match_labels {
        if m.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `h` is a host name the Gateway API accepts: DNS labels of letters, digits and
/// `-`, optionally starting with one `*.` label; no IP address, no port.
pub(super) fn valid_hostname(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    if name.is_empty() || h.len() > 253 || name.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    })
}

/// Whether host name `h` (no wildcard) is covered by the pattern `p` (`*.x` covers names
/// ending in `.x` with at least one more label).
fn covers(p: &str, h: &str) -> bool {
    match p.strip_prefix('*') {
        Some(suffix) => h.len() > suffix.len() && h.ends_with(suffix),
        None => p == h,
    }
}

/// The host names a route serves on a listener: `Some(vec![])` for any host (neither sets
/// one), `None` when they have none in common.
pub(super) fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let Some(l) = listener else {
        return Some(route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![l.to_string()]);
    }
    let mut out = Vec::new();
    for h in route {
        let h = h.as_str();
        let hit = match (l.starts_with("*."), h.starts_with("*.")) {
            (false, false) => (l == h).then_some(h),
            (true, false) => covers(l, h).then_some(h),
            (false, true) => covers(h, l).then_some(l),
            (true, true) => {
                if l == h || covers(l, &h[2..]) {
                    Some(h)
                } else if covers(h, &l[2..]) {
                    Some(l)
                } else {
                    None
                }
            }
        };
        if let Some(x) = hit {
            if !out.iter().any(|o: &String| o == x) {
                out.push(x.to_string());
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_names_intersect_to_the_more_specific_one() {
        assert_eq!(intersect(None, &v(&["a.com"])), Some(v(&["a.com"])));
        assert_eq!(intersect(Some("a.com"), &[]), Some(v(&["a.com"])));
        assert_eq!(intersect(Some("a.com"), &v(&["b.com"])), None);
        assert_eq!(
            intersect(
                Some("*.example.com"),
                &v(&["x.example.com", "example.com", "a.b.example.com"])
            ),
            Some(v(&["x.example.com", "a.b.example.com"]))
        );
        assert_eq!(
            intersect(Some("x.example.com"), &v(&["*.example.com"])),
            Some(v(&["x.example.com"]))
        );
        assert_eq!(
            intersect(Some("*.example.com"), &v(&["*.a.example.com"])),
            Some(v(&["*.a.example.com"]))
        );
        assert_eq!(
            intersect(Some("*.a.example.com"), &v(&["*.example.com"])),
            Some(v(&["*.a.example.com"]))
        );
        assert_eq!(intersect(Some("*.example.com"), &v(&["*.example.org"])), None);
    }

    #[test]
    fn host_names_are_checked() {
        for ok in ["a.com", "*.a.com", "x-1.example"] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "1.2.3.4",
            "a..com",
            "a.com:80",
            "-a.com",
            "*.*.a.com",
            "a_b.com",
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }
}
