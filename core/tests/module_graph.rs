//! The core's modules form a graph without cycles, read from the sources: a module "uses"
//! another when its non-test code names `crate::other` (a `use` or a path), or calls a
//! function defined only in the other (a method of a split `impl Registry`, say, which no
//! `use` shows). `bufio/` counts as one module, with everything under it. `event.rs` names
//! nothing of the crate but `flags`.

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
        // Comments and doc examples name functions without calling them.
        let code: String = code
            .lines()
            .map(|line| match line.find("//") {
                Some(i) => &line[..i],
                None => line,
            })
            .flat_map(|line| [line, "\n"])
            .collect();
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
    let graph = all_edges(&module_sources());
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

/// Names too common to say which module a call reaches (std's methods, trait methods).
const COMMON: &[&str] = &[
    "new",
    "len",
    "is_empty",
    "push",
    "pop",
    "get",
    "get_mut",
    "insert",
    "remove",
    "clear",
    "contains",
    "iter",
    "iter_mut",
    "next",
    "take",
    "default",
    "fmt",
    "drop",
    "from",
    "into",
    "clone",
    "eq",
    "cmp",
    "partial_cmp",
    "hash",
    "extend",
    "as_ref",
    "as_mut",
    "deref",
    "deref_mut",
    "index",
    "index_mut",
    "poll",
    "wake",
    "wake_by_ref",
    "read",
    "write",
    "flush",
    "close",
    "run",
    "check",
    "start",
    "stop",
    "add",
    "del",
    "free",
    "change",
    "dispatch",
    "name",
    "with_capacity",
    "resize",
    "first",
    "last",
    "split",
    "as_raw_fd",
    "as_fd",
    "fd",
    "id",
    "map",
    "and_then",
    "ok",
    "err",
    "unwrap",
    "expect",
    "set",
    "is",
    "count",
    "min",
    "max",
    "into_iter",
    "as_slice",
    "truncate",
    "retain",
    "drain",
    "swap",
    "reserve",
    "capacity",
    "features",
    "now",
    "activate",
    "schedule",
    "verify",
    "shutdown",
    "connect",
    "accept",
    "poll_read",
    "poll_write",
    "poll_flush",
    "poll_close",
    "poll_next",
    "to_vec",
    "write_all",
    "read_exact",
    "sort",
    "len_bytes",
    "kind",
    "code",
    "bind",
    "sleep",
    "listen",
    "with",
    "after",
    "handle",
    "report",
    "send",
    "recv",
    "local_addr",
    "peer_addr",
    "spawn",
    "release",
    "deadline",
    "into_inner",
    "method",
    "snapshot",
    "metrics",
    "waker",
    "readv",
    "writev",
];

/// Every `fn name` of a module's own code.
fn fns_of(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("fn ") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[i + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Calls across modules that no `use` shows: a module calling a method (or associated fn)
/// defined in another module's `impl` block, found by name. Only names defined in one module
/// of the crate and not common (std's, traits') count, so an edge is a real call.
fn call_edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (m, code) in modules {
        for f in fns_of(code) {
            let owners = owner.entry(f).or_default();
            if !owners.contains(m) {
                owners.push(m.clone());
            }
        }
    }
    let unique: BTreeMap<&str, &str> = owner
        .iter()
        .filter(|(f, ms)| ms.len() == 1 && !COMMON.contains(&f.as_str()))
        .map(|(f, ms)| (f.as_str(), ms[0].as_str()))
        .collect();
    modules
        .iter()
        .map(|(m, code)| {
            let mut used: Vec<String> = Vec::new();
            for (f, def) in &unique {
                if *def == m || used.iter().any(|u| u == def) {
                    continue;
                }
                if code.contains(&format!(".{f}(")) || code.contains(&format!("::{f}(")) {
                    used.push(def.to_string());
                }
            }
            (m.clone(), used)
        })
        .collect()
}

/// The import graph and the call graph together, which is what "without cycles" means: a
/// module's code never runs another's that calls back into it.
fn all_edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut graph = edges(modules);
    for (m, called) in call_edges(modules) {
        let into = graph.entry(m).or_default();
        for c in called {
            if !into.contains(&c) {
                into.push(c);
            }
        }
    }
    graph
}

#[test]
fn no_module_calls_one_that_calls_it_back() {
    let graph = all_edges(&module_sources());
    let mut cycles = Vec::new();
    for (m, next) in &graph {
        for n in next {
            // A two-module cycle is the shape the split `impl Registry` makes; longer ones
            // show through the import test above once each call is a use.
            if graph.get(n).is_some_and(|back| back.contains(m)) && m < n {
                let why = |from: &str, to: &str| -> Vec<String> {
                    let code = &module_sources()[from];
                    let others: Vec<String> = module_sources()
                        .iter()
                        .filter(|(m, _)| m.as_str() != to)
                        .flat_map(|(_, c)| fns_of(c))
                        .collect();
                    fns_of(&module_sources()[to])
                        .into_iter()
                        .filter(|f| !COMMON.contains(&f.as_str()) && !others.contains(f))
                        .filter(|f| {
                            code.contains(&format!(".{f}(")) || code.contains(&format!("::{f}("))
                        })
                        .take(4)
                        .collect()
                };
                cycles.push(format!(
                    "{m} <-> {n} ({m} calls {:?}; {n} calls {:?})",
                    why(m, n),
                    why(n, m)
                ));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "call cycles in core:\n{}",
        cycles.join("\n")
    );
}
