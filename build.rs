//! Defines `cfg(bsd_like)` for the systems that have kqueue, so the facade names them once.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(bsd_like)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"].contains(&os.as_str()) {
        println!("cargo::rustc-cfg=bsd_like");
    }
}
