//! The loop-hook workloads (see `evloop_benches::loop_hooks`), every implementation in one
//! run, taking turns:
//!
//! ```text
//! cargo run --release -p evloop-benches --bin loop_hooks -- [--ticks 2000000] [--firings 5000] [--rounds 3]
//! ```
//!
//! `--impl evloop|libuv|libev` runs that implementation's `loop_count` alone and `--firings 0`
//! skips the lateness part: what `benches/instructions.sh` counts under callgrind.

#[cfg(unix)]
mod bench {
    use evloop_benches::chart;
    use evloop_benches::flag;
    use evloop_benches::loop_hooks::*;
    use std::time::Duration;

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let ticks: u64 = flag(&args, "--ticks", 2_000_000);
        let firings: usize = flag(&args, "--firings", 5_000);
        let rounds: usize = flag(&args, "--rounds", 3);
        println!("loop_count: {ticks} idle callbacks; median of {rounds} runs, taking turns");
        let only: String = flag(&args, "--impl", String::new());
        let impls: Vec<&str> = ["evloop", "libuv", "libev"]
            .into_iter()
            .filter(|i| only.is_empty() || *i == only)
            .collect();
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); impls.len()];
        let mut skipped = vec![None; impls.len()];
        for _ in 0..rounds {
            for (i, imp) in impls.iter().enumerate() {
                let r = if *imp == "evloop" {
                    loop_count_evloop(ticks)
                } else {
                    loop_count_peer(imp, ticks)
                };
                match r {
                    Ok(s) => secs[i].push(s),
                    Err(why) => skipped[i] = Some(why),
                }
            }
        }
        for (i, imp) in impls.iter().enumerate() {
            match &skipped[i] {
                Some(why) => println!("  {imp:<8} skipped: {why}"),
                None => {
                    let s = median(secs[i].clone());
                    println!(
                        "  {imp:<8} {:>12.0} iterations/s  ({:.1} ns per iteration)",
                        ticks as f64 / s,
                        s * 1e9 / ticks as f64
                    );
                    chart::print_result(&chart::Figure {
                        panel: "loop_count".into(),
                        x: "idle callbacks".into(),
                        imp: imp.to_string(),
                        value: ticks as f64 / s,
                        unit: "iterations/s".into(),
                        better: chart::Better::Higher,
                    });
                }
            }
        }
        if firings == 0 {
            return;
        }
        let period = Duration::from_millis(1);
        println!(
            "lateness of a {period:?} timer re-armed from its callback, {firings} firings (µs)"
        );
        println!(
            "  {:<18} {:>8} {:>8} {:>8} {:>6}",
            "implementation", "p50", "p99", "max", "early"
        );
        for imp in [
            "evloop",
            "evloop-precise",
            "libevent",
            "libevent-precise",
            "libuv",
        ] {
            let r = match imp {
                "evloop" => lateness_evloop(false, firings, period),
                "evloop-precise" => lateness_evloop(true, firings, period),
                peer => lateness_peer(peer, firings, period),
            };
            match r {
                Ok(mut v) => {
                    let (p50, p99, max, early) = summary(&mut v);
                    println!("  {imp:<18} {p50:>8.1} {p99:>8.1} {max:>8.1} {early:>6}");
                }
                Err(why) => println!("  {imp:<18} skipped: {why}"),
            }
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!("loop_hooks: the benchmarks run on Unix (their peers are Linux libraries)");
        std::process::exit(2)
    }
}
