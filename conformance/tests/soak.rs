//! Soak: an echo server on each backend holds N concurrent connections (default 10,000),
//! each sending M messages (default 100) that must come back byte-exact, while another
//! thread raises SIGUSR1 and another activates an event through a handle, as fast as they
//! can. The clients run in a child process (this binary again), so server and clients each
//! have their own fd budget; select serves fds far above 1024.
//!
//! Ignored by default (it is long); `.ci/run` runs a small size, the full size is:
//! ```text
//! cargo test --release -p evloop-conformance --test soak -- --ignored
//! EVLOOP_SOAK_CONNECTIONS=1000 EVLOOP_SOAK_MESSAGES=20 cargo test -p evloop-conformance --test soak -- --ignored
//! ```

use libtest_mimic::{Arguments, Trial};

/// The soak itself (Unix: it raises SIGUSR1 while echoing).
#[cfg(unix)]
mod posix {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use evloop::{Base, Fired, ListenerOptions, LoopFlags, TimerKind};

    pub const CLIENT: &str = "EVLOOP_SOAK_CLIENT";
    const MSG: usize = 24;

    fn env_num(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn raise_fd_limit() -> u64 {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut lim = getrlimit(Resource::Nofile);
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
        getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
    }

    /// A `/proc/self/status` figure in KiB (`VmRSS`, `VmHWM`); 0 where there is no /proc.
    fn status_kib(key: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn message(conn: usize, k: usize) -> [u8; MSG] {
        let mut m = [b'.'; MSG];
        let text = format!("c{conn:06} m{k:04} ");
        m[..text.len()].copy_from_slice(text.as_bytes());
        m[MSG - 1] = b'\n';
        m
    }

    /// The client process: connect all, say so, then M rounds of write-all / read-all.
    pub fn client(spec: &str) -> Result<(), String> {
        let mut parts = spec.split(',');
        let addr: SocketAddr = parts.next().unwrap().parse().map_err(|e| format!("{e}"))?;
        let n: usize = parts.next().unwrap().parse().map_err(|e| format!("{e}"))?;
        let m: usize = parts.next().unwrap().parse().map_err(|e| format!("{e}"))?;
        raise_fd_limit();
        let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
        for i in 0..n {
            let s = TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            conns.push(s);
        }
        println!("connected {n}");
        std::io::stdout().flush().unwrap();
        for k in 0..m {
            for (i, c) in conns.iter_mut().enumerate() {
                c.write_all(&message(i, k))
                    .map_err(|e| format!("write {i}/{k}: {e}"))?;
            }
            for (i, c) in conns.iter_mut().enumerate() {
                let mut got = [0u8; MSG];
                c.read_exact(&mut got)
                    .map_err(|e| format!("read {i}/{k}: {e}"))?;
                if got != message(i, k) {
                    return Err(format!(
                        "connection {i} message {k}: got {:?}",
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
        }
        Ok(())
    }

    #[derive(Default)]
    struct Stats {
        accepted: usize,
        signals: u64,
        remote: u64,
    }

    pub fn soak(backend: &'static str) -> Result<(), String> {
        let n = env_num("EVLOOP_SOAK_CONNECTIONS", 10_000);
        let m = env_num("EVLOOP_SOAK_MESSAGES", 100);
        let limit = raise_fd_limit();
        if limit < n as u64 + 100 {
            return Err(format!(
                "{n} connections need {} fds; RLIMIT_NOFILE allows {limit}",
                n + 100
            ));
        }
        let mut base: Base<Stats> = Base::with_backend(
            evloop::backend::by_name(backend).map_err(|e| e.to_string())?,
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        let options = ListenerOptions {
            backlog: 4096,
            ..Default::default()
        };
        let listener =
            evloop_conformance::util::echo_listener(&mut base, options, |s: &mut Stats| {
                s.accepted += 1
            });
        let addr = listener.local_addr().unwrap();
        let sig = base
            .new_signal(libc::SIGUSR1, |ctx, s: &mut Stats| {
                s.signals += u64::from(ctx.ncalls())
            })
            .unwrap();
        base.add(sig, None).unwrap();
        let poke = base
            .new_timer(TimerKind::OneShot, |ctx, s: &mut Stats| {
                s.remote += u64::from(ctx.ncalls())
            })
            .unwrap();
        let handle = base.handle().unwrap();
        let rss_before = status_kib("VmRSS:");

        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CLIENT, format!("{addr},{n},{m}"))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (raised, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let storms = {
            let (stop1, raised1) = (stop.clone(), raised.clone());
            let signals = std::thread::spawn(move || {
                while !stop1.load(Ordering::Relaxed) {
                    // SAFETY: the base's handler is installed for SIGUSR1.
                    unsafe { libc::raise(libc::SIGUSR1) };
                    raised1.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
            let (stop2, sent2, h2) = (stop.clone(), sent.clone(), handle.clone());
            let remote = std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    h2.activate(poke, Fired::TIMEOUT, 1).unwrap();
                    sent2.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(20));
                }
            });
            // Watches the client: reports the RSS once all are connected, ends the loop at exit.
            let h3 = handle.clone();
            let watcher = std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _connected = lines.next();
                let status = child.wait();
                let _ = h3.loop_break();
                status
            });
            (signals, remote, watcher)
        };
        let start = Instant::now();
        let mut stats = Stats::default();
        let outcome = base
            .run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut stats)
            .map_err(|e| e.to_string())?;
        stop.store(true, Ordering::Relaxed);
        let (signals, remote, watcher) = storms;
        signals.join().unwrap();
        remote.join().unwrap();
        let status = watcher.join().unwrap().map_err(|e| e.to_string())?;
        // Drain what the storms sent after the loop stopped.
        for _ in 0..50 {
            base.run_with(
                LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY,
                &mut stats,
            )
            .map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(1));
        }
        let peak = status_kib("VmHWM:").saturating_sub(rss_before);
        eprintln!(
        "soak {backend}: {n} connections x {m} messages checked in {:.1} s; {} signals, {} remote activations ({outcome:?}); peak RSS growth {peak} KiB = {:.2} KiB per connection",
        start.elapsed().as_secs_f64(),
        stats.signals,
        stats.remote,
        peak as f64 / n as f64
    );
        if !status.success() {
            return Err(format!("client failed: {status}"));
        }
        if stats.accepted != n {
            return Err(format!("accepted {} of {n}", stats.accepted));
        }
        if stats.signals != raised.load(Ordering::Relaxed) {
            return Err(format!(
                "signals: counted {} of {} raised",
                stats.signals,
                raised.load(Ordering::Relaxed)
            ));
        }
        if stats.remote != sent.load(Ordering::Relaxed) {
            return Err(format!(
                "remote activations: delivered {} of {}",
                stats.remote,
                sent.load(Ordering::Relaxed)
            ));
        }
        Ok(())
    }
}

fn main() {
    #[cfg(unix)]
    if let Ok(spec) = std::env::var(posix::CLIENT) {
        if let Err(e) = posix::client(&spec) {
            eprintln!("soak client: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut args = Arguments::from_args();
    args.test_threads = Some(1); // one soak at a time: they share SIGUSR1 and the machine
    let trials = evloop::supported_methods()
        .into_iter()
        .map(|b| {
            let trial = Trial::test(format!("{b}::soak_echo"), move || {
                #[cfg(unix)]
                return posix::soak(b).map_err(Into::into);
                #[cfg(not(unix))]
                return Ok(());
            })
            .with_ignored_flag(true);
            if cfg!(unix) {
                trial
            } else {
                trial.with_kind("unix only: raises SIGUSR1 and forks its clients")
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
