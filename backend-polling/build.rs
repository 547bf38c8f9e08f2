//! Defines `cfg(polling_adapter)` where the adapter is compiled: on its native systems
//! (`src/systems.rs`), or everywhere with the `everywhere` feature.
include!("src/systems.rs");

fn main() {
    println!("cargo::rustc-check-cfg=cfg(polling_adapter)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let everywhere = std::env::var_os("CARGO_FEATURE_EVERYWHERE").is_some();
    if everywhere || NATIVE_SYSTEMS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=polling_adapter");
    }
}
