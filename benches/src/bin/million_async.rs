//! libuv's `million_async` (test/benchmark-million-async.c), on evloop and on libuv, each in a
//! process of its own so that peak RSS is its own, taking turns:
//!
//! ```text
//! cargo run --release -p evloop-benches --bin million_async -- [--handles 1048576] [--ms 5000] [--rounds 3]
//! ```
//!
//! 1,048,576 events (libuv: async handles) and one thread activating events picked by the
//! same linear congruential generator until a timer of `--ms` fires; the timer stops and
//! joins the sender and counts the events whose callback ran at least once. Reported:
//! callbacks per second, events seen, and peak RSS. On evloop the events are user events
//! activated through a `Handle`, whose activations of one event merge until the loop takes
//! them, as `uv_async_send`'s do. `--impl evloop|libuv` runs one, in this process, and prints
//! `callbacks seen rss_kib`.

#[cfg(unix)]
mod bench {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use evloop::{Base, BaseOptions, Fired, TimerKind};
    use evloop_benches::chart::{print_result, Better, Figure};
    use evloop_benches::flag;

    #[cfg(have_libuv)]
    extern "C" {
        fn peer_million_async_libuv(
            n: std::ffi::c_uint,
            timeout_ms: std::ffi::c_long,
            events: *mut std::ffi::c_ulong,
            seen: *mut std::ffi::c_ulong,
        ) -> std::ffi::c_int;
    }

    struct State {
        callbacks: u64,
        seen: Vec<bool>,
        sender: Option<std::thread::JoinHandle<()>>,
    }

    fn evloop(n: usize, ms: u64) -> Result<(u64, u64), String> {
        let e = |e: std::io::Error| e.to_string();
        let backend = evloop::backend::by_name("epoll").map_err(e)?;
        let mut base: Base<State> =
            Base::with_backend(backend, BaseOptions::default()).map_err(e)?;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                base.new_user_event(move |_, s: &mut State| {
                    s.callbacks += 1;
                    s.seen[i] = true;
                })
                .map_err(e)?,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let timer = {
            let stop = stop.clone();
            base.new_timer(TimerKind::OneShot, move |ctx, s: &mut State| {
                stop.store(true, Ordering::Relaxed);
                if let Some(sender) = s.sender.take() {
                    sender.join().expect("the sender");
                }
                ctx.loop_exit(None);
            })
            .map_err(e)?
        };
        base.add(timer, Some(Duration::from_millis(ms)))
            .map_err(e)?;
        let handle = base.handle().map_err(e)?;
        let sender = std::thread::spawn(move || {
            let mut g: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                g = g.wrapping_mul(214_013).wrapping_add(2_531_011);
                let _ = handle.activate(ids[g as usize % n], Fired::empty(), 1);
            }
        });
        let mut state = State {
            callbacks: 0,
            seen: vec![false; n],
            sender: Some(sender),
        };
        base.run(&mut state).map_err(e)?;
        let seen = state.seen.iter().filter(|&&s| s).count() as u64;
        Ok((state.callbacks, seen))
    }

    fn libuv(n: usize, ms: u64) -> Result<(u64, u64), String> {
        #[cfg(have_libuv)]
        {
            let (mut events, mut seen) = (0, 0);
            // SAFETY: the peer writes the two counts through the pointers, which point at
            // locals that outlive the call, and touches nothing else of ours.
            let rc = unsafe { peer_million_async_libuv(n as _, ms as _, &mut events, &mut seen) };
            if rc != 0 {
                return Err("the libuv peer failed".into());
            }
            #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets
            Ok((events as u64, seen as u64))
        }
        #[cfg(not(have_libuv))]
        {
            let _ = (n, ms);
            Err("libuv peer not built (install libuv1-dev)".into())
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let n: usize = flag(&args, "--handles", 1 << 20);
        let ms: u64 = flag(&args, "--ms", 5000);
        let rounds: usize = flag(&args, "--rounds", 3);
        let only: String = flag(&args, "--impl", String::new());
        if !only.is_empty() {
            let r = match only.as_str() {
                "evloop" => evloop(n, ms),
                "libuv" => libuv(n, ms),
                other => Err(format!("no implementation {other:?}")),
            };
            match r {
                Ok((callbacks, seen)) => {
                    println!("{callbacks} {seen} {}", evloop_benches::process_usage().1)
                }
                Err(why) => {
                    println!("skipped: {why}");
                    std::process::exit(1);
                }
            }
            return;
        }
        println!(
            "million_async: {n} events, one thread activating random ones for {ms} ms; \
             median of {rounds} runs, taking turns"
        );
        let exe = std::env::current_exe().expect("this program");
        let impls = ["evloop", "libuv"];
        let mut results: Vec<Vec<(f64, u64, u64)>> = vec![Vec::new(); impls.len()];
        let mut skipped: Vec<Option<String>> = vec![None; impls.len()];
        for _ in 0..rounds {
            for (i, imp) in impls.iter().enumerate() {
                let out = std::process::Command::new(&exe)
                    .args([
                        "--impl",
                        imp,
                        "--handles",
                        &n.to_string(),
                        "--ms",
                        &ms.to_string(),
                    ])
                    .output()
                    .expect("run a round");
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let nums: Vec<u64> = text.split(' ').filter_map(|w| w.parse().ok()).collect();
                match nums[..] {
                    [callbacks, seen, rss] if out.status.success() => {
                        results[i].push((callbacks as f64 / (ms as f64 / 1000.0), seen, rss))
                    }
                    _ => skipped[i] = Some(text),
                }
            }
        }
        let median = |v: &mut Vec<(f64, u64, u64)>| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v[v.len() / 2]
        };
        let mut rates = Vec::new();
        for (i, imp) in impls.iter().enumerate() {
            if let Some(why) = &skipped[i] {
                println!("  {imp:<8} {why}");
                rates.push(None);
                continue;
            }
            let (rate, seen, rss) = median(&mut results[i]);
            println!(
                "  {imp:<8} {:>12.0} callbacks/s  {seen:>8} of {n} seen  peak RSS {:>6} MiB",
                rate,
                rss / 1024
            );
            rates.push(Some(rate));
            print_result(&Figure {
                panel: "million_async".into(),
                x: format!("{n} handles"),
                imp: imp.to_string(),
                value: rate,
                unit: "callbacks/s".into(),
                better: Better::Higher,
            });
        }
        if let [Some(ours), Some(theirs)] = rates[..] {
            println!("  evloop / libuv: {:.2}", ours / theirs);
        }
    }
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    println!("million_async: Unix only (its peer is a C library)");
}
