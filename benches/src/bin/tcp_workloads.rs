//! libuv's TCP benchmarks (test/benchmark-ping-pongs.c, -pound.c, -pump.c), on evloop and on
//! libuv: each library's client against its own server (libuv's helper servers), client and
//! server in processes of their own, the two libraries taking turns:
//!
//! ```text
//! cargo run --release -p evloop-benches --bin tcp_workloads -- [--rounds 3] [--only ping_pongs]
//! ```
//!
//! * `ping_pongs`: one connection sends `PING\n` and waits for its echo, for 5 s; round trips
//!   per second. Run with client and server pinned to one CPU (`taskset -c 0`) and unpinned.
//! * `pound` 100 and 1000: that many connections each connect, write `QS`, close on the first
//!   read and connect again, for 10 s (libuv's length); connections per second.
//! * `pump` 1 and 100: that many connections each write 8 KiB as soon as the last write
//!   finished, to a server that reads and drops everything, for 5 s; Gbit/s written.
//!
//! `--server echo|sink --impl evloop|libuv --port P` runs a server until killed;
//! `--client ping_pongs|pound|pump --impl ... --port P [--conns N] [--ms T]` runs a client and
//! prints its figure.

#[cfg(unix)]
mod bench {
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use evloop::{
        Base, BaseOptions, BevEvent, BevOptions, BufferedSocket, Interest, Listener,
        ListenerOptions, Registry, TimerKind,
    };
    use evloop_benches::chart::{print_result, Better, Figure};
    use evloop_benches::flag;

    #[cfg(have_libuv)]
    extern "C" {
        fn peer_uv_server(port: i32, sink: i32) -> i32;
        fn peer_uv_ping_pongs(port: i32, ms: std::ffi::c_long, pongs: *mut std::ffi::c_long)
            -> i32;
        fn peer_uv_pound(
            port: i32,
            conns: i32,
            ms: std::ffi::c_long,
            closed: *mut std::ffi::c_long,
            failed: *mut std::ffi::c_long,
            secs: *mut f64,
        ) -> i32;
        fn peer_uv_pump(
            port: i32,
            conns: i32,
            ms: std::ffi::c_long,
            bytes: *mut f64,
            secs: *mut f64,
        ) -> i32;
    }

    fn err(e: std::io::Error) -> String {
        e.to_string()
    }

    fn epoll_base<D>() -> Result<Base<D>, String> {
        Base::with_backend(
            evloop::backend::by_name("epoll").map_err(err)?,
            BaseOptions::default(),
        )
        .map_err(err)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The echo server (or, with `sink`, one that reads and drops everything).
    fn evloop_server(port: u16, sink: bool) -> Result<(), String> {
        let mut base: Base<()> = epoll_base()?;
        let options = ListenerOptions {
            backlog: 1000,
            ..Default::default()
        };
        let _listener = Listener::bind(&mut base, addr(port), options, move |ctx, fd, _, _| {
            let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
                return;
            };
            let mut bev = bev.on(ctx);
            if sink {
                bev.set_read_callback(|bev, _| {
                    let n = bev.input().len();
                    let _ = bev.input().drain(n);
                });
            } else {
                bev.set_read_callback(|bev, _| {
                    let (input, output) = bev.buffers();
                    let _ = output.append_buffer(input);
                });
            }
            bev.set_event_callback(|bev, _| {
                bev.free();
            });
            let _ = bev.enable(Interest::READ | Interest::WRITE);
        })
        .map_err(err)?;
        base.run(&mut ()).map_err(err)?;
        Ok(())
    }

    struct Ping {
        state: usize,
        pongs: u64,
        start: Instant,
        length: Duration,
    }

    fn evloop_ping_pongs(port: u16, ms: u64) -> Result<f64, String> {
        let mut base: Base<Ping> = epoll_base()?;
        let bev =
            BufferedSocket::connect(&mut base, addr(port), BevOptions::default()).map_err(err)?;
        let mut bev = bev.on(&mut base);
        bev.set_event_callback(|bev, _| {
            if bev.fired().contains(BevEvent::CONNECTED) {
                let _ = bev.write(b"PING\n");
            } else {
                bev.free();
            }
        });
        bev.set_read_callback(|bev, p: &mut Ping| {
            let mut got = [0u8; 4096];
            let n = bev.input().remove(&mut got).unwrap_or(0);
            for &b in &got[..n] {
                assert_eq!(b, b"PING\n"[p.state], "an echo of something else");
                p.state = (p.state + 1) % 5;
                if p.state == 0 {
                    p.pongs += 1;
                    if p.start.elapsed() > p.length {
                        bev.free();
                        return;
                    }
                    let _ = bev.write(b"PING\n");
                }
            }
        });
        bev.enable(Interest::READ | Interest::WRITE).map_err(err)?;
        let mut p = Ping {
            state: 0,
            pongs: 0,
            start: Instant::now(),
            length: Duration::from_millis(ms),
        };
        base.run(&mut p).map_err(err)?;
        Ok(p.pongs as f64 / p.start.elapsed().as_secs_f64())
    }

    struct Pound {
        closed: u64,
        failed: u64,
        start: Instant,
        length: Duration,
        addr: SocketAddr,
    }

    /// One pound connection: connect, write "QS", close on the first read (or on an end or
    /// an error), and connect again while the time lasts.
    fn pound_connect(ops: &mut Registry<Pound>, addr: SocketAddr) {
        let Ok(bev) = BufferedSocket::connect(ops, addr, BevOptions::default()) else {
            return;
        };
        let done = |bev: &mut evloop::BevContext<'_, Pound>, p: &mut Pound| {
            bev.free();
            p.closed += 1;
            if p.start.elapsed() < p.length {
                pound_connect(bev.context(), p.addr);
            }
        };
        let mut bev = bev.on(ops);
        bev.set_event_callback(move |bev, p: &mut Pound| {
            if bev.fired().contains(BevEvent::CONNECTED) {
                let _ = bev.write(b"QS");
                return;
            }
            if bev.fired().contains(BevEvent::ERROR) {
                p.failed += 1;
            }
            done(bev, p);
        });
        bev.set_read_callback(done);
        let _ = bev.enable(Interest::READ | Interest::WRITE);
    }

    fn evloop_pound(port: u16, conns: usize, ms: u64) -> Result<(f64, u64), String> {
        let mut base: Base<Pound> = epoll_base()?;
        let mut p = Pound {
            closed: 0,
            failed: 0,
            start: Instant::now(),
            length: Duration::from_millis(ms),
            addr: addr(port),
        };
        for _ in 0..conns {
            pound_connect(&mut base, p.addr);
        }
        base.run(&mut p).map_err(err)?;
        Ok((p.closed as f64 / p.start.elapsed().as_secs_f64(), p.failed))
    }

    struct Pump {
        sockets: Vec<BufferedSocket<Pump>>,
        connected: usize,
        stop: bool,
        sent: u64,
        started: Option<Instant>,
        secs: f64,
        length: Duration,
    }

    /// The bytes each write sends, handed to the output by reference, without a copy, as
    /// `uv_write` takes its buffer.
    static CHUNK: [u8; 8192] = [0x61; 8192];

    fn write_chunk(out: &mut evloop::Buffer) {
        let _ = out.append_reference(&CHUNK, || {});
    }

    fn evloop_pump(port: u16, conns: usize, ms: u64) -> Result<f64, String> {
        let mut base: Base<Pump> = epoll_base()?;
        let mut p = Pump {
            sockets: Vec::new(),
            connected: 0,
            stop: false,
            sent: 0,
            started: None,
            secs: 0.0,
            length: Duration::from_millis(ms),
        };
        for _ in 0..conns {
            let bev = BufferedSocket::connect(&mut base, addr(port), BevOptions::default())
                .map_err(err)?;
            let mut control = bev.on(&mut base);
            control.set_event_callback(|bev, p: &mut Pump| {
                if !bev.fired().contains(BevEvent::CONNECTED) {
                    bev.free();
                    return;
                }
                p.connected += 1;
                if p.connected < p.sockets.len() {
                    return;
                }
                // All connected: start writing, and stop after the time.
                p.started = Some(Instant::now());
                write_chunk(bev.output()); // this socket's own, from inside its callback
                let me = bev.fd();
                let ctx = bev.context();
                for s in p.sockets.iter().filter(|s| s.fd() != me) {
                    let _ = s.with_output(ctx, write_chunk);
                }
                let end = ctx.new_timer(TimerKind::OneShot, |ctx, p: &mut Pump| {
                    p.stop = true;
                    p.secs = p.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                    for s in p.sockets.drain(..) {
                        let _ = s.free(ctx);
                    }
                });
                if let Ok(end) = end {
                    let _ = ctx.add(end, Some(p.length));
                }
            });
            // The output drained: that write finished; write the next.
            control.set_write_callback(|bev, p: &mut Pump| {
                if !p.stop {
                    p.sent += CHUNK.len() as u64;
                    write_chunk(bev.output());
                }
            });
            control.enable(Interest::WRITE).map_err(err)?;
            p.sockets.push(bev);
        }
        base.run(&mut p).map_err(err)?;
        Ok(gbit(p.sent as f64, p.secs))
    }

    fn gbit(bytes: f64, secs: f64) -> f64 {
        bytes * 8.0 / (1u64 << 30) as f64 / secs
    }

    #[allow(unused_variables)]
    fn libuv(what: &str, port: u16, conns: usize, ms: u64) -> Result<String, String> {
        #[cfg(have_libuv)]
        {
            let port = i32::from(port);
            // SAFETY: each peer function writes its results through the pointers given, which
            // point at locals that outlive the call, and touches nothing else of ours.
            unsafe {
                match what {
                    "echo" | "sink" => {
                        peer_uv_server(port, i32::from(what == "sink"));
                        Ok(String::new())
                    }
                    "ping_pongs" => {
                        let start = Instant::now();
                        let mut pongs = 0;
                        peer_uv_ping_pongs(port, ms as _, &mut pongs);
                        Ok(format!("{}", pongs as f64 / start.elapsed().as_secs_f64()))
                    }
                    "pound" => {
                        let (mut closed, mut failed, mut secs) = (0, 0, 0.0);
                        peer_uv_pound(
                            port,
                            conns as i32,
                            ms as _,
                            &mut closed,
                            &mut failed,
                            &mut secs,
                        );
                        Ok(format!("{} {failed}", closed as f64 / secs))
                    }
                    "pump" => {
                        let (mut bytes, mut secs) = (0.0, 0.0);
                        peer_uv_pump(port, conns as i32, ms as _, &mut bytes, &mut secs);
                        Ok(format!("{}", gbit(bytes, secs)))
                    }
                    other => Err(format!("no workload {other:?}")),
                }
            }
        }
        #[cfg(not(have_libuv))]
        Err("libuv peer not built (install libuv1-dev)".into())
    }

    fn evloop(what: &str, port: u16, conns: usize, ms: u64) -> Result<String, String> {
        match what {
            "echo" | "sink" => evloop_server(port, what == "sink").map(|()| String::new()),
            "ping_pongs" => evloop_ping_pongs(port, ms).map(|r| format!("{r}")),
            "pound" => evloop_pound(port, conns, ms).map(|(r, failed)| format!("{r} {failed}")),
            "pump" => evloop_pump(port, conns, ms).map(|r| format!("{r}")),
            other => Err(format!("no workload {other:?}")),
        }
    }

    fn run_one(args: &[String], what: &str) {
        let imp: String = flag(args, "--impl", "evloop".to_string());
        let port: u16 = flag(args, "--port", 19600);
        let conns: usize = flag(args, "--conns", 1);
        let ms: u64 = flag(args, "--ms", 5000);
        let r = match imp.as_str() {
            "evloop" => evloop(what, port, conns, ms),
            "libuv" => libuv(what, port, conns, ms),
            other => Err(format!("no implementation {other:?}")),
        };
        match r {
            Ok(out) => println!("{out}"),
            Err(why) => {
                println!("skipped: {why}");
                std::process::exit(1);
            }
        }
    }

    /// Start this program with `args`, pinned to CPU 0 if `pin`.
    fn spawn(pin: bool, args: &[String]) -> Command {
        let exe = std::env::current_exe().expect("this program");
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        cmd
    }

    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// One round of `workload` on `imp`: its server, then its client; the client's output.
    fn round(
        imp: &str,
        workload: &str,
        conns: usize,
        ms: u64,
        pin: bool,
        port: u16,
    ) -> Result<String, String> {
        let kind = if workload == "pump" { "sink" } else { "echo" };
        let s = |v: &str| v.to_string();
        let server = spawn(
            pin,
            &[
                s("--server"),
                s(kind),
                s("--impl"),
                s(imp),
                s("--port"),
                port.to_string(),
            ],
        )
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("start the server: {e}"))?;
        let _server = Server(server);
        let start = Instant::now();
        while std::net::TcpStream::connect(addr(port)).is_err() {
            if start.elapsed() > Duration::from_secs(5) {
                return Err("the server did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = spawn(
            pin,
            &[
                s("--client"),
                s(workload),
                s("--impl"),
                s(imp),
                s("--port"),
                port.to_string(),
                s("--conns"),
                conns.to_string(),
                s("--ms"),
                ms.to_string(),
            ],
        )
        .output()
        .map_err(|e| format!("run the client: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some(i) = args.iter().position(|a| a == "--server") {
            return run_one(&args, &args.get(i + 1).cloned().unwrap_or_default());
        }
        if let Some(i) = args.iter().position(|a| a == "--client") {
            return run_one(&args, &args.get(i + 1).cloned().unwrap_or_default());
        }
        let rounds: usize = flag(&args, "--rounds", 3);
        let only: String = flag(&args, "--only", String::new());
        let pin_works = Command::new("taskset")
            .args(["-c", "0", "true"])
            .status()
            .is_ok_and(|s| s.success());
        // name, workload, connections, ms, pinned, unit
        let table: [(&str, &str, usize, u64, bool, &str); 6] = [
            (
                "ping_pongs, pinned",
                "ping_pongs",
                1,
                5000,
                true,
                "round trips/s",
            ),
            ("ping_pongs", "ping_pongs", 1, 5000, false, "round trips/s"),
            ("pound 100", "pound", 100, 10_000, false, "connections/s"),
            ("pound 1000", "pound", 1000, 10_000, false, "connections/s"),
            ("pump 1", "pump", 1, 5000, false, "Gbit/s"),
            ("pump 100", "pump", 100, 5000, false, "Gbit/s"),
        ];
        println!("libuv's TCP workloads, each library's client against its own server; median of {rounds} rounds, taking turns");
        println!(
            "  {:<20} {:>14} {:>14} {:>8}  unit",
            "workload", "evloop", "libuv", "ratio"
        );
        let mut port = 19600u16;
        for (name, workload, conns, ms, pin, unit) in table {
            if !only.is_empty() && only != workload {
                continue;
            }
            if pin && !pin_works {
                println!("  {name:<20} skipped: taskset is not available");
                continue;
            }
            let mut figures: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            let mut notes: Vec<String> = Vec::new();
            for _ in 0..rounds {
                for (i, imp) in ["evloop", "libuv"].iter().enumerate() {
                    port += 1;
                    match round(imp, workload, conns, ms, pin, port) {
                        Ok(text) => {
                            let mut words = text.split(' ');
                            if let Some(v) = words.next().and_then(|w| w.parse().ok()) {
                                figures[i].push(v);
                            }
                            if let Some(failed) = words.next().filter(|f| *f != "0") {
                                notes.push(format!("{imp}: {failed} failed"));
                            }
                        }
                        Err(why) => notes.push(format!("{imp}: {why}")),
                    }
                }
            }
            let median = |v: &mut Vec<f64>| -> Option<f64> {
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            };
            let (ours, theirs) = (median(&mut figures[0]), median(&mut figures[1]));
            let show = |v: Option<f64>| {
                v.map_or("-".to_string(), |v| {
                    if v < 100.0 {
                        format!("{v:.2}")
                    } else {
                        format!("{v:.0}")
                    }
                })
            };
            let ratio = match (ours, theirs) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            println!(
                "  {name:<20} {:>14} {:>14} {ratio:>8}  {unit}",
                show(ours),
                show(theirs)
            );
            // For `report`: the panel is the workload, the point its size or pinning.
            let point = match (workload, pin) {
                ("ping_pongs", true) => "pinned".to_string(),
                ("ping_pongs", false) => "unpinned".to_string(),
                _ if conns == 1 => "1 conn".to_string(),
                _ => format!("{conns} conns"),
            };
            for (imp, value) in [("evloop", ours), ("libuv", theirs)] {
                if let Some(value) = value {
                    print_result(&Figure {
                        panel: workload.into(),
                        x: point.clone(),
                        imp: imp.into(),
                        value,
                        unit: unit.into(),
                        better: Better::Higher,
                    });
                }
            }
            for note in notes {
                println!("    {note}");
            }
        }
    }
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    println!("tcp_workloads: Unix only (its peer is a C library)");
}
