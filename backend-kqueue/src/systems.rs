// The systems that have kqueue, and those where rustix exposes `EVFILT_USER`. Plain comments,
// no inner docs: `build.rs` includes this file too, so each list exists once (the facade's
// tests check `SYSTEMS` against its own table and Cargo.toml's target tables).

/// The `target_os` values with kqueue, where `KqueueBackend` is compiled.
pub const SYSTEMS: &[&str] = &["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"];

/// The kqueue systems whose `EVFILT_USER` wakes a wait from another thread.
pub const EVFILT_USER_SYSTEMS: &[&str] = &["macos", "ios", "freebsd", "dragonfly"];
