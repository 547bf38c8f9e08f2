//! Which backend each target selects, proved on any host: `src/targets.rs` is a pure table, so
//! macOS, the BSDs, illumos and Windows are checked here on Linux. The table is also checked
//! against the places that must agree with it: Cargo.toml's target tables (evaluated for every
//! system) and the backend crates' own system lists.

use evloop::targets::{
    backends_for, compiled_backends, KQUEUE_SYSTEMS, POLLING_NATIVE_SYSTEMS, PREFERENCE,
};

/// Every `(target_os, target_family)` the project names, and two Unixes it does not.
const SYSTEMS: [(&str, &str); 14] = [
    ("linux", "unix"),
    ("android", "unix"),
    ("macos", "unix"),
    ("ios", "unix"),
    ("freebsd", "unix"),
    ("netbsd", "unix"),
    ("openbsd", "unix"),
    ("dragonfly", "unix"),
    ("illumos", "unix"),
    ("solaris", "unix"),
    ("windows", "windows"),
    ("haiku", "unix"),
    ("aix", "unix"),
    ("hurd", "unix"),
];

const DEFAULT: &[&str] = &["epoll", "kqueue", "poll", "select", "native-polling"];

fn with_polling() -> Vec<&'static str> {
    let mut f = DEFAULT.to_vec();
    f.push("polling");
    f
}

#[test]
fn kqueue_comes_first_on_macos_and_every_bsd() {
    for os in ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"] {
        assert_eq!(
            compiled_backends(os, "unix", DEFAULT),
            ["kqueue", "poll", "select"],
            "{os}"
        );
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["kqueue", "polling", "poll", "select"],
            "{os} with the polling feature"
        );
    }
}

#[test]
fn epoll_comes_first_on_linux_and_android() {
    for os in ["linux", "android"] {
        assert_eq!(
            compiled_backends(os, "unix", DEFAULT),
            ["epoll", "poll", "select"]
        );
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["epoll", "polling", "poll", "select"]
        );
    }
}

#[test]
fn the_polling_adapter_comes_first_on_illumos_solaris_and_windows() {
    for os in ["illumos", "solaris"] {
        // No select: rustix has no caller-sized select there.
        assert_eq!(compiled_backends(os, "unix", DEFAULT), ["polling", "poll"]);
        // Without default features the adapter is off there too, as any backend would be.
        assert_eq!(compiled_backends(os, "unix", &["poll"]), ["poll"]);
    }
    assert_eq!(
        compiled_backends("windows", "windows", DEFAULT),
        ["polling", "select"]
    );
}

#[test]
fn other_unixes_get_poll() {
    for os in ["haiku", "aix", "hurd"] {
        assert_eq!(compiled_backends(os, "unix", DEFAULT), ["poll"]);
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["polling", "poll"]
        );
    }
}

#[test]
fn every_list_follows_the_preference_order() {
    for (os, family) in SYSTEMS {
        let list = backends_for(os, family);
        let mut ranks = list
            .iter()
            .map(|b| PREFERENCE.iter().position(|p| p == b).unwrap());
        let mut last = ranks.next().unwrap_or(0);
        for r in ranks {
            assert!(r > last, "{os}: {list:?}");
            last = r;
        }
    }
}

#[test]
fn the_backend_crates_name_the_same_systems() {
    assert_eq!(evloop_kqueue::SYSTEMS, KQUEUE_SYSTEMS);
    assert_eq!(evloop_polling::NATIVE_SYSTEMS, POLLING_NATIVE_SYSTEMS);
}

#[test]
fn this_build_compiles_what_the_table_says() {
    let family = if cfg!(windows) { "windows" } else { "unix" };
    let exists = backends_for(std::env::consts::OS, family);
    for name in evloop::supported_methods() {
        assert!(
            exists.contains(&name),
            "{name} compiled where it does not exist"
        );
    }
    for name in PREFERENCE {
        assert_eq!(
            evloop::backend::by_name(name).is_ok(),
            evloop::supported_methods().contains(&name),
            "{name}: backend::by_name and supported_methods disagree"
        );
    }
}

#[test]
fn cargo_target_tables_agree_with_the_table() {
    let facade = include_str!("../Cargo.toml");
    for (os, family) in SYSTEMS {
        let deps = dependencies_for(facade, os, family);
        for backend in PREFERENCE {
            let krate = format!("evloop-{backend}");
            assert_eq!(
                deps.contains(&krate),
                backends_for(os, family).contains(&backend),
                "{os}: Cargo.toml and src/targets.rs disagree on {krate}"
            );
        }
    }
    // The adapter crate needs polling unconditionally exactly where it is compiled by default.
    let adapter = include_str!("../backend-polling/Cargo.toml");
    for (os, family) in SYSTEMS {
        let required = required_dependencies_for(adapter, os, family);
        assert_eq!(
            required.contains(&"polling".to_string()),
            POLLING_NATIVE_SYSTEMS.contains(&os),
            "{os}: backend-polling/Cargo.toml and NATIVE_SYSTEMS disagree"
        );
    }
}

/// The dependencies a manifest declares for a target: `[dependencies]` and every
/// `[target.'cfg(..)'.dependencies]` whose cfg holds.
fn dependencies_for(manifest: &str, os: &str, family: &str) -> Vec<String> {
    sections(manifest, os, family)
        .into_iter()
        .flat_map(|lines| lines.into_iter().map(|(name, _)| name))
        .collect()
}

/// As [`dependencies_for`], only those not marked `optional = true`.
fn required_dependencies_for(manifest: &str, os: &str, family: &str) -> Vec<String> {
    sections(manifest, os, family)
        .into_iter()
        .flat_map(|lines| {
            lines
                .into_iter()
                .filter(|(_, spec)| !spec.contains("optional = true"))
                .map(|(name, _)| name)
        })
        .collect()
}

/// The `(name, spec)` lines of every dependency section that applies to the target.
fn sections(manifest: &str, os: &str, family: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            out.extend(current.take());
            let applies = if line == "[dependencies]" {
                true
            } else if let Some(cfg) = line
                .strip_prefix("[target.'cfg(")
                .and_then(|l| l.strip_suffix(")'.dependencies]"))
            {
                Cfg::new(cfg).eval(os, family)
            } else {
                false
            };
            current = applies.then(Vec::new);
        } else if let Some(deps) = current.as_mut() {
            if let Some((name, spec)) = line.split_once('=') {
                if !line.starts_with('#') {
                    // `name = {..}` or `name.workspace = true`.
                    let name = name.split('.').next().unwrap_or(name).trim();
                    deps.push((name.to_string(), spec.trim().to_string()));
                }
            }
        }
    }
    out.extend(current);
    out
}

/// A small evaluator of Cargo's `cfg(...)` expressions: `any`, `all`, `not`,
/// `target_os = ".."`, `unix`, `windows`. Anything else is a test failure, not a guess.
struct Cfg<'a> {
    rest: &'a str,
}

impl<'a> Cfg<'a> {
    fn new(expr: &'a str) -> Self {
        Self { rest: expr }
    }

    fn eval(mut self, os: &str, family: &str) -> bool {
        let v = self.expr(os, family);
        assert!(self.rest.trim().is_empty(), "trailing {:?}", self.rest);
        v
    }

    fn ident(&mut self) -> &'a str {
        self.rest = self.rest.trim_start();
        let end = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let (id, rest) = self.rest.split_at(end);
        self.rest = rest.trim_start();
        id
    }

    fn eat(&mut self, token: char) -> bool {
        self.rest = self.rest.trim_start();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expr(&mut self, os: &str, family: &str) -> bool {
        let id = self.ident();
        match id {
            "any" | "all" | "not" => {
                assert!(self.eat('('), "( after {id}");
                let mut values = Vec::new();
                while !self.eat(')') {
                    values.push(self.expr(os, family));
                    self.eat(',');
                }
                match id {
                    "any" => values.iter().any(|v| *v),
                    "all" => values.iter().all(|v| *v),
                    _ => !values[0],
                }
            }
            "unix" | "windows" => family == id,
            "target_os" => {
                assert!(self.eat('='), "= after target_os");
                assert!(self.eat('"'));
                let end = self.rest.find('"').expect("closing quote");
                let value = &self.rest[..end];
                self.rest = &self.rest[end + 1..];
                value == os
            }
            other => panic!("cfg evaluator: unknown predicate {other:?}"),
        }
    }
}
