//! Timers: one-shot, persistent, replaced, ordered. Bounds are lower bounds plus generous
//! upper bounds; timing goals belong to the benchmarks.

use std::time::{Duration, Instant};

use evloop_core::{BaseOptions, Fired, Interest, LoopFlags, RunOutcome, TimerKind};

use crate::util::{socketpair, write_all, WatchRaw};
use crate::Harness;

const GENEROUS: Duration = Duration::from_secs(5);

/// A timer fires once, with TIMEOUT, no earlier than its timeout.
pub fn simple_timeout(h: &Harness) {
    let mut base = h.base::<Vec<(Fired, Instant)>>();
    let t = base
        .new_timer(TimerKind::OneShot, |ctx, log: &mut Vec<_>| {
            log.push((ctx.fired(), Instant::now()))
        })
        .unwrap();
    let start = Instant::now();
    base.add(t, Some(Duration::from_millis(50))).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log.len(), 1);
    let elapsed = log[0].1 - start;
    assert_eq!(log[0].0, Fired::TIMEOUT);
    assert!(
        elapsed >= Duration::from_millis(50) && elapsed < GENEROUS,
        "{elapsed:?}"
    );
}

/// A persistent timer re-arms from its previous deadline: consecutive deadlines are exactly
/// one interval apart (no drift) unless the loop ran more than an interval late, and it stops
/// when it deletes itself.
pub fn persistent_timeout_rearms(h: &Harness) {
    let interval = Duration::from_millis(40);
    // (deadline after re-arm, cached time of the run)
    let mut base = h.base::<Vec<(Instant, Instant)>>();
    let t = base
        .new_timer(
            TimerKind::Periodic,
            |ctx, runs: &mut Vec<(Instant, Instant)>| {
                let me = ctx.id();
                runs.push((ctx.pending(me).unwrap().deadline.unwrap(), ctx.now()));
                if runs.len() == 4 {
                    ctx.del(me).unwrap();
                }
            },
        )
        .unwrap();
    let start = Instant::now();
    base.add(t, Some(interval)).unwrap();
    let mut runs = Vec::new();
    base.run(&mut runs).unwrap();
    assert_eq!(runs.len(), 4);
    for w in runs.windows(2) {
        let late = w[1].1 > w[0].0 + interval;
        if !late {
            assert_eq!(w[1].0 - w[0].0, interval, "drift between re-arms");
        }
        assert!(w[1].0 - w[0].0 >= interval);
    }
    assert!(start.elapsed() >= interval * 4);
}

/// After a stall longer than several intervals, a persistent timer runs once for the missed
/// deadline and then one interval later, not in a burst of catch-up runs (libevent's
/// persistent_timeout_jump).
pub fn persistent_timeout_does_not_burst_after_a_stall(h: &Harness) {
    let interval = Duration::from_millis(10);
    let mut base = h.base::<Vec<(Instant, Instant)>>();
    let t = base
        .new_timer(
            TimerKind::Periodic,
            |ctx, runs: &mut Vec<(Instant, Instant)>| {
                let start = Instant::now();
                if runs.is_empty() {
                    std::thread::sleep(Duration::from_millis(60));
                }
                runs.push((start, Instant::now()));
                if runs.len() == 3 {
                    let me = ctx.id();
                    ctx.del(me).unwrap();
                }
            },
        )
        .unwrap();
    base.add(t, Some(interval)).unwrap();
    let mut runs = Vec::new();
    base.run(&mut runs).unwrap();
    assert_eq!(runs.len(), 3);
    let gap = runs[2].0 - runs[1].0;
    assert!(
        gap >= interval - Duration::from_millis(1),
        "catch-up run {gap:?} after the stall"
    );
}

/// Adding a pending timer again with a timeout replaces its deadline; adding it with `None`
/// keeps the deadline it has.
pub fn timeout_replaced_by_readd(h: &Harness) {
    let mut base = h.base::<Vec<Instant>>();
    let t = base
        .new_timer(TimerKind::OneShot, |_, log: &mut Vec<Instant>| {
            log.push(Instant::now())
        })
        .unwrap();
    let start = Instant::now();
    base.add(t, Some(Duration::from_secs(30))).unwrap();
    base.add(t, Some(Duration::from_millis(20))).unwrap();
    let deadline = base.pending(t).unwrap().deadline.unwrap();
    base.add(t, None).unwrap();
    assert_eq!(base.pending(t).unwrap().deadline, Some(deadline));
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log.len(), 1);
    let elapsed = log[0] - start;
    assert!(
        elapsed >= Duration::from_millis(20) && elapsed < GENEROUS,
        "{elapsed:?}"
    );
}

/// Timers fire in deadline order; timers with equal deadlines (added in one callback, so
/// with the same cached time) fire in the order they were added.
pub fn timers_fire_in_deadline_order(h: &Harness) {
    let mut base = h.base::<Vec<usize>>();
    let timeouts: Vec<u64> = (0..60).map(|i| (i * 7 % 6) * 3).collect();
    let arm = timeouts.clone();
    base.watch_once(
        evloop_core::fd::NO_FD,
        Interest::empty(),
        None,
        move |ctx, _| {
            for (i, &ms) in arm.iter().enumerate() {
                let t = ctx
                    .new_timer(TimerKind::OneShot, move |_, order: &mut Vec<usize>| {
                        order.push(i)
                    })
                    .unwrap();
                ctx.add(t, Some(Duration::from_millis(ms))).unwrap();
            }
        },
    )
    .unwrap();
    let mut order = Vec::new();
    base.run(&mut order).unwrap();
    let mut expected: Vec<usize> = (0..timeouts.len()).collect();
    expected.sort_by_key(|&i| timeouts[i]); // stable: equal deadlines keep add order
    assert_eq!(order, expected);
}

/// `pending` reports the watched flags, TIMEOUT and the deadline while pending, nothing after
/// a delete, and the result flags of an activation.
pub fn pending_reports_flags_and_deadline(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<()>();
    let e = base.new_owned_event(b, Interest::READ, |_, _| {}).unwrap();
    let before = Instant::now();
    base.add(e, Some(Duration::from_secs(1))).unwrap();
    let p = base.pending(e).unwrap();
    assert_eq!(p.flags, Fired::READ | Fired::TIMEOUT);
    let deadline = p.deadline.unwrap();
    assert!(deadline >= before + Duration::from_secs(1) && deadline < before + GENEROUS);
    base.del(e).unwrap();
    let p = base.pending(e).unwrap();
    assert_eq!((p.flags, p.deadline), (Fired::empty(), None));
    base.activate(e, Fired::WRITE, 1).unwrap();
    assert_eq!(base.pending(e).unwrap().flags, Fired::WRITE);
}

/// A persistent timer with a zero interval runs once per loop iteration, after the I/O
/// callbacks of that iteration, and never twice in one.
pub fn zero_interval_persistent_timer_runs_once_per_iteration(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"x"); // stays unread: b is readable every iteration
    let mut base = h.base::<Vec<char>>();
    let reader = base
        .new_owned_event(b, Interest::READ | Interest::PERSIST, |ctx, log| {
            log.push('r');
            if log.len() >= 5 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    let tick = base
        .new_timer(TimerKind::Periodic, |ctx, log: &mut Vec<char>| {
            log.push('t');
            if log.len() >= 5 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    // Each deletes itself on its third run.
    base.add(reader, None).unwrap();
    base.add(tick, Some(Duration::ZERO)).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log.iter().collect::<String>(), "rtrtrt");
}

/// Activating a pending persistent timer by hand with TIMEOUT runs it and keeps its cadence:
/// the next deadline is one interval after the one that was pending (libevent).
pub fn timeout_activated_by_hand_keeps_the_cadence(h: &Harness) {
    let interval = Duration::from_secs(10);
    let mut base = h.base::<Vec<Option<Instant>>>();
    let t = base
        .new_timer(
            TimerKind::Periodic,
            |ctx, seen: &mut Vec<Option<Instant>>| {
                let me = ctx.id();
                seen.push(ctx.pending(me).unwrap().deadline);
            },
        )
        .unwrap();
    base.add(t, Some(interval)).unwrap();
    let first = base.pending(t).unwrap().deadline.unwrap();
    base.activate(t, Fired::TIMEOUT, 1).unwrap();
    let mut seen = Vec::new();
    base.run_with(LoopFlags::ONCE, &mut seen).unwrap();
    assert_eq!(seen, [Some(first + interval)]);
    base.free(t).unwrap();
}

/// A persistent timer starved by a more urgent priority for several intervals runs once when
/// its turn comes, for one activation, and stays armed: its timeouts go on afterwards.
pub fn persistent_timeout_starved_by_a_better_priority_runs_once_and_goes_on(h: &Harness) {
    let interval = Duration::from_millis(5);
    let (a, b) = socketpair();
    write_all(&a, b"x");
    let mut base = h.base_with::<Vec<(u32, bool)>>(BaseOptions {
        priorities: 2,
        ..Default::default()
    });
    let start = Instant::now();
    // Readable every iteration, priority 0: runs for 40 ms while the timer waits.
    let hog = base
        .new_owned_event(b, Interest::READ | Interest::PERSIST, move |ctx, _| {
            if start.elapsed() >= Duration::from_millis(40) {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.set_priority(hog, 0).unwrap();
    let t = base
        .new_timer(TimerKind::Periodic, |ctx, runs: &mut Vec<(u32, bool)>| {
            let me = ctx.id();
            let armed = ctx.pending(me).unwrap().flags.contains(Fired::TIMEOUT);
            runs.push((ctx.ncalls(), armed));
            if runs.len() == 3 {
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.set_priority(t, 1).unwrap();
    base.add(hog, None).unwrap();
    base.add(t, Some(interval)).unwrap();
    let mut runs = Vec::new();
    base.run(&mut runs).unwrap();
    assert_eq!(runs, [(1, true), (1, true), (1, true)]);
    assert!(start.elapsed() >= Duration::from_millis(40));
}

/// Common timeouts: timers of one declared length share a FIFO queue. With one clock reading
/// for the whole burst (`update_cache_time`) they all have the same deadline, so they fire in
/// the order they were armed — a re-armed one behind the rest — never before their timeout
/// counted from that reading; a persistent timer of the same length joins the queue and
/// keeps its cadence.
pub fn common_timeouts_fire_in_arming_order_never_early(h: &Harness) {
    let len = Duration::from_millis(30);
    let mut base = h.base::<Vec<(u32, Instant)>>();
    base.declare_common_timeout(len).unwrap();
    base.update_cache_time();
    let armed = base.now();
    let mut ids = Vec::new();
    for i in 0..6u32 {
        let t = base
            .new_timer(
                TimerKind::OneShot,
                move |_, log: &mut Vec<(u32, Instant)>| log.push((i, Instant::now())),
            )
            .unwrap();
        base.add(t, Some(len)).unwrap();
        ids.push(t);
    }
    base.add(ids[2], Some(len)).unwrap(); // re-armed: now last of the six
    let tick = base
        .new_timer(TimerKind::Periodic, |ctx, log: &mut Vec<(u32, Instant)>| {
            log.push((100, Instant::now()));
            if log.iter().filter(|(i, _)| *i == 100).count() == 3 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.add(tick, Some(len)).unwrap(); // same length, armed after the six
    base.clear_cache_time();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    let order: Vec<u32> = log.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [0, 1, 3, 4, 5, 2, 100, 100, 100]);
    for (k, (i, at)) in log.iter().enumerate() {
        let due = if *i == 100 { len * (k as u32 - 5) } else { len };
        assert!(
            *at >= armed + due,
            "{i} ran {:?} early",
            (armed + due) - *at
        );
        assert!(*at < armed + due + GENEROUS, "{i} ran very late");
    }
}

/// A persistent timer that logs its name and the time when it fires, then deletes itself.
fn named_timer(
    base: &mut evloop_core::Base<Vec<(&'static str, Instant)>>,
    name: &'static str,
) -> evloop_core::EventId {
    base.new_timer(TimerKind::Periodic, move |ctx, log: &mut Vec<_>| {
        log.push((name, Instant::now()));
        let me = ctx.id();
        ctx.del(me).unwrap();
    })
    .unwrap()
}

/// Lazy queue heads: deleting or re-arming the first timer of a queue leaves the queue's
/// place in time as it was, so the loop may wake at the old deadline; it must then go back to
/// waiting, running nothing early — the next timer runs no earlier than its own deadline, and
/// the re-armed one after it.
pub fn a_stale_queue_head_runs_nothing_early(h: &Harness) {
    let len = Duration::from_millis(40);
    let mut base = h.base::<Vec<(&'static str, Instant)>>();
    let first = named_timer(&mut base, "first");
    let second = named_timer(&mut base, "second");
    let gone = named_timer(&mut base, "gone");
    let t0 = Instant::now();
    base.add(gone, Some(len)).unwrap(); // the queue's head, deleted below
    base.add(first, Some(len)).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let t1 = Instant::now();
    base.add(second, Some(len)).unwrap();
    base.del(gone).unwrap();
    // Read before the re-arm: the add reads the clock after this, so its deadline is later.
    let t2 = Instant::now();
    base.add(first, Some(len)).unwrap(); // re-armed: after `second` now
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    let names: Vec<&str> = log.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["second", "first"]);
    assert!(log[0].1 >= t1 + len, "second ran early");
    assert!(
        log[1].1 >= t2 + len,
        "first ran before its re-armed deadline"
    );
    assert!(log[1].1 < t0 + GENEROUS);
}

/// Lazy re-arm: a timeout pushed back over and over — a read timeout re-armed by each read —
/// keeps its place in its length's queue and only records the new deadline. When the old
/// place comes up it must run nothing, and the timeout must fire once, no earlier than its
/// length after the last push.
pub fn a_timeout_pushed_back_many_times_fires_once_after_the_last_push(h: &Harness) {
    #[derive(Default)]
    struct Log {
        pushes: Vec<Instant>,
        fired: Vec<Instant>,
    }
    let len = Duration::from_millis(60);
    let mut base = h.base::<Log>();
    let idle = base
        .new_timer(TimerKind::Periodic, |ctx, log: &mut Log| {
            log.fired.push(Instant::now());
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    // Pushes every 20 ms, five of them: each well before the timeout would fire. A push
    // counts from the loop's cached time, as every add in a callback does: that is the
    // reading to hold the deadline to (`Instant::now()` here is already later).
    let pusher = base
        .new_timer(TimerKind::Periodic, move |ctx, log: &mut Log| {
            log.pushes.push(ctx.now());
            ctx.add(idle, Some(len)).unwrap();
            if log.pushes.len() == 5 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    let t0 = Instant::now();
    base.add(idle, Some(len)).unwrap();
    base.add(pusher, Some(Duration::from_millis(20))).unwrap();
    let mut log = Log::default();
    base.run(&mut log).unwrap();
    assert_eq!(log.pushes.len(), 5);
    assert_eq!(log.fired.len(), 1, "the timeout fired once");
    let last = *log.pushes.last().unwrap();
    assert!(
        log.fired[0] >= last + len,
        "fired {:?} before its pushed-back deadline",
        (last + len) - log.fired[0]
    );
    assert!(log.fired[0] < t0 + GENEROUS, "fired very late");
}

/// Lazy re-arm keeps the order of equal deadlines: timers re-armed at one clock reading
/// fire in the order of their (re-)arming, whether a re-armed timer moves to its queue's
/// tail or to the heap when its old place comes up. `a` and `b` are re-armed around the
/// arming of a new `d`, all with one deadline: `a` (re-armed before `d` was queued) must go
/// to the heap, `b` after `d` to the tail; the order is c, a, d, b.
pub fn lazily_rearmed_timers_keep_the_order_of_equal_deadlines(h: &Harness) {
    let len = Duration::from_millis(40);
    let mut base = h.base::<Vec<(&'static str, Instant)>>();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|name| named_timer(&mut base, name));
    base.update_cache_time();
    let t0 = base.now();
    for t in [a, b, c] {
        base.add(t, Some(len)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(10));
    base.update_cache_time();
    let t1 = base.now();
    base.add(a, Some(len)).unwrap(); // re-armed later: keeps its place, due at t1 + len
    base.add(d, Some(len)).unwrap(); // queued at t1 + len, behind c
    base.add(b, Some(len)).unwrap(); // re-armed later, after d
    base.clear_cache_time();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    let names: Vec<&str> = log.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["c", "a", "d", "b"]);
    assert!(log[0].1 >= t0 + len, "c ran early");
    for (name, at) in &log[1..] {
        assert!(*at >= t1 + len, "{name} ran before its re-armed deadline");
        assert!(*at < t0 + GENEROUS, "{name} ran very late");
    }
}

/// Timers near and far: due in the loop's current 16.8 ms stretch (kept in the heap), in
/// the ~1 s after it (appended to the ring's buckets, each sorted when it comes up), and past
/// that (the heap again), some with equal deadlines, some deleted, some re-armed across
/// those ranges. They fire in deadline order, equal deadlines in the order of their last
/// arming, none early.
pub fn timers_near_and_far_fire_in_deadline_order_never_early(h: &Harness) {
    type Log = Vec<(usize, Instant)>;
    let n = 90;
    // Lengths in ms: repeats make equal deadlines (all are armed at one clock reading).
    let mut lengths: Vec<u64> = (0..n).map(|i| (i as u64 * 53) % 420).collect();
    lengths[10] = 1150;
    lengths[11] = 1150;
    let mut base = h.base::<Log>();
    let ids: Vec<_> = (0..n)
        .map(|i| {
            base.new_timer(TimerKind::OneShot, move |_, log: &mut Log| {
                log.push((i, Instant::now()))
            })
            .unwrap()
        })
        .collect();
    let deleted = |i: usize| i % 7 == 3;
    let rearmed = |i: usize| i % 11 == 5;
    let again = |len: u64| (len + 200) % 1200;
    let (arm_ids, arm_lengths) = (ids.clone(), lengths.clone());
    base.watch_once(
        evloop_core::fd::NO_FD,
        Interest::empty(),
        None,
        move |ctx, _| {
            // One callback: one clock reading for every arming.
            for (i, &id) in arm_ids.iter().enumerate() {
                ctx.add(id, Some(Duration::from_millis(arm_lengths[i])))
                    .unwrap();
            }
            for (i, &id) in arm_ids.iter().enumerate() {
                if deleted(i) {
                    ctx.del(id).unwrap();
                } else if rearmed(i) {
                    ctx.add(id, Some(Duration::from_millis(again(arm_lengths[i]))))
                        .unwrap();
                }
            }
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    // (length, arming order): re-armed timers were armed last.
    let mut expected: Vec<(u64, usize, usize)> = (0..n)
        .filter(|&i| !deleted(i))
        .map(|i| match rearmed(i) {
            true => (again(lengths[i]), n + i, i),
            false => (lengths[i], i, i),
        })
        .collect();
    expected.sort();
    let order: Vec<usize> = log.iter().map(|(i, _)| *i).collect();
    let want: Vec<usize> = expected.iter().map(|e| e.2).collect();
    assert_eq!(order, want);
    for &(len, _, i) in &expected {
        let at = log.iter().find(|(j, _)| *j == i).unwrap().1;
        assert!(
            at >= t0 + Duration::from_millis(len),
            "timer {i} ({len} ms) ran early"
        );
        assert!(at < t0 + GENEROUS, "timer {i} ran very late");
    }
}
