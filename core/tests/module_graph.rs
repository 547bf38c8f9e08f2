//! The core's modules form a graph without cycles, read from the sources: a module "uses"
//! another when its non-test code names `crate::other` (a `use` or a path). `bufio/` counts as
//! one module, with everything under it. `event.rs` names nothing of the crate but `flags`.

use std::collections::BTreeMap;
use std::path::Path;

fn module_sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    let mut read = |path: &Path, name: String| {
        let text = std::fs::read_to_string(path).unwrap();
        // Tests may reach anywhere; only the module's own code counts.
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        modules.entry(name).or_default().push_str(&code);
    };
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            // Everything under a directory, at any depth, is that one module.
            let mut dirs = vec![path];
            while let Some(dir) = dirs.pop() {
                for file in std::fs::read_dir(&dir).unwrap() {
                    let file = file.unwrap().path();
                    if file.is_dir() {
                        dirs.push(file);
                    } else {
                        read(&file, stem.clone());
                    }
                }
            }
        } else if stem != "lib" {
            read(&path, stem);
        }
    }
    modules
}

fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    modules
        .iter()
        .map(|(name, code)| {
            let used = modules
                .keys()
                .filter(|other| *other != name)
                .filter(|other| {
                    code.contains(&format!("crate::{other}::"))
                        || code.contains(&format!("crate::{other}}}"))
                        || code.contains(&format!("crate::{other};"))
                        || code.contains(&format!("crate::{other}{{"))
                })
                .cloned()
                .collect();
            (name.clone(), used)
        })
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = edges(&module_sources());
    // Depth-first search; a module met again while on the stack closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, Vec<String>>,
        stack: &mut Vec<String>,
        done: &mut Vec<String>,
    ) {
        if done.iter().any(|d| d == m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!("import cycle in core: {} -> {m}", stack[i..].join(" -> "));
        }
        stack.push(m.to_string());
        for next in &graph[m] {
            visit(next, graph, stack, done);
        }
        stack.pop();
        done.push(m.to_string());
    }
    let mut done = Vec::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn event_imports_nothing_but_flags() {
    let graph = edges(&module_sources());
    assert_eq!(graph["event"], ["flags"]);
}
