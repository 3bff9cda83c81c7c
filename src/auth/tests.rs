use std::collections::BTreeMap;

use base64::Engine;
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::AuthPolicy;
use super::*;

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/", $name))
    };
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(crate) fn settings(alg: Option<Algorithm>) -> JwtSettings {
    JwtSettings {
        inline_secret: None,
        secret_ref: None,
        algorithm: alg,
        issuer: Some("auth-service".into()),
        audience: Some("api-gateway".into()),
        leeway: 60,
        claims: ClaimNames::default(),
        allow_weak_secret: false,
    }
}

fn hmac_settings() -> JwtSettings {
    JwtSettings {
        inline_secret: Some(SECRET.into()),
        ..settings(Some(Algorithm::HS256))
    }
}

pub(crate) fn with_ref(mut s: JwtSettings, key: Option<&str>) -> JwtSettings {
    s.secret_ref = Some(SecretRef {
        namespace: "default".into(),
        name: "jwt".into(),
        key: key.map(str::to_string),
    });
    s
}

pub(crate) fn secret(entries: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("jwt".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn claims() -> Value {
    json!({
        "sub": "user-1",
        "exp": now() + 600,
        "iat": now(),
        "iss": "auth-service",
        "aud": "api-gateway",
        "roles": ["user"],
        "permissions": "users:read users:write",
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).expect("sign")
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
        None,
    )
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

pub(crate) fn rsa_a() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture!("rsa-a.key").as_bytes()).expect("rsa key")
}

fn rsa_b() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture!("rsa-b.key").as_bytes()).expect("rsa key")
}

pub(crate) fn jwks(keys: &[(&EncodingKey, Algorithm, &str)]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|(k, alg, kid)| {
                let mut j = Jwk::from_encoding_key(k, *alg).expect("jwk");
                j.common.key_id = Some(kid.to_string());
                j
            })
            .collect(),
    };
    serde_json::to_string(&set).expect("json")
}

#[test]
fn hs256_token_maps_claims_to_the_user_context() {
    let v = Verifier::new(&hmac_settings(), &[]);
    assert!(v.problems().is_empty(), "{:?}", v.problems());
    let user = v.verify(&hs(&claims())).expect("valid");
    assert_eq!(user.user_id, "user-1");
    assert_eq!(user.roles, ["user"]);
    assert_eq!(user.permissions, ["users:read", "users:write"]);
    let mut h = http::HeaderMap::new();
    user.apply_headers(&mut h);
    assert_eq!(h["x-user-id"], "user-1");
    assert_eq!(h["x-user-roles"], "user");
    assert_eq!(h["x-user-permissions"], "users:read,users:write");
}

#[test]
fn user_id_falls_back_and_lists_take_every_shape() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let mut c = claims();
    c.as_object_mut().expect("object").remove("sub");
    c["user_id"] = json!("test-user");
    c["roles"] = json!("user, admin,ops");
    c["permissions"] = json!(["a:b", " c:d "]);
    let user = v.verify(&hs(&c)).expect("valid");
    assert_eq!(user.user_id, "test-user");
    assert_eq!(user.roles, ["user", "admin", "ops"]);
    assert_eq!(user.permissions, ["a:b", "c:d"]);

    c.as_object_mut().expect("object").remove("user_id");
    assert!(matches!(v.verify(&hs(&c)), Err(AuthError::Claims(_))));

    let mut c = claims();
    c["roles"] = json!(["user,admin"]);
    assert!(
        matches!(v.verify(&hs(&c)), Err(AuthError::Claims(_))),
        "a comma inside a role"
    );
    c["roles"] = json!({"not": "a list"});
    assert!(matches!(v.verify(&hs(&c)), Err(AuthError::Claims(_))));
    c["roles"] = json!(["user"]);
    c["sub"] = json!("evil\nheader");
    assert!(matches!(v.verify(&hs(&c)), Err(AuthError::Claims(_))));
}

#[test]
fn claim_names_can_be_mapped_and_nested() {
    let mut s = hmac_settings();
    s.claims = ClaimNames {
        user_id: vec!["uid".into()],
        roles: "realm_access.roles".into(),
        permissions: "scope".into(),
    };
    let v = Verifier::new(&s, &[]);
    let mut c = claims();
    c["uid"] = json!(42);
    c["realm_access"] = json!({"roles": ["admin"]});
    c["scope"] = json!("read write");
    let user = v.verify(&hs(&c)).expect("valid");
    assert_eq!(user.user_id, "42");
    assert_eq!(user.roles, ["admin"]);
    assert_eq!(user.permissions, ["read", "write"]);
}

#[test]
fn alg_none_is_refused() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    for t in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        let e = v.verify(&t).expect_err("alg none");
        assert!(matches!(e, AuthError::Malformed(_)), "{e}");
    }
    let header = b64(br#"{"alg":"None"}"#);
    assert!(v.verify(&format!("{header}.{payload}.")).is_err());
}

#[test]
fn hmac_signed_with_the_rsa_public_key_is_refused() {
    let public = fixture!("rsa-a.pub.pem");
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(public.as_bytes()),
        &claims(),
        None,
    );
    // Configured RS256: the family is wrong.
    let s = with_ref(settings(Some(Algorithm::RS256)), None);
    let v = Verifier::new(&s, &[secret(&[("public.pem", public)])]);
    assert!(v.problems().is_empty(), "{:?}", v.problems());
    assert!(matches!(v.verify(&forged), Err(AuthError::Algorithm(_))));
    // No algorithm configured: the RSA key still never verifies an HMAC token.
    let s = with_ref(settings(None), None);
    let v = Verifier::new(&s, &[secret(&[("public.pem", public)])]);
    assert!(matches!(v.verify(&forged), Err(AuthError::Algorithm(_))));
    // And a genuine RS256 token passes.
    let ok = sign(Algorithm::RS256, &rsa_a(), &claims(), None);
    assert_eq!(v.verify(&ok).expect("rs256").user_id, "user-1");
}

#[test]
fn expiry_and_not_before_honour_the_leeway() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let mut c = claims();
    c["exp"] = json!(now() - 30);
    assert!(v.verify(&hs(&c)).is_ok(), "expired within the leeway");
    c["exp"] = json!(now() - 120);
    assert_eq!(v.verify(&hs(&c)).expect_err("expired"), AuthError::Expired);
    let mut c = claims();
    c["nbf"] = json!(now() + 30);
    assert!(v.verify(&hs(&c)).is_ok(), "nbf within the leeway");
    c["nbf"] = json!(now() + 3600);
    assert_eq!(v.verify(&hs(&c)).expect_err("nbf"), AuthError::NotYetValid);
    let mut c = claims();
    c.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        v.verify(&hs(&c)).expect_err("no exp"),
        AuthError::MissingClaim("exp".into())
    );
    c["exp"] = json!("tomorrow");
    assert!(matches!(
        v.verify(&hs(&c)),
        Err(AuthError::MissingClaim(_) | AuthError::Malformed(_))
    ));
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let mut c = claims();
    c["iss"] = json!("someone-else");
    assert_eq!(v.verify(&hs(&c)).expect_err("iss"), AuthError::Issuer);
    let mut c = claims();
    c["aud"] = json!("other-api");
    assert_eq!(v.verify(&hs(&c)).expect_err("aud"), AuthError::Audience);
    c["aud"] = json!(["other-api", "api-gateway"]);
    assert!(v.verify(&hs(&c)).is_ok(), "one of several audiences");
    let mut c = claims();
    c.as_object_mut().expect("object").remove("iss");
    assert_eq!(
        v.verify(&hs(&c)).expect_err("no iss"),
        AuthError::MissingClaim("iss".into())
    );

    // Neither configured: tokens without them (and with any of them) verify.
    let mut s = hmac_settings();
    s.issuer = None;
    s.audience = None;
    let v = Verifier::new(&s, &[]);
    let c = json!({"sub": "u", "exp": now() + 60});
    assert!(v.verify(&hs(&c)).is_ok());
    assert!(v.verify(&hs(&claims())).is_ok());
}

#[test]
fn wrong_key_and_tampering_are_refused() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
        &claims(),
        None,
    );
    assert_eq!(
        v.verify(&other).expect_err("wrong key"),
        AuthError::InvalidSignature
    );
    let good = hs(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["roles"] = json!(["admin"]);
    let forged_payload = b64(c.to_string().as_bytes());
    parts[1] = &forged_payload;
    assert_eq!(
        v.verify(&parts.join(".")).expect_err("tampered"),
        AuthError::InvalidSignature
    );
}

#[test]
fn malformed_tokens_are_refused_without_panic() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let cases = [
        "garbage".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "!!!.###.$$$".to_string(),
        format!("{header}.!!!notbase64.sig"),
        format!("{header}.{}.sig", b64(b"not json")),
        format!("{header}.{}.sig", b64(b"[1,2,3]")),
        format!("{}.{}.sig", b64(b"{\"alg\":"), b64(b"{}")),
        format!("{header}.{}.", b64(b"{}")),
        "..".to_string(),
        "\u{00e9}.\u{00e9}.\u{00e9}".to_string(),
    ];
    for t in &cases {
        let e = v.verify(t).expect_err(t);
        assert!(!e.is_forbidden(), "{t}: {e}");
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let mut c = claims();
    c["padding"] = json!("x".repeat(20 * 1024));
    let big = hs(&c);
    assert!(big.len() > 20 * 1024);
    assert_eq!(v.verify(&big).expect_err("too large"), AuthError::TooLarge);
    assert_eq!(
        v.verify_uncached(&big).expect_err("too large"),
        AuthError::TooLarge
    );
}

#[test]
fn tokens_come_from_the_bearer_header_and_only_upgrades_may_use_the_query() {
    let token = hs(&claims());
    let mut h = http::HeaderMap::new();
    assert_eq!(extract_token(&h, None, false), Err(AuthError::MissingToken));
    let q = format!("a=1&token={token}");
    assert_eq!(extract_token(&h, Some(&q), false), Err(AuthError::QueryToken));
    assert_eq!(extract_token(&h, Some(&q), true), Ok(token.as_str()));
    let q = format!("access_token={token}");
    assert_eq!(extract_token(&h, Some(&q), false), Err(AuthError::QueryToken));
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bearer {token}")).expect("value"),
    );
    assert_eq!(extract_token(&h, Some("token=other"), false), Ok(token.as_str()));
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dTpw"),
    );
    assert_eq!(extract_token(&h, None, false), Err(AuthError::MissingToken));
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer   "));
    assert_eq!(extract_token(&h, None, false), Err(AuthError::MissingToken));
}

#[test]
fn rbac_needs_any_role_and_every_permission() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let user = v.verify(&hs(&claims())).expect("valid");
    let policy = |roles: &[&str], perms: &[&str]| AuthPolicy {
        required: true,
        roles: roles.iter().map(|s| s.to_string()).collect(),
        permissions: perms.iter().map(|s| s.to_string()).collect(),
    };
    assert!(authorize(&policy(&[], &[]), &user).is_ok());
    assert!(authorize(&policy(&["admin", "user"], &[]), &user).is_ok());
    assert!(authorize(&policy(&["user"], &["users:read", "users:write"]), &user).is_ok());
    let e = authorize(&policy(&["admin"], &[]), &user).expect_err("role");
    assert!(e.is_forbidden() && e.to_string().contains("admin"), "{e}");
    let e = authorize(&policy(&["user"], &["users:read", "users:delete"]), &user).expect_err("perm");
    assert!(e.is_forbidden() && e.to_string().contains("users:delete"), "{e}");
}

#[test]
fn service_account_tokens_carry_the_service_role() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let c = json!({
        "sub": "user-service", "exp": now() + 3600, "iat": now(),
        "iss": "auth-service", "aud": "api-gateway",
        "roles": ["service"], "permissions": ["users:read", "users:write"],
    });
    let user = v.verify(&hs(&c)).expect("service token");
    assert_eq!(user.user_id, "user-service");
    let policy = AuthPolicy {
        required: true,
        roles: vec!["service".into()],
        permissions: vec!["users:read".into()],
    };
    assert!(authorize(&policy, &user).is_ok());
}

#[test]
fn every_asymmetric_algorithm_verifies_with_a_pem_public_key() {
    let cases: [(Algorithm, EncodingKey, &str); 7] = [
        (Algorithm::RS256, rsa_a(), fixture!("rsa-a.pub.pem")),
        (Algorithm::RS384, rsa_a(), fixture!("rsa-a.pub.pem")),
        (Algorithm::RS512, rsa_a(), fixture!("rsa-a.pub.pem")),
        (Algorithm::PS256, rsa_a(), fixture!("rsa-a.pub.pem")),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(fixture!("ec256.key").as_bytes()).expect("ec"),
            fixture!("ec256.pub.pem"),
        ),
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(fixture!("ec384.key").as_bytes()).expect("ec"),
            fixture!("ec384.pub.pem"),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(fixture!("ed25519.key").as_bytes()).expect("ed"),
            fixture!("ed25519.pub.pem"),
        ),
    ];
    for (alg, key, public) in cases {
        let s = with_ref(settings(Some(alg)), None);
        let v = Verifier::new(&s, &[secret(&[("public.pem", public)])]);
        assert!(v.problems().is_empty(), "{alg:?}: {:?}", v.problems());
        let t = sign(alg, &key, &claims(), None);
        assert_eq!(v.verify(&t).expect("verifies").user_id, "user-1", "{alg:?}");
        // The same token with another family's key set: refused.
        let hv = Verifier::new(&hmac_settings(), &[]);
        assert!(hv.verify(&t).is_err(), "{alg:?} against an HMAC key set");
    }
    // ES256 key, ES384 token claimed: the curve binds the algorithm.
    let s = with_ref(settings(None), None);
    let v = Verifier::new(&s, &[secret(&[("public.pem", fixture!("ec256.pub.pem"))])]);
    let es384 = EncodingKey::from_ec_pem(fixture!("ec384.key").as_bytes()).expect("ec");
    assert!(v
        .verify(&sign(Algorithm::ES384, &es384, &claims(), None))
        .is_err());
}

#[test]
fn jwks_selects_by_kid_and_holds_old_and_new_keys_during_rotation() {
    let a = rsa_a();
    let b = rsa_b();
    let set = jwks(&[(&a, Algorithm::RS256, "old"), (&b, Algorithm::RS256, "new")]);
    let s = with_ref(settings(Some(Algorithm::RS256)), None);
    let v = Verifier::new(&s, &[secret(&[("jwks", &set)])]);
    assert!(v.problems().is_empty(), "{:?}", v.problems());
    assert_eq!(v.key_ids(), ["old", "new"]);
    assert!(v
        .verify(&sign(Algorithm::RS256, &a, &claims(), Some("old")))
        .is_ok());
    assert!(v
        .verify(&sign(Algorithm::RS256, &b, &claims(), Some("new")))
        .is_ok());
    // A kid that names the other key: no fallback to the right one, refused.
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, &a, &claims(), Some("new")))
            .expect_err("wrong kid"),
        AuthError::InvalidSignature
    );
    // No kid, or an unknown one: every key of the family is tried.
    assert!(v.verify(&sign(Algorithm::RS256, &b, &claims(), None)).is_ok());
    assert!(v
        .verify(&sign(Algorithm::RS256, &b, &claims(), Some("gone")))
        .is_ok());
    // JWK `alg` RS256 binds the key: RS512 with the same key is refused.
    assert!(v
        .verify(&sign(Algorithm::RS512, &a, &claims(), Some("old")))
        .is_err());
}

#[test]
fn hmac_keys_can_rotate_through_an_oct_jwks() {
    let old = EncodingKey::from_secret(b"the-old-hmac-secret-of-32-bytes-min");
    let new = EncodingKey::from_secret(b"the-new-hmac-secret-of-32-bytes-min");
    let set = jwks(&[(&old, Algorithm::HS256, "k1"), (&new, Algorithm::HS256, "k2")]);
    let s = with_ref(settings(Some(Algorithm::HS256)), Some("keys"));
    let v = Verifier::new(&s, &[secret(&[("keys", &set)])]);
    assert!(v.problems().is_empty(), "{:?}", v.problems());
    assert!(v
        .verify(&sign(Algorithm::HS256, &old, &claims(), Some("k1")))
        .is_ok());
    assert!(v
        .verify(&sign(Algorithm::HS256, &new, &claims(), Some("k2")))
        .is_ok());
}

#[test]
fn secret_entries_and_problems() {
    // `key` picks one entry; a plain value is an HMAC secret.
    let s = with_ref(settings(Some(Algorithm::HS256)), Some("secret"));
    let v = Verifier::new(&s, &[secret(&[("secret", SECRET), ("other", "ignored")])]);
    assert!(v.problems().is_empty(), "{:?}", v.problems());
    assert!(v.verify(&hs(&claims())).is_ok());

    // A missing Secret: reported, and tokens get 401.
    let v = Verifier::new(&s, &[]);
    assert!(!v.has_keys());
    assert!(v.problems()[0].contains("does not exist"), "{:?}", v.problems());
    assert_eq!(v.verify(&hs(&claims())).expect_err("no key"), AuthError::NoKey);

    // A missing key in the Secret.
    let v = Verifier::new(&s, &[secret(&[("other", SECRET)])]);
    assert!(v.problems()[0].contains("no key `secret`"), "{:?}", v.problems());

    // Broken entries beside a good one: the good one works.
    let s = with_ref(settings(None), None);
    let v = Verifier::new(
        &s,
        &[secret(&[
            (
                "broken.pem",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            ("private.pem", fixture!("rsa-a.key")),
            ("jwks", "{not json"),
            ("good.pem", fixture!("rsa-a.pub.pem")),
        ])],
    );
    assert_eq!(v.problems().len(), 3, "{:?}", v.problems());
    assert!(v.problems().iter().any(|p| p.contains("private key")));
    assert_eq!(v.key_ids(), ["good"]);
    assert!(v
        .verify(&sign(Algorithm::RS256, &rsa_a(), &claims(), None))
        .is_ok());

    // A key of another family than the configured algorithm: reported, unused.
    let s = with_ref(settings(Some(Algorithm::HS256)), None);
    let v = Verifier::new(&s, &[secret(&[("public.pem", fixture!("rsa-a.pub.pem"))])]);
    assert!(!v.has_keys());
    assert!(v.problems()[0].contains("cannot verify"), "{:?}", v.problems());

    // Weak secrets are refused, unless auth.jwt.allow_weak_secret lets them through with a
    // warning; in a Secret as well as inline.
    let mut s = hmac_settings();
    s.inline_secret = Some("bench-secret".into());
    let v = Verifier::new(&s, &[]);
    assert!(!v.has_keys());
    assert!(v.problems()[0].contains("refused"), "{:?}", v.problems());
    let v = Verifier::new(
        &with_ref(settings(Some(Algorithm::HS256)), None),
        &[secret(&[("secret", "short")])],
    );
    assert!(!v.has_keys());
    assert!(v.problems()[0].contains("5 bytes refused"), "{:?}", v.problems());
    s.allow_weak_secret = true;
    let v = Verifier::new(&s, &[]);
    assert!(v.has_keys());
    assert!(v.problems()[0].contains("weak"), "{:?}", v.problems());

    // No key at all.
    let mut s = hmac_settings();
    s.inline_secret = None;
    let v = Verifier::new(&s, &[]);
    assert!(!v.has_keys() && !v.problems().is_empty());
}

#[test]
fn settings_come_from_the_seed_section() {
    let cfg = crate::settings::GatewayConfig::from_yaml_str(
        "auth:\n  jwt:\n    secret: \"${JWT_SECRET}\"\n    algorithm: HS256\n    issuer: auth-service\n    \
         audience: api-gateway\n    leeway: 30\n    claims: {user_id: uid, roles: groups}\n",
        &|k| (k == "JWT_SECRET").then(|| SECRET.to_string()),
    )
    .expect("config");
    let s = JwtSettings::from_config(&cfg.auth)
        .expect("valid")
        .expect("present");
    assert_eq!(s.inline_secret.as_deref(), Some(SECRET));
    assert_eq!(s.algorithm, Some(Algorithm::HS256));
    assert_eq!(s.leeway, 30);
    assert_eq!(s.claims.user_id, ["uid"]);
    assert_eq!(s.claims.roles, "groups");
    assert_eq!(s.claims.permissions, "permissions");
    assert!(!format!("{s:?}").contains(SECRET), "the secret is redacted");

    let bad =
        crate::settings::GatewayConfig::from_yaml_str("auth:\n  jwt:\n    algorithm: none\n", &|_| None)
            .expect("config");
    assert!(JwtSettings::from_config(&bad.auth).is_err());
    let none = crate::settings::GatewayConfig::default();
    assert_eq!(JwtSettings::from_config(&none.auth), Ok(None));
}

#[test]
fn a_short_hmac_secret_stops_the_start_unless_allowed() {
    let cfg = |extra: &str| {
        crate::settings::GatewayConfig::from_yaml_str(
            &format!("auth:\n  jwt:\n    secret: \"${{JWT_SECRET}}\"\n{extra}"),
            &|k| (k == "JWT_SECRET").then(|| "change-me".to_string()),
        )
        .expect("config")
    };
    let err = JwtSettings::from_config(&cfg("").auth).expect_err("9 bytes");
    assert_eq!(err, SettingsError::WeakSecret(9));
    assert!(err.to_string().contains("at least 32"), "{err}");
    let s = JwtSettings::from_config(&cfg("    allow_weak_secret: true\n").auth)
        .expect("allowed")
        .expect("present");
    assert!(s.allow_weak_secret);
    // `JWT_SECRET` alone, with no auth.jwt in the file: the weak key is refused and reported,
    // not used, and the gateway starts (protected routes answer 401).
    let mut env_only = crate::settings::GatewayConfig::from_yaml_str("{}", &|_| None).expect("config");
    env_only
        .apply_env(&|k| (k == "JWT_SECRET").then(|| "bench-secret".to_string()))
        .expect("env");
    let s = JwtSettings::from_config(&env_only.auth)
        .expect("starts")
        .expect("present");
    let v = Verifier::new(&s, &[]);
    assert!(!v.has_keys());
    assert!(v.problems()[0].contains("12 bytes refused"), "{:?}", v.problems());
    // A PEM public key inline is not an HMAC secret.
    let pem = crate::settings::GatewayConfig::from_yaml_str(
        "auth:\n  jwt:\n    secret: \"-----BEGIN PUBLIC KEY-----\"\n",
        &|_| None,
    )
    .expect("config");
    assert!(JwtSettings::from_config(&pem.auth).is_ok());
}

#[test]
fn the_cache_serves_verified_tokens_until_they_expire() {
    let v = Verifier::new(&hmac_settings(), &[]);
    let t = hs(&claims());
    let first = v.verify(&t).expect("valid");
    let second = v.verify(&t).expect("cached");
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(v.cached_tokens(), 1);
    // Failures are not cached.
    let _ = v.verify("garbage");
    assert_eq!(v.cached_tokens(), 1);

    let cache = TokenCache::new(32);
    let n = now();
    cache.insert("t", first.clone(), n - 1, n);
    assert!(cache.get("t", n).is_none(), "already expired: not stored");
    cache.insert("t", first.clone(), n + 10, n);
    assert!(cache.get("t", n).is_some());
    assert!(cache.get("t", n + 11).is_none(), "expired");
    assert!(cache.is_empty(), "expired entries leave on lookup");
    for i in 0..1000 {
        cache.insert(&format!("t{i}"), first.clone(), n + 10, n);
    }
    assert!(cache.len() <= 32, "bounded: {}", cache.len());
    let off = TokenCache::new(0);
    off.insert("t", first, n + 10, n);
    assert!(off.get("t", n).is_none());
}
