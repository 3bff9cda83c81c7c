#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;

use super::*;

/// A self-signed certificate for `names` and its key, both PEM.
pub(crate) fn self_signed(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn secret(ns: &str, name: &str, data: &[(&str, &[u8])]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(ns.into());
    s.type_ = Some("kubernetes.io/tls".into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    s
}

pub(crate) fn tls_secret(name: &str, cert: &str, key: &str) -> Secret {
    secret(
        "default",
        name,
        &[("tls.crt", cert.as_bytes()), ("tls.key", key.as_bytes())],
    )
}

/// The `privateKey` OCTET STRING of a PKCS#8 document: PKCS#1 for RSA, SEC1 for EC.
fn inner_key(pkcs8_pem: &str) -> Vec<u8> {
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
    let (_, seq, _) = certs_tlv(der.secret_der());
    let (_, _, rest) = certs_tlv(seq); // version
    let (_, _, rest) = certs_tlv(rest); // algorithm
    let (tag, key, _) = certs_tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn certs_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, hdr) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        (
            input[2..2 + n].iter().fold(0, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

fn pem(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

fn fingerprint(c: &CertifiedKey) -> Vec<u8> {
    c.end_entity_cert().unwrap().to_vec()
}

#[test]
fn keys_in_pkcs8_pkcs1_and_sec1_load() {
    // EC key: PKCS#8 as generated, and the same key as SEC1.
    let (cert, key) = self_signed(&["ec.example.com"]);
    assert!(load_server_cert(&tls_secret("a", &cert, &key)).is_ok());
    let sec1 = pem("EC PRIVATE KEY", &inner_key(&key));
    load_server_cert(&tls_secret("b", &cert, &sec1)).unwrap();

    // RSA key: PKCS#8 and PKCS#1.
    let rsa_pk8 = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa-2048.pk8.pem"
    ));
    let rsa = KeyPair::from_pem(rsa_pk8).unwrap();
    let rsa_cert = CertificateParams::new(vec!["rsa.example.com".to_string()])
        .unwrap()
        .self_signed(&rsa)
        .unwrap()
        .pem();
    load_server_cert(&tls_secret("c", &rsa_cert, rsa_pk8)).unwrap();
    let pkcs1 = pem("RSA PRIVATE KEY", &inner_key(rsa_pk8));
    let loaded = load_server_cert(&tls_secret("d", &rsa_cert, &pkcs1)).unwrap();
    assert!(loaded.not_after.unwrap() > unix_now());
}

#[test]
fn bad_material_is_explained() {
    let (cert, key) = self_signed(&["a.example.com"]);
    let (_, other_key) = self_signed(&["b.example.com"]);
    let err = |s: Secret| load_server_cert(&s).unwrap_err().to_string();
    assert!(err(tls_secret("x", &cert, &other_key)).contains("does not belong"));
    assert!(err(tls_secret("x", "garbage", &key)).contains("CERTIFICATE"));
    assert!(err(tls_secret("x", &cert, "garbage")).contains("tls.key"));
    assert!(err(secret("default", "x", &[("tls.crt", cert.as_bytes())])).contains("no tls.key"));
}

#[test]
fn not_after_is_read_from_the_leaf() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["x.example.com".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 7, 14);
    let cert = params.self_signed(&key).unwrap();
    // 2031-07-14T00:00:00Z
    assert_eq!(not_after(cert.der()), Some(1_941_753_600));
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let (c1, k1) = self_signed(&["api.example.com"]);
    let (c2, k2) = self_signed(&["*.example.com"]);
    let (c3, k3) = self_signed(&["default.local"]);
    let secrets = vec![
        tls_secret("api", &c1, &k1),
        tls_secret("wild", &c2, &k2),
        tls_secret("fallback", &c3, &k3),
    ];
    let mut b = StoreBuilder::new(&secrets);
    b.add_route("default", "api", &["api.example.com".into()])
        .unwrap();
    b.add_route("default", "wild", &["*.example.com".into()]).unwrap();
    // A newer route for a host already served keeps the older certificate.
    b.add_route("default", "wild", &["api.example.com".into()])
        .unwrap();
    b.set_default("default", "fallback");
    assert_eq!(
        b.add_route("default", "missing", &["m.example.com".into()])
            .unwrap_err()
            .0,
        reasons::SECRET_NOT_FOUND
    );
    let store = b.build();
    let fp = |sni: Option<&str>| fingerprint(&store.resolve(sni).unwrap());
    let (api, wild, def) = (fp(Some("api.example.com")), fp(Some("www.example.com")), fp(None));
    assert_ne!(api, wild);
    assert_ne!(wild, def);
    assert_eq!(fp(Some("API.Example.COM")), api);
    assert_eq!(fp(Some("example.com")), def);
    assert_eq!(fp(Some("other.org")), def);
    assert_eq!(store.expiry.len(), 3);
    assert!(StoreBuilder::new(&[]).build().resolve(Some("a")).is_none());
}

#[test]
fn upstream_ca_secrets_are_checked() {
    let (ca, _) = self_signed(&["ca.local"]);
    let secrets = vec![
        secret("default", "ca", &[("ca.crt", ca.as_bytes())]),
        secret("default", "bad-ca", &[("ca.crt", b"nope")]),
    ];
    let mut b = StoreBuilder::new(&secrets);
    b.add_upstream("default", Some("ca"), Some("svc.local"), "default/u")
        .unwrap();
    assert_eq!(
        b.add_upstream("default", Some("nope"), None, "default/v")
            .unwrap_err()
            .0,
        reasons::SECRET_NOT_FOUND
    );
    assert_eq!(
        b.add_upstream("default", Some("bad-ca"), None, "default/w")
            .unwrap_err()
            .0,
        reasons::INVALID_CERTIFICATE
    );
    let store = b.build();
    assert!(store.upstream("default/v").is_none());
    let u = store.upstream("default/u").unwrap();
    assert!(u.config.is_some());
    assert_eq!(
        u.server_name.as_ref().map(|n| n.to_str().to_string()),
        Some("svc.local".to_string())
    );
}

#[test]
fn a_claimed_host_never_gets_another_namespaces_wildcard_certificate() {
    let (c1, k1) = self_signed(&["*.example.com"]);
    let (c2, k2) = self_signed(&["default.local"]);
    let (c3, k3) = self_signed(&["*.shop.example.com"]);
    let mut wild = tls_secret("wild", &c1, &k1);
    wild.metadata.namespace = Some("team-b".into());
    let secrets = vec![
        wild,
        tls_secret("fallback", &c2, &k2),
        tls_secret("shop", &c3, &k3),
    ];
    let mut b = StoreBuilder::new(&secrets);
    // team-a owns shop.example.com and *.api.example.com, relying on the default certificate;
    // team-b serves *.example.com with its own; default owns *.shop.example.com with one.
    b.claim_host("shop.example.com", "team-a");
    b.claim_host("*.api.example.com", "team-a");
    b.claim_host("*.example.com", "team-b");
    b.add_route("team-b", "wild", &["*.example.com".into()]).unwrap();
    b.claim_host("*.shop.example.com", "default");
    b.add_route("default", "shop", &["*.shop.example.com".into()])
        .unwrap();
    // team-b also claims www.example.com: its own wildcard is fine there.
    b.claim_host("www.example.com", "team-b");
    b.set_default("default", "fallback");
    let store = b.build();
    let fp = |sni: &str| fingerprint(&store.resolve(Some(sni)).unwrap());
    let def = fingerprint(&store.resolve(None).unwrap());
    let wild = fp("other.example.com");
    assert_ne!(wild, def);
    assert_eq!(fp("shop.example.com"), def, "team-a's host keeps the default");
    assert_eq!(fp("x.api.example.com"), def, "so does its wildcard");
    assert_eq!(fp("www.example.com"), wild);
    assert_ne!(fp("a.shop.example.com"), wild);
}
