//! Names the systems once (`src/systems.rs`): `cfg(has_kqueue)` where kqueue exists,
//! `cfg(has_evfilt_user)` where rustix exposes `EVFILT_USER`.
include!("src/systems.rs");

fn main() {
    println!("cargo::rerun-if-changed=src/systems.rs");
    println!("cargo::rustc-check-cfg=cfg(has_kqueue)");
    println!("cargo::rustc-check-cfg=cfg(has_evfilt_user)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if SYSTEMS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=has_kqueue");
    }
    if EVFILT_USER_SYSTEMS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=has_evfilt_user");
    }
}
