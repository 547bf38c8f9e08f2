//! The `cfg` aliases of the workspace's one table of systems (`src/targets.rs` at the root):
//! the suite enumerates the backend crates compiled for the target by the same `has_*` names the crates are gated by.
include!("../src/targets.rs");

fn main() {
    print_cfg_aliases("../src/targets.rs");
}
