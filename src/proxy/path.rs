//! Request paths, put in the normal form of RFC 3986 §6.2.2 before routing. A route is chosen
//! by the path as the gateway reads it, and an upstream serves the path as it reads it; many
//! upstreams resolve `.` and `..` and decode `%61` to `a` first. Were the gateway to route
//! `/public/../admin` by its first segment, or `/%61dmin` as something else than `/admin`, a
//! route that requires a token could be reached through one that does not. So both are done
//! before routing, and the upstream gets the normal path: both read the same one.
//!
//! Also the small URI surgery the pipeline does: a path and query put together, a URI with
//! another path.

use std::borrow::Cow;

use http::uri::{InvalidUri, PathAndQuery};
use http::Uri;

/// `path`, then `query` if there is one.
pub fn path_and_query(mut path: String, query: Option<&str>) -> Result<PathAndQuery, InvalidUri> {
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    PathAndQuery::try_from(path)
}

/// `uri` with its path replaced by `path`, its query kept.
pub fn with_path(uri: &Uri, path: String) -> Option<Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query(path, uri.query()).ok()?);
    Uri::from_parts(parts).ok()
}

/// `path` in normal form: percent-encoded unreserved characters decoded (`%61` is `a`, `%2e`
/// is `.`), then dot-segments removed; `None` when that changes nothing, which for a path with
/// no `%` or `.` is found without looking further.
pub fn normalized(path: &str) -> Option<String> {
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return None;
    }
    let decoded = decode_unreserved(path);
    match (without_dot_segments(&decoded), decoded) {
        (Some(resolved), _) => Some(resolved),
        (None, Cow::Owned(decoded)) => Some(decoded),
        (None, Cow::Borrowed(_)) => None,
    }
}

/// `path` with each `%XX` that stands for an unreserved character (letters, digits, `-`, `.`,
/// `_`, `~`) replaced by that character; other escapes (`%2F` among them) are left as they are.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let unreserved_at = |i: usize| -> Option<u8> {
        let hex = |c: u8| char::from(c).to_digit(16);
        let c = (hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?) as u8;
        (c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')).then_some(c)
    };
    let Some(first) = (0..b.len()).find(|&i| b[i] == b'%' && unreserved_at(i).is_some()) else {
        return Cow::Borrowed(path);
    };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    let mut decoded = false;
    while i < b.len() {
        // A decoded hex digit right after a `%` (or a `%` and one hex digit) would make a new
        // escape, which a second pass would decode: it stays escaped, so that the normal form
        // is its own normal form.
        let makes_escape = |c: u8| {
            c.is_ascii_hexdigit()
                && (out.last() == Some(&b'%')
                    || (out.len() >= 2
                        && out[out.len() - 2] == b'%'
                        && out[out.len() - 1].is_ascii_hexdigit()))
        };
        match (b[i], unreserved_at(i)) {
            (b'%', Some(c)) if !makes_escape(c) => {
                out.push(c);
                i += 3;
                decoded = true;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !decoded {
        return Cow::Borrowed(path);
    }
    // Only ASCII bytes replaced ASCII escapes: still the UTF-8 it was.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| path.to_owned()))
}

/// `path` (its escaped dots decoded) with its dot-segments removed as RFC 3986 §5.2.4 does (a
/// `..` at the root is dropped); `None` when it has none.
fn without_dot_segments(path: &str) -> Option<String> {
    if !path.split('/').any(|s| dots(s) > 0) {
        return None;
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/').peekable();
    // A path that ends in a dot-segment ends in a slash (`/a/b/..` is `/a/`).
    let mut trailing = false;
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        match dots(s) {
            1 => trailing = last,
            2 => {
                kept.pop();
                trailing = last;
            }
            _ => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// 1 for a `.` segment, 2 for a `..` one, else 0 (`%2e` is decoded before this is asked).
fn dots(segment: &str) -> usize {
    match segment {
        "." => 1,
        ".." => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_resolved_as_rfc_3986_says() {
        for (path, want) in [
            ("/public/../admin", Some("/admin")),
            ("/a/./b", Some("/a/b")),
            ("/a/b/..", Some("/a/")),
            ("/a/b/.", Some("/a/b/")),
            ("/a/%2e%2E/b", Some("/b")),
            ("/a/.%2e/b", Some("/b")),
            ("/a/%2E/b", Some("/a/b")),
            ("/../../etc/passwd", Some("/etc/passwd")),
            ("/..", Some("/")),
            ("/a//../b", Some("/a/b")),
            ("/a/b/../../..", Some("/")),
        ] {
            assert_eq!(normalized(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn paths_without_dot_segments_are_left_alone() {
        for path in [
            "/",
            "/users/42",
            "/static/app.js",
            "/.well-known/openid-configuration",
            "/a/.../b",
            "/a/..b/c",
            "/files/100%25",
            "/a//b",
            "/a%2Fb",
            "/%E2%82%AC",
            "/caf\u{e9}",
            "/a%",
            "/a%6",
            "/a%zz",
            "/a/%%44%",
        ] {
            assert_eq!(normalized(path), None, "{path}");
        }
    }

    #[test]
    fn escaped_unreserved_characters_are_decoded() {
        for (path, want) in [
            ("/%61dmin/x", "/admin/x"),
            ("/%41%2d%5F%7e%30", "/A-_~0"),
            ("/a%2Fb/%62", "/a%2Fb/b"),
            ("/caf\u{e9}/%61", "/caf\u{e9}/a"),
            ("/x/%2E%2e/%61dmin", "/admin"),
            ("/a/%2e%2e%2e", "/a/..."),
            // No new escapes out of old ones.
            ("/n/%44%2%44%2Fc", "/n/D%2%44%2Fc"),
            ("/%%34%34", "/%%344"),
            ("/%%344", "/%%344"),
            ("/%2%2e", "/%2."),
        ] {
            let got = normalized(path).unwrap_or_else(|| path.to_string());
            assert_eq!(got, want, "{path}");
        }
    }
}
