//! The client's fields that do not reach an upstream as sent, on the wire: the fields the
//! gateway owns in their underscore spellings (CGI, WSGI and older Rack read `X_User_Id` as
//! `X-User-Id`), any `X-User-*`, and method overrides; and what `server.headers` changes.
#![allow(clippy::unwrap_used)]

use crate::support::*;

/// The fields the upstream received for `GET /x` sent with `fields` (whole lines, byte for
/// byte), by their lower-case names.
async fn upstream_fields(gw: &Gateway, fields: &[&str]) -> serde_json::Value {
    let port = gw.http;
    let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let reply = tokio::task::spawn_blocking(move || {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        send_raw_blocking(port, "GET", "/x", &fields, std::time::Duration::from_secs(10))
    })
    .await
    .unwrap()
    .expect("a whole answer in time");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["headers"].clone()
}

const SENT: [&str; 11] = [
    "X_User_Id: admin",
    "X_User_Roles: admin",
    "x-user_permissions: users:write",
    "X-User-Email: root@example.test",
    "X_Forwarded_For: 10.0.0.1",
    "X_Request_ID: forged",
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "My_Field: 1",
    "X-Kept: 1",
];

async fn gateway(server: &str, up: &Upstream) -> Gateway {
    let config = format!("{server}{BASE_CONFIG}");
    let res = format!(
        "{}---\n{}",
        upstream_yaml("echo", &[up.url()]),
        route_yaml("all", "/*", "echo", "")
    );
    Gateway::start(&config, &[("r.yaml", &res)]).await
}

/// Under the defaults: no name with a `_` (as nginx's `underscores_in_headers off`), no
/// `X-User-*` and no method override reaches the upstream; the rest does.
#[tokio::test]
async fn identity_in_other_spellings_and_method_overrides_stay_out() {
    let up = Upstream::start("echo").await;
    let gw = gateway("", &up).await;
    let h = upstream_fields(&gw, &SENT).await;
    let names: Vec<&String> = h.as_object().unwrap().keys().collect();
    for gone in [
        "x_user_id",
        "x_user_roles",
        "x-user_permissions",
        "x-user-email",
        "x_forwarded_for",
        "x_request_id",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "my_field",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {names:?}");
    }
    assert_eq!(h["x-kept"], "1");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "the gateway's own, not the client's"
    );
    assert_ne!(h["x-request-id"], "forged");
}

/// `underscores: strip_owned` lets other underscore names through and still keeps out the
/// gateway's own; `method_override: keep` passes the overrides on.
#[tokio::test]
async fn header_settings_choose_what_else_goes_through() {
    let up = Upstream::start("echo").await;
    let gw = gateway(
        "server:\n  headers:\n    underscores: strip_owned\n    method_override: keep\n",
        &up,
    )
    .await;
    let h = upstream_fields(&gw, &SENT).await;
    for gone in [
        "x_user_id",
        "x_user_roles",
        "x-user_permissions",
        "x-user-email",
        "x_forwarded_for",
        "x_request_id",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["my_field"], "1");
    assert_eq!(h["x-http-method-override"], "DELETE");
    assert_eq!(h["x-method-override"], "DELETE");
}
