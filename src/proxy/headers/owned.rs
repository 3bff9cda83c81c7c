//! The client's fields that do not go upstream as sent: the identity fields the gateway owns
//! (`X-User-*`, set by the auth step alone), other spellings of the fields it owns (CGI, WSGI
//! and older Rack read `X_User_Id` as `X-User-Id`), and the fields that ask an upstream to
//! serve another method than the one routed and authorised. `server.headers` says which.
//!
//! The names are marked as the client's fields are first read (the loop of
//! [`ClientFields::of`](super::ClientFields::of) visits each once anyway); a request whose names
//! carry no mark is not looked at again.

use http::header::{HeaderMap, HeaderName};

use crate::settings::{HeadersConfig, MethodOverride, Underscores};

/// A name of `X-User-*`: the caller's identity, which only the auth step sets.
pub const IDENTITY: u8 = 1;
/// A name with a `_`.
pub const UNDERSCORE: u8 = 2;
/// `X-HTTP-Method-Override`, `X-HTTP-Method` or `X-Method-Override`.
pub const METHOD_OVERRIDE: u8 = 4;

/// The fields that ask an upstream to serve another method.
const METHOD_OVERRIDES: [&[u8]; 3] = [b"x-http-method-override", b"x-http-method", b"x-method-override"];

/// The marks of field name `name` (lower case, as a `HeaderName` holds it).
#[inline]
pub fn marks(name: &str) -> u8 {
    let b = name.as_bytes();
    let mut m = if b.contains(&b'_') { UNDERSCORE } else { 0 };
    if b.first() == Some(&b'x') {
        if b.starts_with(b"x-user-") {
            m |= IDENTITY;
        } else if METHOD_OVERRIDES.contains(&b) {
            m |= METHOD_OVERRIDE;
        }
    }
    m
}

/// Removes from `headers` (the client's fields, whose names carry `marks` together) those that
/// do not go upstream under `cfg`: every `X-User-*`; names with a `_`, all of them or those of
/// the gateway's own fields (`underscores: drop | strip_owned`); method overrides in either
/// spelling (`method_override: strip`).
pub fn strip_client_fields(headers: &mut HeaderMap, marks: u8, cfg: &HeadersConfig) {
    if marks & (IDENTITY | UNDERSCORE | METHOD_OVERRIDE) == 0 {
        return;
    }
    let goes = |name: &HeaderName| {
        let b = name.as_str().as_bytes();
        if b.starts_with(b"x-user-") {
            return true;
        }
        let folded = b.contains(&b'_');
        if folded {
            match cfg.underscores {
                Underscores::Drop => return true,
                Underscores::StripOwned if is_owned(b) => return true,
                _ => {}
            }
        }
        cfg.method_override == MethodOverride::Strip && METHOD_OVERRIDES.iter().any(|o| same_folded(b, o))
    };
    // Rare: only requests with a marked name get here.
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| goes(n)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether `name`, with `_` read as `-`, names a field the gateway owns: `X-User-*`,
/// `X-Forwarded-*`, `X-Request-ID`.
fn is_owned(name: &[u8]) -> bool {
    starts_folded(name, b"x-user-")
        || starts_folded(name, b"x-forwarded-")
        || same_folded(name, b"x-request-id")
}

/// `name` is `want` when each `_` of it is read as `-`.
fn same_folded(name: &[u8], want: &[u8]) -> bool {
    name.len() == want.len() && starts_folded(name, want)
}

/// `name` starts with `want` when each `_` of it is read as `-`.
fn starts_folded(name: &[u8], want: &[u8]) -> bool {
    name.len() >= want.len()
        && name
            .iter()
            .zip(want)
            .all(|(&n, &w)| n == w || (n == b'_' && w == b'-'))
}
