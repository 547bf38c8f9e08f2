//! Other threads reaching a base through its `Handle`: waking a blocked loop, activations
//! from several threads, remote break and exit, per-sender FIFO, no busy loop afterwards,
//! handles outliving the base, deleting an event whose callback runs.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::{Fired, Interest, LoopFlags, RunOutcome, TimerKind};

use crate::util::{patience, socketpair};
use crate::Harness;

const KEEP: LoopFlags = LoopFlags::NO_EXIT_ON_EMPTY;

/// A loop blocked with nothing due wakes for a remote activation and runs the callback.
pub fn remote_activation_wakes_a_blocked_loop(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<Option<Instant>>();
    let never = base.new_owned_event(b, Interest::READ, |_, _| {}).unwrap();
    base.add(never, None).unwrap();
    let e = base
        .new_timer(TimerKind::OneShot, |ctx, ran: &mut Option<Instant>| {
            *ran = Some(Instant::now());
            ctx.loop_break();
        })
        .unwrap();
    let handle = base.handle().unwrap();
    let sent = Arc::new(std::sync::Mutex::new(None));
    let sent2 = sent.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        *sent2.lock().unwrap() = Some(Instant::now());
        handle.activate(e, Fired::TIMEOUT, 1).unwrap();
    });
    let mut ran = None;
    assert_eq!(base.run(&mut ran).unwrap(), RunOutcome::Broken);
    t.join().unwrap();
    let latency = ran.unwrap() - sent.lock().unwrap().unwrap();
    assert!(latency < Duration::from_secs(2), "woke after {latency:?}");
}

/// 1,000,000 activations from 4 threads (one event each) are all delivered: the counts the
/// callbacks see add up to exactly what was sent.
pub fn remote_activations_from_4_threads_all_delivered(h: &Harness) {
    const PER_THREAD: u64 = 250_000;
    let mut base = h.base::<[u64; 4]>();
    let handle = base.handle().unwrap();
    let events: Vec<_> = (0..4)
        .map(|i| {
            base.new_timer(TimerKind::OneShot, move |ctx, seen: &mut [u64; 4]| {
                seen[i] += u64::from(ctx.ncalls())
            })
            .unwrap()
        })
        .collect();
    let senders: Vec<_> = events
        .iter()
        .map(|&e| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    handle.activate(e, Fired::TIMEOUT, 1).unwrap();
                }
            })
        })
        .collect();
    let mut seen = [0u64; 4];
    let start = Instant::now();
    while seen.iter().sum::<u64>() < 4 * PER_THREAD {
        assert!(start.elapsed() < patience() * 3, "delivered {seen:?}");
        base.run_with(KEEP | LoopFlags::ONCE, &mut seen).unwrap();
    }
    for s in senders {
        s.join().unwrap();
    }
    base.run_with(KEEP | LoopFlags::NONBLOCK, &mut seen)
        .unwrap();
    assert_eq!(seen, [PER_THREAD; 4]);
}

/// `loop_break` and `loop_exit` sent from another thread stop a blocked loop.
pub fn remote_loop_break_and_loop_exit(h: &Harness) {
    let mut base = h.base::<()>();
    let handle = base.handle().unwrap();
    let h2 = handle.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        h2.loop_break().unwrap();
    });
    assert_eq!(base.run_with(KEEP, &mut ()).unwrap(), RunOutcome::Broken);
    t.join().unwrap();
    let start = Instant::now();
    let t = std::thread::spawn(move || handle.loop_exit(Some(Duration::from_millis(30))).unwrap());
    assert_eq!(base.run_with(KEEP, &mut ()).unwrap(), RunOutcome::Exited);
    t.join().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
}

/// Closures from each sender run on the loop thread in the order that sender sent them.
pub fn remote_closures_run_fifo_per_sender(h: &Harness) {
    const N: u32 = 10_000;
    let mut base = h.base::<Vec<Vec<u32>>>();
    let handle = base.handle().unwrap();
    let loop_thread = std::thread::current().id();
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    handle
                        .run_in_loop(move |_, seen: &mut Vec<Vec<u32>>| {
                            assert_eq!(std::thread::current().id(), loop_thread);
                            seen[t].push(i);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let mut seen = vec![Vec::new(), Vec::new()];
    let start = Instant::now();
    while seen.iter().map(Vec::len).sum::<usize>() < 2 * N as usize {
        assert!(
            start.elapsed() < patience(),
            "ran {} closures",
            seen.iter().map(Vec::len).sum::<usize>()
        );
        base.run_with(KEEP | LoopFlags::NONBLOCK, &mut seen)
            .unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    for s in senders {
        s.join().unwrap();
    }
    for per_sender in &seen {
        assert!(
            per_sender.windows(2).all(|w| w[0] + 1 == w[1]),
            "out of order"
        );
    }
}

/// After one remote activation the wake-up fd is drained: waiting for a 300 ms timer takes a
/// handful of iterations, not a spin (libevent master's poll and select backends spin here).
pub fn remote_activation_leaves_no_busy_loop(h: &Harness) {
    let mut base = h.base::<usize>();
    let handle = base.handle().unwrap();
    let e = base
        .new_timer(TimerKind::OneShot, |_, n: &mut usize| *n += 1)
        .unwrap();
    let t = base
        .new_timer(TimerKind::OneShot, |ctx, _| ctx.loop_break())
        .unwrap();
    base.add(t, Some(Duration::from_millis(300))).unwrap();
    std::thread::spawn(move || handle.activate(e, Fired::TIMEOUT, 1).unwrap())
        .join()
        .unwrap();
    let before = base.iterations();
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::Broken);
    assert_eq!(n, 1);
    let spent = base.iterations() - before;
    assert!(spent <= 10, "{spent} loop iterations while waiting 300 ms");
}

/// A handle used after its base is dropped returns a clear error, at once.
pub fn remote_handle_after_the_base_is_dropped(h: &Harness) {
    let mut base = h.base::<()>();
    let handle = base.handle().unwrap();
    let e = base.new_timer(TimerKind::OneShot, |_, _| {}).unwrap();
    drop(base);
    let start = Instant::now();
    let err = handle.activate(e, Fired::TIMEOUT, 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert!(err.to_string().contains("dropped"), "{err}");
    assert!(handle.run_in_loop(|_, _| {}).is_err());
    assert!(handle.loop_break().is_err() && handle.wake().is_err());
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Deleting an event from another thread while its callback runs: the delete runs on the loop
/// thread after the callback returns, and the event runs no more. Nothing blocks.
pub fn remote_delete_while_its_callback_runs(h: &Harness) {
    let mut base = h.base::<usize>();
    let handle = base.handle().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let e = base
        .new_timer(TimerKind::Periodic, move |_, runs: &mut usize| {
            *runs += 1;
            flag.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50)); // the delete arrives meanwhile
        })
        .unwrap();
    base.add(e, Some(Duration::from_millis(1))).unwrap();
    let t = std::thread::spawn(move || {
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        handle
            .run_in_loop(move |ctx, _| ctx.del(e).unwrap())
            .unwrap();
    });
    let mut runs = 0;
    assert_eq!(base.run(&mut runs).unwrap(), RunOutcome::NoEvents);
    t.join().unwrap();
    assert!((1..=2).contains(&runs), "{runs} runs");
}
