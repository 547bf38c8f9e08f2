//! The `cfg` aliases of the workspace's one table of systems (`src/targets.rs` at the root):
//! `has_ppoll` says whether timeouts are nanoseconds.
include!("../src/targets.rs");

fn main() {
    print_cfg_aliases("../src/targets.rs");
}
