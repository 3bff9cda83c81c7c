//! Route path syntax: `/exact`, `/users/{id}` (one non-empty segment), `/prefix/*` (prefix).

use super::SpecError;

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Static(String),
    Param(String),
}

/// How a pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// Static segments only; matches that path exactly.
    Exact,
    /// At least one `{param}`; matches paths with the same number of segments.
    Template,
    /// Ends in `/*`: matches the segments before it and anything below them.
    Prefix,
}

/// A parsed route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    pub raw: String,
    pub kind: PathKind,
    /// Segments before a trailing `*` (empty for `/` and `/*`).
    pub segments: Vec<Segment>,
    /// The literal prefix up to the first parameter or `*` (what `rewritePrefix` replaces).
    pub static_prefix: String,
    /// The pattern with parameter names erased: two routes with the same `normalized` and
    /// overlapping hosts and methods conflict.
    pub normalized: String,
}

impl PathPattern {
    /// A pattern of literal segments (no `{param}`, no `*`): a Gateway API path match.
    /// `prefix`: matches the path's segments and anything below them (a trailing `/` of
    /// `value` is ignored); otherwise exactly `value`.
    pub fn literal(value: &str, prefix: bool) -> Self {
        if !prefix {
            return PathPattern {
                raw: value.to_string(),
                kind: PathKind::Exact,
                segments: Vec::new(),
                static_prefix: value.to_string(),
                normalized: value.to_string(),
            };
        }
        let trimmed = value.trim_end_matches('/');
        let segments: Vec<Segment> = trimmed
            .split('/')
            .skip(1)
            .map(|s| Segment::Static(s.to_string()))
            .collect();
        PathPattern {
            raw: value.to_string(),
            kind: PathKind::Prefix,
            static_prefix: trimmed.to_string(),
            normalized: format!("{trimmed}/*"),
            segments,
        }
    }

    /// Parses a route path; the error says what is wrong in words a user can act on.
    pub fn parse(raw: &str) -> Result<Self, SpecError> {
        if !raw.starts_with('/') {
            return Err(SpecError::PathStart(raw.into()));
        }
        if raw.len() > 2048 {
            return Err(SpecError::PathTooLong);
        }
        if let Some(c) = raw
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            return Err(SpecError::PathChar(raw.into(), c));
        }
        let body = &raw[1..];
        let mut segments = Vec::new();
        let mut kind = PathKind::Exact;
        let mut static_prefix = String::new();
        let mut static_done = false;
        let mut names: Vec<&str> = Vec::new();
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                if *part == "*" {
                    if !last {
                        return Err(SpecError::StarNotLast(raw.into()));
                    }
                    kind = PathKind::Prefix;
                    static_done = true;
                    continue;
                }
                if part.is_empty() && !last {
                    return Err(SpecError::EmptySegment(raw.into()));
                }
                if part.starts_with('{') || part.ends_with('}') {
                    let name = part
                        .strip_prefix('{')
                        .and_then(|p| p.strip_suffix('}'))
                        .ok_or_else(|| SpecError::PartialParam {
                            path: raw.into(),
                            segment: part.to_string(),
                        })?;
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(SpecError::ParamName {
                            path: raw.into(),
                            segment: part.to_string(),
                        });
                    }
                    if names.contains(&name) {
                        return Err(SpecError::DuplicateParam {
                            path: raw.into(),
                            name: name.into(),
                        });
                    }
                    names.push(name);
                    if kind == PathKind::Exact {
                        kind = PathKind::Template;
                    }
                    static_done = true;
                    segments.push(Segment::Param(name.to_string()));
                    continue;
                }
                if part.contains(['{', '}', '*']) {
                    return Err(SpecError::MixedSegment {
                        path: raw.into(),
                        segment: part.to_string(),
                    });
                }
                if !static_done {
                    static_prefix.push('/');
                    static_prefix.push_str(part);
                }
                segments.push(Segment::Static(part.to_string()));
            }
        }
        if kind == PathKind::Prefix && segments.iter().any(|s| matches!(s, Segment::Param(_))) {
            // Prefix patterns with parameters are allowed; they still count as prefixes.
        }
        if static_prefix.is_empty() && kind == PathKind::Exact {
            static_prefix = raw.to_string();
        }
        let mut normalized = String::with_capacity(raw.len());
        for s in &segments {
            normalized.push('/');
            match s {
                Segment::Static(v) => normalized.push_str(v),
                Segment::Param(_) => normalized.push_str("{}"),
            }
        }
        match kind {
            PathKind::Prefix => normalized.push_str("/*"),
            _ if normalized.is_empty() => normalized.push('/'),
            _ => {}
        }
        Ok(PathPattern {
            raw: raw.to_string(),
            kind,
            segments,
            static_prefix,
            normalized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_prefixes() {
        let p = PathPattern::parse("/api/v1/users").expect("ok");
        assert_eq!(
            (p.kind, p.static_prefix.as_str()),
            (PathKind::Exact, "/api/v1/users")
        );
        let p = PathPattern::parse("/api/v1/users/{id}/profile").expect("ok");
        assert_eq!(
            (p.kind, p.static_prefix.as_str()),
            (PathKind::Template, "/api/v1/users")
        );
        assert_eq!(p.normalized, "/api/v1/users/{}/profile");
        let p = PathPattern::parse("/api/*").expect("ok");
        assert_eq!(
            (p.kind, p.static_prefix.as_str(), p.normalized.as_str()),
            (PathKind::Prefix, "/api", "/api/*")
        );
        let p = PathPattern::parse("/*").expect("ok");
        assert_eq!(
            (p.kind, p.segments.len(), p.static_prefix.as_str()),
            (PathKind::Prefix, 0, "")
        );
        let p = PathPattern::parse("/").expect("ok");
        assert_eq!((p.kind, p.normalized.as_str()), (PathKind::Exact, "/"));
        let p = PathPattern::parse("/docs/").expect("trailing slash is an exact path");
        assert_eq!(p.normalized, "/docs/");
    }

    #[test]
    fn rejects_bad_syntax_with_reasons() {
        for (bad, needle) in [
            ("api", "must start with '/'"),
            ("/a/*/b", "last segment"),
            ("/a//b", "empty segment"),
            ("/a/{id", "whole"),
            ("/a/{}", "needs a name"),
            ("/a/{id}/{id}", "twice"),
            ("/a/x{id}", "whole"),
            ("/a/x*", "mixes"),
            ("/a b", "cannot appear"),
            ("/a?x=1", "cannot appear"),
        ] {
            let err = PathPattern::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
