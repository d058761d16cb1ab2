//! The house rule, checked: no module imports a module that imports it back,
//! directly or through others. Reads every `crate::…` path in the library's
//! sources into a graph of top-level modules and fails on any cycle, naming it.
//! A cycle means a low module needs one above it: move the shared piece down
//! (`errors`, `time`, `redact`) or the config type to the stage it configures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name.
fn module_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("pipeline/lib.rs");
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        let single = root.join(format!("{module}.rs"));
        if single.is_file() {
            files.push(single);
        } else {
            collect_rs(&root.join(module), &mut files);
        }
        let mut uses = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable source");
            for name in crate_paths(&text) {
                if modules.contains(&name) && name != *module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first segment after every `crate::`, including each member of a
/// `crate::{a, b::c}` group; comments are skipped.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut member = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(first_segment(&member));
                        member.clear();
                        continue;
                    }
                    _ => {}
                }
                member.push(c);
            }
            names.push(first_segment(&member));
        } else {
            names.push(first_segment(rest));
        }
    }
    names
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every cycle's members (strongly connected components larger than one).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        if !reachable[m].contains(m) || found.iter().any(|c| c.contains(m)) {
            continue;
        }
        let members = graph
            .keys()
            .filter(|o| reachable[m].contains(*o) && reachable[*o].contains(m))
            .cloned()
            .collect();
        found.push(members);
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline");
    let graph = module_graph(&root);
    assert!(graph.len() > 20, "lib.rs lists the modules: {graph:?}");
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| {
                    format!(
                        "{m} -> {:?}",
                        graph[m]
                            .intersection(&c.iter().cloned().collect())
                            .collect::<Vec<_>>()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles: {described:#?}");
}

#[test]
fn the_check_finds_grouped_and_inline_paths_and_cycles() {
    let text = "use crate::{a, b::{C, D}};\nfn f() { crate::c::now(); } // crate::zzz\n";
    assert_eq!(crate_paths(text), ["a", "b", "c"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
