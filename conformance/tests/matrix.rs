//! The conformance matrix: every scenario on every backend compiled for this target, as
//! `<backend>::<scenario>`. `cargo test -p evloop-conformance -- epoll::` runs one column.

use evloop_conformance::{run_matrix, Factory};

fn main() {
    let backends: Vec<(&'static str, Factory)> = evloop::supported_methods()
        .into_iter()
        .map(|name| {
            let factory: Factory = match name {
                "epoll" => || evloop::backend_by_name("epoll"),
                "kqueue" => || evloop::backend_by_name("kqueue"),
                "poll" => || evloop::backend_by_name("poll"),
                "select" => || evloop::backend_by_name("select"),
                other => panic!("no factory for backend {other}"),
            };
            (name, factory)
        })
        .collect();
    run_matrix(&backends)
}
