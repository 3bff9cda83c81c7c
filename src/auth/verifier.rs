//! The verifier: one immutable key set with its validation rules and a cache of verified
//! tokens. `compile` builds a new one from the configuration and the Secrets on every table,
//! so that a changed Secret rotates keys through the same swap as routes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{AlgorithmFamily, Header};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use super::cache::TokenCache;
use super::keys::{self, Key};
use super::settings::{ClaimNames, JwtSettings};
use super::{AuthError, UserContext};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// At most this many keys are tried for one token (a token without a matching `kid`).
pub const MAX_KEYS_TRIED: usize = 16;

/// Verified tokens kept per key set.
pub const CACHE_CAPACITY: usize = 16 * 1024;

/// Verifies tokens against one key set.
pub struct Verifier {
    keys: Vec<Key>,
    family: Option<AlgorithmFamily>,
    leeway: u64,
    claims: ClaimNames,
    problems: Vec<String>,
    cache: TokenCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("family", &self.family)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds the key set from `settings` and `secrets`. Never fails: problems are recorded
    /// (see [`Verifier::problems`]) and tokens no key can verify are refused.
    pub fn new(settings: &JwtSettings, secrets: &[Secret]) -> Self {
        Self::with_cache(settings, secrets, CACHE_CAPACITY)
    }

    /// `new` with a cache of `capacity` tokens (0: no cache).
    pub fn with_cache(settings: &JwtSettings, secrets: &[Secret], capacity: usize) -> Self {
        let (keys, problems) = keys::build(settings, secrets);
        Verifier {
            keys,
            family: settings.family(),
            leeway: settings.leeway,
            claims: settings.claims.clone(),
            problems,
            cache: TokenCache::new(capacity),
        }
    }

    /// What is wrong with the configuration or the keys, one message each.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether any key can verify tokens.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// `kid`s of the keys (keys without one are listed as `-`), for the admin API and logs.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.kid.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// Tokens in the cache now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Verifies `token` (the compact JWS, without `Bearer `): signature, `alg` family, `exp`,
    /// `nbf`, `iss`, `aud`; then maps its claims. This is the entry point for every caller
    /// (proxy, admin API, WebSocket hub).
    pub fn verify(&self, token: &str) -> Result<Arc<UserContext>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLarge);
        }
        let now = now_secs();
        if let Some(user) = self.cache.get(token, now) {
            return Ok(user);
        }
        let user = Arc::new(self.verify_uncached(token)?);
        let valid_until = user.expires_at.saturating_add(self.leeway);
        self.cache.insert(token, user.clone(), valid_until, now);
        Ok(user)
    }

    /// Full verification, without looking at or filling the cache.
    pub fn verify_uncached(&self, token: &str) -> Result<UserContext, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLarge);
        }
        let header: Header = jsonwebtoken::decode_header(token).map_err(map_error)?;
        let alg = header.alg;
        if self.family.is_some_and(|f| f != alg.family()) {
            return Err(AuthError::Algorithm(format!("{alg:?}")));
        }
        if self.keys.is_empty() {
            return Err(AuthError::NoKey);
        }
        let fitting = || self.keys.iter().filter(move |k| k.accepts(alg));
        let by_kid: Vec<&Key> = match &header.kid {
            Some(kid) => fitting()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let candidates: Vec<&Key> = if by_kid.is_empty() {
            fitting().take(MAX_KEYS_TRIED).collect()
        } else {
            by_kid
        };
        if candidates.is_empty() {
            return Err(AuthError::Algorithm(format!("{alg:?}")));
        }
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &key.validation) {
                Ok(data) => return UserContext::from_claims(data.claims, &self.claims),
                Err(e) if is_signature_failure(e.kind()) => continue,
                Err(e) => return Err(map_error(e)),
            }
        }
        Err(AuthError::InvalidSignature)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Errors that mean "not this key": the next candidate may still verify the token.
fn is_signature_failure(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
    )
}

fn map_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::Algorithm("unsupported".into())
        }
        k if is_signature_failure(k) => AuthError::InvalidSignature,
        ErrorKind::InvalidClaimFormat(c) => AuthError::Malformed(format!("claim `{c}` has the wrong type")),
        ErrorKind::Base64(_) => AuthError::Malformed("bad base64url".into()),
        ErrorKind::Json(_) => AuthError::Malformed("bad JSON".into()),
        ErrorKind::Utf8(_) => AuthError::Malformed("bad UTF-8".into()),
        _ => AuthError::Malformed("not a JWS compact token".into()),
    }
}
