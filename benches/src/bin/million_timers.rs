//! libuv's `million_timers` (test/benchmark-million-timers.c), on evloop and on libuv, each in
//! a process of its own so that peak RSS and CPU time are its own, taking turns:
//!
//! ```text
//! cargo run --release -p evloop-benches --bin million_timers -- [--timers 10000000] [--rounds 3]
//! ```
//!
//! 10,000,000 one-shot timers whose timeout goes up by 1 ms every 1,000 timers (so the last
//! fires after 10 s), started, run to the end, then freed (libuv: closed). Reported: the
//! seconds of each phase (init, dispatch, cleanup), the CPU seconds of the whole run (the
//! dispatch phase is mostly waiting for the clock), and peak RSS. `--impl evloop|libuv` runs
//! one, in this process, and prints `init dispatch cleanup cpu rss_kib`.

#[cfg(unix)]
mod bench {
    use std::time::{Duration, Instant};

    use evloop::{Base, BaseOptions, TimerKind};
    use evloop_benches::chart::{print_result, Better, Figure};
    use evloop_benches::flag;

    #[cfg(have_libuv)]
    extern "C" {
        fn peer_million_timers_libuv(
            n: std::ffi::c_long,
            init: *mut f64,
            dispatch: *mut f64,
            cleanup: *mut f64,
            fired: *mut std::ffi::c_long,
        ) -> std::ffi::c_int;
    }

    /// Seconds of init, dispatch and cleanup.
    type Phases = (f64, f64, f64);

    fn evloop(n: usize) -> Result<Phases, String> {
        let e = |e: std::io::Error| e.to_string();
        let backend = evloop::backend::by_name("epoll").map_err(e)?;
        let mut base: Base<u64> = Base::with_backend(backend, BaseOptions::default()).map_err(e)?;
        let mut timers = Vec::with_capacity(n);
        let start = Instant::now();
        // One clock reading for the burst of adds, as libuv's loop time is for its starts.
        base.update_cache_time();
        let mut timeout = 0;
        for i in 0..n {
            if i % 1000 == 0 {
                timeout += 1;
            }
            let t = base
                .new_timer(TimerKind::OneShot, |_, fired: &mut u64| *fired += 1)
                .map_err(e)?;
            base.add(t, Some(Duration::from_millis(timeout)))
                .map_err(e)?;
            timers.push(t);
        }
        base.clear_cache_time();
        let armed = Instant::now();
        let mut fired = 0;
        base.run(&mut fired).map_err(e)?;
        let ran = Instant::now();
        for t in timers {
            base.free(t).map_err(e)?;
        }
        let done = Instant::now();
        if fired != n as u64 {
            return Err(format!("{fired} of {n} timers fired"));
        }
        Ok((
            (armed - start).as_secs_f64(),
            (ran - armed).as_secs_f64(),
            (done - ran).as_secs_f64(),
        ))
    }

    fn libuv(n: usize) -> Result<Phases, String> {
        #[cfg(have_libuv)]
        {
            let (mut init, mut dispatch, mut cleanup, mut fired) = (0.0, 0.0, 0.0, 0);
            // SAFETY: the peer writes the four results through the pointers, which point at
            // locals that outlive the call, and touches nothing else of ours.
            let rc = unsafe {
                peer_million_timers_libuv(
                    n as _,
                    &mut init,
                    &mut dispatch,
                    &mut cleanup,
                    &mut fired,
                )
            };
            if rc != 0 || fired as usize != n {
                return Err(format!("the libuv peer failed ({fired} of {n} fired)"));
            }
            Ok((init, dispatch, cleanup))
        }
        #[cfg(not(have_libuv))]
        {
            let _ = n;
            Err("libuv peer not built (install libuv1-dev)".into())
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let n: usize = flag(&args, "--timers", 10_000_000);
        let rounds: usize = flag(&args, "--rounds", 3);
        let only: String = flag(&args, "--impl", String::new());
        if !only.is_empty() {
            let r = match only.as_str() {
                "evloop" => evloop(n),
                "libuv" => libuv(n),
                other => Err(format!("no implementation {other:?}")),
            };
            match r {
                Ok((init, dispatch, cleanup)) => {
                    let (cpu, rss) = evloop_benches::process_usage();
                    println!("{init} {dispatch} {cleanup} {cpu} {rss}");
                }
                Err(why) => {
                    println!("skipped: {why}");
                    std::process::exit(1);
                }
            }
            return;
        }
        println!("million_timers: {n} one-shot timers, 1 ms more every 1,000; median of {rounds} runs (by CPU), taking turns");
        let exe = std::env::current_exe().expect("this program");
        let impls = ["evloop", "libuv"];
        let mut results: Vec<Vec<Vec<f64>>> = vec![Vec::new(); impls.len()];
        let mut skipped: Vec<Option<String>> = vec![None; impls.len()];
        for _ in 0..rounds {
            for (i, imp) in impls.iter().enumerate() {
                let out = std::process::Command::new(&exe)
                    .args(["--impl", imp, "--timers", &n.to_string()])
                    .output()
                    .expect("run a round");
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let nums: Vec<f64> = text.split(' ').filter_map(|w| w.parse().ok()).collect();
                if out.status.success() && nums.len() == 5 {
                    results[i].push(nums);
                } else {
                    skipped[i] = Some(text);
                }
            }
        }
        println!(
            "  {:<8} {:>8} {:>10} {:>9} {:>8} {:>10}",
            "", "init s", "dispatch s", "cleanup s", "CPU s", "peak RSS"
        );
        let mut cpus = Vec::new();
        for (i, imp) in impls.iter().enumerate() {
            if let Some(why) = &skipped[i] {
                println!("  {imp:<8} {why}");
                cpus.push(None);
                continue;
            }
            results[i].sort_by(|a, b| a[3].total_cmp(&b[3]));
            let r = &results[i][results[i].len() / 2];
            println!(
                "  {imp:<8} {:>8.2} {:>10.2} {:>9.2} {:>8.2} {:>6.0} MiB",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4] / 1024.0
            );
            cpus.push(Some(r[3]));
            print_result(&Figure {
                panel: "million_timers".into(),
                x: format!("{n} timers"),
                imp: imp.to_string(),
                value: r[3],
                unit: "CPU s".into(),
                better: Better::Lower,
            });
        }
        if let [Some(ours), Some(theirs)] = cpus[..] {
            println!("  evloop / libuv CPU: {:.2}", ours / theirs);
        }
    }
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    println!("million_timers: Unix only (its peer is a C library)");
}
