// Which backend crates exist on which target, in order of preference, and which of them a
// set of cargo features compiles in: the one place that decides it. `build.rs` includes this
// file to define `cfg(evloop_backend = "...")` and `EVLOOP_METHODS` for the target being built;
// the facade includes it as the `targets` module, whose tests prove the preference list for
// every target family on any host and check it against Cargo.toml's target tables and the
// backend crates' own system lists. Plain comments only: a build script cannot include a file
// with inner doc comments.

/// Every backend evloop knows, in order of preference: the native O(1) mechanisms, the
/// `polling` adapter (O(1) where polling has IOCP, event ports, epoll or kqueue beneath), then
/// the portable O(n) ones.
pub const PREFERENCE: [&str; 5] = ["kqueue", "epoll", "polling", "poll", "select"];

/// The systems that have kqueue (the same list as `evloop_kqueue::SYSTEMS`).
pub const KQUEUE_SYSTEMS: [&str; 6] = ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"];

/// The systems that have epoll.
pub const EPOLL_SYSTEMS: [&str; 2] = ["linux", "android"];

/// Where the `polling` adapter is compiled by default (the `native-polling` feature): where it
/// is evloop's only O(1) mechanism (the same list as `evloop_polling::NATIVE_SYSTEMS`).
pub const POLLING_NATIVE_SYSTEMS: [&str; 3] = ["illumos", "solaris", "windows"];

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
