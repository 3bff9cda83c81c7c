//! The verification keys: the inline secret plus the keys of the referenced Secret.
//!
//! A Secret may carry several entries: `secret` (an HMAC secret), `jwks` / `jwks.json` (a JSON
//! Web Key Set) and `*.pem` (PEM public keys; `new.pem` has the kid `new`). With
//! `secret_ref.key`, only that entry is read, interpreted by its content. Every key remembers
//! its family (and its exact algorithm where the JWK or curve says), so that a key never
//! verifies a token of another family: an RSA public key is never an HMAC secret.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use k8s_openapi::api::core::v1::Secret;

use super::settings::{JwtSettings, SecretRef, MIN_HMAC_SECRET_LEN};

/// One verification key.
pub struct Key {
    pub kid: Option<String>,
    pub family: AlgorithmFamily,
    /// Set when the key is bound to one algorithm (JWK `alg`, or an EC curve).
    pub alg: Option<Algorithm>,
    /// Where it came from, for messages (`inline secret`, `Secret default/jwt key jwks#2`).
    pub source: String,
    pub decoding: DecodingKey,
    /// The validation rules for this key: its algorithms, `exp`/`nbf`/`iss`/`aud`, leeway.
    pub validation: Validation,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.alg.is_none_or(|a| a == alg)
    }
}

/// A key before validation rules are attached.
struct Raw {
    kid: Option<String>,
    family: AlgorithmFamily,
    alg: Option<Algorithm>,
    source: String,
    decoding: DecodingKey,
}

/// Builds the keys for `settings` from the inline secret and `secrets`. Problems (a missing
/// Secret, a malformed key, a key of the wrong family) are returned as messages; the keys
/// that could be read are used.
pub fn build(settings: &JwtSettings, secrets: &[Secret]) -> (Vec<Key>, Vec<String>) {
    let mut raw = Vec::new();
    let mut problems = Vec::new();
    if let Some(s) = &settings.inline_secret {
        read_entry(
            "secret",
            s.as_bytes(),
            "inline secret (auth.jwt.secret)",
            settings.allow_weak_secret,
            &mut raw,
            &mut problems,
        );
    }
    if let Some(r) = &settings.secret_ref {
        read_secret(r, secrets, settings.allow_weak_secret, &mut raw, &mut problems);
    }
    if settings.inline_secret.is_none() && settings.secret_ref.is_none() {
        problems.push("auth.jwt has no key: set auth.jwt.secret (JWT_SECRET) or auth.jwt.secret_ref".into());
    }
    let family = settings.family();
    let keys = raw
        .into_iter()
        .filter(|k| match family {
            Some(f) if f != k.family => {
                problems.push(format!(
                    "{}: a {:?} key cannot verify {:?} tokens (auth.jwt.algorithm); it is not used",
                    k.source,
                    k.family,
                    settings.algorithm.unwrap_or_default()
                ));
                false
            }
            _ => true,
        })
        .map(|k| {
            let validation = validation_for(settings, k.family, k.alg);
            Key {
                kid: k.kid,
                family: k.family,
                alg: k.alg,
                source: k.source,
                decoding: k.decoding,
                validation,
            }
        })
        .collect();
    (keys, problems)
}

fn validation_for(settings: &JwtSettings, family: AlgorithmFamily, alg: Option<Algorithm>) -> Validation {
    let mut v = match alg {
        Some(a) => Validation::new(a),
        None => Validation::new_for_family(family),
    };
    v.leeway = settings.leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(iss) = &settings.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    match &settings.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

fn read_secret(
    r: &SecretRef,
    secrets: &[Secret],
    allow_weak: bool,
    out: &mut Vec<Raw>,
    problems: &mut Vec<String>,
) {
    let found = secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(r.name.as_str())
            && s.metadata
                .namespace
                .as_deref()
                .unwrap_or(super::settings::DEFAULT_SECRET_NAMESPACE)
                == r.namespace
    });
    let Some(secret) = found else {
        problems.push(format!(
            "Secret {}/{} (auth.jwt.secret_ref) does not exist",
            r.namespace, r.name
        ));
        return;
    };
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let origin = format!("Secret {}/{}", r.namespace, r.name);
    match &r.key {
        Some(k) => match data.get(k) {
            Some(v) => read_entry(k, &v.0, &format!("{origin} key `{k}`"), allow_weak, out, problems),
            None => problems.push(format!("{origin} has no key `{k}` (auth.jwt.secret_ref.key)")),
        },
        None => {
            let before = out.len();
            for (k, v) in data {
                if k == "secret" || k == "jwks" || k == "jwks.json" || k.ends_with(".pem") {
                    read_entry(k, &v.0, &format!("{origin} key `{k}`"), allow_weak, out, problems);
                }
            }
            if out.len() == before && !problems.iter().any(|p| p.starts_with(&origin)) {
                problems.push(format!(
                    "{origin} holds no JWT key (expected `secret`, `jwks` or `*.pem` entries)"
                ));
            }
        }
    }
}

/// Reads one entry: a JWKS (or one JWK) when it is JSON, a PEM public key when it is PEM,
/// else an HMAC secret.
fn read_entry(
    name: &str,
    bytes: &[u8],
    source: &str,
    allow_weak: bool,
    out: &mut Vec<Raw>,
    problems: &mut Vec<String>,
) {
    let trimmed = bytes.trim_ascii();
    if trimmed.starts_with(b"{") {
        read_jwks(trimmed, source, out, problems);
    } else if trimmed.starts_with(b"-----BEGIN") {
        let kid = name.strip_suffix(".pem").filter(|k| !k.is_empty() && *k != name);
        match read_pem(trimmed) {
            Ok((family, alg, decoding)) => out.push(Raw {
                kid: kid.map(str::to_string),
                family,
                alg,
                source: source.to_string(),
                decoding,
            }),
            Err(e) => problems.push(format!("{source}: {e}")),
        }
    } else if name.ends_with(".pem") {
        problems.push(format!("{source}: not a PEM document"));
    } else if trimmed.is_empty() {
        problems.push(format!("{source}: empty"));
    } else {
        if trimmed.len() < MIN_HMAC_SECRET_LEN {
            if !allow_weak {
                problems.push(format!(
                    "{source}: HMAC secret of {} bytes refused (at least {MIN_HMAC_SECRET_LEN}, \
                     RFC 7518 §3.2; auth.jwt.allow_weak_secret accepts it)",
                    trimmed.len()
                ));
                return;
            }
            problems.push(format!(
                "{source}: weak HMAC secret of {} bytes (use at least {MIN_HMAC_SECRET_LEN}); it is \
                 used because auth.jwt.allow_weak_secret is set",
                trimmed.len()
            ));
        }
        out.push(Raw {
            kid: None,
            family: AlgorithmFamily::Hmac,
            alg: None,
            source: source.to_string(),
            decoding: DecodingKey::from_secret(trimmed),
        });
    }
}

/// A key the verifier cannot use (the text follows where the key came from).
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("is a private key; the gateway needs only the public key")]
    PrivateKey,
    #[error("an EC key on a curve other than P-256 or P-384")]
    PemCurve,
    #[error("not an RSA, EC (P-256/P-384) or Ed25519 public key in PEM")]
    NotPublicKey,
    #[error("`alg` {0} is not a signature algorithm")]
    NotSignature(String),
    #[error("curve {0} is not supported ({1})")]
    Curve(String, &'static str),
    #[error("unsupported key type")]
    KeyType,
    #[error("`alg` {0} does not fit the key")]
    Mismatch(String),
    #[error("cannot read the key: {0}")]
    Unreadable(jsonwebtoken::errors::Error),
    #[error("an empty HMAC key")]
    EmptyHmac,
}

fn read_pem(pem: &[u8]) -> Result<(AlgorithmFamily, Option<Algorithm>, DecodingKey), KeyError> {
    let header = pem.split(|b| *b == b'\n').next().unwrap_or_default();
    if header.windows(7).any(|w| w == b"PRIVATE") {
        return Err(KeyError::PrivateKey);
    }
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((AlgorithmFamily::Rsa, None, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let alg = match k.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => return Err(KeyError::PemCurve),
        };
        return Ok((AlgorithmFamily::Ec, Some(alg), k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((AlgorithmFamily::Ed, Some(Algorithm::EdDSA), k));
    }
    Err(KeyError::NotPublicKey)
}

fn read_jwks(json: &[u8], source: &str, out: &mut Vec<Raw>, problems: &mut Vec<String>) {
    let doc: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{source}: invalid JSON: {e}"));
            return;
        }
    };
    let keys = match doc.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.clone(),
        Some(_) => {
            problems.push(format!("{source}: `keys` must be an array"));
            return;
        }
        // A single JWK.
        None => vec![doc],
    };
    for (i, k) in keys.into_iter().enumerate() {
        let here = format!("{source} keys[{i}]");
        let jwk: Jwk = match serde_json::from_value(k) {
            Ok(j) => j,
            Err(e) => {
                problems.push(format!("{here}: not a supported JWK: {e}"));
                continue;
            }
        };
        let here = match &jwk.common.key_id {
            Some(kid) => format!("{source} kid `{kid}`"),
            None => here,
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue; // an encryption key in a shared set: not ours to use
        }
        match read_jwk(&jwk) {
            Ok((family, alg, decoding)) => out.push(Raw {
                kid: jwk.common.key_id.clone(),
                family,
                alg,
                source: here,
                decoding,
            }),
            Err(e) => problems.push(format!("{here}: {e}")),
        }
    }
}

fn read_jwk(jwk: &Jwk) -> Result<(AlgorithmFamily, Option<Algorithm>, DecodingKey), KeyError> {
    let declared = match jwk.common.key_algorithm {
        Some(a) => Some(signature_algorithm(a).ok_or_else(|| KeyError::NotSignature(format!("{a:?}")))?),
        None => None,
    };
    let (family, implied) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (AlgorithmFamily::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(Algorithm::ES384)),
            ref c => return Err(KeyError::Curve(format!("{c:?}"), "P-256, P-384")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => (AlgorithmFamily::Ed, Some(Algorithm::EdDSA)),
            ref c => return Err(KeyError::Curve(format!("{c:?}"), "Ed25519")),
        },
        AlgorithmParameters::OctetKey(_) => (AlgorithmFamily::Hmac, None),
        _ => return Err(KeyError::KeyType),
    };
    if let Some(a) = declared {
        if a.family() != family || implied.is_some_and(|i| i != a) {
            return Err(KeyError::Mismatch(format!("{a:?}")));
        }
    }
    let decoding = DecodingKey::from_jwk(jwk).map_err(KeyError::Unreadable)?;
    if family == AlgorithmFamily::Hmac && decoding.try_get_as_bytes().map_or(0, <[u8]>::len) == 0 {
        return Err(KeyError::EmptyHmac);
    }
    Ok((family, declared.or(implied), decoding))
}

fn signature_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
