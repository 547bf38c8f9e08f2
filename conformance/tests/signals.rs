//! Signal scenarios with the default self-pipe, on every backend, as `<backend>::<scenario>`.
//! A `harness = false` binary: signals are process-wide, so the scenarios run one at a time
//! on the main thread (libtest-mimic with one test thread), apart from the other tests.

use evloop_conformance::{signals::signal_scenarios, trials_of, Factory, Harness};

fn main() {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let mut trials = Vec::new();
    for name in evloop::supported_methods() {
        let factory: Factory = match name {
            "epoll" => || evloop::backend_by_name("epoll"),
            "kqueue" => || evloop::backend_by_name("kqueue"),
            "poll" => || evloop::backend_by_name("poll"),
            "select" => || evloop::backend_by_name("select"),
            other => panic!("no factory for backend {other}"),
        };
        trials.extend(trials_of(
            name,
            Harness::new(name, factory),
            signal_scenarios(),
        ));
    }
    libtest_mimic::run(&args, trials).exit()
}
