//! The loop-hook workloads of issue 25, with libuv, libev and libevent as peers:
//!
//! * `loop_count` (libuv's test/benchmark-loop-count.c): one idle watcher whose callback
//!   counts ticks and stops itself at the last; loop iterations per second. evloop on epoll,
//!   libuv (`uv_idle_t`), libev (`ev_idle`, epoll).
//! * `lateness`: a timer of `period` re-armed from its own callback, `n` firings on an
//!   otherwise idle loop. Before each arming the benchmark reads the clock and then refreshes
//!   the library's cached time (evloop `update_cache_time`, libevent
//!   `event_base_update_cache_time`, libuv `uv_update_time`), so every library counts the
//!   period from the same reading; lateness is the firing time minus (reading + period),
//!   negative when early. (A persistent timer re-arms from its old deadline in evloop and
//!   libevent but from the loop's cached millisecond clock in libuv, so "when it was due"
//!   would mean different things; the re-armed one-shot gives every library one reference.)

use std::time::{Duration, Instant};

use evloop::{Base, BaseOptions, TimerKind};

#[cfg(any(have_libevent, have_libev, have_libuv))]
mod ffi {
    use std::os::raw::{c_double, c_int, c_long};
    extern "C" {
        #[cfg(have_libuv)]
        pub fn peer_loop_count_libuv(ticks: c_long, secs: *mut c_double) -> c_int;
        #[cfg(have_libuv)]
        pub fn peer_lateness_libuv(n: c_int, period_us: c_long, out: *mut c_double) -> c_int;
        #[cfg(have_libev)]
        pub fn peer_loop_count_libev(ticks: c_long, secs: *mut c_double) -> c_int;
        #[cfg(have_libevent)]
        pub fn peer_lateness_libevent(
            precise: c_int,
            n: c_int,
            period_us: c_long,
            out: *mut c_double,
        ) -> c_int;
    }
}

fn epoll_base<D>(options: BaseOptions) -> std::io::Result<Base<D>> {
    Base::with_backend(evloop::backend::by_name("epoll")?, options)
}

/// `loop_count` on evloop: seconds for `ticks` idle callbacks.
///
/// # Errors
///
/// Creating the base failed, or not every tick ran.
pub fn loop_count_evloop(ticks: u64) -> Result<f64, String> {
    let mut base: Base<u64> = epoll_base(BaseOptions::default()).map_err(|e| e.to_string())?;
    let idle = base
        .new_idle(move |ctx, n: &mut u64| {
            *n += 1;
            if *n == ticks {
                let me = ctx.id();
                let _ = ctx.del(me);
            }
        })
        .map_err(|e| e.to_string())?;
    base.add(idle, None).map_err(|e| e.to_string())?;
    let mut n = 0;
    let start = Instant::now();
    base.run(&mut n).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    if n != ticks {
        return Err(format!("{n} of {ticks} ticks ran"));
    }
    Ok(secs)
}

/// `loop_count` on a C peer (`libuv` or `libev`): seconds for `ticks` idle callbacks.
///
/// # Errors
///
/// The peer is not built in, or it failed.
pub fn loop_count_peer(peer: &str, ticks: u64) -> Result<f64, String> {
    let mut secs = 0.0;
    let _ = (&mut secs, ticks);
    let rc: Option<i32> = match peer {
        #[cfg(have_libuv)]
        // SAFETY: the output is a live local.
        "libuv" => Some(unsafe { ffi::peer_loop_count_libuv(ticks as _, &mut secs) }),
        #[cfg(have_libev)]
        // SAFETY: as above.
        "libev" => Some(unsafe { ffi::peer_loop_count_libev(ticks as _, &mut secs) }),
        _ => None,
    };
    match rc {
        None => Err(format!(
            "{peer} is not built in (its headers were absent at build time)"
        )),
        Some(0) => Ok(secs),
        Some(rc) => Err(format!("{peer} failed ({rc})")),
    }
}

/// Lateness on evloop (epoll, `precise` or not): `n` values in microseconds.
///
/// # Errors
///
/// Creating the base failed.
pub fn lateness_evloop(precise: bool, n: usize, period: Duration) -> Result<Vec<f64>, String> {
    struct State {
        out: Vec<f64>,
        armed: Instant,
        n: usize,
        period: Duration,
    }
    let mut base: Base<State> = epoll_base(BaseOptions {
        precise_timers: precise,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let t = base
        .new_timer(TimerKind::OneShot, |ctx, st: &mut State| {
            let now = Instant::now();
            st.out.push(signed_us(now, st.armed + st.period));
            if st.out.len() < st.n {
                st.armed = Instant::now();
                ctx.update_cache_time();
                let me = ctx.id();
                ctx.add(me, Some(st.period)).unwrap();
            }
        })
        .map_err(|e| e.to_string())?;
    let mut st = State {
        out: Vec::with_capacity(n),
        armed: Instant::now(),
        n,
        period,
    };
    base.add(t, Some(period)).map_err(|e| e.to_string())?;
    base.run(&mut st).map_err(|e| e.to_string())?;
    Ok(st.out)
}

/// `a - b` in microseconds, negative when `a` is earlier.
fn signed_us(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1e6,
        None => -(b - a).as_secs_f64() * 1e6,
    }
}

/// Lateness on a C peer: `libevent`, `libevent-precise` (`EVENT_BASE_FLAG_PRECISE_TIMER`) or
/// `libuv` (whole milliseconds only).
///
/// # Errors
///
/// The peer is not built in, or it failed.
pub fn lateness_peer(peer: &str, n: usize, period: Duration) -> Result<Vec<f64>, String> {
    let mut out = vec![0.0f64; n];
    let period_us = period.as_micros() as i64;
    let _ = (&mut out, period_us);
    let rc: Option<i32> = match peer {
        #[cfg(have_libevent)]
        // SAFETY: `out` has room for `n` values.
        "libevent" | "libevent-precise" => Some(unsafe {
            ffi::peer_lateness_libevent(
                i32::from(peer == "libevent-precise"),
                n as _,
                period_us as _,
                out.as_mut_ptr(),
            )
        }),
        #[cfg(have_libuv)]
        "libuv" => {
            // SAFETY: as above.
            let rc = unsafe { ffi::peer_lateness_libuv(n as _, period_us as _, out.as_mut_ptr()) };
            Some(rc)
        }
        _ => None,
    };
    match rc {
        None => Err(format!(
            "{peer} is not built in (its headers were absent at build time)"
        )),
        Some(0) => Ok(out),
        Some(rc) => Err(format!("{peer} failed ({rc})")),
    }
}

/// p50, p99 and max of `v` (sorted here), and how many are negative (early).
pub fn summary(v: &mut [f64]) -> (f64, f64, f64, usize) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let early = v.iter().filter(|&&x| x < 0.0).count();
    (at(0.5), at(0.99), v[v.len() - 1], early)
}
