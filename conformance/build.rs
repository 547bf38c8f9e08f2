//! `cfg(has_kqueue)` from the kqueue crate's own list of systems, so the suite enumerates the
//! backend crates compiled for the target without a copy of that list.
include!("../backend-kqueue/src/systems.rs");

fn main() {
    println!("cargo::rerun-if-changed=../backend-kqueue/src/systems.rs");
    println!("cargo::rustc-check-cfg=cfg(has_kqueue)");
    let _ = EVFILT_USER_SYSTEMS;
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if SYSTEMS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=has_kqueue");
    }
}
