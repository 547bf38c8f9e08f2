//! The rearm workload: `IMPL rearm N lengths D rearms M rearm_ns X rss_kib K`.
//!
//! ```text
//! cargo run --release -p evloop-benches --bin rearm -- -n 100000 -d 4 -m 1000000 [--impl evloop|libev|libevent]
//! ```
//! `n` persistent timeouts of `d` lengths (10 s, 20 s, ...), then `m` re-arms of timers picked
//! at random (the same sequence for every implementation): a server re-arming read timeouts.
//! libev re-arms with `ev_timer_again`, libevent with `event_add` on a common timeout.

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use evloop_benches::*;

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let n: u64 = flag(&args, "-n", 100_000);
        let d: u64 = flag(&args, "-d", 4);
        let m: u64 = flag(&args, "-m", 1_000_000);
        let imp: String = flag(&args, "--impl", "evloop".to_string());
        if n == 0 || d == 0 || m == 0 {
            eprintln!("rearm: -n, -d and -m must be positive");
            std::process::exit(2);
        }
        let result = match imp.as_str() {
            "evloop" => rearm_evloop(n, d, m).map_err(|e| e.to_string()),
            peer => rearm_peer(peer, n, d, m),
        };
        match result {
            Ok(r) => {
                if r.fired != 0 {
                    eprintln!("rearm: {imp}: {} timers fired early", r.fired);
                    std::process::exit(1);
                }
                println!(
                    "{imp} rearm {n} lengths {d} rearms {m} rearm_ns {:.1} rss_kib {}",
                    r.rearm_ns,
                    peak_rss_kib()
                );
            }
            Err(why) => println!("{imp} rearm {n} skipped: {why}"),
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!("rearm: the benchmarks run on Unix (their peers are libevent and libev)");
        std::process::exit(2)
    }
}
