//! The top-level modules form a directed acyclic graph: an adapter may use
//! another, never the reverse as well. The compiler checks this between
//! crates only, so within this crate a test reads each module's `crate::`
//! paths and looks for a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that must not use any other module of this crate.
const LEAVES: &[&str] = &["digest", "hfcache", "hub"];

fn sources(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
}

/// The top-level modules a source text names through `crate::`, including
/// grouped imports (`use crate::{a, b::c}`).
fn edges(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text.get(..i).and_then(|b| b.chars().next_back());
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `modelgate_crate::` and the like
        }
        let rest = text.get(i + "crate::".len()..).unwrap_or_default();
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for n in names {
            let n: String = n
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&n) {
                out.insert(n);
            }
        }
    }
    out
}

#[test]
fn top_level_modules_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeSet::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        if !["lib", "main", "cli", "layering"].contains(&stem.as_str()) {
            modules.insert(stem);
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let mut texts = Vec::new();
        let dir = src.join(m);
        if dir.is_dir() {
            sources(&dir, &mut texts);
        } else {
            texts.push(std::fs::read_to_string(src.join(format!("{m}.rs"))).unwrap());
        }
        let mut deps = BTreeSet::new();
        for t in &texts {
            deps.extend(edges(t, &modules));
        }
        deps.remove(m);
        graph.insert(m.clone(), deps);
    }
    for leaf in LEAVES {
        assert_eq!(
            graph.get(*leaf).map(BTreeSet::len),
            Some(0),
            "`{leaf}` must be a leaf but uses {:?}",
            graph.get(*leaf)
        );
    }
    // Depth-first search with the current path on a stack: a back edge is
    // a cycle, reported with its modules in order.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            let cycle = path.get(at..).unwrap_or_default().join(" → ");
            panic!("module cycle: {cycle} → {m}");
        }
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

/// Adapters reach the detection core through its root API (plus the rule
/// registry and the directory walk), never into its parsers: format
/// knowledge stays in the core.
#[test]
fn adapters_do_no_format_work() {
    const INTERNALS: &[&str] = &["sniff", "pickle", "formats", "archive", "compress"];
    let mut texts = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut texts,
    );
    for t in &texts {
        for (i, _) in t.match_indices("scan::") {
            let rest = t.get(i + "scan::".len()..).unwrap_or_default();
            let module: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let line = t.get(..i).map_or(0, |b| b.matches('\n').count()) + 1;
            assert!(
                !INTERNALS.contains(&module.as_str()),
                "an adapter uses the core's `{module}` module (line {line} of a file under src/): \
                 expose what it needs at the core's root instead"
            );
        }
    }
}
