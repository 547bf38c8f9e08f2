//! The `cfg` aliases of the workspace's one table of systems (`src/targets.rs` at the root):
//! `has_kqueue` gates the backend, `has_evfilt_user` its wake-up.
include!("../src/targets.rs");

fn main() {
    print_cfg_aliases("../src/targets.rs");
}
