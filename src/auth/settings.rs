//! `auth.jwt` of the static configuration, checked and turned into the settings the key set
//! and the verifier are built from (part of `CompileOptions`).

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use crate::settings::{AuthConfig, OneOrMany};

/// The largest clock-skew allowance accepted, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 86_400;

/// HMAC secrets shorter than this are refused (RFC 7518 §3.2 asks for at least the hash size of
/// HS256): an inline one stops the start, one in a Secret is not used. `auth.jwt.allow_weak_secret`
/// lets them through with a warning, for an issuer whose secret cannot change at once.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// Default namespace of `secret_ref` when it names none.
pub const DEFAULT_SECRET_NAMESPACE: &str = "default";

/// JWT verification settings.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// Inline key (`auth.jwt.secret`, `${JWT_SECRET}`): an HMAC secret or a PEM public key.
    pub inline_secret: Option<String>,
    /// The Secret that holds keys.
    pub secret_ref: Option<SecretRef>,
    /// The configured algorithm; tokens must use one of its family. `None`: each key's own
    /// family (a key never verifies a token of another family).
    pub algorithm: Option<Algorithm>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway: u64,
    pub claims: ClaimNames,
    /// `auth.jwt.allow_weak_secret`: HMAC secrets shorter than 32 bytes are used (with a
    /// warning) instead of refused.
    pub allow_weak_secret: bool,
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field(
                "inline_secret",
                &self.inline_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("secret_ref", &self.secret_ref)
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("claims", &self.claims)
            .field("allow_weak_secret", &self.allow_weak_secret)
            .finish()
    }
}

/// An `auth.jwt` section the gateway cannot start with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "auth.jwt.algorithm `{0}` is not one of HS256, HS384, HS512, RS256, RS384, RS512, \
         PS256, PS384, PS512, ES256, ES384, EdDSA"
    )]
    Algorithm(String),
    #[error("auth.jwt.leeway {0} is more than {MAX_LEEWAY_SECS} seconds")]
    Leeway(u64),
    #[error("auth.jwt.secret_ref.name is required")]
    SecretRefName,
    #[error("auth.jwt.claims.user_id may not name an empty claim")]
    EmptyClaim,
    #[error(
        "auth.jwt.secret (JWT_SECRET) is an HMAC secret of {0} bytes; at least {min} are needed \
         (RFC 7518 §3.2): use a longer one, e.g. `openssl rand -base64 32`, or set \
         auth.jwt.allow_weak_secret: true",
        min = MIN_HMAC_SECRET_LEN
    )]
    WeakSecret(usize),
}

impl JwtSettings {
    /// The family tokens must belong to, when an algorithm is configured.
    pub fn family(&self) -> Option<AlgorithmFamily> {
        self.algorithm.map(|a| a.family())
    }
}

/// Where the keys live: `namespace/name`, optionally one data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: Option<String>,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret {}/{}", self.namespace, self.name)?;
        if let Some(k) = &self.key {
            write!(f, " key `{k}`")?;
        }
        Ok(())
    }
}

/// Which claims carry the user id, the roles and the permissions. Each name may be a dotted
/// path into nested objects (`realm_access.roles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    /// Tried in order; the first present one wins.
    pub user_id: Vec<String>,
    pub roles: String,
    pub permissions: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user_id: vec!["sub".into(), "user_id".into()],
            roles: "roles".into(),
            permissions: "permissions".into(),
        }
    }
}

impl JwtSettings {
    /// Reads `auth.jwt`. `None` when the section is absent: protected routes then answer 401.
    pub fn from_config(cfg: &AuthConfig) -> Result<Option<JwtSettings>, SettingsError> {
        let Some(jwt) = &cfg.jwt else {
            return Ok(None);
        };
        let algorithm = match jwt.algorithm.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(Algorithm::from_str(a).map_err(|_| SettingsError::Algorithm(a.to_string()))?),
        };
        let leeway = jwt.leeway.unwrap_or(60);
        if leeway > MAX_LEEWAY_SECS {
            return Err(SettingsError::Leeway(leeway));
        }
        let secret_ref = match &jwt.secret_ref {
            None => None,
            Some(r) if r.name.trim().is_empty() => {
                return Err(SettingsError::SecretRefName);
            }
            Some(r) => Some(SecretRef {
                namespace: r
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| DEFAULT_SECRET_NAMESPACE.into()),
                name: r.name.clone(),
                key: r.key.clone().filter(|k| !k.is_empty()),
            }),
        };
        let mut claims = ClaimNames::default();
        if let Some(c) = &jwt.claims {
            match &c.user_id {
                Some(OneOrMany::One(n)) => claims.user_id = vec![n.clone()],
                Some(OneOrMany::Many(v)) if !v.is_empty() => claims.user_id = v.clone(),
                _ => {}
            }
            if let Some(r) = c.roles.as_ref().filter(|r| !r.is_empty()) {
                claims.roles = r.clone();
            }
            if let Some(p) = c.permissions.as_ref().filter(|p| !p.is_empty()) {
                claims.permissions = p.clone();
            }
        }
        if claims.user_id.iter().any(|n| n.trim().is_empty()) {
            return Err(SettingsError::EmptyClaim);
        }
        let inline_secret = jwt.secret.clone().filter(|s| !s.is_empty());
        if let Some(s) = &inline_secret {
            let key = s.trim();
            let hmac = !key.starts_with("-----BEGIN") && !key.starts_with('{');
            // A config that names the secret stops on a weak one; `JWT_SECRET` alone, with no
            // `auth.jwt` in the file, only loses it: the key is refused, and reported.
            let named = !jwt.from_env_only;
            if hmac && key.len() < MIN_HMAC_SECRET_LEN && !jwt.allow_weak_secret && named {
                return Err(SettingsError::WeakSecret(key.len()));
            }
        }
        let nonempty =
            |s: &Option<String>| s.as_ref().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(Some(JwtSettings {
            inline_secret,
            secret_ref,
            algorithm,
            issuer: nonempty(&jwt.issuer),
            audience: nonempty(&jwt.audience),
            leeway,
            claims,
            allow_weak_secret: jwt.allow_weak_secret,
        }))
    }
}
