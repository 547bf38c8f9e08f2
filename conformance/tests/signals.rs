//! Signal scenarios with the default self-pipe, on every backend, as `<backend>::<scenario>`.
//! A `harness = false` binary: signals are process-wide, so the scenarios run one at a time
//! on the main thread (libtest-mimic with one test thread), apart from the other tests.

mod common;

use evloop_conformance::{signals::signal_scenarios, trials_of, Harness};

fn main() {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = common::backends()
        .into_iter()
        .flat_map(|(name, factory)| {
            trials_of(name, Harness::new(name, factory), signal_scenarios())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
