//! The shared crate's modules depend on each other one way only (the rule at the top of
//! `shared/src/lib.rs`): no cycles between top-level modules, `http` never imports `api`, providers
//! never import `chat`, config imports nothing of ours, and inside the crate nobody reaches types
//! through the root re-exports (which would hide an edge).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level names a file reaches through `crate::`, including grouped imports
/// (`use crate::{a, b::{c, d}}` names `a` and `b`).
fn crate_references(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let ident: String = group[j..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        names.push(ident);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(ident);
        }
    }
    names
}

fn graph() -> (Graph, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| -> String {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = Graph::new();
    let mut through_root = Vec::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" {
            continue;
        }
        // Comments (docs linking other modules) are not dependencies.
        let source: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for name in crate_references(&source) {
            if modules.contains(&name) {
                if name != module {
                    graph.entry(module.clone()).or_default().insert(name);
                }
            } else if name != "VERSION" {
                through_root.push(format!("{}: crate::{name}", file.display()));
            }
        }
        graph.entry(module).or_default();
    }
    (graph, through_root)
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn grouped_imports_are_read() {
    let refs = crate_references(
        "use crate::{\n    accounts::{self, Email},\n    error::{Error, Result},\n    http,\n};\nlet v = crate::ids::now();",
    );
    assert_eq!(refs, ["accounts", "error", "http", "ids"]);
}

#[test]
fn modules_have_no_cycles_and_keep_their_layers() {
    let (graph, through_root) = graph();
    assert!(
        through_root.is_empty(),
        "use the module path, not a root re-export: {through_root:#?}"
    );
    assert!(
        graph.contains_key("api") && graph.contains_key("store"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
    let deps = |m: &str| graph.get(m).cloned().unwrap_or_default();
    assert!(!deps("http").contains("api"), "http imports api");
    assert!(!deps("providers").contains("chat"), "providers import chat");
    assert!(
        deps("config").is_empty(),
        "config imports {:?}",
        deps("config")
    );
    for leaf in ["ids", "kinds"] {
        assert!(
            deps(leaf).is_empty(),
            "{leaf} is a leaf, imports {:?}",
            deps(leaf)
        );
    }
    // Only the API layer and the runner see the whole state.
    for (module, uses) in &graph {
        if uses.contains("state") {
            assert!(
                ["api", "http", "function"].contains(&module.as_str()),
                "{module} takes the whole AppState; pass it what it uses"
            );
        }
    }
}
