//! Who a connection speaks for. The hub depends only on the `TokenVerifier` seam; the gateway
//! wires it to the JWT settings (`auth.jwt`).
//!
//! `Hs256Verifier` is the hub's own minimal verifier for HMAC-signed tokens (signature, `exp`,
//! `nbf`, `iss`, `aud`, leeway); the user id comes from `sub`, falling back to `user_id`.

use std::sync::Arc;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::settings::JwtConfig;

/// The verified identity of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub roles: Vec<String>,
}

/// Turns a bearer token into an identity, or says why not.
pub trait TokenVerifier: Send + Sync {
    fn verify(&self, token: &str) -> Result<Identity, String>;
}

/// Refuses every token: the gateway has no `auth.jwt`.
pub struct NoVerifier;

impl TokenVerifier for NoVerifier {
    fn verify(&self, _token: &str) -> Result<Identity, String> {
        Err("token verification is not configured (auth.jwt)".into())
    }
}

/// HMAC (HS256/384/512) verification against `auth.jwt.secret`.
pub struct Hs256Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Hs256Verifier {
    pub fn new(
        secret: &[u8],
        algorithm: Algorithm,
        issuer: Option<&str>,
        audience: Option<&str>,
        leeway: u64,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        if let Some(iss) = issuer.filter(|s| !s.is_empty()) {
            validation.set_issuer(&[iss]);
        }
        match audience.filter(|s| !s.is_empty()) {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Hs256Verifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }
}

impl TokenVerifier for Hs256Verifier {
    fn verify(&self, token: &str) -> Result<Identity, String> {
        let data = decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        identity_from_claims(&data.claims)
    }
}

/// `sub`, else `user_id` (string or number); `roles` as a list or a comma-separated string.
pub fn identity_from_claims(claims: &Map<String, Value>) -> Result<Identity, String> {
    let user_id = ["sub", "user_id"]
        .iter()
        .find_map(|k| match claims.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .ok_or("the token carries no user id (sub or user_id)")?;
    let roles = match claims.get("roles") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Identity { user_id, roles })
}

/// The verifier for the static configuration: HMAC with `auth.jwt.secret`, or none.
pub fn from_config(jwt: Option<&JwtConfig>) -> Result<Arc<dyn TokenVerifier>, String> {
    let Some(jwt) = jwt else {
        return Ok(Arc::new(NoVerifier));
    };
    let Some(secret) = jwt.secret.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Arc::new(NoVerifier));
    };
    let algorithm = match jwt.algorithm.as_deref().unwrap_or("HS256") {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        other => {
            return Err(format!(
                "auth.jwt.algorithm {other}: the WebSocket hub verifies HMAC tokens (HS256/384/512)"
            ))
        }
    };
    Ok(Arc::new(Hs256Verifier::new(
        secret.as_bytes(),
        algorithm,
        jwt.issuer.as_deref(),
        jwt.audience.as_deref(),
        jwt.leeway.unwrap_or(60),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn exp() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + 3600
    }

    #[test]
    fn user_id_falls_back_and_roles_are_read() {
        let v = Hs256Verifier::new(b"k", Algorithm::HS256, None, None, 60);
        let id = v
            .verify(&token(
                json!({"user_id": "test-user", "roles": ["user"], "exp": exp()}),
                "k",
            ))
            .expect("valid");
        assert_eq!(
            id,
            Identity {
                user_id: "test-user".into(),
                roles: vec!["user".into()]
            }
        );
        let id = v
            .verify(&token(json!({"sub": "s", "user_id": "u", "exp": exp()}), "k"))
            .expect("valid");
        assert_eq!(id.user_id, "s");
    }

    #[test]
    fn bad_tokens_are_refused() {
        let v = Hs256Verifier::new(b"k", Algorithm::HS256, Some("iss"), None, 0);
        assert!(v
            .verify(&token(json!({"sub": "s", "exp": exp()}), "other"))
            .is_err());
        assert!(v.verify(&token(json!({"sub": "s", "exp": 1}), "k")).is_err());
        assert!(v
            .verify(&token(json!({"sub": "s", "exp": exp(), "iss": "x"}), "k"))
            .is_err());
        assert!(v
            .verify(&token(json!({"exp": exp(), "iss": "iss"}), "k"))
            .is_err());
        assert!(v
            .verify(&token(json!({"sub": "s", "exp": exp(), "iss": "iss"}), "k"))
            .is_ok());
        assert!(v.verify("garbage").is_err());
        assert!(NoVerifier.verify("x").is_err());
    }
}
