//! Signal scenarios with `signalfd` (Linux), on every backend, as
//! `<backend>::signalfd::<scenario>`. The signals used are blocked in the main thread before
//! any other thread exists, so every thread inherits the mask, as signalfd requires. On
//! other systems the binary lists no test.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod common;

fn main() {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials()).exit()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn trials() -> Vec<libtest_mimic::Trial> {
    Vec::new()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn trials() -> Vec<libtest_mimic::Trial> {
    use evloop_conformance::{signals::signal_scenarios, trials_of, Harness};

    // SAFETY: builds a set on the stack and blocks it in the calling (main) thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signo in [libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, signo);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut trials = Vec::new();
    for (name, factory) in common::backends() {
        let prefix = format!("{name}::signalfd");
        let harness = Harness::new(name, factory).with_signalfd();
        trials.extend(trials_of(&prefix, harness, signal_scenarios()));
    }
    trials
}
