//! Decides which backends this build compiles in, from `src/targets.rs` (the one table of
//! which backend exists where) and the enabled cargo features:
//! * `cfg(evloop_backend = "NAME")` for each, which gates its constructor in `src/lib.rs`;
//! * `EVLOOP_METHODS`, their names in order of preference, read by `supported_methods`;
//! * `cfg(bsd_like)` on the kqueue systems, so the facade names them once.
include!("src/targets.rs");

fn main() {
    println!("cargo::rerun-if-changed=src/targets.rs");
    println!("cargo::rustc-check-cfg=cfg(bsd_like)");
    let names = PREFERENCE.map(|b| format!("\"{b}\"")).join(", ");
    println!("cargo::rustc-check-cfg=cfg(evloop_backend, values({names}))");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    // A target may belong to several families ("unix,wasm"): the first one that has backends.
    let family = family
        .split(',')
        .find(|f| *f == "unix" || *f == "windows")
        .unwrap_or("");
    let features: Vec<String> = [
        "epoll",
        "kqueue",
        "poll",
        "select",
        "polling",
        "native-polling",
    ]
    .into_iter()
    .filter(|f| {
        let var = format!("CARGO_FEATURE_{}", f.to_uppercase().replace('-', "_"));
        std::env::var_os(var).is_some()
    })
    .map(String::from)
    .collect();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let compiled = compiled_backends(&os, family, &features);
    for backend in &compiled {
        println!("cargo::rustc-cfg=evloop_backend=\"{backend}\"");
    }
    println!("cargo::rustc-env=EVLOOP_METHODS={}", compiled.join(" "));
    if KQUEUE_SYSTEMS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=bsd_like");
    }
}
