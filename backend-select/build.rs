//! The `cfg` aliases of the workspace's one table of systems (`src/targets.rs` at the root):
//! `has_select` gates the backend (a select without an `FD_SETSIZE` limit).
include!("../src/targets.rs");

fn main() {
    print_cfg_aliases("../src/targets.rs");
}
