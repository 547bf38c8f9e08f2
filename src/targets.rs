// Which backend crates exist on which target, in order of preference, and which of them a
// set of cargo features compiles in: the one place that decides it, and the one place an OS
// is named for it. Every build script of the workspace that needs to know includes this file:
// the facade's (`cfg(evloop_backend = "...")`, `EVLOOP_METHODS`), each backend crate's (its
// `cfg` aliases from [`cfg_aliases`], which gate the crate's contents, so a crate is empty
// where its mechanism does not exist and no Cargo.toml names an OS), and the conformance
// suite's. The facade includes it as the `targets` module, whose tests prove the lists for
// every target family on any host. Plain comments only: a build script cannot include a file
// with inner doc comments.

/// Every backend evloop knows, in order of preference: the native O(1) mechanisms, the
/// `polling` adapter (O(1) where polling has IOCP, event ports, epoll or kqueue beneath), then
/// the portable O(n) ones.
pub const PREFERENCE: [&str; 5] = ["kqueue", "epoll", "polling", "poll", "select"];

/// The systems that have kqueue.
pub const KQUEUE_SYSTEMS: [&str; 6] = ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"];

/// The systems that have epoll.
pub const EPOLL_SYSTEMS: [&str; 2] = ["linux", "android"];

/// Where the `polling` adapter is compiled by default (the `native-polling` feature): where it
/// is evloop's only O(1) mechanism.
pub const POLLING_NATIVE_SYSTEMS: [&str; 3] = ["illumos", "solaris", "windows"];

/// The kqueue systems whose `EVFILT_USER` (as rustix exposes it) wakes a wait from another
/// thread; the others wake through a pipe.
pub const EVFILT_USER_SYSTEMS: [&str; 4] = ["macos", "ios", "freebsd", "dragonfly"];

/// The systems where the `polling` crate has an O(1) mechanism (epoll, kqueue, event ports,
/// IOCP) rather than its poll(2) fallback.
pub fn polling_is_o1(os: &str, family: &str) -> bool {
    EPOLL_SYSTEMS.contains(&os)
        || KQUEUE_SYSTEMS.contains(&os)
        || os == "illumos"
        || os == "solaris"
        || family == "windows"
}

/// The systems whose `ppoll` rustix calls with a timespec (nanosecond timeouts for the poll
/// backend); elsewhere `poll` takes milliseconds.
pub const PPOLL_SYSTEMS: [&str; 4] = ["linux", "android", "freebsd", "dragonfly"];

/// The `cfg` names a target gets, for the backend crates' build scripts: `has_epoll`,
/// `has_kqueue`, `has_select` where those backends exist; `has_evfilt_user`; `polling_o1`
/// where polling is O(1); `polling_native` where the adapter is compiled without asking;
/// `has_ppoll`.
pub fn cfg_aliases(os: &str, family: &str) -> Vec<&'static str> {
    let exists = backends_for(os, family);
    let mut cfgs = Vec::new();
    for (backend, cfg) in [
        ("epoll", "has_epoll"),
        ("kqueue", "has_kqueue"),
        ("select", "has_select"),
    ] {
        if exists.contains(&backend) {
            cfgs.push(cfg);
        }
    }
    if EVFILT_USER_SYSTEMS.contains(&os) {
        cfgs.push("has_evfilt_user");
    }
    if polling_is_o1(os, family) {
        cfgs.push("polling_o1");
    }
    if POLLING_NATIVE_SYSTEMS.contains(&os) {
        cfgs.push("polling_native");
    }
    if PPOLL_SYSTEMS.contains(&os) {
        cfgs.push("has_ppoll");
    }
    cfgs
}

/// Every name [`cfg_aliases`] may return (for `cargo::rustc-check-cfg`).
pub const CFG_ALIASES: [&str; 7] = [
    "has_epoll",
    "has_kqueue",
    "has_select",
    "has_evfilt_user",
    "polling_o1",
    "polling_native",
    "has_ppoll",
];

/// What a build script prints for the target it builds for: `rustc-check-cfg` for every
/// alias, `rustc-cfg` for each of the target's, and a rerun when this file changes. Reads
/// `CARGO_CFG_TARGET_OS` and `CARGO_CFG_TARGET_FAMILY` (a target may belong to several
/// families, "unix,wasm": the first that has backends counts).
pub fn print_cfg_aliases(this_file: &str) {
    println!("cargo::rerun-if-changed={this_file}");
    for cfg in CFG_ALIASES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    let (os, family) = build_target();
    for cfg in cfg_aliases(&os, &family) {
        println!("cargo::rustc-cfg={cfg}");
    }
}

/// The target a build script builds for: `(target_os, target_family)`.
pub fn build_target() -> (String, String) {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let family = family
        .split(',')
        .find(|f| *f == "unix" || *f == "windows")
        .unwrap_or("")
        .to_string();
    (os, family)
}

/// The backends whose crates exist for a target (`target_os`, `target_family`), in order of
/// preference, whether or not a feature compiles them in.
pub fn backends_for(os: &str, family: &str) -> Vec<&'static str> {
    let unix = family == "unix";
    PREFERENCE
        .into_iter()
        .filter(|backend| match *backend {
            "kqueue" => KQUEUE_SYSTEMS.contains(&os),
            "epoll" => EPOLL_SYSTEMS.contains(&os),
            "polling" => unix || family == "windows",
            "poll" => unix,
            // A select without an FD_SETSIZE limit exists on Linux and the BSDs (rustix's
            // caller-sized bit vectors) and on Windows (Winsock's counted arrays); illumos,
            // Solaris and other Unixes have poll and the adapter instead.
            "select" => {
                EPOLL_SYSTEMS.contains(&os) || KQUEUE_SYSTEMS.contains(&os) || family == "windows"
            }
            _ => false,
        })
        .collect()
}

/// The backends compiled in for a target with the facade's cargo `features` enabled, in order
/// of preference. A backend's feature has its name; `polling` is compiled on every target
/// with the `polling` feature and, with `native-polling` (a default feature), on the systems
/// of [`POLLING_NATIVE_SYSTEMS`].
pub fn compiled_backends(os: &str, family: &str, features: &[&str]) -> Vec<&'static str> {
    let on = |feature: &str| features.contains(&feature);
    backends_for(os, family)
        .into_iter()
        .filter(|backend| match *backend {
            "polling" => {
                on("polling") || (on("native-polling") && POLLING_NATIVE_SYSTEMS.contains(&os))
            }
            other => on(other),
        })
        .collect()
}
