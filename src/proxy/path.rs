//! Dot-segments in request paths. A route is chosen by the path as the gateway reads it, and an
//! upstream serves the path as it reads it; many upstreams resolve `.` and `..` first. Were the
//! gateway to route `/public/../admin` by its first segment, a route that requires a token
//! could be reached through one that does not. So dot-segments are resolved before routing,
//! and the upstream gets the resolved path: both read the same one.

/// `path` with its dot-segments removed as RFC 3986 §5.2.4 does (a `..` at the root is
/// dropped), counting `%2e` as a dot; `None` when it has none, which is found without
/// allocating.
pub fn without_dot_segments(path: &str) -> Option<String> {
    if !path.bytes().any(|b| b == b'.' || b == b'%') || !path.split('/').any(|s| dots(s) > 0) {
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

/// 1 for a `.` segment, 2 for a `..` one (each dot written as itself or as `%2e`), else 0.
fn dots(segment: &str) -> usize {
    let mut rest = segment.as_bytes();
    let mut n = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return 0;
        }
        n += 1;
    }
    if n <= 2 {
        n
    } else {
        0
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
            assert_eq!(without_dot_segments(path).as_deref(), want, "{path}");
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
            "/a/%2e%2e%2e",
            "/files/100%25",
            "/a//b",
        ] {
            assert_eq!(without_dot_segments(path), None, "{path}");
        }
    }
}
