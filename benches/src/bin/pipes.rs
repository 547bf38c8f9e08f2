//! The pipes workload (libevent's test/bench.c): one line per implementation,
//! `IMPL BACKEND setup_us X run_us Y` (medians over the rounds, monotonic clock).
//!
//! ```text
//! cargo run --release -p evloop-benches --bin pipes -- -n 1000 -a 100 -w 1000 -r 25 --backend epoll
//! ```
//! `--backend` takes an evloop backend (`epoll`, `polling`, `poll`, `select`, `kqueue`), `all`
//! (every evloop backend compiled in, then every peer), or a peer: `raw` (bare epoll),
//! `polling-crate` (the polling crate used directly, beneath evloop's `polling` adapter),
//! `libevent`, `libev` (each peer on epoll, poll and select where it has them), or one peer
//! backend as `libev:epoll`.

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use evloop_benches::*;

    fn line(name: &str, method: &str, r: Result<PipesResult, String>) {
        match r {
            Ok(r) => println!(
                "{name} {method} setup_us {:.0} run_us {:.0}",
                r.setup_us, r.run_us
            ),
            Err(why) => println!("{name} {method} skipped: {why}"),
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let p = PipesParams {
            n: flag(&args, "-n", 1000),
            a: flag(&args, "-a", 100),
            w: flag(&args, "-w", 1000),
            r: flag(&args, "-r", 25),
        };
        if p.n == 0 || p.a == 0 || p.a > p.n || p.r == 0 {
            eprintln!("pipes: need n > 0, 0 < a <= n, r > 0 (got {p:?})");
            std::process::exit(2);
        }
        let backend: String = flag(&args, "--backend", "all".to_string());
        let limit = raise_fd_limit();
        let need = 2 * p.n as u64 + 64;
        if limit < need {
            eprintln!("pipes: -n {} needs about {need} fds but RLIMIT_NOFILE allows {limit}; raise the hard limit (ulimit -Hn)", p.n);
            std::process::exit(1);
        }
        let evloop_backends = evloop::supported_methods();
        let run_evloop =
            |m: &str| line("evloop", m, pipes_evloop(m, &p).map_err(|e| e.to_string()));
        let run_peer = |peer: &str| {
            for m in ["epoll", "poll", "select"] {
                line(peer, m, pipes_peer(peer, m, &p));
            }
        };
        let run_raw = || {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            line("raw", "epoll", pipes_raw(&p).map_err(|e| e.to_string()));
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            line("raw", "epoll", Err("epoll exists only on Linux".into()));
        };
        match backend.as_str() {
            "all" => {
                for m in &evloop_backends {
                    run_evloop(m);
                }
                run_raw();
                line(
                    "polling",
                    "default",
                    pipes_polling(&p).map_err(|e| e.to_string()),
                );
                run_peer("libevent");
                run_peer("libev");
            }
            "raw" => run_raw(),
            "polling-crate" => line(
                "polling",
                "default",
                pipes_polling(&p).map_err(|e| e.to_string()),
            ),
            "libevent" | "libev" => run_peer(&backend),
            peer_method if peer_method.contains(':') => {
                let (peer, method) = peer_method.split_once(':').expect("checked");
                line(peer, method, pipes_peer(peer, method, &p));
            }
            m if evloop_backends.contains(&m) => run_evloop(m),
            other => {
                eprintln!(
                    "pipes: unknown backend {other:?} (compiled in: {})",
                    evloop_backends.join(" ")
                );
                std::process::exit(2);
            }
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!("pipes: the benchmarks run on Unix (their peers are epoll, libevent and libev)");
        std::process::exit(2)
    }
}
