//! Authentication end to end: the real binary in standalone folder mode on free ports, in
//! front of a real upstream on loopback that echoes the headers it received.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, Gateway, Upstream};
use bytes::Bytes;
use gatehouse::settings::GatewayConfig;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "integration-test-secret-of-32-bytes!";

const HS_CONFIG: &str =
    "auth:\n  jwt:\n    secret: \"integration-test-secret-of-32-bytes!\"\n    algorithm: HS256\n    \
                         issuer: auth-service\n    audience: api-gateway\n    leeway: 60\n";

fn routes_yaml(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {{name: echo}}
spec: {{endpoints: ["http://{upstream}"]}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: public}}
spec: {{path: /public, upstream: echo}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: users}}
spec: {{path: /users/*, upstream: echo, authRequired: true, requiredRoles: [user, admin]}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: admin}}
spec: {{path: /admin-only, upstream: echo, requiredRoles: [admin]}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: delete}}
spec: {{path: /delete, upstream: echo, authRequired: true, requiredPermissions: [users:read, users:delete]}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: internal}}
spec: {{path: /internal/*, upstream: echo, requiredRoles: [service]}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: live}}
spec: {{path: /live, upstream: echo, authRequired: true, websocket: true}}
"#
    )
}

struct Setup {
    gw: Gateway,
    echo: Upstream,
}

async fn setup(config: &str, files: &[(&str, &str)]) -> Setup {
    let echo = Upstream::start("echo").await;
    let routes = routes_yaml(echo.addr);
    let mut all = vec![("routes.yaml", routes.as_str())];
    all.extend_from_slice(files);
    let gw = Gateway::start(config, &all).await;
    Setup { gw, echo }
}

impl Setup {
    fn hits(&self) -> usize {
        self.echo.hits()
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(roles: &[&str]) -> Value {
    json!({
        "sub": "user-1", "exp": now() + 600, "iat": now(),
        "iss": "auth-service", "aud": "api-gateway",
        "roles": roles, "permissions": ["users:read"],
    })
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

async fn get_port(port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let reply = support::send(
        &support::client(),
        req.body(Full::new(Bytes::new())).expect("request"),
    )
    .await
    .expect("response");
    Answer {
        status: StatusCode::from_u16(reply.status).expect("status"),
        body: serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
        headers: reply.headers,
    }
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    get_port(gw.http, path, headers).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The 401 the SPEC lists: JSON `unauthorized` with `WWW-Authenticate`.
fn assert_401(a: &Answer) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "unauthorized", "{}", a.body);
    assert_eq!(a.headers["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert!(a.body["error"]["request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn protected_routes_answer_401_403_or_forward_the_verified_identity() {
    let s = setup(HS_CONFIG, &[]).await;
    let addr = &s.gw;

    // Public routes stay public, and spoofed identity headers never reach the upstream.
    let a = get(
        addr,
        "/public",
        &[("x-user-id", "root"), ("X-User-Roles", "admin")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["headers"].get("x-user-id").is_none(), "{}", a.body);
    assert!(a.body["headers"].get("x-user-roles").is_none(), "{}", a.body);

    let hits = s.hits();
    let a = get(addr, "/users/1", &[]).await;
    assert_401(&a);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("missing"));

    let user = hs256(&claims(&["user"]));
    let a = get(addr, "/admin-only", &[("authorization", &bearer(&user))]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "forbidden");
    let a = get(addr, "/delete", &[("authorization", &bearer(&user))]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("users:delete"));
    assert_eq!(s.hits(), hits, "refused requests reached the upstream");

    let a = get(
        addr,
        "/users/1",
        &[
            ("authorization", &bearer(&user)),
            ("x-user-id", "root"),
            ("x-user-roles", "admin"),
            ("x-user-permissions", "everything"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let h = &a.body["headers"];
    assert_eq!(h["x-user-id"], "user-1");
    assert_eq!(h["x-user-roles"], "user");
    assert_eq!(h["x-user-permissions"], "users:read");

    let mut c = claims(&["user", "admin"]);
    c["permissions"] = json!("users:read users:delete");
    let admin = hs256(&c);
    let a = get(addr, "/delete", &[("authorization", &bearer(&admin))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["headers"]["x-user-roles"], "user,admin");
    assert_eq!(a.body["headers"]["x-user-permissions"], "users:read,users:delete");
}

#[tokio::test]
async fn service_account_tokens_reach_service_routes() {
    let s = setup(HS_CONFIG, &[]).await;
    let svc = hs256(&json!({
        "sub": "user-service", "exp": now() + 3600, "iat": now(),
        "iss": "auth-service", "aud": "api-gateway",
        "roles": ["service"], "permissions": ["users:read", "users:write"],
    }));
    let a = get(&s.gw, "/internal/sync", &[("authorization", &bearer(&svc))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["headers"]["x-user-id"], "user-service");
    assert_eq!(a.body["headers"]["x-user-roles"], "service");
    let user = hs256(&claims(&["user"]));
    let a = get(&s.gw, "/internal/sync", &[("authorization", &bearer(&user))]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

/// Sends `token` to a protected route and checks that it is refused with 401 before the
/// upstream.
async fn refused(token: &str) {
    let s = setup(HS_CONFIG, &[]).await;
    let a = get(&s.gw, "/users/1", &[("authorization", &bearer(token))]).await;
    assert_401(&a);
    assert_eq!(s.hits(), 0, "a refused token reached the upstream");
    // The gateway is still up.
    assert_eq!(get(&s.gw, "/public", &[]).await.status, StatusCode::OK);
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[tokio::test]
async fn alg_none_is_refused() {
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(&["user"]).to_string().as_bytes())
    );
    refused(&token).await;
}

#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_is_refused() {
    // The gateway holds an RSA public key; the attacker signs HS256 with that public key.
    let public = include_str!("../fixtures/jwt/rsa-a.pub.pem");
    let s = setup(RS_CONFIG, &[("jwt.yaml", &pem_secret(&[("public.pem", public)]))]).await;
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(&["user"]),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("sign");
    let a = get(&s.gw, "/users/1", &[("authorization", &bearer(&forged))]).await;
    assert_401(&a);
    assert_eq!(s.hits(), 0);
    // The real RS256 token passes.
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/rsa-a.key")).expect("key");
    let ok = encode(&Header::new(Algorithm::RS256), &claims(&["user"]), &key).expect("sign");
    let a = get(&s.gw, "/users/1", &[("authorization", &bearer(&ok))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn expired_beyond_the_leeway_is_refused() {
    let mut c = claims(&["user"]);
    c["exp"] = json!(now() - 120);
    refused(&hs256(&c)).await;
}

#[tokio::test]
async fn not_before_in_the_future_is_refused() {
    let mut c = claims(&["user"]);
    c["nbf"] = json!(now() + 3600);
    refused(&hs256(&c)).await;
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let mut c = claims(&["user"]);
    c["iss"] = json!("evil-issuer");
    refused(&hs256(&c)).await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let mut c = claims(&["user"]);
    c["aud"] = json!("another-api");
    refused(&hs256(&c)).await;
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims(&["user"]),
        &EncodingKey::from_secret(b"not-the-gateway-secret-at-all-000"),
    )
    .expect("sign");
    refused(&token).await;
}

#[tokio::test]
async fn malformed_base64_is_refused() {
    refused("eyJhbGciOiJIUzI1NiJ9.@@@not-base64@@@.c2ln").await;
}

#[tokio::test]
async fn malformed_json_is_refused() {
    let token = format!("{}.{}.c2ln", b64(br#"{"alg":"HS256""#), b64(b"{\"sub\":"));
    refused(&token).await;
}

#[tokio::test]
async fn a_20_kb_token_is_refused() {
    let mut c = claims(&["user"]);
    c["padding"] = json!("x".repeat(20 * 1024));
    refused(&hs256(&c)).await;
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused_except_on_websocket_upgrades() {
    let s = setup(HS_CONFIG, &[]).await;
    let token = hs256(&claims(&["user"]));
    let a = get(&s.gw, &format!("/users/1?token={token}"), &[]).await;
    assert_401(&a);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("query"));
    let a = get(&s.gw, &format!("/live?access_token={token}"), &[]).await;
    assert_401(&a);
    assert_eq!(s.hits(), 0);
    // A WebSocket upgrade on a websocket route may carry it.
    let a = get(
        &s.gw,
        &format!("/live?token={token}"),
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_ne!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn the_admin_api_takes_only_the_static_token_by_default() {
    let s = setup(HS_CONFIG, &[]).await;
    let admin = s.gw.admin;
    let token = format!("Bearer {}", support::ADMIN_TOKEN);
    assert_eq!(
        get_port(admin, "/admin/routes", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = get_port(admin, "/admin/routes", &[("authorization", &token)]).await;
    assert_eq!(a.status, StatusCode::OK);
    // A user-facing token with the role admin does not open the gateway's controls.
    let jwt = hs256(&claims(&["admin"]));
    let a = get_port(admin, "/admin/routes", &[("authorization", &bearer(&jwt))]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.body["error"]["message"], "admin token required", "{}", a.body);
}

#[tokio::test]
async fn with_allow_jwt_the_admin_api_takes_a_jwt_with_role_admin() {
    let config = format!("{HS_CONFIG}admin:\n  allow_jwt: true\n");
    let s = setup(&config, &[]).await;
    let admin = s.gw.admin;
    let token = format!("Bearer {}", support::ADMIN_TOKEN);
    let a = get_port(admin, "/admin/routes", &[("authorization", &token)]).await;
    assert_eq!(a.status, StatusCode::OK);
    let jwt = hs256(&claims(&["admin"]));
    let a = get_port(admin, "/admin/routes", &[("authorization", &bearer(&jwt))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body["routes"].as_array().is_some_and(|r| !r.is_empty()));
    let jwt = hs256(&claims(&["user"]));
    let a = get_port(admin, "/admin/routes", &[("authorization", &bearer(&jwt))]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = get_port(admin, "/admin/routes", &[("authorization", "Bearer nonsense")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

const RS_CONFIG: &str =
    "auth:\n  jwt:\n    secret_ref: {name: jwt-keys, namespace: default}\n    algorithm: RS256\n    \
                         issuer: auth-service\n    audience: api-gateway\n";

fn pem_secret(entries: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: jwt-keys, namespace: default}\nstringData:\n",
    );
    for (k, v) in entries {
        out.push_str(&format!("  {k}: |\n"));
        for line in v.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

fn jwks_secret(keys: &[(&EncodingKey, &str)]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|(k, kid)| {
                let mut j = Jwk::from_encoding_key(k, Algorithm::RS256).expect("jwk");
                j.common.key_id = Some(kid.to_string());
                j
            })
            .collect(),
    };
    let json = serde_json::to_string(&set).expect("json");
    // `data` is base64 here, as `kubectl get secret -o yaml` shows it.
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: jwt-keys, namespace: default}}\ndata:\n  jwks: {encoded}\n")
}

#[tokio::test]
async fn keys_rotate_by_rewriting_the_secret_without_a_failed_request() {
    let old = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/rsa-a.key")).expect("key");
    let new = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/rsa-b.key")).expect("key");
    let token = |key: &EncodingKey, kid: &str| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.into());
        encode(&h, &claims(&["user"]), key).expect("sign")
    };
    let old_token = token(&old, "2024-old");
    let new_token = token(&new, "2025-new");

    let first = jwks_secret(&[(&old, "2024-old")]);
    let s = setup(RS_CONFIG, &[("jwt.yaml", &first)]).await;
    let secret_file = s.gw.resources().join("jwt.yaml");
    let port = s.gw.http;
    let auth = |t: &str| vec![("authorization".to_string(), bearer(t))];

    assert_eq!(
        get_port(port, "/users/1", &[("authorization", &bearer(&old_token))])
            .await
            .status,
        StatusCode::OK
    );
    assert_401(&get_port(port, "/users/1", &[("authorization", &bearer(&new_token))]).await);

    // Old-token traffic runs all through the rotation; not one request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let headers = auth(&old_token);
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if get_port(port, "/users/1", &h).await.status == StatusCode::OK {
                    ok += 1;
                } else {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        })
    };

    tokio::time::sleep(Duration::from_millis(100)).await;
    let changed = Instant::now();
    support::write_atomic(
        &secret_file,
        &jwks_secret(&[(&old, "2024-old"), (&new, "2025-new")]),
    );
    let accepted_after = loop {
        let a = get_port(port, "/users/1", &[("authorization", &bearer(&new_token))]).await;
        if a.status == StatusCode::OK {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "the new key never became valid"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("new key accepted {accepted_after:?} after the Secret changed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = traffic.await.expect("traffic");
    assert!(ok > 0);
    assert_eq!(
        failed,
        0,
        "{failed} of {} old-token requests failed during the rotation",
        ok + failed
    );
    // The budget is one second; the bound here only proves that the change applies live.
    assert!(accepted_after < Duration::from_secs(5), "{accepted_after:?}");

    // Retire the old key: its tokens stop working, the new ones keep working.
    support::write_atomic(&secret_file, &jwks_secret(&[(&new, "2025-new")]));
    let start = Instant::now();
    loop {
        let a = get_port(port, "/users/1", &[("authorization", &bearer(&old_token))]).await;
        if a.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the old key was never retired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get_port(port, "/users/1", &[("authorization", &bearer(&new_token))])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_missing_secret_leaves_routes_up_and_refuses_tokens() {
    let s = setup(RS_CONFIG, &[]).await;
    assert_eq!(get(&s.gw, "/public", &[]).await.status, StatusCode::OK);
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/rsa-a.key")).expect("key");
    let t = encode(&Header::new(Algorithm::RS256), &claims(&["user"]), &key).expect("sign");
    let a = get(&s.gw, "/users/1", &[("authorization", &bearer(&t))]).await;
    assert_401(&a);
    assert_eq!(s.hits(), 1, "only the public request reached the upstream");
}

#[test]
fn gatehouse_check_reports_key_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("routes.yaml"),
        routes_yaml("127.0.0.1:1".parse().expect("addr")),
    )
    .expect("write");
    let cfg = GatewayConfig::from_yaml_str(RS_CONFIG, &|_| None).expect("config");
    let check = |cfg: &GatewayConfig| {
        let mut out = Vec::new();
        let ok = gatehouse::app::check::run(cfg, Some(dir.path()), &mut out).expect("check");
        (ok, String::from_utf8_lossy(&out).into_owned())
    };
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(
        out.contains("warning  auth.jwt: Secret default/jwt-keys (auth.jwt.secret_ref) does not exist"),
        "{out}"
    );
    assert!(out.contains("rejected auth.jwt: no usable key"), "{out}");

    std::fs::write(
        dir.path().join("jwt.yaml"),
        pem_secret(&[("public.pem", include_str!("../fixtures/jwt/rsa-a.pub.pem"))]),
    )
    .expect("write");
    let (ok, out) = check(&cfg);
    assert!(ok, "{out}");
    assert!(out.contains("ok       auth.jwt: 1 keys (kid: public)"), "{out}");
}

/// The verified identity feeds the traffic policy: `rateLimit.key: user` counts per user, and
/// `ConsistentHash` on `claim:tenant` keeps a tenant on one endpoint.
#[tokio::test]
async fn verified_identity_keys_rate_limits_and_consistent_hashing() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let files = format!(
        r#"
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {{name: ab}}
spec:
  endpoints: ["http://{}", "http://{}"]
  loadBalancer: {{type: ConsistentHash, hashOn: "claim:tenant"}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: per-user}}
spec: {{path: /limited, upstream: ab, authRequired: true, rateLimit: {{requests: 2, window: 60s, key: user}}}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {{name: tenants}}
spec: {{path: /tenant, upstream: ab, authRequired: true}}
"#,
        a.addr, b.addr
    );
    let gw = Gateway::start(HS_CONFIG, &[("r.yaml", &files)]).await;
    let token_for = |sub: &str, tenant: &str| {
        let mut c = claims(&["user"]);
        c["sub"] = json!(sub);
        c["tenant"] = json!(tenant);
        bearer(&hs256(&c))
    };
    let (alice, bob) = (token_for("alice", "t1"), token_for("bob", "t1"));
    for _ in 0..2 {
        assert_eq!(
            get(&gw, "/limited", &[("authorization", &alice)]).await.status,
            StatusCode::OK
        );
    }
    let limited = get(&gw, "/limited", &[("authorization", &alice)]).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    // Same client IP, another user: a budget of its own.
    assert_eq!(
        get(&gw, "/limited", &[("authorization", &bob)]).await.status,
        StatusCode::OK
    );

    // Every request of one tenant lands on the same endpoint, whoever the user is.
    let mut by_tenant = std::collections::HashMap::new();
    for i in 0..20 {
        let tenant = format!("tenant-{}", i % 5);
        let token = token_for(&format!("user-{i}"), &tenant);
        let r = get(&gw, "/tenant", &[("authorization", &token)]).await;
        assert_eq!(r.status, StatusCode::OK);
        let server = r.body["server"].as_str().unwrap().to_string();
        let first = by_tenant.entry(tenant.clone()).or_insert_with(|| server.clone());
        assert_eq!(*first, server, "{tenant} moved between endpoints");
    }
}

/// Dot-segments and escaped letters do not lead around a protected route: the gateway puts the
/// path in normal form before routing, so `/open/../users/1` and `/%75sers/1` are `/users/1`
/// to the router and to the upstream alike (which, like most servers, would read them so too).
#[tokio::test]
async fn other_spellings_of_a_path_do_not_route_around_authentication() {
    let open = support::route_yaml("open", "/open/*", "echo", "");
    let s = setup(HS_CONFIG, &[("open.yaml", open.as_str())]).await;
    assert_eq!(get(&s.gw, "/open/x", &[]).await.status, StatusCode::OK);
    for path in [
        "/open/../users/1",
        "/open/%2e%2E/users/1",
        "/open/./.%2e/users/1",
        "/open/a/../../users/1",
        "/%75sers/1",
        "/open/%2E%2e/%75%73ers/1",
    ] {
        assert_401(&get(&s.gw, path, &[]).await);
    }
    assert_eq!(s.hits(), 1, "none of them reached the upstream");
    let token = hs256(&claims(&["user"]));
    let a = get(
        &s.gw,
        "/open/../users/./1?next=/../x",
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["path"], "/users/1?next=/../x",
        "the query is left as it is"
    );
}
