//! Other spellings of a path, on the wire: a path that common upstreams read as a guarded one
//! (nginx merges `//`, Tomcat and Spring drop `;` parameters, many frameworks decode `%2F`) is
//! routed and authorised as that path and sent so, or refused; and a static `route_limits`
//! entry counts the spellings of its path that reach an upstream.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

use crate::support::*;

const SECRET: &str = "paths-test-secret-of-at-least-32-bytes";

/// No default rate limit; HS256 tokens signed with `SECRET`. `extra` is more of `server:`.
fn config(server: &str) -> String {
    format!(
        "server:\n  http_port: 8080\n{server}auth:\n  jwt:\n    secret: \"{SECRET}\"\n    algorithm: HS256\n\
         middleware:\n  rate_limiting:\n    default_limit: 0\n"
    )
}

/// `/api/*` public and `/api/admin/*` behind a token, both to `up`.
fn guarded(up: &Upstream) -> String {
    format!(
        "{}---\n{}---\n{}",
        upstream_yaml("echo", &[up.url()]),
        route_yaml("api", "/api/*", "echo", ""),
        route_yaml("admin", "/api/admin/*", "echo", "authRequired: true"),
    )
}

fn token() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"sub": "user-1", "exp": now + 600, "roles": ["user"]});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// What came back for a request: its status, its `Location`, and its body as JSON (`Null`
/// when it has none).
struct Answer {
    status: u16,
    location: Option<String>,
    body: serde_json::Value,
}

/// Sends `METHOD target` with `fields` (whole lines) on a connection of its own, byte for byte
/// as written: no client in between to tidy the target.
async fn send_raw(gw: &Gateway, method: &str, target: &str, fields: &[&str]) -> Answer {
    let (port, method, target) = (gw.http, method.to_string(), target.to_string());
    let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    if method == "POST" {
        fields.push("content-length: 0".into());
    }
    let reply = tokio::task::spawn_blocking(move || {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        send_raw_blocking(
            port,
            &method,
            &target,
            &fields,
            std::time::Duration::from_secs(10),
        )
    })
    .await
    .unwrap()
    .expect("a whole answer in time");
    Answer {
        status: reply.status,
        location: reply.header("location").map(str::to_string),
        body: serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null),
    }
}

async fn get_raw(gw: &Gateway, target: &str, fields: &[&str]) -> Answer {
    send_raw(gw, "GET", target, fields).await
}

/// The four spellings of the issue, under the defaults: `//` is merged, so the path is the
/// guarded one and wants a token; `;` and `%2F` are refused. None reaches the upstream, and
/// with a token the upstream receives the path that was authorised.
#[tokio::test]
async fn other_spellings_of_a_guarded_path_are_that_path_or_refused() {
    let up = Upstream::start("echo").await;
    let gw = Gateway::start(&config(""), &[("r.yaml", &guarded(&up))]).await;
    assert_eq!(get_raw(&gw, "/api/admin/users", &[]).await.status, 401);
    assert_eq!(get_raw(&gw, "/api/users", &[]).await.status, 200);
    let hits = up.hits();

    // Every spelling is tried before anything is asserted: a failure lists all that got by.
    let mut wrong = Vec::new();
    for (path, want) in [
        ("/api//admin/users", 401),
        ("//api/admin//users", 401),
        ("/api/admin;x/users", 400),
        ("/api/x/..;/admin/users", 400),
        ("/api/admin%2Fusers", 400),
        ("/api/admin%2fusers", 400),
        ("/api/admin%5Cusers", 400),
        ("/api\\admin\\users", 400),
    ] {
        let a = get_raw(&gw, path, &[]).await;
        let (code, message) = (&a.body["error"]["code"], a.body["error"]["message"].as_str());
        let right = match want {
            401 => a.status == 401 && code == "unauthorized",
            // The gateway's refusal, not some parser's.
            _ => {
                a.status == 400
                    && code == "bad_request"
                    && message.is_some_and(|m| m.contains("not accepted"))
            }
        };
        if !right {
            wrong.push(format!("{path}: want {want}, got {} {}", a.status, a.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(up.hits(), hits, "none of them reached the upstream");

    let auth = format!("authorization: Bearer {}", token());
    let a = get_raw(&gw, "/api//admin///users?x=a//b", &[&auth]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["path"], "/api/admin/users?x=a//b",
        "the upstream gets the path authorised"
    );
    let a = get_raw(&gw, "/api//orders", &[]).await;
    assert_eq!((a.status, &a.body["path"]), (200, &"/api/orders".into()));
}

/// The other choices of `server.paths`: parameters stripped as Tomcat reads them, escaped
/// slashes unescaped and forwarded, or unescaped with a redirect. Whatever the choice, the
/// guarded path wants its token.
#[tokio::test]
async fn path_settings_strip_unescape_or_redirect() {
    let up = Upstream::start("echo").await;
    let forward = config("  paths:\n    parameters: strip\n    escaped_slashes: unescape_and_forward\n");
    let gw = Gateway::start(&forward, &[("r.yaml", &guarded(&up))]).await;
    let hits = up.hits();
    for path in [
        "/api/admin;x/users",
        "/api/x/..;/admin/users",
        "/api/admin%2Fusers",
        "/api/x%2F..%2Fadmin/users",
    ] {
        let a = get_raw(&gw, path, &[]).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    assert_eq!(up.hits(), hits, "none of them reached the upstream");
    let a = get_raw(&gw, "/api/a;jsessionid=1/b%2Fc", &[]).await;
    assert_eq!(
        (a.status, &a.body["path"]),
        (200, &"/api/a/b/c".into()),
        "{}",
        a.body
    );

    let redirect = config("  paths:\n    escaped_slashes: unescape_and_redirect\n    merge_slashes: false\n");
    let gw = Gateway::start(&redirect, &[("r.yaml", &guarded(&up))]).await;
    let a = get_raw(&gw, "/api/admin%2Fusers?x=1", &[]).await;
    assert_eq!(a.status, 307);
    assert_eq!(a.location.as_deref(), Some("/api/admin/users?x=1"));
    let a = get_raw(&gw, "/%2Fevil.example/x", &[]).await;
    assert_eq!(
        a.status, 400,
        "no Location that names another host: {:?}",
        a.location
    );
    assert_eq!(
        get_raw(&gw, "/api/admin/users?x=1", &[]).await.status,
        401,
        "where it leads"
    );
}

/// The seed's login limit: `/auth/login/` and `//auth/login` are `/auth/login` to the auth
/// service behind `/auth/*`, and count against its limit.
#[tokio::test]
async fn a_route_limit_counts_the_spellings_of_its_path() {
    let up = Upstream::start("auth").await;
    let cfg = "middleware:\n  rate_limiting:\n    default_limit: 0\n    window: 60s\n    \
               route_limits: {\"/auth/login\": 2}\n";
    let res = format!(
        "{}---\n{}",
        upstream_yaml("auth", &[up.url()]),
        route_yaml("auth", "/auth/*", "auth", "methods: [POST]")
    );
    let gw = Gateway::start(cfg, &[("r.yaml", &res)]).await;
    assert_eq!(send_raw(&gw, "POST", "/auth/login", &[]).await.status, 200);
    assert_eq!(send_raw(&gw, "POST", "/auth/login/", &[]).await.status, 200);
    for path in ["/auth/login/", "//auth/login", "/auth//login/", "/auth/login"] {
        let a = send_raw(&gw, "POST", path, &[]).await;
        assert_eq!(a.status, 429, "{path}: {}", a.body);
    }
    assert_eq!(up.hits(), 2);
    assert_eq!(
        send_raw(&gw, "POST", "/auth/register", &[]).await.status,
        200,
        "other paths are not counted"
    );
}
