//! Loop hooks and metrics: prepare → wait → check → callbacks in one iteration, idle
//! watchers that run only when nothing else is active and keep the loop from blocking, a
//! prepare watcher that shortens the wait, watchers started and freed from inside watchers,
//! exact metrics on a scripted run, and precise timers that are never early. Bounds are lower
//! bounds plus generous upper bounds; timing goals belong to the benchmarks.

use std::time::{Duration, Instant};

use evloop_core::{BaseOptions, EventId, Fired, Interest, LoopFlags, RunOutcome, TimerKind};

use crate::util::{read_available, socketpair, write_all};
use crate::Harness;

const GENEROUS: Duration = Duration::from_secs(5);

/// What ran, with the loop iteration it ran in.
type Trace = Vec<(&'static str, u64)>;

/// In one iteration the prepare watcher runs before the wait, the check watcher after it
/// (before any callback), then the callbacks of the fd the wait found ready and of the timer
/// that expired.
pub fn prepare_wait_check_callbacks_in_order(h: &Harness) {
    let mut base = h.base::<Trace>();
    let (a, b) = socketpair();
    let reader = base
        .new_owned_event(a, Interest::READ, |ctx, log: &mut Trace| {
            read_available(ctx.borrow_fd().unwrap());
            log.push(("read", ctx.iterations()));
        })
        .unwrap();
    base.add(reader, None).unwrap();
    let prepare = base
        .new_prepare(|ctx, log: &mut Trace| log.push(("prepare", ctx.iterations())))
        .unwrap();
    let check = base
        .new_check(|ctx, log: &mut Trace| log.push(("check", ctx.iterations())))
        .unwrap();
    base.add(prepare, None).unwrap();
    base.add(check, None).unwrap();
    write_all(&b, b"x");
    let mut log = Trace::new();
    // The first wait finds the fd ready: one iteration does it all.
    base.run_with(LoopFlags::ONCE, &mut log).unwrap();
    assert_eq!(
        log,
        [("prepare", 0), ("check", 1), ("read", 1)],
        "prepare before the wait (iteration count 0), check and the callback after it"
    );
    // A timer: the iteration whose wait it ends has prepare, check, timer.
    log.clear();
    base.after(Duration::from_millis(20), |ctx, log: &mut Trace| {
        log.push(("timer", ctx.iterations()))
    })
    .unwrap();
    base.run_with(LoopFlags::ONCE, &mut log).unwrap();
    let timer_at = log
        .iter()
        .position(|e| e.0 == "timer")
        .expect("the timer ran");
    let n = log[timer_at].1;
    assert_eq!(
        &log[timer_at - 2..],
        [("prepare", n - 1), ("check", n), ("timer", n)]
    );
    base.free(reader).unwrap();
}

/// An idle watcher runs only in passes that found nothing else active, and while it is
/// started the loop does not block: it runs many times while a timer waits, and the timer
/// still fires no earlier than its deadline.
pub fn idle_runs_only_when_nothing_else_is_active(h: &Harness) {
    #[derive(Default)]
    struct Seen {
        busy_runs: u32,
        idle_while_busy: u32,
        idle_runs: u32,
        fired_at: Option<Instant>,
    }
    let mut base = h.base::<Seen>();
    // A busy event: active for five passes in a row, activating itself again.
    let busy = base
        .new_timer(TimerKind::OneShot, |ctx, seen: &mut Seen| {
            seen.busy_runs += 1;
            if seen.busy_runs < 5 {
                let me = ctx.id();
                ctx.activate(me, Fired::TIMEOUT, 1).unwrap();
            }
        })
        .unwrap();
    let idle = base
        .new_idle(|ctx, seen: &mut Seen| {
            seen.idle_runs += 1;
            if seen.busy_runs > 0 && seen.busy_runs < 5 {
                seen.idle_while_busy += 1;
            }
            if seen.fired_at.is_some() {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.add(idle, None).unwrap();
    base.activate(busy, Fired::TIMEOUT, 1).unwrap();
    let start = Instant::now();
    base.after(Duration::from_millis(50), |_, seen: &mut Seen| {
        seen.fired_at = Some(Instant::now())
    })
    .unwrap();
    let mut seen = Seen::default();
    assert_eq!(base.run(&mut seen).unwrap(), RunOutcome::NoEvents);
    assert_eq!(seen.busy_runs, 5);
    assert_eq!(
        seen.idle_while_busy, 0,
        "idle ran while an event was active"
    );
    let waited = seen.fired_at.unwrap() - start;
    assert!(
        waited >= Duration::from_millis(50) && waited < GENEROUS,
        "{waited:?}"
    );
    // Polling without blocking for 50 ms: far more than a handful of idle passes.
    assert!(
        seen.idle_runs > 10,
        "only {} idle runs while the timer waited",
        seen.idle_runs
    );
    base.free(busy).unwrap();
}

/// With priorities, the idle watchers of the most urgent priority that has any run when no
/// event of that priority or a more urgent one is active (libev's rule).
pub fn idle_watchers_follow_priorities(h: &Harness) {
    let mut base = h.base_with::<Vec<&'static str>>(BaseOptions {
        priorities: 3,
        ..Default::default()
    });
    let idle = base
        .new_idle(|ctx, log: &mut Vec<&str>| {
            log.push("idle");
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    base.set_priority(idle, 1).unwrap();
    base.add(idle, None).unwrap();
    let urgent = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| {
            log.push("urgent")
        })
        .unwrap();
    base.set_priority(urgent, 0).unwrap();
    base.activate(urgent, Fired::TIMEOUT, 1).unwrap();
    let mut log = Vec::new();
    base.run_with(LoopFlags::NONBLOCK, &mut log).unwrap();
    assert_eq!(
        log,
        ["urgent"],
        "a more urgent active event holds the idle watcher back"
    );
    // A less urgent active event does not.
    let lazy = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| {
            log.push("lazy")
        })
        .unwrap();
    base.set_priority(lazy, 2).unwrap();
    base.activate(lazy, Fired::TIMEOUT, 1).unwrap();
    log.clear();
    base.run_with(LoopFlags::NONBLOCK, &mut log).unwrap();
    assert_eq!(log, ["idle", "lazy"]);
    for id in [urgent, lazy, idle] {
        base.free(id).unwrap();
    }
}

/// A prepare watcher sees the timeout the loop is about to use and can shorten it: the loop
/// then wakes with nothing to run (the check watcher counts the wake-ups), and the timer is
/// still not early.
pub fn prepare_watcher_shortens_the_wait(h: &Harness) {
    #[derive(Default)]
    struct Seen {
        timeouts: Vec<Option<Duration>>,
        checks: u32,
        fired_at: Option<Instant>,
    }
    let mut base = h.base::<Seen>();
    let prepare = base
        .new_prepare(|ctx, seen: &mut Seen| {
            seen.timeouts.push(ctx.wait_timeout());
            ctx.limit_next_wait(Duration::from_millis(2));
            ctx.limit_next_wait(Duration::from_millis(30)); // the shortest stands
        })
        .unwrap();
    let check = base
        .new_check(|_, seen: &mut Seen| seen.checks += 1)
        .unwrap();
    base.add(prepare, None).unwrap();
    base.add(check, None).unwrap();
    let start = Instant::now();
    base.after(Duration::from_millis(100), |_, seen: &mut Seen| {
        seen.fired_at = Some(Instant::now())
    })
    .unwrap();
    let mut seen = Seen::default();
    assert_eq!(base.run(&mut seen).unwrap(), RunOutcome::NoEvents);
    let waited = seen.fired_at.unwrap() - start;
    assert!(
        waited >= Duration::from_millis(100) && waited < GENEROUS,
        "{waited:?}"
    );
    let first = seen.timeouts[0].expect("a timer is pending");
    assert!(first <= Duration::from_millis(100), "{first:?}");
    assert!(
        seen.timeouts
            .iter()
            .all(|t| t.is_some_and(|t| t <= Duration::from_millis(100))),
        "{:?}",
        seen.timeouts
    );
    // 100 ms in waits of at most 2 ms: dozens of wake-ups; 10 is a generous floor.
    assert!(seen.checks >= 10, "only {} wake-ups", seen.checks);
    assert_eq!(seen.checks as usize, seen.timeouts.len());
}

/// Watchers started, stopped and freed from inside watchers: a watcher started by one of
/// its kind runs at the kind's next turn, one freed before its turn does not run, and a
/// watcher may free itself. (`verify` checks the lists at every iteration in debug builds.)
pub fn watchers_started_and_freed_from_inside_watchers(h: &Harness) {
    #[derive(Default)]
    struct State {
        log: Vec<&'static str>,
        victim: Option<EventId>,
        late: Option<EventId>,
        check: Option<EventId>,
    }
    let mut base = h.base::<State>();
    let first = base
        .new_prepare(|ctx, st: &mut State| {
            st.log.push("first");
            if let Some(victim) = st.victim.take() {
                ctx.free(victim).unwrap(); // started after us: must not run now
                let late = st.late.unwrap();
                ctx.add(late, None).unwrap(); // runs from the next prepare turn on
                let check = st.check.unwrap();
                ctx.add(check, None).unwrap(); // runs after this iteration's wait
            }
        })
        .unwrap();
    let victim = base
        .new_prepare(|_, st: &mut State| st.log.push("victim"))
        .unwrap();
    let late = base
        .new_prepare(|ctx, st: &mut State| {
            st.log.push("late");
            let me = ctx.id();
            ctx.free(me).unwrap(); // frees itself
        })
        .unwrap();
    let check = base
        .new_check(|ctx, st: &mut State| {
            st.log.push("check");
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    base.add(first, None).unwrap();
    base.add(victim, None).unwrap();
    let mut st = State {
        victim: Some(victim),
        late: Some(late),
        check: Some(check),
        ..Default::default()
    };
    // Two iterations kept alive by a zero-delay persistent timer that stops after two runs.
    let mut runs = 0;
    let keep = base
        .new_timer(TimerKind::Periodic, move |ctx, _: &mut State| {
            runs += 1;
            if runs == 2 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.add(keep, Some(Duration::ZERO)).unwrap();
    base.run(&mut st).unwrap();
    assert!(
        st.log.starts_with(&["first", "check", "first", "late"]),
        "{:?}",
        st.log
    );
    assert!(!st.log.contains(&"victim"));
    assert_eq!(st.log.iter().filter(|&&n| n == "late").count(), 1);
    assert_eq!(st.log.iter().filter(|&&n| n == "check").count(), 1);
    assert!(
        base.free(victim).is_err() && base.free(late).is_err(),
        "both were freed"
    );
    base.free(first).unwrap();
    base.free(check).unwrap();
}

/// Prepare and check watchers do not keep the loop alive; a started idle watcher does, and
/// stopping it lets the loop return. `loop_break` from a prepare or check watcher stops the
/// loop before the wait, or before the callbacks.
pub fn hooks_liveness_and_loop_break(h: &Harness) {
    let mut base = h.base::<u32>();
    let prepare = base.new_prepare(|_, n: &mut u32| *n += 1).unwrap();
    let check = base.new_check(|_, n: &mut u32| *n += 1).unwrap();
    base.add(prepare, None).unwrap();
    base.add(check, None).unwrap();
    assert_eq!(base.num_events(), 0);
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::NoEvents);
    assert_eq!(n, 0, "nothing to do: no iteration, no hook");
    base.free(prepare).unwrap();
    base.free(check).unwrap();

    let mut base = h.base::<Vec<&'static str>>();
    let breaker = base
        .new_prepare(|ctx, log: &mut Vec<&str>| {
            log.push("prepare");
            ctx.loop_break();
        })
        .unwrap();
    base.add(breaker, None).unwrap();
    base.after(Duration::ZERO, |_, log: &mut Vec<&str>| log.push("timer"))
        .unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::Broken);
    assert_eq!(log, ["prepare"]);
    base.del(breaker).unwrap();
    let breaker = base
        .new_check(|ctx, log: &mut Vec<&str>| {
            log.push("check");
            ctx.loop_break();
        })
        .unwrap();
    base.add(breaker, None).unwrap();
    log.clear();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::Broken);
    assert_eq!(
        log,
        ["check"],
        "the break comes before the active callbacks"
    );
    base.free(breaker).unwrap();
    log.clear();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, ["timer"]);

    let mut base = h.base::<u32>();
    let idle = base
        .new_idle(|ctx, n: &mut u32| {
            *n += 1;
            if *n == 3 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.add(idle, None).unwrap();
    base.add(idle, None).unwrap(); // started twice is started once
    assert_eq!(base.num_events(), 1);
    let mut n = 0;
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::NoEvents);
    assert_eq!(n, 3);
    assert_eq!(base.num_events(), 0);
}

/// A hook takes no timeout and cannot be activated by hand: clear errors, and the base and
/// the hook work afterwards.
pub fn hooks_refuse_timeouts_and_activation(h: &Harness) {
    let mut base = h.base::<u32>();
    let prepare = base.new_prepare(|_, n: &mut u32| *n += 1).unwrap();
    let idle = base
        .new_idle(|ctx, n: &mut u32| {
            *n += 1;
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    let err = base
        .add(prepare, Some(Duration::from_millis(1)))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("prepare watcher"), "{err}");
    let err = base.activate(idle, Fired::TIMEOUT, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("idle watcher"), "{err}");
    assert_eq!(base.num_events(), 0, "nothing started by the refused calls");
    base.add(idle, None).unwrap();
    base.add(prepare, None).unwrap();
    let mut n = 0;
    base.run(&mut n).unwrap();
    assert_eq!(n, 2, "the prepare ran once, the idle once");
}

/// Metrics count exactly on a scripted run: iterations, callbacks (hooks included, internal
/// events not), events waiting after the last wait, and blocked time when asked for.
pub fn metrics_count_exactly_on_a_scripted_run(h: &Harness) {
    let mut base = h.base_with::<u32>(BaseOptions {
        metrics: true,
        ..Default::default()
    });
    let m = base.metrics();
    assert_eq!(
        (m.iterations, m.callbacks, m.waiting_after_last_wait),
        (0, 0, 0)
    );
    assert_eq!(m.blocked_time, Some(Duration::ZERO));
    let ids: Vec<_> = (0..3)
        .map(|_| {
            base.new_timer(TimerKind::OneShot, |_, n: &mut u32| *n += 1)
                .unwrap()
        })
        .collect();
    for &id in &ids {
        base.activate(id, Fired::TIMEOUT, 1).unwrap();
    }
    let check = base.new_check(|_, _| {}).unwrap();
    base.add(check, None).unwrap();
    let mut n = 0;
    base.run_with(LoopFlags::NONBLOCK, &mut n).unwrap();
    let m = base.metrics();
    assert_eq!(n, 3);
    assert_eq!(m.iterations, 1);
    assert_eq!(m.callbacks, 4, "three events and the check watcher");
    assert_eq!(m.waiting_after_last_wait, 3);
    base.free(check).unwrap();
    // A handle makes an internal event; its commands run uncounted.
    let handle = base.handle().unwrap();
    handle.run_in_loop(|_, n: &mut u32| *n += 10).unwrap();
    base.run_with(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY, &mut n)
        .unwrap();
    let m2 = base.metrics();
    assert_eq!(n, 13);
    assert_eq!(m2.iterations, 2);
    assert_eq!(m2.callbacks, 4, "the internal event does not count");
    // A 30 ms timer: the loop blocks for most of it.
    base.after(Duration::from_millis(30), |_, _| {}).unwrap();
    base.run(&mut n).unwrap();
    let m3 = base.metrics();
    assert_eq!(m3.callbacks, 5);
    assert_eq!(m3.waiting_after_last_wait, 1);
    let blocked = m3.blocked_time.unwrap() - m2.blocked_time.unwrap();
    assert!(
        blocked >= Duration::from_millis(15) && blocked < GENEROUS,
        "{blocked:?} blocked for a 30 ms timer"
    );
    // Read from a callback, too.
    base.after(Duration::ZERO, |ctx, n: &mut u32| {
        *n = ctx.metrics().callbacks as u32
    })
    .unwrap();
    base.run(&mut n).unwrap();
    assert_eq!(n, 5, "callbacks before this one");
    // Without the option, no blocked time.
    let base = h.base::<()>();
    assert_eq!(base.metrics().blocked_time, None);
}

/// With precise timers, short timeouts that are not whole milliseconds are never early,
/// measured from before each `add`; the backend reports its resolution.
pub fn precise_timers_are_never_early(h: &Harness) {
    for precise in [false, true] {
        let mut base = h.base_with::<Option<Instant>>(BaseOptions {
            precise_timers: precise,
            ..Default::default()
        });
        let resolution = base.timeout_resolution();
        assert!(resolution <= Duration::from_millis(16), "{resolution:?}");
        for (i, us) in [250u64, 700, 1_300, 2_500]
            .iter()
            .cycle()
            .take(24)
            .enumerate()
        {
            let d = Duration::from_micros(*us);
            let t = base
                .new_timer(TimerKind::OneShot, |_, at: &mut Option<Instant>| {
                    *at = Some(Instant::now())
                })
                .unwrap();
            let armed = Instant::now();
            base.add(t, Some(d)).unwrap();
            let mut at = None;
            base.run(&mut at).unwrap();
            let took = at.unwrap() - armed;
            assert!(
                took >= d && took < GENEROUS,
                "precise {precise}, timer {i}: {d:?} fired after {took:?}"
            );
            base.free(t).unwrap();
        }
    }
}
