//! Builds the libevent, libev and libuv peers (benches/peers/*.c) with the system C compiler where
//! their headers exist, and tells the benches which are there through `cfg(have_libevent)`
//! `cfg(have_libev)` and `cfg(have_libuv)`. Absent peers are skipped at run time with a printed reason, so
//! nothing here is needed for `cargo test --workspace`. (The system `cc` is called directly;
//! three files do not justify the `cc` crate.)

use std::path::Path;
use std::process::Command;

fn build(peer: &str, lib: &str, out: &str) -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let obj = format!("{out}/{peer}.o");
    let archive = format!("{out}/libevloop_{peer}.a");
    let compiled = Command::new(&cc)
        .args(["-O2", "-fPIC", "-c", &format!("peers/{peer}.c"), "-o", &obj])
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&archive);
    if !compiled
        || !Command::new("ar")
            .args(["crs", &archive, &obj])
            .status()
            .is_ok_and(|s| s.success())
    {
        println!("cargo::warning={peer} peer not built ({cc} or ar failed); it will be skipped");
        return false;
    }
    println!("cargo::rustc-link-lib=static=evloop_{peer}");
    println!("cargo::rustc-link-lib={lib}");
    println!("cargo::rustc-cfg=have_{peer}");
    true
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_libevent)");
    println!("cargo::rustc-check-cfg=cfg(have_libev)");
    println!("cargo::rustc-check-cfg=cfg(have_libuv)");
    println!("cargo::rerun-if-changed=peers");
    // The peers are host C libraries: only for a native Unix build (never cross to Windows).
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || std::env::var("CARGO_CFG_UNIX").is_err() {
        return;
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    println!("cargo::rustc-link-search=native={out}");
    let include = Path::new("/usr/include");
    for (peer, header, lib) in [
        ("libevent", "event2/event.h", "event"),
        ("libev", "ev.h", "ev"),
        ("libuv", "uv.h", "uv"),
    ] {
        if include.join(header).exists() {
            build(peer, lib, &out);
        }
    }
}
