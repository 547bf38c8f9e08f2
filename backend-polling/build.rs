//! The `cfg` aliases of the workspace's one table of systems (`src/targets.rs` at the root):
//! `polling_native` where the adapter is compiled by default, `polling_o1` where polling's
//! mechanism is O(1); and `polling_adapter` where the adapter is compiled: its native systems,
//! or everywhere with the `everywhere` feature.
include!("../src/targets.rs");

fn main() {
    print_cfg_aliases("../src/targets.rs");
    println!("cargo::rustc-check-cfg=cfg(polling_adapter)");
    let (os, family) = build_target();
    let native = cfg_aliases(&os, &family).contains(&"polling_native");
    if native || std::env::var_os("CARGO_FEATURE_EVERYWHERE").is_some() {
        println!("cargo::rustc-cfg=polling_adapter");
    }
}
