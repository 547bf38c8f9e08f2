//! What the conformance test binaries share: every backend compiled for this target, with a
//! factory the suite can call.

use evloop_conformance::Factory;

/// `(name, factory)` for every backend the facade compiled in, in order of preference.
pub fn backends() -> Vec<(&'static str, Factory)> {
    evloop::supported_methods()
        .into_iter()
        .map(|name| {
            let factory: Factory = match name {
                "epoll" => || evloop::backend_by_name("epoll"),
                "kqueue" => || evloop::backend_by_name("kqueue"),
                "poll" => || evloop::backend_by_name("poll"),
                "select" => || evloop::backend_by_name("select"),
                other => panic!("no factory for backend {other}: add it to tests/common"),
            };
            (name, factory)
        })
        .collect()
}
