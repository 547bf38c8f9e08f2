//! Names the systems once: `cfg(has_kqueue)` where kqueue exists, `cfg(has_evfilt_user)` where
//! rustix exposes `EVFILT_USER` (macOS, iOS, FreeBSD, DragonFly).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_kqueue)");
    println!("cargo::rustc-check-cfg=cfg(has_evfilt_user)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let os = os.as_str();
    if ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"].contains(&os) {
        println!("cargo::rustc-cfg=has_kqueue");
    }
    if ["macos", "ios", "freebsd", "dragonfly"].contains(&os) {
        println!("cargo::rustc-cfg=has_evfilt_user");
    }
}
