//! Compiling Secrets: the JWT verifier built from a key Secret, and route certificates whose
//! problems become conditions.

use jsonwebtoken::Algorithm;

use super::*;
use crate::api::{reasons, types, GatewayUpstream, RouteTls};
use crate::auth::tests::{jwks, rsa_a, secret, settings, with_ref};
use crate::tls::tests::{self_signed, tls_secret};

#[test]
fn compile_builds_the_verifier_from_options_and_secrets() {
    let private = GatewayRouteSpec {
        path: "/private".into(),
        upstream: "up".into(),
        required_roles: vec!["user".into()],
        ..Default::default()
    };
    let full = Snapshot {
        routes: vec![route("private", 1, private)],
        upstreams: vec![upstream("up", &["http://127.0.0.1:1"])],
        secrets: vec![secret(&[("jwks", &jwks(&[(&rsa_a(), Algorithm::RS256, "a")]))])],
        ..Default::default()
    };
    let options = CompileOptions {
        jwt: Some(with_ref(settings(Some(Algorithm::RS256)), None)),
        ..CompileOptions::default()
    };
    let compiled = compile(&full, &options);
    let auth = compiled.table.auth.as_ref().expect("verifier");
    assert_eq!(auth.key_ids(), ["a"]);
    let r = compiled.table.auth_report();
    assert_eq!(r.rejected, 0, "{:?}", r.lines);
    assert!(r.lines[0].starts_with("ok"), "{:?}", r.lines);

    // The Secret gone: the route stays programmed, the report rejects auth.jwt.
    let snapshot = Snapshot {
        secrets: Vec::new(),
        ..full.clone()
    };
    let compiled = compile(&snapshot, &options);
    assert_eq!(compiled.table.routes().len(), 1);
    let r = compiled.table.auth_report();
    assert_eq!(r.rejected, 1, "{:?}", r.lines);
    assert!(
        r.lines.iter().any(|l| l.contains("does not exist")),
        "{:?}",
        r.lines
    );

    // No auth.jwt at all with a protected route.
    let compiled = compile(&snapshot, &CompileOptions::default());
    assert!(compiled.table.auth.is_none());
    assert_eq!(compiled.table.auth_report().rejected, 1);
}

#[test]
fn compile_turns_secret_problems_into_conditions_and_keeps_the_route() {
    let (cert, key) = self_signed(&["good.example.com"]);
    let route = |name: &str, host: &str, secret: &str| -> GatewayRoute {
        let spec = GatewayRouteSpec {
            hosts: vec![host.into()],
            path: "/".into(),
            upstream: "u".into(),
            tls: Some(RouteTls {
                secret_name: secret.into(),
            }),
            ..Default::default()
        };
        route(name, 1, spec)
    };
    let upstream: GatewayUpstream = upstream("u", &["http://127.0.0.1:1"]);
    let snapshot = Snapshot {
        routes: vec![
            route("good", "good.example.com", "good"),
            route("missing", "missing.example.com", "nope"),
            route("bad", "bad.example.com", "bad"),
        ],
        upstreams: vec![upstream],
        secrets: vec![
            tls_secret("good", &cert, &key),
            tls_secret(
                "bad",
                &cert,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ],
        ..Default::default()
    };
    let options = CompileOptions {
        default_certificate: Some(("default".into(), "absent".into())),
        ..Default::default()
    };
    let c = compile(&snapshot, &options);
    let cond = |name: &str| {
        let v = c
            .verdicts
            .iter()
            .find(|v| v.kind == Kind::GatewayRoute && v.name == name)
            .unwrap();
        assert!(v.condition(types::PROGRAMMED).unwrap().is_true(), "{v}");
        v.condition(types::RESOLVED_REFS).unwrap().clone()
    };
    assert!(cond("good").is_true());
    assert_eq!(cond("missing").reason, reasons::SECRET_NOT_FOUND);
    assert_eq!(cond("bad").reason, reasons::INVALID_CERTIFICATE);
    assert!(c.table.tls.resolve(Some("good.example.com")).is_some());
    assert!(c.table.tls.resolve(Some("bad.example.com")).is_none());
    assert!(c.table.tls.default_problem.as_deref().unwrap().contains("absent"));
    assert_eq!(c.table.routes().len(), 3);
}

#[test]
fn compile_reads_the_queue_url_from_its_secret_and_reports_what_is_wrong() {
    use crate::routing::SecretUrl;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;
    let mq = |ns: &str, key: &str, value: &str| Secret {
        metadata: ObjectMeta {
            name: Some("mq".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    let options = |key: Option<&str>| CompileOptions {
        queue_url_secret: Some(crate::settings::SecretKeyRef {
            name: "mq".into(),
            namespace: Some("gw".into()),
            key: key.map(Into::into),
        }),
        ..CompileOptions::default()
    };
    let with = |secrets: Vec<Secret>| Snapshot {
        secrets,
        ..Default::default()
    };
    let url = "amqps://app:s3cret@mq.example:5671/%2f";
    // The key defaults to `url`; surrounding blanks are dropped.
    let compiled = compile(&with(vec![mq("gw", "url", &format!(" {url}\n"))]), &options(None));
    assert_eq!(compiled.table.queue_url, Some(SecretUrl::Ready(url.into())));
    // Debug never shows the URL.
    assert!(!format!("{:?}", compiled.table.queue_url).contains("s3cret"));
    let compiled = compile(&with(vec![mq("gw", "amqp", url)]), &options(Some("amqp")));
    assert_eq!(compiled.table.queue_url, Some(SecretUrl::Ready(url.into())));
    // Without a reference, nothing.
    let compiled = compile(&with(vec![mq("gw", "url", url)]), &CompileOptions::default());
    assert_eq!(compiled.table.queue_url, None);

    for (secrets, key, says) in [
        (
            vec![mq("other", "url", url)],
            None,
            "Secret gw/mq (url_secret_ref) does not exist",
        ),
        (vec![mq("gw", "url", url)], Some("amqp"), "has no key `amqp`"),
        (
            vec![mq("gw", "url", "redis://app:s3cret@h")],
            None,
            "key `url` must start with amqp:// or amqps://",
        ),
    ] {
        match compile(&with(secrets), &options(key)).table.queue_url {
            Some(SecretUrl::Problem(p)) => {
                assert!(p.contains(says), "{p}");
                assert!(!p.contains("s3cret"), "{p}");
            }
            other => panic!("{says}: {other:?}"),
        }
    }
}
