//! Authentication and authorization: JWT verification on `jsonwebtoken`, key sets built from
//! `auth.jwt` and Secrets, claims → user context, and the route's RBAC check.
//!
//! ```text
//!  auth.jwt ─┐                                   ┌─> proxy: authenticate() + authorize()
//!  Secrets  ─┴─ compile() ─> Verifier (keys,  ───┼─> admin API: role `admin`
//!                            rules, cache)       └─> WebSocket hub: verify(token)
//! ```
//!
//! The verifier is rebuilt with every routing table, so a changed Secret takes effect with the
//! next swap; in-flight requests keep the verifier of the table they loaded. A broken key or a
//! missing Secret never takes routes down: it is reported ([`Verifier::problems`]) and tokens
//! no key can verify get 401.

mod cache;
mod context;
mod keys;
mod settings;
mod verifier;

pub use cache::TokenCache;
pub use context::{UserContext, USER_HEADERS};
pub use settings::{
    ClaimNames, JwtSettings, SecretRef, SettingsError, DEFAULT_SECRET_NAMESPACE, MAX_LEEWAY_SECS,
    MIN_HMAC_SECRET_LEN,
};
pub use verifier::{Verifier, CACHE_CAPACITY, MAX_KEYS_TRIED, MAX_TOKEN_LEN};

use std::sync::Arc;

use http::header::{self, HeaderMap};

/// Who may call a route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    pub required: bool,
    /// Any one of these roles.
    pub roles: Vec<String>,
    /// All of these permissions.
    pub permissions: Vec<String>,
}

/// Why a request is not let through: 401 for everything about the token, 403 for RBAC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("tokens in the query string are not accepted on this route; send Authorization: Bearer")]
    QueryToken,
    #[error("token is larger than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("no verification key is configured (auth.jwt)")]
    NoKey,
    #[error("authentication is not configured on this gateway (auth.jwt)")]
    NotConfigured,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token audience is not accepted")]
    Audience,
    #[error("token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("{0}")]
    Claims(String),
    /// A valid token without the role or permission the route needs.
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// True for 403 (authenticated, not allowed); false for 401.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden(_))
    }
}

/// The token of a request: `Authorization: Bearer <jwt>`, or `?token=` where
/// `allow_query_token` (WebSocket upgrades). A token only in the query string elsewhere is
/// refused, not ignored, so that a client learns it is not honoured.
pub fn extract_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    allow_query_token: bool,
) -> Result<&'a str, AuthError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| AuthError::Malformed("Authorization is not ASCII".into()))?;
        if let Some((scheme, token)) = v.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                let token = token.trim();
                if token.is_empty() {
                    return Err(AuthError::MissingToken);
                }
                return Ok(token);
            }
        }
    }
    match query.and_then(query_token) {
        Some(t) if allow_query_token => Ok(t),
        Some(_) => Err(AuthError::QueryToken),
        None => Err(AuthError::MissingToken),
    }
}

/// `token` or `access_token` from a query string.
fn query_token(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" || k == "access_token").then_some(v)
    })
}

/// The route's RBAC: at least one of `policy.roles`, and all of `policy.permissions`.
pub fn authorize(policy: &AuthPolicy, user: &UserContext) -> Result<(), AuthError> {
    if !policy.roles.is_empty() && !policy.roles.iter().any(|r| user.has_role(r)) {
        return Err(AuthError::Forbidden(format!(
            "this route requires one of the roles: {}",
            policy.roles.join(", ")
        )));
    }
    if let Some(p) = policy.permissions.iter().find(|p| !user.has_permission(p)) {
        return Err(AuthError::Forbidden(format!(
            "this route requires the permission {p}"
        )));
    }
    Ok(())
}

/// Extracts and verifies the token of a request and checks the route's policy.
pub fn authenticate(
    verifier: Option<&Verifier>,
    policy: &AuthPolicy,
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query_token: bool,
) -> Result<Arc<UserContext>, AuthError> {
    let token = extract_token(headers, query, allow_query_token)?;
    let verifier = verifier.ok_or(AuthError::NotConfigured)?;
    let user = verifier.verify(token)?;
    authorize(policy, &user)?;
    Ok(user)
}

/// What `gatehouse check` and the logs say about the key set of a table.
#[derive(Debug, Default)]
pub struct Report {
    /// One line each, in the verdict format (`ok`, `warning`, `rejected`).
    pub lines: Vec<String>,
    /// Problems that leave protected routes unable to accept any token.
    pub rejected: usize,
    /// Problems that do not (a broken key beside good ones, a weak secret).
    pub warnings: usize,
}

/// Reports on a table's verifier (`None` without `auth.jwt`) for `protected` routes that
/// require a token: problems as warnings, and a rejection when protected routes exist but no
/// key can verify a token.
pub fn report(verifier: Option<&Verifier>, protected: usize) -> Report {
    let mut r = Report::default();
    let Some(v) = verifier else {
        if protected > 0 {
            r.rejected += 1;
            r.lines.push(format!(
                "{:<8} auth.jwt: not configured; {protected} protected routes answer 401",
                "rejected"
            ));
        }
        return r;
    };
    for p in v.problems() {
        r.warnings += 1;
        r.lines.push(format!("{:<8} auth.jwt: {p}", "warning"));
    }
    if v.has_keys() {
        r.lines.push(format!(
            "{:<8} auth.jwt: {} keys (kid: {}), {protected} protected routes",
            "ok",
            v.key_ids().len(),
            v.key_ids().join(", ")
        ));
    } else if protected > 0 {
        r.rejected += 1;
        r.lines.push(format!(
            "{:<8} auth.jwt: no usable key; {protected} protected routes answer 401 to every token",
            "rejected"
        ));
    }
    r
}

#[cfg(test)]
pub(crate) mod tests;
