use super::*;
use serde_json::json;

const OURS: &str = "gatehouse.dev/gateway-controller";

fn cond(t: &str, status: &str) -> Value {
    json!({"type": t, "status": status, "reason": "R", "message": "m", "observedGeneration": 1})
}

fn timed(t: &str, status: &str, time: &str) -> Value {
    let mut c = cond(t, status);
    c["lastTransitionTime"] = json!(time);
    c
}

fn gateway(status: Value) -> ApiStatus {
    ApiStatus {
        kind: ApiKind::Gateway,
        namespace: Some("ns".into()),
        name: "gw".into(),
        generation: Some(1),
        status: std::sync::Arc::new(status),
    }
}

#[test]
fn every_condition_gets_a_time_kept_while_its_status_holds() {
    let held = json!({
        "conditions": [timed("Accepted", "True", "t0"), timed("Programmed", "Unknown", "1970-01-01T00:00:00Z")],
        "listeners": [
            {"name": "b", "conditions": [timed("Accepted", "True", "tb")]},
            {"name": "a", "conditions": [timed("Accepted", "False", "ta")]}
        ]
    });
    let s = gateway(json!({
        "conditions": [cond("Accepted", "True"), cond("Programmed", "True")],
        "listeners": [
            {"name": "a", "conditions": [cond("Accepted", "True")]},
            {"name": "b", "conditions": [cond("Accepted", "True"), cond("Programmed", "True")]},
            {"name": "c", "conditions": [cond("Accepted", "True")]}
        ]
    }));
    let want = desired(&s, Some(&held), OURS, "now");
    let time = |v: &Value| v["lastTransitionTime"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        time(&want["conditions"][0]),
        "t0",
        "unchanged status keeps its time"
    );
    assert_eq!(time(&want["conditions"][1]), "now", "Unknown -> True moves");
    let l = &want["listeners"];
    assert_eq!(time(&l[0]["conditions"][0]), "now", "listener a: False -> True");
    assert_eq!(
        time(&l[1]["conditions"][0]),
        "tb",
        "listener b matched by name, not place"
    );
    assert_eq!(time(&l[1]["conditions"][1]), "now", "a new condition");
    assert_eq!(time(&l[2]["conditions"][0]), "now", "a new listener");
    // Nothing else is added: no empty message, no other field.
    assert_eq!(want["conditions"][0]["message"], "m");
    assert_eq!(
        want["listeners"][0]["conditions"][0].as_object().map(|o| o.len()),
        Some(6)
    );
}

#[test]
fn the_same_content_is_held_whatever_the_times_and_the_servers_defaults() {
    let want = json!({
        "conditions": [timed("Accepted", "True", "t1")],
        "parents": [{"parentRef": {"name": "gw"}, "controllerName": OURS, "conditions": [timed("Accepted", "True", "t1")]}]
    });
    let held = json!({
        "conditions": [timed("Accepted", "True", "t0")],
        "parents": [{"parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "gw"},
                     "controllerName": OURS, "conditions": [timed("Accepted", "True", "t0")]}]
    });
    assert!(holds(&held, &want));
    let mut changed = held.clone();
    changed["conditions"][0]["message"] = json!("other");
    assert!(!holds(&changed, &want));
    let mut more = held.clone();
    if let Some(p) = more["parents"].as_array_mut() {
        p.push(json!({"controllerName": "x"}));
    }
    assert!(!holds(&more, &want), "lists are compared whole");
    let mut stale = held;
    stale["addresses"] = json!([{"value": "127.0.1.1"}]);
    assert!(!holds(&stale, &want), "a field to remove");
    assert!(!holds(&Value::Null, &want));
    assert!(same_ignoring_time(
        &want,
        &json!({
            "conditions": [timed("Accepted", "True", "t9")],
            "parents": [{"parentRef": {"name": "gw"}, "controllerName": OURS, "conditions": [timed("Accepted", "True", "t9")]}]
        })
    ));
}

#[test]
fn route_parents_of_other_controllers_are_taken_as_held_and_keep_their_place_by_ref() {
    let s = ApiStatus {
        kind: ApiKind::HTTPRoute,
        namespace: Some("apps".into()),
        name: "r".into(),
        generation: Some(3),
        status: std::sync::Arc::new(json!({"parents": [
            {"parentRef": {"name": "other"}, "controllerName": "example.com/x", "conditions": [cond("Accepted", "False")]},
            {"parentRef": {"name": "gw", "sectionName": "http"}, "controllerName": OURS, "conditions": [cond("Accepted", "True")]}
        ]})),
    };
    let held = json!({"parents": [
        {"parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "gw", "sectionName": "http"},
         "controllerName": OURS, "conditions": [timed("Accepted", "True", "t0")]},
        {"parentRef": {"name": "other"}, "controllerName": "example.com/x", "conditions": [timed("Accepted", "True", "tx")]}
    ]});
    let want = desired(&s, Some(&held), OURS, "now");
    let parents = want["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["controllerName"], OURS);
    assert_eq!(
        parents[0]["conditions"][0]["lastTransitionTime"], "t0",
        "matched with defaults"
    );
    assert_eq!(
        parents[1], held["parents"][1],
        "the other controller's entry as held now"
    );
}

#[test]
fn the_patch_removes_top_level_fields_no_longer_set() {
    let body = patch_body(
        &json!({"conditions": []}),
        Some(&json!({"conditions": [], "addresses": [{"value": "x"}]})),
    );
    assert_eq!(body, json!({"status": {"conditions": [], "addresses": null}}));
    assert_eq!(
        patch_body(&json!({"conditions": []}), None),
        json!({"status": {"conditions": []}})
    );
}
