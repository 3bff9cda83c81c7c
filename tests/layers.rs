//! The floor plan holds: every `crate::` path in `src/` points to a module of a lower layer
//! than the file's own, as the table in `src/lib.rs` orders them. A failure names the file,
//! the line and the two modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module -> layer, from the `//! | N | a, b | ... |` rows of `src/lib.rs`.
fn layers(lib: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(layer) = cells[0].parse::<u32>() else {
            continue;
        };
        for m in cells[1].split(',') {
            out.insert(m.trim().to_string(), layer);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segments a text names after `prefix`: `prefix::x` or `prefix::{x, y::{..}}`
/// (a group may span lines), each with the offset where it is named. A `prefix` found inside a
/// longer `super::super::` is skipped when `prefix` is `super::`.
fn named_after(prefix: &str, text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find(prefix) {
        at += i + prefix.len();
        let rest = &text[at..];
        if prefix == "super::" && rest.starts_with("super::") {
            at += "super::".len();
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split on commas outside nested braces.
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push((at, ident(&group[start..j])));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push((at, ident(&group[start..j])));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push((at, ident(rest)));
        }
    }
    out.retain(|(_, m)| !m.is_empty());
    out
}

/// The top-level modules a text names through `crate::x` or `crate::{x, y::z}`.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    named_after("crate::", text)
}

/// The text with comment lines blanked (kept as empty lines, so that line numbers hold).
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("read lib.rs");
    let layers = layers(&lib);
    assert!(
        layers.len() > 10,
        "the layer table in src/lib.rs is missing: {layers:?}"
    );

    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_string))
        .collect();
    for m in &declared {
        assert!(
            layers.contains_key(m),
            "module `{m}` has no layer in src/lib.rs's table"
        );
    }

    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src");
        let own = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        if own == "lib" || own == "main" {
            continue;
        }
        let Some(&own_layer) = layers.get(&own) else {
            broken.push(format!("{}: module `{own}` has no layer", rel.display()));
            continue;
        };
        let text = code_only(&std::fs::read_to_string(file).expect("read source"));
        for (at, used) in named_modules(&text) {
            if used == own {
                continue;
            }
            let line = text[..at].matches('\n').count() + 1;
            match layers.get(&used) {
                Some(&l) if l < own_layer => {}
                Some(&l) => broken.push(format!(
                    "{}:{line}: `{own}` (layer {own_layer}) uses `{used}` (layer {l})",
                    rel.display()
                )),
                None => broken.push(format!("{}:{line}: `{used}` has no layer", rel.display())),
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the floor plan in src/lib.rs:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    let names = |t: &str| named_modules(t).into_iter().map(|(_, m)| m).collect::<Vec<_>>();
    assert_eq!(names("use crate::routing::Route;"), ["routing"]);
    assert_eq!(names("use crate::{api::X, wire};"), ["api", "wire"]);
    assert_eq!(
        names("use crate::{\n    api::{A, B},\n    wire::x,\n};"),
        ["api", "wire"]
    );
    assert_eq!(
        names("let x = crate::auth::report(crate::tls::y);"),
        ["auth", "tls"]
    );
}

/// The rooms' files (`src/<module>/<file>.rs` or `src/<module>/<dir>/`) by name.
fn rooms(root: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root).expect("read src") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let mut parts = BTreeMap::new();
        for e in std::fs::read_dir(&dir).expect("read room") {
            let p = e.expect("entry").path();
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if name != "mod" && name != "tests" && (p.is_dir() || p.extension().is_some_and(|x| x == "rs")) {
                parts.insert(name, p);
            }
        }
        let room = dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        out.insert(room, parts);
    }
    out
}

/// The sibling parts a file of `room` names: `crate::room::x`, or `super::x` from a file
/// directly in the room (`super::super::x` one level down).
fn siblings_named(room: &str, depth: usize, text: &str) -> Vec<String> {
    let sup = match depth {
        0 => Some("super::"),
        1 => Some("super::super::"),
        _ => None,
    };
    let own = format!("crate::{room}::");
    std::iter::once(own.as_str())
        .chain(sup)
        .flat_map(|prefix| named_after(prefix, text))
        .map(|(_, name)| name)
        .collect()
}

#[test]
fn no_two_files_of_a_room_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = Vec::new();
    for (room, parts) in rooms(&root) {
        let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (part, path) in &parts {
            let mut files = Vec::new();
            if path.is_dir() {
                rust_files(path, &mut files);
            } else {
                files.push(path.clone());
            }
            for f in files {
                // How many `super::` lead from this file's module to the room: a `mod.rs`
                // is its folder's module, one level up from the files beside it.
                let in_room = f
                    .strip_prefix(root.join(&room))
                    .map_or(1, |r| r.components().count());
                let depth = in_room - 1 - usize::from(f.ends_with("mod.rs"));
                let text = code_only(&std::fs::read_to_string(&f).expect("read source"));
                for s in siblings_named(&room, depth, &text) {
                    if &s != part && parts.contains_key(&s) {
                        edges.entry(part.clone()).or_default().insert(s);
                    }
                }
            }
        }
        // Depth-first search for a path back to where it started.
        fn back(
            edges: &BTreeMap<String, std::collections::BTreeSet<String>>,
            path: &mut Vec<String>,
            out: &mut Vec<String>,
        ) {
            let last = path.last().cloned().unwrap_or_default();
            for next in edges.get(&last).into_iter().flatten() {
                if *next == path[0] {
                    out.push(format!("{} -> {}", path.join(" -> "), next));
                } else if !path.contains(next) && path.len() < 8 {
                    path.push(next.clone());
                    back(edges, path, out);
                    path.pop();
                }
            }
        }
        for start in parts.keys() {
            let mut found = Vec::new();
            back(&edges, &mut vec![start.clone()], &mut found);
            cycles.extend(found.into_iter().map(|c| format!("{room}: {c}")));
        }
    }
    assert!(
        cycles.is_empty(),
        "files of one room that import each other:\n{}",
        cycles.join("\n")
    );
}
