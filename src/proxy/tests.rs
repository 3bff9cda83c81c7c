//! The order of the proxy's files holds: every path a file names inside the proxy (through
//! `super` or the crate path of the proxy) lands in a file of a lower row of the table in
//! `mod.rs`, or, inside a folder, in a file before it in the order the folder's `mod.rs`
//! gives. A folder's `mod.rs` comes after its files, its `tests.rs` after everything; only a
//! `tests.rs` may use its folder's `mod.rs`. A failure names the file, the line and the two
//! files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A module inside the proxy, as the names below it (`["client", "pool"]`).
type Module = Vec<String>;

fn proxy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join("proxy")
}

/// The file of module `m`: `m.rs` or `m/mod.rs`, if there is one.
fn file_of(m: &[String]) -> Option<PathBuf> {
    let mut dir = proxy_dir();
    if m.is_empty() {
        return Some(dir.join("mod.rs"));
    }
    for part in &m[..m.len() - 1] {
        dir = dir.join(part);
    }
    let last = &m[m.len() - 1];
    [dir.join(format!("{last}.rs")), dir.join(last).join("mod.rs")]
        .into_iter()
        .find(|p| p.is_file())
}

/// The rank of each file of a folder, from its `mod.rs`: the rows of the proxy's table
/// (`//! | N | a, b | ... |`), or in a folder the backticked names of the paragraph that
/// starts `//! Order`, one rank each.
fn ranks(mod_rs: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut in_order = false;
    for line in mod_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        if let Some(row) = doc.trim_start().strip_prefix('|') {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            if let Ok(rank) = cells[0].parse::<usize>() {
                for m in cells[1].split(',') {
                    out.insert(m.trim().to_string(), rank);
                }
            }
            continue;
        }
        if doc.trim_start().starts_with("Order") {
            in_order = true;
        } else if doc.trim().is_empty() {
            in_order = false;
        }
        if in_order {
            for name in doc.split('`').skip(1).step_by(2) {
                let rank = out.len();
                out.entry(name.to_string()).or_insert(rank);
            }
        }
    }
    out
}

/// The code of `text`: comment lines blanked (line numbers hold) and an inline test module at
/// the end cut off (its `super` is the file itself).
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The paths below `base` that `rest` names: a path (`a::b`) or a group (`{a::b, c}`, which
/// may span lines), each as its names.
fn paths_after(rest: &str) -> Vec<Vec<String>> {
    let path = |s: &str| -> Vec<String> {
        let mut names = Vec::new();
        let mut s = s;
        loop {
            let name = ident(s);
            if name.is_empty() {
                break;
            }
            s = s.trim_start()[name.len()..].trim_start();
            names.push(name);
            match s.strip_prefix("::") {
                Some(more) => s = more,
                None => break,
            }
        }
        names
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![path(rest)];
    };
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (j, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(path(&group[start..j]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(path(&group[start..j]));
                start = j + 1;
            }
            _ => {}
        }
    }
    out
}

/// Each module inside the proxy that `text` (the code of module `own`; `super` is its parent)
/// names, with the offset where it does: the deepest module file the path goes through.
fn named_modules(own: &[String], text: &str) -> Vec<(usize, Module)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let (base, skip): (Module, usize) = if rest.starts_with("crate::proxy::") {
            (Vec::new(), "crate::proxy::".len())
        } else if rest.starts_with("super::")
            && !text[..at].ends_with(|c: char| c == ':' || c == '_' || c.is_alphanumeric())
        {
            let mut base: Module = own.to_vec();
            let mut skip = 0;
            while rest[skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        for names in paths_after(&rest[skip..]) {
            let mut m = base.clone();
            for name in names {
                m.push(name);
                if file_of(&m).is_none() {
                    m.pop();
                    break;
                }
            }
            out.push((at, m));
        }
        at += skip;
    }
    out
}

/// Why `own` may not use `used`, if it may not.
fn against_the_order(own: &[String], used: &[String]) -> Option<String> {
    if used == own || used.starts_with(own) {
        return None; // itself, or a file below a folder's `mod.rs`
    }
    if own.starts_with(used) {
        // A folder's `mod.rs` comes after its files: only its `tests.rs` uses it.
        return (own.len() != used.len() + 1 || own[used.len()] != "tests")
            .then(|| "a file of a folder uses the folder's mod.rs".to_string());
    }
    let i = own.iter().zip(used).take_while(|(a, b)| a == b).count();
    let folder = file_of(&own[..i]).and_then(|f| std::fs::read_to_string(f).ok())?;
    let ranks = ranks(&folder);
    let rank = |name: &str| match name {
        "tests" => Some(usize::MAX),
        _ => ranks.get(name).copied(),
    };
    match (rank(&own[i]), rank(&used[i])) {
        (Some(a), Some(b)) if b < a => None,
        (Some(_), Some(_)) => Some(format!("`{}` is not below `{}`", used[i], own[i])),
        _ => Some(format!(
            "`{}` or `{}` is missing from the order of {}",
            own[i],
            used[i],
            if i == 0 {
                "proxy".to_string()
            } else {
                own[..i].join("/")
            }
        )),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the proxy's folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_path_inside_the_proxy_points_down() {
    let root = proxy_dir();
    let table = ranks(&std::fs::read_to_string(root.join("mod.rs")).expect("read mod.rs"));
    assert!(table.len() > 8, "the order table in mod.rs is missing: {table:?}");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src/proxy");
        let mut own: Module = rel
            .components()
            .filter_map(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .collect();
        let is_mod_rs = own.last().is_some_and(|l| l == "mod");
        if is_mod_rs {
            own.pop();
        }
        if own.is_empty() || own == ["tests"] {
            continue; // the root re-exports; this file names paths in its strings
        }
        let text = code_only(&std::fs::read_to_string(file).expect("read source"));
        for (at, used) in named_modules(&own, &text) {
            if let Some(why) = against_the_order(&own, &used) {
                let line = text[..at].matches('\n').count() + 1;
                broken.push(format!(
                    "{}:{line}: uses {}: {why}",
                    rel.display(),
                    if used.is_empty() {
                        "proxy".to_string()
                    } else {
                        used.join("/")
                    }
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "paths against the order in src/proxy/mod.rs:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_reader_resolves_super_and_crate_paths() {
    let m = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Module>();
    let names = |own: &[&str], text: &str| {
        named_modules(&m(own), text)
            .into_iter()
            .map(|(_, used)| used.join("/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&["client", "body"], "use super::pool::{UpstreamConn, X};"),
        ["client/pool"]
    );
    assert_eq!(
        names(&["client"], "use super::{error::CallError, tls::X};"),
        ["error", "tls"]
    );
    assert_eq!(
        names(
            &["server", "h1", "tests"],
            "use crate::proxy::server::rewind::Rewind;"
        ),
        ["server/rewind"]
    );
    assert_eq!(names(&["forward", "tests"], "use super::*;"), ["forward"]);
    assert!(against_the_order(&m(&["forward", "attempt"]), &m(&["forward"])).is_some());
    assert!(against_the_order(&m(&["forward", "tests"]), &m(&["forward"])).is_none());
    assert!(against_the_order(&m(&["client", "pool"]), &m(&["pipeline"])).is_some());
    assert!(against_the_order(&m(&["pipeline", "state"]), &m(&["forward"])).is_none());
}
