//! Verified claims → the user context: id, roles, permissions, and the `X-User-*` header
//! values built once per token.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::settings::ClaimNames;
use super::AuthError;

/// Identity headers only the gateway may set.
pub static USER_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-user-id"),
    HeaderName::from_static("x-user-roles"),
    HeaderName::from_static("x-user-permissions"),
];

/// Who a verified token speaks for.
#[derive(Clone, Debug)]
pub struct UserContext {
    pub user_id: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// `exp` (seconds since the epoch).
    pub expires_at: u64,
    /// Every claim of the token, for features that key on one (`claim:NAME`).
    pub claims: Map<String, Value>,
    /// `X-User-ID`, `X-User-Roles`, `X-User-Permissions` (comma-joined), ready to send.
    headers: [HeaderValue; 3],
}

impl UserContext {
    /// Builds the context from verified claims.
    pub fn from_claims(claims: Map<String, Value>, names: &ClaimNames) -> Result<Self, AuthError> {
        let user_id = names
            .user_id
            .iter()
            .find_map(|n| match lookup(&claims, n) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                AuthError::Claims(format!(
                    "the token carries no user id (claims {})",
                    names.user_id.join(", ")
                ))
            })?;
        let roles = list(&claims, &names.roles)?;
        let permissions = list(&claims, &names.permissions)?;
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let value = |what: &str, s: &str| {
            HeaderValue::from_str(s)
                .map_err(|_| AuthError::Claims(format!("{what} cannot be sent as a header value")))
        };
        let headers = [
            value("the user id", &user_id)?,
            value("the roles", &roles.join(","))?,
            value("the permissions", &permissions.join(","))?,
        ];
        Ok(UserContext {
            user_id,
            roles,
            permissions,
            expires_at,
            claims,
            headers,
        })
    }

    /// A claim as text (strings as they are, other JSON values serialized), for `claim:NAME`.
    pub fn claim_str(&self, name: &str) -> Option<String> {
        self.claims.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Sets the `X-User-*` headers for the upstream (replacing any present).
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in USER_HEADERS.iter().zip(&self.headers) {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A claim by name, or by dotted path into nested objects when no claim has the full name.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut at = claims.get(parts.next()?)?;
    for p in parts {
        at = at.as_object()?.get(p)?;
    }
    Some(at)
}

/// A list claim: an array of strings, or one string separated by spaces and/or commas.
fn list(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    let bad = || AuthError::Claims(format!("claim `{name}` must be a list of names or one string"));
    match lookup(claims, name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(s) = item else { return Err(bad()) };
                // A comma inside one name would read as two names upstream.
                if s.contains(',') {
                    return Err(AuthError::Claims(format!(
                        "claim `{name}` holds a name with a comma"
                    )));
                }
                let s = s.trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad()),
    }
}
