//! Floods must not starve or sink the loop: a thread flooding activations of one event while a
//! timer must fire on time, with memory bounded by events rather than calls; a flood of
//! closures taken a batch at a time; and busy callbacks that re-activate themselves (100
//! buffered sockets streaming to a fast reader) deferred to the next pass, so a timer and a
//! reader on another socket are served.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::{BevOptions, BufferedSocket, Fired, Interest, LoopFlags, TimerKind};

use crate::util::{patience, read_available, socketpair, write_all};
use crate::Harness;

/// How late a timer may be in these scenarios: far more than a loaded machine needs, far less
/// than a starved loop takes (seconds, and unbounded before).
const LATE: Duration = Duration::from_millis(1500);

/// The process's resident memory, where the OS says it simply (Linux); elsewhere none.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[derive(Default)]
struct Flood {
    runs: u64,
    calls: u64,
    timer_at: Option<Duration>,
    closures: u64,
}

/// One thread activates one event as fast as it can for 2 s. A 100 ms timer fires within
/// [`LATE`] of its deadline, never early; every activation is counted in the merged runs'
/// `ncalls`; far fewer runs than activations (they merged); and (Linux) the process grows by
/// less than 64 MiB, where one queued command per activation grew by gigabytes. Then a flood
/// of `run_in_loop` closures for 0.5 s: the timer again fires on time, and every closure runs.
pub fn a_flood_of_activations_neither_starves_the_loop_nor_grows_memory(h: &Harness) {
    let mut base = h.base::<Flood>();
    let handle = base.handle().unwrap();
    let ev = base
        .new_user_event(|ctx, f: &mut Flood| {
            f.runs += 1;
            f.calls += u64::from(ctx.ncalls());
        })
        .unwrap();
    let start = Instant::now();
    let timer = base
        .new_timer(TimerKind::OneShot, move |_, f: &mut Flood| {
            f.timer_at = Some(start.elapsed());
        })
        .unwrap();
    base.add(timer, Some(Duration::from_millis(100))).unwrap();
    let before = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (handle, stop, sent) = (handle.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                handle.activate(ev, Fired::empty(), 1).unwrap();
                n += 1;
            }
            sent.store(n, Ordering::SeqCst);
        })
    };
    let mut flood = Flood::default();
    let mut grew = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        base.run_with(
            LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY,
            &mut flood,
        )
        .unwrap();
        if let (Some(b), Some(now)) = (before, rss_bytes()) {
            grew = grew.max(now.saturating_sub(b));
        }
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let sent = sent.load(Ordering::SeqCst);
    // What the sender queued before it stopped is taken within a few passes.
    let deadline = Instant::now() + patience();
    while flood.calls < sent {
        assert!(
            Instant::now() < deadline,
            "{} of {sent} counted",
            flood.calls
        );
        base.run_with(
            LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY,
            &mut flood,
        )
        .unwrap();
    }
    let at = flood.timer_at.expect("the timer fired during the flood");
    assert!(
        at >= Duration::from_millis(100) && at < Duration::from_millis(100) + LATE,
        "the 100 ms timer fired after {at:?} during the flood"
    );
    assert_eq!(flood.calls, sent, "every activation counted");
    assert!(
        flood.runs < sent,
        "{} runs for {sent} activations: none merged",
        flood.runs
    );
    assert!(
        grew < 64 << 20,
        "the process grew by {} MiB during the flood",
        grew >> 20
    );

    // Closures: queued without bound, but taken a batch at a time.
    let start = Instant::now();
    flood.timer_at = None;
    let timer = base
        .new_timer(TimerKind::OneShot, move |_, f: &mut Flood| {
            f.timer_at = Some(start.elapsed());
        })
        .unwrap();
    base.add(timer, Some(Duration::from_millis(100))).unwrap();
    let sender = std::thread::spawn(move || {
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(500) {
            handle
                .run_in_loop(|_, f: &mut Flood| f.closures += 1)
                .unwrap();
            n += 1;
        }
        n
    });
    while flood.timer_at.is_none() || !sender.is_finished() {
        assert!(start.elapsed() < patience(), "the timer never fired");
        base.run_with(
            LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY,
            &mut flood,
        )
        .unwrap();
    }
    let queued = sender.join().unwrap();
    while flood.closures < queued {
        assert!(
            start.elapsed() < patience(),
            "{} of {queued} closures ran",
            flood.closures
        );
        base.run_with(
            LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY,
            &mut flood,
        )
        .unwrap();
    }
    let at = flood.timer_at.unwrap();
    assert!(
        at >= Duration::from_millis(100) && at < Duration::from_millis(100) + LATE,
        "the 100 ms timer fired after {at:?} during a flood of closures"
    );
}

#[derive(Default)]
struct Streams {
    written: u64,
    timer_at: Option<Duration>,
    pinged_at: Option<Duration>,
}

/// 100 buffered sockets stream 8 KiB writes from their write callbacks to a reader thread that
/// takes everything at once: each callback's write drains at once and makes the callback due
/// again. A 100 ms timer still fires within [`LATE`] of its deadline, and a read event on
/// another socket sees the byte written to it (libuv's `tcp_pump100_client` stalled evloop's
/// loop for seconds when a callback due again ran in the same pass).
pub fn busy_callbacks_run_in_the_next_pass(h: &Harness) {
    const SOCKETS: usize = 100;
    let mut base = h.base::<Streams>();
    let chunk = vec![0x5au8; 8192];
    let mut peers = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let (ours, theirs) = socketpair();
        let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
        let again = chunk.clone();
        let mut control = bev.on(&mut base);
        control.set_write_callback(move |bev, s: &mut Streams| {
            bev.write(&again).unwrap();
            s.written += again.len() as u64;
        });
        control.enable(Interest::WRITE).unwrap();
        control.write(&chunk).unwrap();
        sockets.push(bev);
        peers.push(theirs);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut total = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for peer in &peers {
                    total += read_available(peer).len();
                }
            }
            total
        })
    };
    let start = Instant::now();
    let timer = base
        .new_timer(TimerKind::OneShot, move |_, s: &mut Streams| {
            s.timer_at = Some(start.elapsed());
        })
        .unwrap();
    base.add(timer, Some(Duration::from_millis(100))).unwrap();
    let (ping, pong) = socketpair();
    let pong_fd = crate::util::raw(&pong);
    // SAFETY: `pong` outlives the base's use of its event (freed below).
    let reader_ev = unsafe {
        base.new_event(pong_fd, Interest::READ, move |_, s: &mut Streams| {
            let got = read_available(crate::util::borrow(pong_fd));
            assert_eq!(got, b"ping");
            s.pinged_at = Some(start.elapsed());
        })
    }
    .unwrap();
    base.add(reader_ev, None).unwrap();
    write_all(&ping, b"ping");
    let mut streams = Streams::default();
    while streams.timer_at.is_none() || streams.pinged_at.is_none() {
        assert!(
            start.elapsed() < patience(),
            "timer {:?}, reader {:?} after {:?}",
            streams.timer_at,
            streams.pinged_at,
            start.elapsed()
        );
        base.run_with(LoopFlags::NONBLOCK, &mut streams).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for bev in sockets {
        bev.free(&mut base).unwrap();
    }
    let _ = base.free(reader_ev);
    let read = reader.join().unwrap();
    let timer_at = streams.timer_at.unwrap();
    assert!(
        timer_at >= Duration::from_millis(100) && timer_at < Duration::from_millis(100) + LATE,
        "the 100 ms timer fired after {timer_at:?} while 100 sockets streamed"
    );
    assert!(
        streams.pinged_at.unwrap() < LATE,
        "the reader was served after {:?}",
        streams.pinged_at
    );
    assert!(read > 0 && streams.written > 0, "nothing streamed");
    drop(pong);
}
