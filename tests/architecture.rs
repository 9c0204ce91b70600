//! The module graph of `src/` has no import loop: every module's `use crate::`, `super::` and
//! `self::` paths, its `crate::...` paths in code, and its paths into its own child modules are
//! edges (a parent's re-export of a child counts), and the graph must be acyclic.
//! `scripts/module_graph.py -v` prints the same graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`claims::eq4`; `""` for the crate root) to its source file's text, comments,
/// string literals and `#[cfg(test)]` tail removed.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(parts.join("::"), code_only(&text));
        }
    }
    out
}

/// The text without comments, string contents and the `#[cfg(test)]` part.
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let (mut out, mut chars) = (String::new(), text.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push_str("\"\"");
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(prefix: &[String], tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(expand(&base, &inner[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.extend(expand(&base, &inner[start..]));
        return out.into_iter().filter(|p| !p.is_empty()).collect();
    }
    let tree = tree.split(" as ").next().unwrap_or("");
    let mut path = prefix.to_vec();
    path.extend(
        tree.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    vec![path]
}

/// The module a path names (its longest prefix that is a module), seen from `current`.
fn resolve(mods: &BTreeSet<String>, current: &str, path: &[String]) -> Option<String> {
    let here: Vec<String> = if current.is_empty() {
        Vec::new()
    } else {
        current.split("::").map(String::from).collect()
    };
    let (mut base, mut rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (here, &path[1..]),
        Some("super") => {
            let mut b = here;
            let mut r = path;
            while r.first().map(String::as_str) == Some("super") {
                b.pop();
                r = &r[1..];
            }
            (b, r)
        }
        _ => return None,
    };
    let mut best = None;
    loop {
        let candidate = base.join("::");
        if mods.contains(&candidate) {
            best = Some(candidate);
        }
        let Some((first, tail)) = rest.split_first() else {
            break;
        };
        base.push(first.clone());
        rest = tail;
    }
    best
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every module's imports: the graph the test checks.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let sources = modules(root);
    let mods: BTreeSet<String> = sources.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, code) in &sources {
        let mut paths = Vec::new();
        for stmt in code.split(';') {
            if let Some(i) = stmt.find("use ") {
                let tree = stmt[i + 4..].trim();
                if ["crate", "super", "self"]
                    .iter()
                    .any(|k| tree.starts_with(k))
                {
                    paths.extend(expand(&[], tree));
                }
            }
        }
        // `crate::a::b` and `super::a` in code, and bare paths into a child module.
        let children: Vec<&String> = mods
            .iter()
            .filter(|m| {
                m.rsplit_once("::")
                    .map_or(module.is_empty() && !m.is_empty(), |(p, _)| p == module)
            })
            .collect();
        for (i, _) in code.match_indices("::") {
            let start = code[..i]
                .rfind(|c: char| !(is_ident(c) || c == ':'))
                .map_or(0, |s| s + 1);
            let end = i
                + 2
                + code[i + 2..]
                    .find(|c: char| !(is_ident(c) || c == ':'))
                    .unwrap_or(0);
            let word: Vec<String> = code[start..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            match word.first().map(String::as_str) {
                Some("crate" | "super" | "self") => paths.push(word),
                Some(first)
                    if children
                        .iter()
                        .any(|c| c.rsplit("::").next() == Some(first)) =>
                {
                    paths.push(vec!["self".to_string(), first.to_string()]);
                }
                _ => {}
            }
        }
        let targets: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| resolve(&mods, module, p))
            .filter(|t| t != module && !t.is_empty())
            .collect();
        edges.insert(module.clone(), targets);
    }
    edges
}

/// A cycle in the graph, if any (depth-first search with colours).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in edges.get(v).into_iter().flatten() {
            match state.get(w.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let at = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in edges.keys() {
        if state.get(v.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(v, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn src_has_no_import_loop() {
    let edges = graph(Path::new("src"));
    // The graph is the real one: the edges this layering rests on are seen.
    assert!(edges.len() > 50, "only {} modules found", edges.len());
    assert!(edges["claims::thm_3_2"].contains("claims::common"));
    assert!(edges["claims::thm_3_2"].contains("claims::large_k"));
    assert!(edges["claims"].contains("claims::eq4"));
    assert!(edges["expectation"].contains("expansion"));
    assert!(edges["report::verdict"].contains("report::claim_report"));
    assert_eq!(find_cycle(&edges), None);
}

/// The detector itself: a loop through a parent's re-export and one between siblings are found.
#[test]
fn the_detector_finds_loops() {
    let dir = std::env::temp_dir().join(format!("nexus-arch-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(
        dir.join("a/mod.rs"),
        "mod x;\npub use x::X;\npub struct Y;\n",
    )
    .unwrap();
    std::fs::write(dir.join("a/x.rs"), "use super::Y;\npub struct X;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "use crate::a::{x::X, Y};\n").unwrap();
    let edges = graph(&dir);
    assert!(edges["b"].contains("a") && edges["b"].contains("a::x"));
    let cycle = find_cycle(&edges).expect("a <-> a::x");
    assert!(cycle.contains(&"a".to_string()) && cycle.contains(&"a::x".to_string()));
    std::fs::write(dir.join("a/x.rs"), "use super::y::Y;\npub struct X;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "mod x;\nmod y;\npub use x::X;\n").unwrap();
    std::fs::write(dir.join("a/y.rs"), "pub struct Y;\n").unwrap();
    assert_eq!(find_cycle(&graph(&dir)), None);
    std::fs::write(dir.join("a/y.rs"), "use super::x::X;\npub struct Y;\n").unwrap();
    assert!(find_cycle(&graph(&dir)).is_some());
    std::fs::remove_dir_all(&dir).ok();
}
