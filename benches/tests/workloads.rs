//! The workloads run to the end and count what they should, at tiny sizes, on every
//! implementation built here. Timing goals live in the benchmarks themselves, never here.
#![cfg(unix)]

use evloop_benches::{
    peers_available, pipes_evloop, pipes_peer, pipes_polling, timers_evloop, PipesParams,
};

const TINY: PipesParams = PipesParams {
    n: 16,
    a: 4,
    w: 16,
    r: 3,
};

#[track_caller]
fn sane(what: &str, setup_us: f64, run_us: f64) {
    assert!(
        setup_us.is_finite() && setup_us >= 0.0 && run_us.is_finite() && run_us >= 0.0,
        "{what}: setup {setup_us} µs, run {run_us} µs"
    );
}

/// A round ends only when every written byte was read, so finishing is the check.
#[test]
fn pipes_finish_on_every_backend_and_peer() {
    for method in evloop::supported_methods() {
        let r = pipes_evloop(method, &TINY).unwrap();
        sane(method, r.setup_us, r.run_us);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let r = evloop_benches::pipes_raw(&TINY).unwrap();
        sane("raw", r.setup_us, r.run_us);
    }
    let r = pipes_polling(&TINY).unwrap();
    sane("polling", r.setup_us, r.run_us);
    for peer in peers_available() {
        let r = pipes_peer(peer, "poll", &TINY).unwrap();
        sane(peer, r.setup_us, r.run_us);
    }
}

#[test]
fn every_timer_fires_once() {
    for rearms in [0, 2] {
        let r = timers_evloop(500, rearms).unwrap();
        assert_eq!(r.fired, 500, "with {rearms} re-arms");
        assert!(
            r.run_ms >= 50.0,
            "the earliest deadline is 50 ms away: {r:?}"
        );
    }
}
