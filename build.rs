//! Decides which backends this build compiles in, from `src/targets.rs` (the one table of
//! which backend exists where) and the enabled cargo features:
//! * `cfg(evloop_backend = "NAME")` for each, which gates its constructor in `src/lib.rs`;
//! * `EVLOOP_METHODS`, their names in order of preference, read by `supported_methods`;
//! * the `cfg` aliases of `targets::cfg_aliases` (`has_kqueue`, ...), so no OS is named here.
include!("src/targets.rs");

fn main() {
    print_cfg_aliases("src/targets.rs");
    let names = PREFERENCE.map(|b| format!("\"{b}\"")).join(", ");
    println!("cargo::rustc-check-cfg=cfg(evloop_backend, values({names}))");

    let (os, family) = build_target();
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
    let compiled = compiled_backends(&os, &family, &features);
    for backend in &compiled {
        println!("cargo::rustc-cfg=evloop_backend=\"{backend}\"");
    }
    println!("cargo::rustc-env=EVLOOP_METHODS={}", compiled.join(" "));
}
