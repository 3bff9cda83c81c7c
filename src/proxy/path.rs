//! Request paths, put in the normal form of RFC 3986 §6.2.2 before routing. A route is chosen
//! by the path as the gateway reads it, and an upstream serves the path as it reads it; many
//! upstreams resolve `.` and `..` and decode `%61` to `a` first. Were the gateway to route
//! `/public/../admin` by its first segment, or `/%61dmin` as something else than `/admin`, a
//! route that requires a token could be reached through one that does not. So both are done
//! before routing, and the upstream gets the normal path: both read the same one.
//!
//! Other spellings that common upstreams read as another path are settled by `server.paths`
//! ([`PathsConfig`]): `//` (nginx merges slashes), `%2F`, `%5C` and `\` (many frameworks
//! decode them, some read a backslash as a slash) and `;` (Tomcat and Spring drop a segment's
//! parameters, so `/x/..;/admin` is `/admin` to them). Each is made the one reading, or
//! refused: never routed one way and served another.
//!
//! Also the small URI surgery the pipeline does: a path and query put together, a URI with
//! another path.

use std::borrow::Cow;

use http::uri::{InvalidUri, PathAndQuery};
use http::Uri;

use crate::settings::{EscapedSlashes, PathParameters, PathsConfig};

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

/// What the gateway makes of a request's path.
#[derive(Debug, PartialEq, Eq)]
pub enum PathReading {
    /// Already in normal form: routed and forwarded as it is.
    Normal,
    /// Routed, authorised and forwarded as this path.
    Rewritten(String),
    /// Escaped slashes under `unescape_and_redirect`: the client is sent to this path.
    Redirect(String),
    /// Refused with 400, for this reason.
    Refused(&'static str),
}

/// `path` read as `cfg` says: percent-encoded unreserved characters decoded (`%61` is `a`,
/// `%2e` is `.`), path parameters, escaped slashes and `//` dealt with, then dot-segments
/// removed. A path with none of `.`, `%`, `;`, `\` or `//` is [`PathReading::Normal`] after one
/// look at each byte.
pub fn read_path(path: &str, cfg: &PathsConfig) -> PathReading {
    if is_plain(path.as_bytes()) {
        return PathReading::Normal;
    }
    let mut p = Cow::Borrowed(path);
    if path.contains(';') {
        match cfg.parameters {
            PathParameters::Keep => {}
            PathParameters::Reject => return PathReading::Refused("path parameters (`;`) are not accepted"),
            PathParameters::Strip => p = Cow::Owned(without_parameters(path)),
        }
    }
    let mut redirect = false;
    if has_escaped_slash(p.as_bytes()) {
        match cfg.escaped_slashes {
            EscapedSlashes::Keep => {}
            EscapedSlashes::Reject => {
                return PathReading::Refused(
                    "escaped slashes (`%2F`, `%5C`) and backslashes are not accepted in a path",
                )
            }
            EscapedSlashes::UnescapeAndForward => p = Cow::Owned(unescape_slashes(&p)),
            EscapedSlashes::UnescapeAndRedirect => {
                p = Cow::Owned(unescape_slashes(&p));
                redirect = true;
            }
        }
    }
    if let Cow::Owned(decoded) = decode_unreserved(&p) {
        p = Cow::Owned(decoded);
    }
    if cfg.merge_slashes && p.contains("//") {
        p = Cow::Owned(merged_slashes(&p));
    }
    if let Some(resolved) = without_dot_segments(&p) {
        p = Cow::Owned(resolved);
    }
    match p {
        Cow::Borrowed(_) => PathReading::Normal,
        // A `Location` of `//host/...` would name another host.
        Cow::Owned(normal) if redirect && normal.starts_with("//") => {
            PathReading::Refused("escaped slashes at the start of a path are not accepted")
        }
        Cow::Owned(normal) if redirect => PathReading::Redirect(normal),
        Cow::Owned(normal) => PathReading::Rewritten(normal),
    }
}

/// No byte that any step of [`read_path`] looks for: `.`, `%`, `;`, `\`, or `/` after `/`.
fn is_plain(b: &[u8]) -> bool {
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'.' | b'%' | b';' | b'\\' => return false,
            b'/' if prev == b'/' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

/// Each segment of `path` without its parameters: from a `;` to the segment's end.
fn without_parameters(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment.split(';').next().unwrap_or_default());
    }
    out
}

/// Whether `path` has `%2F`, `%5C` (either case) or a `\`.
fn has_escaped_slash(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\\' || escaped_slash_at(b, i))
}

fn escaped_slash_at(b: &[u8], i: usize) -> bool {
    b[i] == b'%'
        && matches!(
            (b.get(i + 1), b.get(i + 2).map(u8::to_ascii_uppercase)),
            (Some(b'2'), Some(b'F')) | (Some(b'5'), Some(b'C'))
        )
}

/// `path` with `%2F`, `%5C` and `\` made `/`.
fn unescape_slashes(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    let mut from = 0;
    while i < b.len() {
        let skip = if b[i] == b'\\' {
            1
        } else if escaped_slash_at(b, i) {
            3
        } else {
            i += 1;
            continue;
        };
        out.push_str(&path[from..i]);
        out.push('/');
        i += skip;
        from = i;
    }
    out.push_str(&path[from..]);
    out
}

/// `path` with each run of slashes made one.
fn merged_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c != '/' || !out.ends_with('/') {
            out.push(c);
        }
    }
    out
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

    /// RFC 3986 alone: slashes, escaped slashes and parameters as they come.
    const RFC_ONLY: PathsConfig = PathsConfig {
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::Keep,
        parameters: PathParameters::Keep,
    };

    /// The normal form under `RFC_ONLY`; `None` when the path is in it already.
    fn normalized(path: &str) -> Option<String> {
        match read_path(path, &RFC_ONLY) {
            PathReading::Normal => None,
            PathReading::Rewritten(p) => Some(p),
            other => panic!("{path}: {other:?}"),
        }
    }

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

    fn read(path: &str, cfg: &PathsConfig) -> String {
        match read_path(path, cfg) {
            PathReading::Normal => path.to_string(),
            PathReading::Rewritten(p) => p,
            PathReading::Redirect(p) => format!("redirect {p}"),
            PathReading::Refused(_) => "400".to_string(),
        }
    }

    #[test]
    fn by_default_the_spellings_of_a_protected_path_are_one_path_or_refused() {
        let cfg = PathsConfig::default();
        for (path, want) in [
            // nginx's merge_slashes: one path, as every backend behind nginx reads it.
            ("/api//admin/users", "/api/admin/users"),
            ("//api///admin/users//", "/api/admin/users/"),
            ("/a//../b", "/b"),
            ("/a/.//./b", "/a/b"),
            // Path parameters and escaped slashes: refused.
            ("/api/admin;x/users", "400"),
            ("/api/x/..;/admin/users", "400"),
            ("/api/admin;/users", "400"),
            ("/;/api", "400"),
            ("/api/admin%2Fusers", "400"),
            ("/api/admin%2fusers", "400"),
            ("/api/admin%5Cusers", "400"),
            ("/api/admin%5cusers", "400"),
            ("/api/admin\\users", "400"),
            // What was normal stays normal.
            ("/api/admin/users", "/api/admin/users"),
            ("/files/100%25", "/files/100%25"),
            ("/a%3Bb/%252F", "/a%3Bb/%252F"),
            ("/%61pi/./admin/%75sers", "/api/admin/users"),
        ] {
            assert_eq!(read(path, &cfg), want, "{path}");
        }
    }

    #[test]
    fn parameters_can_be_stripped_as_tomcat_reads_them() {
        let cfg = PathsConfig {
            parameters: PathParameters::Strip,
            ..PathsConfig::default()
        };
        for (path, want) in [
            ("/api/admin;x/users", "/api/admin/users"),
            ("/api/x/..;/admin/users", "/api/admin/users"),
            ("/api/x/%2e%2e;a=b/admin", "/api/admin"),
            ("/a;jsessionid=1", "/a"),
            ("/;x/a", "/a"),
            ("/a;x%2Fy/b", "/a/b"),
            ("/a/b;", "/a/b"),
        ] {
            assert_eq!(read(path, &cfg), want, "{path}");
        }
        let keep = PathsConfig {
            parameters: PathParameters::Keep,
            ..PathsConfig::default()
        };
        assert_eq!(read("/api/x/..;/admin", &keep), "/api/x/..;/admin");
    }

    #[test]
    fn escaped_slashes_are_kept_unescaped_or_redirected_as_set() {
        let with = |escaped_slashes| PathsConfig {
            escaped_slashes,
            ..PathsConfig::default()
        };
        let keep = with(EscapedSlashes::Keep);
        assert_eq!(read("/api/admin%2Fusers", &keep), "/api/admin%2Fusers");
        assert_eq!(read("/a\\b", &keep), "/a\\b");
        let forward = with(EscapedSlashes::UnescapeAndForward);
        for (path, want) in [
            ("/api/admin%2Fusers", "/api/admin/users"),
            ("/api/admin%2fusers", "/api/admin/users"),
            ("/api/admin%5Cusers", "/api/admin/users"),
            ("/api\\admin\\users", "/api/admin/users"),
            ("/x%2F..%2Fadmin", "/admin"),
            ("/%2F%2Fevil.example/x", "/evil.example/x"),
            ("/a%%2F41", "/a%/41"),
            ("/a%2", "/a%2"),
        ] {
            assert_eq!(read(path, &forward), want, "{path}");
        }
        let redirect = with(EscapedSlashes::UnescapeAndRedirect);
        assert_eq!(read("/api/admin%2Fusers", &redirect), "redirect /api/admin/users");
        assert_eq!(
            read("/api//admin/users", &redirect),
            "/api/admin/users",
            "only escapes redirect"
        );
        // Unmerged, the Location would name another host.
        let unmerged = PathsConfig {
            merge_slashes: false,
            ..redirect
        };
        assert_eq!(read("/%2Fevil.example/x", &unmerged), "400");
        assert_eq!(read("/a%2Fb", &unmerged), "redirect /a/b");
    }

    #[test]
    fn slashes_stay_as_they_are_without_merge_slashes() {
        let cfg = PathsConfig {
            merge_slashes: false,
            ..PathsConfig::default()
        };
        assert_eq!(read_path("/a//b", &cfg), PathReading::Normal);
        assert_eq!(read("/a//../b", &cfg), "/a/b");
    }

    #[test]
    fn the_normal_form_is_its_own_normal_form_under_every_setting() {
        let paths = [
            "/api//admin;x/..;/u%2F%2e%2E/%5c\\v",
            "//a;b//c%2f..%2F;d/./%61",
            "/%%2F41/%2%2F/%2%46/a%3B;x",
            "/x/..;/%2e%2e%2fy//z/",
        ];
        for merge_slashes in [false, true] {
            for escaped_slashes in [
                EscapedSlashes::Keep,
                EscapedSlashes::Reject,
                EscapedSlashes::UnescapeAndForward,
                EscapedSlashes::UnescapeAndRedirect,
            ] {
                for parameters in [
                    PathParameters::Keep,
                    PathParameters::Reject,
                    PathParameters::Strip,
                ] {
                    let cfg = PathsConfig {
                        merge_slashes,
                        escaped_slashes,
                        parameters,
                    };
                    for path in paths {
                        if let PathReading::Rewritten(p) | PathReading::Redirect(p) = read_path(path, &cfg) {
                            assert_eq!(
                                read_path(&p, &cfg),
                                PathReading::Normal,
                                "{path} -> {p} ({cfg:?})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_plain_path_is_normal_at_a_glance() {
        for path in ["/", "/api/users/42", "/a-b_c~d/e", "*"] {
            assert!(is_plain(path.as_bytes()), "{path}");
            assert_eq!(read_path(path, &PathsConfig::default()), PathReading::Normal);
        }
        for path in ["/a//b", "/a;b", "/a%41", "/a.b", "/a\\b", "//"] {
            assert!(!is_plain(path.as_bytes()), "{path}");
        }
    }
}
