//! Loop control: priorities, manual activation, exit and break, flags, dispatch limits.

use std::time::{Duration, Instant};

use evloop_core::fd::OwnedFd;
use evloop_core::{Base, BaseOptions, EventId, Fired, Interest, LoopFlags, RunOutcome, TimerKind};

use crate::util::{
    log_as, owned_logging_event, raw, read_available, run_until, socketpair, turn, write_all, Log,
};
use crate::Harness;
use evloop_core::fd::NO_FD;

fn three_priorities() -> BaseOptions {
    BaseOptions {
        priorities: 3,
        ..Default::default()
    }
}

/// Active events run best priority first, whatever order they were activated in.
pub fn priorities(h: &Harness) {
    let mut base = h.base_with::<Vec<u16>>(three_priorities());
    let mut ids = Vec::new();
    for prio in [2u16, 0, 1] {
        let e = base
            .new_timer(TimerKind::OneShot, move |_, log: &mut Vec<u16>| {
                log.push(prio)
            })
            .unwrap();
        base.set_priority(e, prio).unwrap();
        ids.push(e);
    }
    for &e in &ids {
        base.activate(e, Fired::TIMEOUT, 1).unwrap();
    }
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [0, 1, 2]);
    let err = base.set_priority(ids[0], 3).unwrap_err();
    assert!(err.to_string().contains("priority 3"), "{err}");
}

/// A callback that activates a more urgent event lets it run before the rest of its own
/// priority's queue.
pub fn better_priority_preempts_a_worse_queue(h: &Harness) {
    let mut base = h.base_with::<Vec<&'static str>>(three_priorities());
    let c = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| log.push("C"))
        .unwrap();
    base.set_priority(c, 0).unwrap();
    let a = base
        .new_timer(TimerKind::OneShot, move |ctx, log: &mut Vec<&str>| {
            log.push("A");
            ctx.activate(c, Fired::TIMEOUT, 1).unwrap();
        })
        .unwrap();
    let b = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| log.push("B"))
        .unwrap();
    base.activate(a, Fired::TIMEOUT, 1).unwrap();
    base.activate(b, Fired::TIMEOUT, 1).unwrap();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, ["A", "C", "B"]);
}

/// Manual activation runs the callback with the given flags and count; activating twice
/// before it runs merges the flags into one run.
pub fn manual_activation(h: &Harness) {
    let mut base = h.base::<Vec<(Fired, u32)>>();
    let e = base
        .new_timer(TimerKind::OneShot, |ctx, log: &mut Vec<_>| {
            log.push((ctx.fired(), ctx.ncalls()))
        })
        .unwrap();
    base.activate(e, Fired::WRITE, 3).unwrap();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [(Fired::WRITE, 3)]);
    base.activate(e, Fired::READ, 1).unwrap();
    base.activate(e, Fired::WRITE, 1).unwrap();
    log.clear();
    base.run(&mut log).unwrap();
    assert_eq!(log, [(Fired::READ | Fired::WRITE, 2)]);
}

/// Activating an event that watches an fd: a persistent one stays pending on its fd; a
/// non-persistent one is no longer pending once its callback ran.
pub fn manual_activation_with_a_pending_fd(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let p = base
        .new_owned_event(
            b,
            Interest::READ | Interest::PERSIST,
            move |ctx, log: &mut Log| {
                log.push(("persist", ctx.fired()));
                read_available(ctx.borrow_fd().unwrap());
            },
        )
        .unwrap();
    let once = base
        .new_event_on(p, Interest::READ, log_as("plain"))
        .unwrap();
    base.add(p, None).unwrap();
    base.add(once, Some(Duration::from_secs(60))).unwrap();
    base.activate(p, Fired::TIMEOUT, 1).unwrap();
    base.activate(once, Fired::TIMEOUT, 1).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    assert_eq!(
        log,
        [("persist", Fired::TIMEOUT), ("plain", Fired::TIMEOUT)]
    );
    assert_eq!(base.pending(p).unwrap().flags, Fired::READ);
    assert_eq!(base.pending(once).unwrap().flags, Fired::empty());
    log.clear();
    write_all(&a, b"x");
    run_until(
        &mut base,
        &mut log,
        "persistent event after activation",
        |l| !l.is_empty(),
    );
    assert_eq!(log, [("persist", Fired::READ)]);
}

/// `loop_exit(None)` from a callback ends the run after the current callbacks; pending events
/// stay registered.
pub fn loop_exit_without_delay(h: &Harness) {
    let mut base = h.base::<usize>();
    let t = base
        .new_timer(TimerKind::Periodic, |ctx, n: &mut usize| {
            *n += 1;
            if *n == 3 {
                ctx.loop_exit(None);
            }
        })
        .unwrap();
    base.add(t, Some(Duration::from_millis(1))).unwrap();
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::Exited);
    assert!(base.got_exit() && !base.got_break());
    assert_eq!(n, 3);
    assert!(base.pending(t).unwrap().flags.contains(Fired::TIMEOUT));
}

/// `loop_exit(Some(d))` ends a busy loop no earlier than `d`.
pub fn loop_exit_with_delay(h: &Harness) {
    let mut base = h.base::<usize>();
    let t = base
        .new_timer(TimerKind::Periodic, |_, n: &mut usize| *n += 1)
        .unwrap();
    base.add(t, Some(Duration::from_millis(2))).unwrap();
    let start = Instant::now();
    base.loop_exit(Some(Duration::from_millis(50)));
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::Exited);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(n >= 1);
}

/// `loop_exit` called before the loop runs takes effect once it runs, even with an event
/// that would otherwise block forever.
pub fn loop_exit_before_the_loop_starts(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<()>();
    let e = base.new_owned_event(b, Interest::READ, |_, _| {}).unwrap();
    base.add(e, None).unwrap();
    base.loop_exit(None);
    assert_eq!(base.run(&mut ()).unwrap(), RunOutcome::Exited);
    assert!(base.got_exit());
}

/// `loop_break` from a callback stops the run right after it: the other active callback runs
/// in the next run.
pub fn loop_break_from_a_callback(h: &Harness) {
    let mut base = h.base::<Vec<&'static str>>();
    let a = base
        .new_timer(TimerKind::OneShot, |ctx, log: &mut Vec<&str>| {
            log.push("A");
            ctx.loop_break();
        })
        .unwrap();
    let b = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| log.push("B"))
        .unwrap();
    base.activate(a, Fired::TIMEOUT, 1).unwrap();
    base.activate(b, Fired::TIMEOUT, 1).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::Broken);
    assert!(base.got_break());
    assert_eq!(log, ["A"]);
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert!(!base.got_break());
    assert_eq!(log, ["A", "B"]);
}

/// Our decision (libevent loses it): `loop_break` before the loop runs makes the next run
/// return at once, running nothing; the run after that is normal.
pub fn loop_break_before_the_loop_starts(h: &Harness) {
    let mut base = h.base::<usize>();
    let t = base
        .new_timer(TimerKind::OneShot, |_, n: &mut usize| *n += 1)
        .unwrap();
    base.activate(t, Fired::TIMEOUT, 1).unwrap();
    base.loop_break();
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::Broken);
    assert!(base.got_break());
    assert_eq!(n, 0);
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::NoEvents);
    assert_eq!(n, 1);
}

/// A loop with no events returns at once.
pub fn empty_loop_returns(h: &Harness) {
    let mut base = h.base::<()>();
    let start = Instant::now();
    assert_eq!(base.run(&mut ()).unwrap(), RunOutcome::NoEvents);
    assert!(start.elapsed() < Duration::from_secs(2));
    let e = base.new_timer(TimerKind::OneShot, |_, _| {}).unwrap();
    // A timer with no timeout would wait for nothing: refused, naming the event, and the
    // loop still has nothing to wait for.
    let err = base.add(e, None).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("new_user_event"), "{err}");
    assert_eq!(base.run(&mut ()).unwrap(), RunOutcome::NoEvents);
}

/// NO_EXIT_ON_EMPTY keeps an empty loop running: one non-blocking pass returns `Returned`,
/// not `NoEvents`, and a delayed `loop_exit` ends a blocking run.
pub fn no_exit_on_empty_with_loop_exit(h: &Harness) {
    let mut base = h.base::<()>();
    let flags = LoopFlags::NO_EXIT_ON_EMPTY;
    assert_eq!(
        base.run_with(flags | LoopFlags::NONBLOCK, &mut ()).unwrap(),
        RunOutcome::Returned
    );
    let start = Instant::now();
    base.loop_exit(Some(Duration::from_millis(30)));
    assert_eq!(base.run_with(flags, &mut ()).unwrap(), RunOutcome::Exited);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

/// NONBLOCK returns at once when nothing is ready, running nothing.
pub fn nonblock_returns_at_once(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<usize>();
    let e = base
        .new_owned_event(b, Interest::READ, |_, n: &mut usize| *n += 1)
        .unwrap();
    base.add(e, Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    let mut n = 0;
    assert_eq!(
        base.run_with(LoopFlags::NONBLOCK, &mut n).unwrap(),
        RunOutcome::Returned
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(n, 0);
}

/// An event that re-activates itself forever would starve timers and I/O; with
/// `max_dispatch_callbacks` (or `max_dispatch_interval`) the loop checks for new events after
/// that many callbacks, so a due timer runs within the bound.
pub fn dispatch_limits_bound_a_flood(h: &Harness) {
    let limits = [
        BaseOptions {
            max_dispatch_callbacks: Some(5),
            ..Default::default()
        },
        BaseOptions {
            max_dispatch_interval: Some(Duration::from_millis(2)),
            ..Default::default()
        },
    ];
    for options in limits {
        // (flood runs, flood runs after the timer's deadline, timer deadline)
        let mut base = h.base_with::<(usize, usize, Option<Instant>)>(options.clone());
        let flood = base
            .new_timer(
                TimerKind::OneShot,
                |ctx, (n, late, deadline): &mut (usize, usize, Option<Instant>)| {
                    *n += 1;
                    if deadline.is_some_and(|d| ctx.now() >= d) {
                        *late += 1;
                    }
                    let me = ctx.id();
                    ctx.activate(me, Fired::TIMEOUT, 1).unwrap();
                },
            )
            .unwrap();
        let timer = base
            .new_timer(TimerKind::OneShot, |ctx, _| ctx.loop_break())
            .unwrap();
        base.add(timer, Some(Duration::from_millis(20))).unwrap();
        let mut data = (0, 0, base.pending(timer).unwrap().deadline);
        base.activate(flood, Fired::TIMEOUT, 1).unwrap();
        assert_eq!(
            base.run(&mut data).unwrap(),
            RunOutcome::Broken,
            "{options:?}"
        );
        assert!(data.0 > 0);
        // One iteration's worth of flood callbacks may run after the deadline passed; with
        // the interval limit, that is however many fit in 2 ms, so only check the count one.
        if options.max_dispatch_callbacks.is_some() {
            assert!(
                data.1 <= 5,
                "{} flood callbacks ran after the timer was due",
                data.1
            );
        }
    }
}

/// `remove_timer` drops a timeout and keeps the I/O interest (libevent's
/// `event_remove_timer`): the event no longer times out, still fires on readiness, and a pure
/// timer whose timeout goes stops keeping the loop alive.
pub fn remove_timer_keeps_the_io_interest(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let e = owned_logging_event(&mut base, b, Interest::READ | Interest::PERSIST, "io");
    base.add(e, Some(Duration::from_millis(20))).unwrap();
    base.remove_timer(e).unwrap();
    let pending = base.pending(e).unwrap();
    assert_eq!(
        (pending.flags, pending.deadline),
        (Fired::READ, None),
        "the timeout is gone, READ stays"
    );
    // Well past the old timeout: nothing may fire.
    base.loop_exit(Some(Duration::from_millis(80)));
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [], "a removed timeout fired");
    write_all(&a, b"x");
    run_until(&mut base, &mut log, "READ after remove_timer", |l| {
        !l.is_empty()
    });
    assert_eq!(log, [("io", Fired::READ)]);
    // A pure timer: removing its timeout leaves nothing pending.
    let t = base
        .new_timer(TimerKind::Periodic, log_as("timer"))
        .unwrap();
    base.add(t, Some(Duration::from_millis(10))).unwrap();
    let before = base.num_events();
    base.remove_timer(t).unwrap();
    assert_eq!(base.num_events(), before - 1);
    assert_eq!(base.pending(t).unwrap().flags, Fired::empty());
    base.free(e).unwrap();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
}

/// `active_by_fd` activates every event on the fd that watches one of the flags, each with
/// the flags it watches (libevent's `event_base_active_by_fd`); others stay quiet.
pub fn active_by_fd_activates_every_matching_event(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<Log>();
    let fd = raw(&b);
    let first = owned_logging_event(&mut base, b, Interest::READ | Interest::PERSIST, "reader 1");
    base.add(first, None).unwrap();
    for (flags, name) in [(Interest::READ, "reader 2"), (Interest::WRITE, "writer")] {
        let e = base
            .new_event_on(first, flags | Interest::PERSIST, log_as(name))
            .unwrap();
        base.add(e, None).unwrap();
    }
    // The socket is writable: take that out of the picture by counting only the activations.
    assert_eq!(base.active_by_fd(fd, Fired::READ).unwrap(), 2);
    let mut log = Log::new();
    base.run_with(LoopFlags::ONCE | LoopFlags::NONBLOCK, &mut log)
        .unwrap();
    let readers: Vec<_> = log
        .iter()
        .filter(|(n, _)| n.starts_with("reader"))
        .collect();
    assert_eq!(
        readers,
        [&("reader 1", Fired::READ), &("reader 2", Fired::READ)]
    );
    let err = base.active_by_fd(fd, Fired::TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(base.active_by_fd(NO_FD, Fired::READ).unwrap(), 0);
}

/// One non-blocking pass calls every fd that is ready, however many: none waits for a later
/// pass because one wait's buffer (64 events at first on epoll) was full.
pub fn one_nonblocking_pass_calls_every_ready_fd(h: &Harness) {
    const N: usize = 300;
    let (writers, readers): (Vec<_>, Vec<_>) = (0..N).map(|_| socketpair()).unzip();
    let mut base = h.base::<usize>();
    for b in readers {
        let e = base
            .new_owned_event(b, Interest::READ, |_, n: &mut usize| *n += 1)
            .unwrap();
        base.add(e, None).unwrap();
    }
    for a in &writers {
        write_all(a, b"x");
    }
    // Readiness on a socket pair is immediate on Unix; a loopback TCP pair (Windows) may take a
    // moment, so wait until every fd reports before the pass under test.
    std::thread::sleep(Duration::from_millis(50));
    let mut n = 0;
    base.run_with(LoopFlags::NONBLOCK, &mut n).unwrap();
    assert_eq!(n, N, "ready fds left for a later pass");
}

/// A persistent READ event on `from` that logs `name`, drains `from`, and passes one byte on
/// to `to`.
fn relay(base: &mut Base<Log>, name: &'static str, from: OwnedFd, to: Option<OwnedFd>) -> EventId {
    base.new_owned_event(
        from,
        Interest::READ | Interest::PERSIST,
        move |ctx, log: &mut Log| {
            log.push((name, Fired::READ));
            let _ = read_available(ctx.borrow_fd().unwrap());
            if let Some(to) = &to {
                write_all(to, b"x");
            }
        },
    )
    .unwrap()
}

/// `NONBLOCK | UNTIL_IDLE` (libevent's `EVLOOP_NONBLOCK`) keeps making passes while a pass
/// ran callbacks: I/O that a callback triggers is handled before it returns. Plain `NONBLOCK`
/// makes one pass.
pub fn nonblock_until_idle_finishes_the_work_it_triggers(h: &Harness) {
    for until_idle in [false, true] {
        let (a1, b1) = socketpair();
        let (a2, b2) = socketpair();
        let mut base = h.base::<Log>();
        let first = base
            .new_user_event(move |_, log: &mut Log| {
                log.push(("first", Fired::TIMEOUT));
                write_all(&a1, b"1");
            })
            .unwrap();
        let second = relay(&mut base, "second", b1, Some(a2));
        let third = relay(&mut base, "third", b2, None);
        base.add(second, None).unwrap();
        base.add(third, None).unwrap();
        base.activate(first, Fired::TIMEOUT, 1).unwrap();
        let flags = if until_idle {
            LoopFlags::NONBLOCK | LoopFlags::UNTIL_IDLE
        } else {
            LoopFlags::NONBLOCK
        };
        let mut log = Log::new();
        assert_eq!(
            base.run_with(flags, &mut log).unwrap(),
            RunOutcome::Returned
        );
        let names: Vec<_> = log.iter().map(|(n, _)| *n).collect();
        if until_idle {
            // Windows' loopback TCP pairs may report a moment late; Unix pairs at once.
            if cfg!(unix) {
                assert_eq!(names, ["first", "second", "third"]);
            }
        } else {
            assert_eq!(names, ["first"], "NONBLOCK makes one pass");
        }
    }
}
