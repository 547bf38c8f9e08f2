//! The timers workload: `IMPL timers N add_ns X rearm_ns Y run_ms Z rss_kib K`.
//!
//! ```text
//! cargo run --release -p evloop-benches --bin timers -- -n 1000000 -r 2 [--impl evloop|libev|libevent]
//! ```
//! Run one implementation per process: the peak RSS is the process's.

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use evloop_benches::*;

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let n: u64 = flag(&args, "-n", 1_000_000);
        let r: u64 = flag(&args, "-r", 2);
        let imp: String = flag(&args, "--impl", "evloop".to_string());
        if n == 0 {
            eprintln!("timers: -n must be positive");
            std::process::exit(2);
        }
        let result = match imp.as_str() {
            "evloop" => timers_evloop(n, r).map_err(|e| e.to_string()),
            peer => timers_peer(peer, n, r),
        };
        match result {
            Ok(t) => {
                if t.fired != n {
                    eprintln!("timers: {imp}: {} of {n} timers fired", t.fired);
                    std::process::exit(1);
                }
                println!(
                    "{imp} timers {n} add_ns {:.1} rearm_ns {:.1} run_ms {:.1} rss_kib {}",
                    t.add_ns,
                    t.rearm_ns,
                    t.run_ms,
                    peak_rss_kib()
                );
            }
            Err(why) => println!("{imp} timers {n} skipped: {why}"),
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!("timers: the benchmarks run on Unix (their peers are epoll, libevent and libev)");
        std::process::exit(2)
    }
}
