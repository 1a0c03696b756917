//! The README's "Code layout" section is the tree's: every module of `src/` is in its layer
//! table, each module imports only from its own layer or the layers above it in the table
//! (lower layers), no two modules import each other (directly or around a circle), nor two
//! files, the transports do not import each other, and no module outside `db` holds SQL or
//! writes through the ORM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::readme_section;

/// `(layer, module)` for every module the README's layer table names, layers counted from 0
/// (the lowest, first row).
fn layers() -> BTreeMap<String, usize> {
    let section = readme_section("Code layout");
    let mut out = BTreeMap::new();
    let rows = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| layer") && !l.starts_with("|--"));
    for (layer, row) in rows.enumerate() {
        let modules = row.split('|').nth(2).unwrap_or_default();
        for name in modules.split('`').skip(1).step_by(2) {
            out.insert(name.to_string(), layer);
        }
    }
    assert!(!out.is_empty(), "no layer table in README's Code layout");
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`/`main.rs`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// The code of a file without its comments and without its `#[cfg(test)]` modules (the whole
/// file is read: code after a test module counts too).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source");
    without_test_modules(&text)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` without each `#[cfg(test)] mod … { … }` (braces counted; a test module's strings
/// hold balanced braces in this code base). Other `#[cfg(test)]` items stay.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let is_mod = item.starts_with("mod ")
            || item.starts_with("pub mod ")
            || item.starts_with("pub(crate) mod ");
        let open = item.find('{');
        let semi = item.find(';');
        match open.filter(|o| is_mod && semi.is_none_or(|s| *o < s)) {
            Some(open) => {
                out.push_str(&rest[..at]);
                let body = &item[open..];
                let mut depth = 0usize;
                let mut end = body.len();
                for (i, c) in body.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                end = i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &body[end..];
            }
            None => {
                out.push_str(&rest[..at + "#[cfg(test)]".len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn only_test_modules_are_left_out() {
    let text = "use crate::a;\n#[cfg(test)]\nmod tests {\n    fn f() { crate::b::x(); }\n}\nfn g() { crate::c::y(); }\n";
    let code = without_test_modules(text);
    assert!(
        code.contains("crate::a") && code.contains("crate::c"),
        "{code}"
    );
    assert!(!code.contains("crate::b"), "{code}");
}

/// The top-level modules `code` names through `crate::…` (paths and `use crate::{a, b::c}`).
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if known.contains(&name) {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

/// module → the modules it imports, for every file of `src/`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut paths = Vec::new();
    files(&src(), &mut paths);
    let known: BTreeSet<String> = paths.iter().filter_map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &paths {
        let Some(module) = module_of(path) else {
            continue;
        };
        let mut deps = imports(&code(path), &known);
        deps.remove(&module);
        graph.entry(module).or_default().extend(deps);
    }
    graph
}

#[test]
fn every_module_is_in_the_readmes_layers_and_imports_only_from_below() {
    let layers = layers();
    let graph = graph();
    let missing: Vec<&String> = graph.keys().filter(|m| !layers.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "not in README's Code layout: {missing:?}"
    );
    let gone: Vec<&String> = layers.keys().filter(|m| !graph.contains_key(*m)).collect();
    assert!(
        gone.is_empty(),
        "in README's Code layout but not in src/: {gone:?}"
    );
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            if layers[dep] > layers[module] {
                wrong.push(format!(
                    "{module} (layer {}) imports {dep} (layer {})",
                    layers[module], layers[dep]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a higher layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_circles_between_modules() {
    let graph = graph();
    // A module is on a circle when it can reach itself.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = stack.pop() {
            assert!(m != start, "{start} imports itself around a circle");
            if seen.insert(m.clone()) {
                stack.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
}

#[test]
fn only_db_holds_sql() {
    let mut paths = Vec::new();
    files(&src(), &mut paths);
    paths.retain(|p| module_of(p).as_deref() != Some("db"));
    let markers = [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "Entity::find",
        "Entity::insert",
        "Entity::update",
        "Entity::delete",
        "execute_raw",
        "query_all_raw",
        "query_one_raw",
        "find_by_statement",
        "execute_unprepared",
        "ActiveModel",
        "ActiveValue",
    ];
    let mut found = Vec::new();
    for path in &paths {
        let code = code(path);
        for marker in markers {
            if code.contains(marker) {
                found.push(format!("{}: {marker}", path.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside src/db:\n{}",
        found.join("\n")
    );
}

/// The module path of a file of `src/` (`slack/render/home.rs` → `slack::render::home`,
/// `slack/mod.rs` → `slack`; `lib.rs` and `main.rs` → the crate root, empty).
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Every path `code` names from `crate::`, `super::` or `self::`, groups (`{a, b::c}`)
/// expanded, as written (the leading keyword kept).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let word = |i: usize| {
        i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':')
    };
    for keyword in ["crate::", "super::", "self::"] {
        for (i, _) in code.match_indices(keyword) {
            if word(i) {
                let head = keyword.trim_end_matches("::").to_string();
                expand(&code[i + keyword.len()..], vec![head], &mut out);
            }
        }
    }
    out
}

/// The paths `rest` continues `prefix` with: identifiers joined by `::`, and groups.
fn expand(rest: &str, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &group[..end];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(inner[start..i].trim_start(), prefix.clone(), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(inner[start..].trim_start(), prefix, out);
            return;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || name == "self" {
            out.push(prefix);
            return;
        }
        rest = &rest[name.len()..];
        prefix.push(name);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => {
                out.push(prefix);
                return;
            }
        }
    }
}

/// file module → the file modules it imports (a parent naming its own children is not an
/// import: it declares them).
fn file_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut paths = Vec::new();
    files(&src(), &mut paths);
    let known: BTreeSet<Vec<String>> = paths.iter().map(|p| module_path(p)).collect();
    let mut graph = BTreeMap::new();
    for path in &paths {
        let me = module_path(path);
        let mut deps = BTreeSet::new();
        for named in named_paths(&code(path)) {
            let mut target = match named[0].as_str() {
                "crate" => Vec::new(),
                "self" => me.clone(),
                _ => me[..me.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = &named[1..];
            while rest.first().is_some_and(|s| s == "super") {
                target.pop();
                rest = &rest[1..];
            }
            target.extend(rest.iter().cloned());
            while !target.is_empty() && !known.contains(&target) {
                target.pop();
            }
            if !target.is_empty() && !target.starts_with(&me) {
                deps.insert(target);
            }
        }
        graph.insert(me, deps);
    }
    graph
}

#[test]
fn no_import_circles_between_files() {
    let graph = file_graph();
    let name = |m: &Vec<String>| m.join("::");
    let mut circles = Vec::new();
    for start in graph.keys() {
        // Depth-first, keeping the way taken, until the start comes round again.
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> = graph[start]
            .iter()
            .map(|d| (d.clone(), vec![start.clone(), d.clone()]))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((m, way)) = stack.pop() {
            if &m == start {
                circles.push(way.iter().map(name).collect::<Vec<_>>().join(" → "));
                break;
            }
            if seen.insert(m.clone()) {
                for d in graph.get(&m).into_iter().flatten() {
                    let mut next = way.clone();
                    next.push(d.clone());
                    stack.push((d.clone(), next));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
    // The check reads what it should: a known import is seen.
    let dispatch = vec!["slack".to_string(), "dispatch".to_string()];
    assert!(
        graph[&dispatch].contains(&vec!["handlers".to_string(), "offer".to_string()]),
        "{:?}",
        graph[&dispatch]
    );
}

#[test]
fn group_paths_are_expanded() {
    let paths =
        named_paths("use crate::handlers::{self, offer::{Via, answer}, home};\nuse super::x::Y;");
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "crate::handlers",
            "crate::handlers::offer::Via",
            "crate::handlers::offer::answer",
            "crate::handlers::home",
            "super::x::Y"
        ]
    );
}

#[test]
fn the_transports_do_not_import_each_other() {
    let graph = graph();
    for (from, to) in [
        ("email", "slack"),
        ("slack", "email"),
        ("delivery", "slack"),
        ("delivery", "email"),
    ] {
        assert!(
            !graph[from].contains(to),
            "{from} imports {to}: the transports are siblings below `delivery` and `handlers`"
        );
    }
}
