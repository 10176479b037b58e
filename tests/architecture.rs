//! The layers of `src/` have no circles: following the `crate::` paths of every module (comments
//! and `#[cfg(test)]` blocks left out), no module reaches itself. `src/lib.rs` names the layers;
//! this test fails when a change makes two modules reach each other, directly or through others,
//! and prints the circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The source without comments, string literals' contents or `#[cfg(test)]` items.
fn code_only(src: &str) -> String {
    // Comments and strings first (a `//` inside a string is not a comment).
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push('"');
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    // Then every item marked #[cfg(test)]: from the attribute to the end of its braces.
    let mut s = out;
    while let Some(at) = s.find("#[cfg(test)]") {
        let open = match s[at..].find('{') {
            Some(o) => at + o,
            None => break,
        };
        let mut depth = 0;
        let mut end = s.len();
        for (k, c) in s[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s.replace_range(at..end, "");
    }
    s
}

/// The top-level modules a piece of code names through `crate::`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // use crate::{a, b::c, d::{e, f}}: the first segment of each top-level entry.
            let mut depth = 0;
            let mut start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[k..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Module name → the modules it uses, for every module file under `src/` (a folder is one module).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut visit = vec![src.clone()];
    while let Some(dir) = visit.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let module = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" {
                continue; // the crate root declares and re-exports; it is not a layer
            }
            let code = code_only(&std::fs::read_to_string(&path).unwrap());
            let deps = g.entry(module.clone()).or_default();
            deps.extend(uses(&code).into_iter().filter(|m| *m != module));
        }
    }
    g
}

/// A circle through `start`, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(g, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_modules_of_src_form_no_circle() {
    let g = graph();
    assert!(g.len() >= 10, "found the modules: {:?}", g.keys());
    for (m, deps) in &g {
        eprintln!("{m} -> {deps:?}");
    }
    // A path through the crate root's re-exports (`crate::Context`) hides the module it uses.
    let hidden: Vec<String> = g
        .iter()
        .flat_map(|(m, deps)| {
            deps.iter()
                .filter(|d| d.starts_with(char::is_uppercase))
                .map(move |d| format!("{m} uses crate::{d}"))
        })
        .collect();
    assert!(
        hidden.is_empty(),
        "use the defining module's path, not the crate root's re-export: {hidden:?}"
    );
    let circles: Vec<String> = g
        .keys()
        .filter_map(|m| circle(&g, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(
        circles.is_empty(),
        "modules reach each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_parser_sees_paths_and_skips_comments_and_tests() {
    let code = code_only(
        "use crate::a::X;\n// crate::b\nuse crate::{c, d::{e, f}};\nlet s = \"crate::g\";\n\
         fn h() { crate::i::j(); }\n#[cfg(test)]\nmod tests { use crate::k; }\n",
    );
    let found: Vec<String> = uses(&code).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "i"]);
}
