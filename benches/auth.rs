//! JWT verification cost: full verification (per algorithm) against a cache hit, and the
//! whole per-request auth step of the proxy (header → verify → RBAC → X-User-* headers).
//!
//! `cargo bench --bench auth`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::auth::AuthPolicy;
use gatehouse::auth::{self, ClaimNames, JwtSettings, SecretRef, Verifier};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::json;

const SECRET: &str = "bench-secret-bench-secret-bench-secret";

fn settings(alg: Algorithm, inline: Option<&str>, secret_ref: bool) -> JwtSettings {
    JwtSettings {
        inline_secret: inline.map(str::to_string),
        secret_ref: secret_ref.then(|| SecretRef {
            namespace: "default".into(),
            name: "jwt".into(),
            key: None,
        }),
        algorithm: Some(alg),
        issuer: Some("auth-service".into()),
        audience: Some("api-gateway".into()),
        leeway: 60,
        claims: ClaimNames::default(),
        allow_weak_secret: false,
    }
}

fn pem_secret(pem: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("jwt".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some([("public.pem".to_string(), ByteString(pem.as_bytes().to_vec()))].into()),
        ..Default::default()
    }
}

fn token(alg: Algorithm, key: &EncodingKey) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "sub": "user-1", "exp": now + 3600, "iat": now, "iss": "auth-service", "aud": "api-gateway",
        "roles": ["user"], "permissions": ["users:read", "users:write"],
    });
    encode(&Header::new(alg), &claims, key).expect("sign")
}

fn verification(c: &mut Criterion) {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");
    let read = |f: &str| std::fs::read_to_string(format!("{fixtures}{f}")).expect("fixture");
    let cases = [
        (
            "HS256",
            Verifier::new(&settings(Algorithm::HS256, Some(SECRET), false), &[]),
            token(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes())),
        ),
        (
            "RS256",
            Verifier::new(
                &settings(Algorithm::RS256, None, true),
                &[pem_secret(&read("rsa-a.pub.pem"))],
            ),
            token(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(read("rsa-a.key").as_bytes()).expect("key"),
            ),
        ),
        (
            "ES256",
            Verifier::new(
                &settings(Algorithm::ES256, None, true),
                &[pem_secret(&read("ec256.pub.pem"))],
            ),
            token(
                Algorithm::ES256,
                &EncodingKey::from_ec_pem(read("ec256.key").as_bytes()).expect("key"),
            ),
        ),
    ];
    let mut g = c.benchmark_group("verify");
    for (name, verifier, token) in &cases {
        verifier.verify(token).expect("valid");
        g.bench_function(format!("{name}/uncached"), |b| {
            b.iter(|| verifier.verify_uncached(black_box(token)).expect("valid"))
        });
        g.bench_function(format!("{name}/cached"), |b| {
            b.iter(|| verifier.verify(black_box(token)).expect("valid"))
        });
    }
    g.finish();

    // The proxy's whole auth step on a protected route, cache warm.
    let (_, verifier, token) = &cases[0];
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let policy = AuthPolicy {
        required: true,
        roles: vec!["admin".into(), "user".into()],
        permissions: vec!["users:read".into()],
    };
    let mut upstream = HeaderMap::new();
    c.bench_function("request/HS256 cached + RBAC + X-User-*", |b| {
        b.iter(|| {
            let user = auth::authenticate(Some(verifier), &policy, black_box(&headers), None, false)
                .expect("allowed");
            user.apply_headers(&mut upstream);
        })
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
