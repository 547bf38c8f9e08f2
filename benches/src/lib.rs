//! The benchmark workloads, shared by the `pipes`, `timers` and `report` binaries.
//!
//! * `pipes` (libevent's test/bench.c): `n` non-blocking AF_UNIX socket pairs with one
//!   persistent read event each. Per round: delete and re-add every event and run one
//!   non-blocking iteration ("setup"); then write one byte into `a` evenly spaced pairs;
//!   each read callback reads its byte and, while writes remain (`w` per round), writes one
//!   byte into the next pair; "run" lasts until every written byte was read. Medians over
//!   `r` rounds.
//! * `timers`: `n` one-shot timers; timer `i`'s `k`-th deadline is
//!   `50000 + ((i*7919 + k*104729) % 200000)` µs after arming; arm all, re-arm each `r` times,
//!   run until all fired.
//!
//! The same workloads run on evloop's backends, on bare epoll (`raw`), on the `polling` crate
//! (level mode), and on libevent and libev through FFI where the system has them.
//!
//! Unix only: the workloads are built on pipes, socket pairs, rlimits and epoll, and the
//! peers on Linux libraries. On Windows this crate is empty and its binaries say so.

#![cfg(unix)]

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use evloop::{Base, Interest, LoopFlags, TimerKind};

pub mod chart;
pub mod loop_hooks;

/// One pipes result: medians in microseconds.
#[derive(Copy, Clone, Debug)]
pub struct PipesResult {
    /// Delete + re-add of every event and one non-blocking iteration.
    pub setup_us: f64,
    /// Until every written byte was read.
    pub run_us: f64,
}

/// The pipes workload's size.
#[derive(Copy, Clone, Debug)]
pub struct PipesParams {
    /// Socket pairs.
    pub n: usize,
    /// Pairs written to at the start of a round.
    pub a: usize,
    /// Writes made by callbacks per round.
    pub w: usize,
    /// Rounds.
    pub r: usize,
}

/// Raise the soft fd limit to the hard one; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// `n` non-blocking socket pairs: `(read ends, write ends)`.
pub fn socketpairs(n: usize) -> (Vec<OwnedFd>, Vec<OwnedFd>) {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    (0..n)
        .map(|_| {
            socketpair(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::empty(),
                None,
            )
            .expect("socketpair")
        })
        .map(|(r, w)| {
            rustix::io::ioctl_fionbio(&r, true).unwrap();
            rustix::io::ioctl_fionbio(&w, true).unwrap();
            (r, w)
        })
        .unzip()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `p.r` rounds of the pipes workload. `step(true, st)` deletes and re-adds every
/// reader's registration and runs one non-blocking turn ("setup"); `step(false, st)` runs one
/// turn; after setup the round's writes start and turns run until every byte was read
/// ("run"). Medians of both.
fn time_rounds(
    p: &PipesParams,
    st: &mut Round,
    mut step: impl FnMut(bool, &mut Round) -> std::io::Result<()>,
) -> std::io::Result<PipesResult> {
    let (mut setup, mut run) = (Vec::new(), Vec::new());
    for _ in 0..p.r {
        let t0 = Instant::now();
        step(true, st)?;
        let t1 = Instant::now();
        st.start(p);
        while !st.done() {
            step(false, st)?;
        }
        let t2 = Instant::now();
        setup.push(us(t1 - t0));
        run.push(us(t2 - t1));
    }
    Ok(PipesResult {
        setup_us: median(setup),
        run_us: median(run),
    })
}

/// The counters every implementation shares, as in bench.c.
#[derive(Default)]
pub struct Round {
    count: usize,
    fired: usize,
    writes: usize,
    writers: Vec<RawFd>,
}

impl Round {
    fn start(&mut self, p: &PipesParams) {
        self.count = 0;
        self.writes = p.w;
        self.fired = 0;
        let space = p.n / p.a;
        for i in 0..p.a {
            send_byte(self.writers[i * space]);
        }
        self.fired += p.a;
    }

    /// A read callback: read the byte, pass one on while writes remain.
    #[inline]
    fn on_read(&mut self, idx: usize, fd: RawFd) {
        let mut ch = 0u8;
        // SAFETY: reads one byte into a live local from an fd the benchmark owns.
        let n = unsafe { libc::recv(fd, (&mut ch as *mut u8).cast(), 1, 0) };
        if n > 0 {
            self.count += n as usize;
        }
        if self.writes > 0 {
            let next = if idx + 1 == self.writers.len() {
                0
            } else {
                idx + 1
            };
            send_byte(self.writers[next]);
            self.writes -= 1;
            self.fired += 1;
        }
    }

    fn done(&self) -> bool {
        self.count == self.fired
    }
}

#[inline]
fn send_byte(fd: RawFd) {
    // SAFETY: sends one byte from a static to an fd the benchmark owns.
    unsafe { libc::send(fd, b"e".as_ptr().cast(), 1, 0) };
}

/// The pipes workload on evloop's backend `method`.
pub fn pipes_evloop(method: &str, p: &PipesParams) -> std::io::Result<PipesResult> {
    let (readers, writers) = socketpairs(p.n);
    let mut base: Base<Round> =
        Base::with_backend(evloop::backend::by_name(method)?, Default::default())?;
    let mut events = Vec::with_capacity(p.n);
    for (i, r) in readers.iter().enumerate() {
        let fd = r.as_raw_fd();
        // SAFETY: `readers` is declared before `base`, so the sockets outlive the base and
        // every event in it.
        let e = unsafe {
            base.new_event(
                fd,
                Interest::READ | Interest::PERSIST,
                move |_, st: &mut Round| st.on_read(i, fd),
            )
        }?;
        base.add(e, None)?;
        events.push(e);
    }
    let mut st = Round {
        writers: writers.iter().map(|w| w.as_raw_fd()).collect(),
        ..Default::default()
    };
    let flags = LoopFlags::ONCE | LoopFlags::NONBLOCK;
    time_rounds(p, &mut st, |reregister, st| {
        if reregister {
            for &e in &events {
                base.del(e)?;
                base.add(e, None)?;
            }
        }
        base.run_with(flags, st).map(drop)
    })
}

/// The pipes workload on bare epoll: level-triggered, 64 events per wait, DEL+ADD per fd
/// per round. The floor for `run_us`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn pipes_raw(p: &PipesParams) -> std::io::Result<PipesResult> {
    use rustix::event::epoll;
    let (readers, writers) = socketpairs(p.n);
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let add = |i: usize, r: &OwnedFd| {
        epoll::add(
            &ep,
            r,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
    };
    for (i, r) in readers.iter().enumerate() {
        add(i, r)?;
    }
    let raw: Vec<RawFd> = readers.iter().map(|r| r.as_raw_fd()).collect();
    let mut st = Round {
        writers: writers.iter().map(|w| w.as_raw_fd()).collect(),
        ..Default::default()
    };
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    time_rounds(p, &mut st, |reregister, st| {
        if reregister {
            for (i, r) in readers.iter().enumerate() {
                epoll::delete(&ep, r)?;
                add(i, r)?;
            }
        }
        events.clear();
        epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&zero),
        )?;
        for ev in &events {
            let i = ev.data.u64() as usize;
            st.on_read(i, raw[i]);
        }
        Ok(())
    })
}

/// The pipes workload on the `polling` crate in level mode.
pub fn pipes_polling(p: &PipesParams) -> std::io::Result<PipesResult> {
    use polling::{Event, Events, PollMode, Poller};
    let (readers, writers) = socketpairs(p.n);
    let poller = Poller::new()?;
    for (i, r) in readers.iter().enumerate() {
        // SAFETY: every fd is deleted from the poller before it is closed (below).
        unsafe { poller.add_with_mode(r, Event::readable(i), PollMode::Level)? };
    }
    let raw: Vec<RawFd> = readers.iter().map(|r| r.as_raw_fd()).collect();
    let mut st = Round {
        writers: writers.iter().map(|w| w.as_raw_fd()).collect(),
        ..Default::default()
    };
    let mut events = Events::new();
    let result = time_rounds(p, &mut st, |reregister, st| {
        if reregister {
            for (i, r) in readers.iter().enumerate() {
                poller.delete(r)?;
                // SAFETY: as above.
                unsafe { poller.add_with_mode(r, Event::readable(i), PollMode::Level)? };
            }
        }
        events.clear();
        poller.wait(&mut events, Some(Duration::ZERO))?;
        for ev in events.iter() {
            st.on_read(ev.key, raw[ev.key]);
        }
        Ok(())
    });
    // Every fd leaves the poller before it closes, also after an error (one the error left
    // unregistered just reports so).
    for r in &readers {
        let _ = poller.delete(r);
    }
    result
}

#[cfg(any(have_libevent, have_libev))]
mod ffi {
    use std::os::raw::{c_char, c_double, c_int, c_long};
    extern "C" {
        #[cfg(have_libevent)]
        pub fn peer_pipes_libevent(
            m: *const c_char,
            fds: *mut c_int,
            n: c_int,
            a: c_int,
            w: c_int,
            r: c_int,
            s: *mut c_double,
            run: *mut c_double,
        ) -> c_int;
        #[cfg(have_libevent)]
        pub fn peer_timers_libevent(
            n: c_long,
            r: c_int,
            add: *mut c_double,
            rearm: *mut c_double,
            run: *mut c_double,
            fired: *mut c_long,
        ) -> c_int;
        #[cfg(have_libevent)]
        pub fn peer_http_libevent(port: c_int) -> c_int;
        #[cfg(have_libevent)]
        pub fn peer_rearm_libevent(
            n: c_long,
            d: c_int,
            m: c_long,
            rearm: *mut c_double,
            fired: *mut c_long,
        ) -> c_int;
        #[cfg(have_libev)]
        pub fn peer_rearm_libev(
            n: c_long,
            d: c_int,
            m: c_long,
            rearm: *mut c_double,
            fired: *mut c_long,
        ) -> c_int;
        #[cfg(have_libev)]
        pub fn peer_pipes_libev(
            m: *const c_char,
            fds: *mut c_int,
            n: c_int,
            a: c_int,
            w: c_int,
            r: c_int,
            s: *mut c_double,
            run: *mut c_double,
        ) -> c_int;
        #[cfg(have_libev)]
        pub fn peer_timers_libev(
            n: c_long,
            r: c_int,
            add: *mut c_double,
            rearm: *mut c_double,
            run: *mut c_double,
            fired: *mut c_long,
        ) -> c_int;
    }
}

/// What a C peer's return code means: `None` when the peer is not built in, 0 for success,
/// anything else the failure `failed` describes.
fn peer_status(peer: &str, rc: Option<i32>, failed: impl FnOnce() -> String) -> Result<(), String> {
    match rc {
        None => Err(format!(
            "{peer} is not built in (its headers were absent at build time)"
        )),
        Some(0) => Ok(()),
        Some(_) => Err(failed()),
    }
}

/// Which C peers this build has.
pub fn peers_available() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(have_libevent) {
        v.push("libevent");
    }
    if cfg!(have_libev) {
        v.push("libev");
    }
    v
}

/// The pipes workload on a C peer (`libevent` or `libev`) with backend `method`.
///
/// # Errors
///
/// The peer is not built in, or it cannot use `method` (or refuses the fds: libevent's
/// select aborts the process above fd 1023, so that combination is refused here).
pub fn pipes_peer(peer: &str, method: &str, p: &PipesParams) -> Result<PipesResult, String> {
    let (readers, writers) = socketpairs(p.n);
    let mut fds: Vec<i32> = readers
        .iter()
        .zip(&writers)
        .flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()])
        .collect();
    if peer == "libevent" && method == "select" && fds.iter().any(|&fd| fd >= 1024) {
        return Err(
            "libevent's select aborts the process on fds >= 1024 (glibc FD_SET check)".into(),
        );
    }
    let cmethod = std::ffi::CString::new(method).unwrap();
    let (mut s, mut r) = (0.0, 0.0);
    let (n, a, w, rounds) = (p.n as i32, p.a as i32, p.w as i32, p.r as i32);
    let _ = (&mut fds, &cmethod, &mut s, &mut r, n, a, w, rounds);
    let rc: Option<i32> = match peer {
        #[cfg(have_libevent)]
        // SAFETY: `fds` holds 2n valid fds; the outputs are live locals.
        "libevent" => Some(unsafe {
            ffi::peer_pipes_libevent(
                cmethod.as_ptr(),
                fds.as_mut_ptr(),
                n,
                a,
                w,
                rounds,
                &mut s,
                &mut r,
            )
        }),
        #[cfg(have_libev)]
        // SAFETY: as above.
        "libev" => Some(unsafe {
            ffi::peer_pipes_libev(
                cmethod.as_ptr(),
                fds.as_mut_ptr(),
                n,
                a,
                w,
                rounds,
                &mut s,
                &mut r,
            )
        }),
        _ => None,
    };
    peer_status(peer, rc, || format!("{peer} has no {method} backend here"))?;
    Ok(PipesResult {
        setup_us: s,
        run_us: r,
    })
}

/// One timers result.
#[derive(Copy, Clone, Debug)]
pub struct TimersResult {
    /// Nanoseconds per first arm.
    pub add_ns: f64,
    /// Nanoseconds per re-arm.
    pub rearm_ns: f64,
    /// Milliseconds from the end of arming until all fired (includes the ~250 ms wait).
    pub run_ms: f64,
    /// Callbacks that ran.
    pub fired: u64,
}

/// Timer `i`'s `k`-th timeout.
pub fn timer_deadline(i: u64, k: u64) -> Duration {
    Duration::from_micros(50_000 + ((i * 7919 + k * 104_729) % 200_000))
}

/// The timers workload on evloop (the backend matters little: it only waits). Each burst of
/// adds shares one clock reading
/// ([`Registry::update_cache_time`](evloop::Registry::update_cache_time)), as each of libev's
/// and libevent's does (their adds use their cached time).
pub fn timers_evloop(n: u64, r: u64) -> std::io::Result<TimersResult> {
    let mut base: Base<u64> = evloop::new_base()?;
    let ids: Vec<_> = (0..n)
        .map(|_| base.new_timer(TimerKind::OneShot, |_, fired: &mut u64| *fired += 1))
        .collect::<std::io::Result<_>>()?;
    let t0 = Instant::now();
    base.update_cache_time();
    for (i, &id) in ids.iter().enumerate() {
        base.add(id, Some(timer_deadline(i as u64, 0)))?;
    }
    let t1 = Instant::now();
    base.update_cache_time();
    for k in 1..=r {
        for (i, &id) in ids.iter().enumerate() {
            base.add(id, Some(timer_deadline(i as u64, k)))?;
        }
    }
    let t2 = Instant::now();
    let mut fired = 0;
    base.run(&mut fired)?;
    let t3 = Instant::now();
    Ok(TimersResult {
        add_ns: (t1 - t0).as_nanos() as f64 / n as f64,
        rearm_ns: if r == 0 {
            0.0
        } else {
            (t2 - t1).as_nanos() as f64 / (n * r) as f64
        },
        run_ms: (t3 - t2).as_secs_f64() * 1e3,
        fired,
    })
}

/// The timers workload on a C peer.
///
/// # Errors
///
/// The peer is not built in.
pub fn timers_peer(peer: &str, n: u64, r: u64) -> Result<TimersResult, String> {
    let (mut add, mut rearm, mut run, mut fired) = (0.0, 0.0, 0.0, 0i64);
    let (count, rounds) = (n as i64, r as i32);
    let _ = (&mut add, &mut rearm, &mut run, &mut fired, count, rounds);
    let rc: Option<i32> = match peer {
        #[cfg(have_libevent)]
        // SAFETY: the outputs are live locals.
        "libevent" => Some(unsafe {
            ffi::peer_timers_libevent(count, rounds, &mut add, &mut rearm, &mut run, &mut fired)
        }),
        #[cfg(have_libev)]
        // SAFETY: as above.
        "libev" => Some(unsafe {
            ffi::peer_timers_libev(count, rounds, &mut add, &mut rearm, &mut run, &mut fired)
        }),
        _ => None,
    };
    peer_status(peer, rc, || format!("{peer} failed"))?;
    Ok(TimersResult {
        add_ns: add,
        rearm_ns: rearm,
        run_ms: run,
        fired: fired as u64,
    })
}

/// One rearm result.
#[derive(Copy, Clone, Debug)]
pub struct RearmResult {
    /// Nanoseconds per re-arm.
    pub rearm_ns: f64,
    /// Callbacks that ran (none should: the timeouts are 10 s and more).
    pub fired: u64,
}

/// The rearm workload's sequence of timers to re-arm (the C peers' `rearm_pick`): a 64-bit
/// LCG, its high bits modulo `n`.
pub fn rearm_pick(state: &mut u64, n: u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 33) % n
}

/// Timer `i`'s timeout in the rearm workload: 10 s, 20 s, ... for `i % d` = 0, 1, ...
pub fn rearm_timeout(i: u64, d: u64) -> Duration {
    Duration::from_secs(10 * (i % d + 1))
}

/// The rearm workload on evloop: `n` persistent timeouts of `d` lengths, then `m` re-arms of
/// random ones, as a server re-arms a read timeout on every read. The adds share one clock
/// reading ([`Registry::update_cache_time`](evloop::Registry::update_cache_time)), as libev's
/// and libevent's adds share their cached time.
pub fn rearm_evloop(n: u64, d: u64, m: u64) -> std::io::Result<RearmResult> {
    let mut base: Base<u64> = evloop::new_base()?;
    let ids: Vec<_> = (0..n)
        .map(|_| base.new_timer(TimerKind::Periodic, |_, fired: &mut u64| *fired += 1))
        .collect::<std::io::Result<_>>()?;
    base.update_cache_time();
    for (i, &id) in ids.iter().enumerate() {
        base.add(id, Some(rearm_timeout(i as u64, d)))?;
    }
    let mut state = 1u64;
    let t0 = Instant::now();
    base.update_cache_time();
    for _ in 0..m {
        let i = rearm_pick(&mut state, n);
        base.add(ids[i as usize], Some(rearm_timeout(i, d)))?;
    }
    let t1 = Instant::now();
    let mut fired = 0;
    base.run_with(evloop::LoopFlags::NONBLOCK, &mut fired)?;
    Ok(RearmResult {
        rearm_ns: (t1 - t0).as_nanos() as f64 / m as f64,
        fired,
    })
}

/// The rearm workload on a C peer.
///
/// # Errors
///
/// The peer is not built in.
pub fn rearm_peer(peer: &str, n: u64, d: u64, m: u64) -> Result<RearmResult, String> {
    let (mut rearm, mut fired) = (0.0, 0i64);
    let (count, lengths, times) = (n as i64, d as i32, m as i64);
    let _ = (&mut rearm, &mut fired, count, lengths, times);
    let rc: Option<i32> = match peer {
        #[cfg(have_libevent)]
        "libevent" => {
            // SAFETY: the outputs are live locals.
            let rc =
                unsafe { ffi::peer_rearm_libevent(count, lengths, times, &mut rearm, &mut fired) };
            Some(rc)
        }
        #[cfg(have_libev)]
        "libev" => {
            // SAFETY: as above.
            let rc =
                unsafe { ffi::peer_rearm_libev(count, lengths, times, &mut rearm, &mut fired) };
            Some(rc)
        }
        _ => None,
    };
    peer_status(peer, rc, || format!("{peer} failed"))?;
    Ok(RearmResult {
        rearm_ns: rearm,
        fired: fired as u64,
    })
}

/// This process's peak resident set size in KiB.
pub fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage fills a zeroed local.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let maxrss = usage.ru_maxrss as u64;
    if cfg!(any(target_os = "macos", target_os = "ios")) {
        maxrss / 1024 // bytes there
    } else {
        maxrss
    }
}

/// Parse `-x value` flags in any order.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Serve the http-hello responder on libevent's bufferevent at 127.0.0.1:`port` until SIGINT
/// or SIGTERM.
///
/// # Errors
///
/// libevent is not built in, or it cannot listen.
pub fn http_libevent(port: u16) -> Result<(), String> {
    let rc: Option<i32> = {
        #[cfg(have_libevent)]
        {
            // SAFETY: runs libevent's loop on this thread until a signal ends it.
            Some(unsafe { ffi::peer_http_libevent(i32::from(port)) })
        }
        #[cfg(not(have_libevent))]
        {
            let _ = port;
            None
        }
    };
    peer_status("libevent", rc, || {
        format!("libevent cannot listen on port {port}")
    })
}

/// This process's CPU seconds (user + system) and peak RSS in KiB (`getrusage`).
#[cfg(unix)]
pub fn process_usage() -> (f64, u64) {
    // SAFETY: a zeroed rusage is a valid one, and getrusage only writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime) + secs(u.ru_stime), u.ru_maxrss as u64)
}
