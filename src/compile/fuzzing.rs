//! Entry point for the `routes` fuzz target in `fuzz/`: arbitrary route sets compiled into a
//! table, and lookups in it checked against a plain model of the SPEC's precedence, written
//! for clarity rather than speed. Built for `cargo fuzz` (`--cfg fuzzing`) and for the unit
//! tests below, which run it on a few thousand generated inputs.
//!
//! The input is text. Lines up to the first empty one are routes, the others requests; each
//! line is a methods character, a hosts character and a path:
//! - route methods: the low three bits of the character pick GET, POST and DELETE (none: all
//!   methods); route hosts: see [`ROUTE_HOSTS`];
//! - request method: see [`REQUEST_METHODS`]; request host: see [`REQUEST_HOSTS`].

use std::collections::BTreeSet;
use std::sync::Arc;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{compile, CompileOptions, Snapshot};
use crate::api::{GatewayRoute, GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec};
use crate::routing::{Lookup, MethodSet, PathKind, PathPattern, Route, Segment};

/// At most this many routes: the table does not look at more than 16 nested prefixes along
/// one path (no real configuration has that many), and the model does not know that limit.
const MAX_ROUTES: usize = 16;
const MAX_REQUESTS: usize = 16;

const ROUTE_HOSTS: [&[&str]; 6] = [
    &[],
    &["a.test"],
    &["*.test"],
    &["b.a.test"],
    &["*.a.test"],
    &["A.test", "*.a.test"],
];
const REQUEST_HOSTS: [Option<&str>; 7] = [
    None,
    Some("a.test"),
    Some("x.test"),
    Some("b.a.test"),
    Some("B.A.Test.:8080"),
    Some("test"),
    Some("x.test."),
];
const REQUEST_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::DELETE, Method::PUT];

/// One input line: two selector bytes and a path.
fn line(l: &str) -> Option<(u8, u8, &str)> {
    let b = l.as_bytes();
    if b.len() < 2 || !l.is_char_boundary(2) {
        return None;
    }
    Some((b[0], b[1], &l[2..]))
}

/// Compiles the input's routes, then checks every request's lookup against the model, and
/// that no two programmed routes conflict.
pub fn routes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (route_lines, request_lines) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut resources = Vec::new();
    for (i, l) in route_lines.lines().filter_map(line).take(MAX_ROUTES).enumerate() {
        let (m, h, path) = l;
        let methods = [("GET", 1u8), ("POST", 2), ("DELETE", 4)]
            .iter()
            .filter(|(_, bit)| m & bit != 0)
            .map(|(name, _)| name.to_string())
            .collect();
        let spec = GatewayRouteSpec {
            path: path.to_string(),
            methods,
            hosts: ROUTE_HOSTS[usize::from(h) % ROUTE_HOSTS.len()]
                .iter()
                .map(|h| h.to_string())
                .collect(),
            upstream: "svc".into(),
            ..Default::default()
        };
        let mut r = GatewayRoute::new(&format!("r{i:02}"), spec);
        r.metadata.namespace = Some("default".into());
        // Listed oldest first.
        r.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(i as i64).expect("a small second"),
        ));
        resources.push(r);
    }
    let mut svc = GatewayUpstream::new(
        "svc",
        GatewayUpstreamSpec {
            endpoints: vec!["http://127.0.0.1:9".into()],
            ..Default::default()
        },
    );
    svc.metadata.namespace = Some("default".into());
    let snapshot = Snapshot {
        routes: resources,
        upstreams: vec![svc],
        ..Default::default()
    };
    let compiled = compile(&snapshot, &CompileOptions::default());
    let table = &compiled.table;

    // One verdict per resource; the routes whose verdict says so are the programmed ones,
    // oldest first.
    let mut names = BTreeSet::new();
    for v in &compiled.verdicts {
        assert!(
            names.insert((v.kind, v.name.clone())),
            "two verdicts for {}",
            v.name
        );
    }
    assert_eq!(names.len(), snapshot.routes.len() + 1);
    let programmed: Vec<&Arc<Route>> = table.routes().iter().collect();
    let accepted: Vec<String> = compiled
        .verdicts
        .iter()
        .filter(|v| {
            v.kind == super::Kind::GatewayRoute
                && v.condition("Programmed").is_some_and(|c| c.status == "True")
        })
        .map(|v| v.name.clone())
        .collect();
    let mut in_table: Vec<String> = programmed.iter().map(|r| r.name.clone()).collect();
    assert!(
        in_table.windows(2).all(|w| w[0] < w[1]),
        "not oldest first: {in_table:?}"
    );
    in_table.sort();
    let mut accepted_sorted = accepted.clone();
    accepted_sorted.sort();
    assert_eq!(in_table, accepted_sorted, "the table and the verdicts differ");

    let model: Vec<Model> = programmed
        .iter()
        .map(|r| Model {
            route: r,
            pattern: PathPattern::parse(&r.path).unwrap_or_else(|e| panic!("programmed {}: {e}", r.path)),
            hosts: r.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        })
        .collect();

    // No two programmed routes claim the same host, path and method.
    for (i, a) in model.iter().enumerate() {
        for b in &model[i + 1..] {
            let shared_host =
                (a.hosts.is_empty() && b.hosts.is_empty()) || a.hosts.iter().any(|h| b.hosts.contains(h));
            assert!(
                !(shared_host
                    && a.pattern.normalized == b.pattern.normalized
                    && a.route.methods.intersects(b.route.methods)),
                "{} and {} are both programmed",
                a.route.name,
                b.route.name
            );
        }
    }

    for (m, h, path) in request_lines.lines().filter_map(line).take(MAX_REQUESTS) {
        if !path.starts_with('/') {
            continue;
        }
        let method = &REQUEST_METHODS[usize::from(m) % REQUEST_METHODS.len()];
        let host = REQUEST_HOSTS[usize::from(h) % REQUEST_HOSTS.len()];
        let want = expected(&model, host, path, method);
        let got = match table.lookup(host, path, method) {
            Lookup::Found(r) => Expected::Found(r.name.clone()),
            Lookup::MethodNotAllowed(allow) => Expected::MethodNotAllowed(allow),
            Lookup::NotFound => Expected::NotFound,
        };
        assert_eq!(got, want, "{method} {host:?} {path}");
    }
}

struct Model<'a> {
    route: &'a Route,
    pattern: PathPattern,
    hosts: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Found(String),
    MethodNotAllowed(MethodSet),
    NotFound,
}

/// A key that sorts the better match first within a host group: the kind of path (exact,
/// templated, prefix), then the order within that kind.
type Rank = (u8, Vec<u8>);

/// How one pattern matches a path's segments: `None` if it does not match.
fn rank(p: &PathPattern, path: &str, segs: &[&str]) -> Option<Rank> {
    let fits = |pat: &[Segment], segs: &[&str]| {
        pat.iter().zip(segs).all(|(p, s)| match p {
            Segment::Static(v) => v == s,
            Segment::Param(_) => !s.is_empty(),
        })
    };
    // Static before parameter, segment by segment from the left.
    let shape = |pat: &[Segment]| -> Vec<u8> {
        pat.iter()
            .map(|s| u8::from(matches!(s, Segment::Param(_))))
            .collect()
    };
    match p.kind {
        PathKind::Exact => (p.normalized == path).then(|| (0, Vec::new())),
        PathKind::Template => {
            (p.segments.len() == segs.len() && fits(&p.segments, segs)).then(|| (1, shape(&p.segments)))
        }
        PathKind::Prefix => (p.segments.len() <= segs.len() && fits(&p.segments, segs)).then(|| {
            // The longest prefix, then the one with fewer parameters, then static first.
            let params = p
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Param(_)))
                .count();
            let mut key = vec![u8::MAX - p.segments.len() as u8, params as u8];
            key.extend(shape(&p.segments));
            (2, key)
        }),
    }
}

/// The SPEC's answer: the host groups in order (the exact host, wildcard hosts longest
/// first, then routes without hosts), in each the best-ranked match that takes the method
/// (the oldest among equals); else 405 with every matching route's methods, else 404.
fn expected(model: &[Model<'_>], host: Option<&str>, path: &str, method: &Method) -> Expected {
    let segs: Vec<&str> = if path.len() <= 1 {
        Vec::new()
    } else {
        path[1..].split('/').collect()
    };
    let host = host
        .map(|h| {
            let h = crate::wire::strip_port(h);
            h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
        })
        .filter(|h| !h.is_empty());
    let mut groups: Vec<Vec<&Model<'_>>> = Vec::new();
    if let Some(host) = &host {
        groups.push(model.iter().filter(|m| m.hosts.contains(host)).collect());
        let mut wildcards: Vec<&str> = model
            .iter()
            .flat_map(|m| m.hosts.iter())
            .filter_map(|h| h.strip_prefix('*'))
            .collect();
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.len()));
        wildcards.dedup();
        for w in wildcards {
            if host.len() > w.len() && host.ends_with(w) {
                let wanted = format!("*{w}");
                groups.push(model.iter().filter(|m| m.hosts.contains(&wanted)).collect());
            }
        }
    }
    groups.push(model.iter().filter(|m| m.hosts.is_empty()).collect());

    let wanted = MethodSet::of(method);
    let mut allow = MethodSet::EMPTY;
    let mut matched = false;
    for group in groups {
        let mut hits: Vec<(Rank, usize, &Model<'_>)> = group
            .into_iter()
            .enumerate()
            .filter_map(|(age, m)| rank(&m.pattern, path, &segs).map(|k| (k, age, m)))
            .collect();
        hits.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (_, _, m) in hits {
            if m.route.methods.contains(wanted) {
                return Expected::Found(m.route.name.clone());
            }
            matched = true;
            allow = allow.union(m.route.methods);
        }
    }
    if matched {
        Expected::MethodNotAllowed(allow)
    } else {
        Expected::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_keep_their_properties() {
        routes(b"00/a\n00/a/{x}\n00/a/*\n30/a\n01/*\n02/{x}/b\n\n00/a\n01/a/b\n23/a/b/c\n30/b/b\n00/\n");
        routes(b"00/\n00/*\n00/{a}/{b}\n00/x/{b}/*\n00/{a}/y/*\n\n00/x/y/z\n00/x/y\n00/q//\n00//\n");
        // Prefixes of one length: the one with fewer parameters, though the other is found
        // first (static segments first).
        routes(b"00/a/{y}/{z}/*\n00/{x}/b/c/*\n\n00/a/b/c/d\n00/a/b/c\n");
    }

    /// A few thousand inputs from a fixed pseudo-random sequence over the characters that
    /// matter to paths, so that `cargo test` checks the model against the table too.
    #[test]
    fn generated_route_sets_route_as_the_model_says() {
        const PIECES: [&str; 10] = [
            "/a", "/b", "/{x}", "/{y}", "/*", "/", "/a/b", "/{z}/b", "/c", "/{w}/c",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut text = String::new();
            let mut paths = Vec::new();
            for _ in 0..1 + next(8) {
                let mut path = String::new();
                for _ in 0..1 + next(4) {
                    path.push_str(PIECES[next(PIECES.len())]);
                }
                text.push((b'0' + next(8) as u8) as char);
                text.push((b'0' + next(6) as u8) as char);
                text.push_str(&path);
                text.push('\n');
                paths.push(path);
            }
            text.push('\n');
            // Requests: mostly the routes' paths with their parameters and `*` filled in.
            for _ in 0..1 + next(8) {
                let path = match next(4) {
                    0 => (0..1 + next(4)).map(|_| PIECES[next(PIECES.len())]).collect(),
                    _ => paths[next(paths.len())]
                        .split('/')
                        .skip(1)
                        .map(|seg| match seg {
                            "*" => ["", "/t", "/a/b", "/"][next(4)].to_string(),
                            s if s.starts_with('{') => format!("/{}", ["a", "b", "c", "q"][next(4)]),
                            s => format!("/{s}"),
                        })
                        .collect::<String>(),
                };
                text.push((b'0' + next(4) as u8) as char);
                text.push((b'0' + next(7) as u8) as char);
                text.push_str(if path.is_empty() { "/" } else { &path });
                text.push('\n');
            }
            routes(text.as_bytes());
        }
    }
}
