// The systems where the `polling` adapter is evloop's one O(1) backend, and so compiled without
// the `everywhere` feature: illumos and Solaris (event ports) and Windows (IOCP with AFD).
// Plain comments, no inner docs: `build.rs` includes this file too, so the list exists once.

/// The `target_os` values where the adapter is compiled by default.
pub const NATIVE_SYSTEMS: &[&str] = &["illumos", "solaris", "windows"];
