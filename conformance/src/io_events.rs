//! Readiness of fds: read, write, several events per fd, CLOSED, ET, closed and reused fds.

use std::io;
use std::time::Duration;

use evloop_core::{Features, Fired, Interest, RunOutcome, TimerKind};
use rustix::net::Shutdown;

#[cfg(unix)]
use crate::util::renumber;
use crate::util::{
    borrow, log_as, logging_event, owned_logging_event, raw, read_available, run_until, socketpair,
    turn, write_all, Log, WatchRaw,
};
use crate::Harness;

const R: Interest = Interest::READ;
const W: Interest = Interest::WRITE;
const P: Interest = Interest::PERSIST;

/// Data written to one end makes a READ event on the other end run once, with READ.
pub fn simple_read(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"hello");
    let mut base = h.base::<(Log, Vec<u8>)>();
    let e = base
        .new_owned_event(b, R, |ctx, (log, got): &mut (Log, Vec<u8>)| {
            log.push(("read", ctx.fired()));
            got.extend(read_available(ctx.borrow_fd().unwrap()));
        })
        .unwrap();
    base.add(e, None).unwrap();
    let mut data = (Log::new(), Vec::new());
    assert_eq!(base.run(&mut data).unwrap(), RunOutcome::NoEvents);
    assert_eq!(data.0, [("read", Fired::READ)]);
    assert_eq!(data.1, b"hello");
}

/// A WRITE event on a socket with room runs once; what it writes arrives.
pub fn simple_write(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let e = base
        .new_owned_event(a, W, |ctx, log: &mut Log| {
            log.push(("write", ctx.fired()));
            write_all(ctx.borrow_fd().unwrap(), b"x");
        })
        .unwrap();
    base.add(e, None).unwrap();
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("write", Fired::WRITE)]);
    assert_eq!(read_available(&b), b"x");
}

/// Two readers and a writer on one fd all run, in the order they were added (the fd owned by
/// the first, shared by the others through `new_event_on`).
pub fn two_readers_and_a_writer_on_one_fd(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"x");
    let mut base = h.base::<Log>();
    let owner = base.new_owned_event(b, R, log_as("r1")).unwrap();
    base.add(owner, None).unwrap();
    for (name, flags) in [("r2", R), ("w", W)] {
        let e = base.new_event_on(owner, flags, log_as(name)).unwrap();
        base.add(e, None).unwrap();
    }
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(
        log,
        [
            ("r1", Fired::READ),
            ("r2", Fired::READ),
            ("w", Fired::WRITE)
        ]
    );
}

/// A persistent READ event runs once per arrival and stays pending until deleted.
pub fn persistent_read(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<(usize, Vec<u8>)>();
    let e = base
        .new_owned_event(b, R | P, |ctx, (n, got): &mut (usize, Vec<u8>)| {
            *n += 1;
            got.extend(read_available(ctx.borrow_fd().unwrap()));
        })
        .unwrap();
    base.add(e, None).unwrap();
    let mut data = (0, Vec::new());
    for (i, byte) in [b"a", b"b", b"c"].into_iter().enumerate() {
        write_all(&a, byte);
        run_until(&mut base, &mut data, "persistent read", |d| d.0 == i + 1);
    }
    assert_eq!(data.1, b"abc");
    assert_eq!(base.pending(e).unwrap().flags, Fired::READ);
    base.del(e).unwrap();
    assert_eq!(base.pending(e).unwrap().flags, Fired::empty());
    assert_eq!(base.run(&mut data).unwrap(), RunOutcome::NoEvents);
}

/// One event watching READ|WRITE reports both in one run when both hold.
pub fn combined_read_write(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"x");
    let mut base = h.base::<Log>();
    let e = owned_logging_event(&mut base, b, R | W, "rw");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("rw", Fired::READ | Fired::WRITE)]);
}

/// Deleting one of two events on an fd leaves the other working.
pub fn delete_one_of_two_events_on_an_fd(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let e1 = owned_logging_event(&mut base, b, R | P, "e1");
    let e2 = base
        .new_event_on(e1, R | P, |ctx, log: &mut Log| {
            log.push(("e2", ctx.fired()));
            read_available(ctx.borrow_fd().unwrap());
        })
        .unwrap();
    base.add(e1, None).unwrap();
    base.add(e2, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    base.del(e1).unwrap();
    write_all(&a, b"x");
    run_until(&mut base, &mut log, "e2 runs", |l| !l.is_empty());
    assert_eq!(log, [("e2", Fired::READ)]);
    base.del(e2).unwrap();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
}

/// A CLOSED event runs when the peer closes (reported by the kernel or emulated).
pub fn closed_on_peer_shutdown(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let e = owned_logging_event(&mut base, b, Interest::CLOSED, "closed");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    assert!(log.is_empty(), "CLOSED before the peer closed: {log:?}");
    rustix::net::shutdown(&a, Shutdown::Write).unwrap();
    run_until(&mut base, &mut log, "CLOSED after shutdown", |l| {
        !l.is_empty()
    });
    assert_eq!(log, [("closed", Fired::CLOSED)]);
    drop(a);
}

/// An edge-triggered event runs once per edge, however often the loop turns in between.
pub fn et_fires_once_per_edge(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<usize>();
    let e = base
        .new_owned_event(b, R | P | Interest::ET, |_, n: &mut usize| *n += 1)
        .unwrap();
    base.add(e, None).unwrap();
    let mut n = 0;
    write_all(&a, b"1");
    run_until(&mut base, &mut n, "first edge", |&n| n == 1);
    for _ in 0..5 {
        turn(&mut base, &mut n);
    }
    assert_eq!(n, 1, "level-triggered behaviour from an ET event");
    write_all(&a, b"2");
    run_until(&mut base, &mut n, "second edge", |&n| n == 2);
    base.del(e).unwrap();
}

/// An edge-triggered event's callback is told so: `fired()` holds ET with the readiness (as
/// libevent's epoll reports `EV_ET`); a level-triggered one's never does.
pub fn et_is_reported_in_fired(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let edge = owned_logging_event(&mut base, b, R | P | Interest::ET, "edge");
    base.add(edge, None).unwrap();
    let (c, d) = socketpair();
    let level = owned_logging_event(&mut base, d, R, "level");
    base.add(level, None).unwrap();
    write_all(&a, b"1");
    write_all(&c, b"1");
    let mut log = Log::new();
    run_until(&mut base, &mut log, "both events", |l| l.len() >= 2);
    log.sort_by_key(|(name, _)| *name);
    assert_eq!(
        log,
        [("edge", Fired::READ | Fired::ET), ("level", Fired::READ)]
    );
    base.del(edge).unwrap();
}

/// An fd switched from edge- to level-triggered within one iteration (its ET event deleted,
/// a level-triggered one added on the fd before the next wait): the add sees the fd without
/// the deleted event (no ET-mix refusal), and the backend is told the net change, so the new
/// event runs at every turn while data waits unread, and the deleted one never runs.
pub fn edge_to_level_in_one_iteration(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let edge = owned_logging_event(&mut base, b, R | P | Interest::ET, "edge");
    base.add(edge, None).unwrap();
    turn(&mut base, &mut Log::new()); // the backend holds the fd as edge-triggered
    base.del(edge).unwrap();
    let level = base.new_event_on(edge, R | P, log_as("level")).unwrap();
    base.add(level, None).unwrap();
    write_all(&a, b"x"); // left unread: readable at every turn
    let mut log = Log::new();
    run_until(&mut base, &mut log, "the level event", |l| !l.is_empty());
    for _ in 0..3 {
        turn(&mut base, &mut log);
    }
    assert!(
        log.len() >= 4 && log.iter().all(|entry| *entry == ("level", Fired::READ)),
        "{log:?}"
    );
    base.free(level).unwrap();
    base.free(edge).unwrap();
}

/// Without the ET feature, adding an ET event is refused with an error naming the backend
/// and the fd; the base keeps working. With the feature, the add succeeds.
pub fn et_refused_without_the_feature(h: &Harness) {
    let (a, b) = socketpair();
    let b_fd = raw(&b);
    let mut base = h.base::<usize>();
    let e = base
        .new_owned_event(b, R | Interest::ET, |_, n: &mut usize| *n += 1)
        .unwrap();
    let result = base.add(e, None);
    if h.features().contains(Features::EDGE_TRIGGERED) {
        result.unwrap();
        base.del(e).unwrap();
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(
            msg.contains(h.name()) && msg.contains(&format!("fd {b_fd}")),
            "{msg}"
        );
        assert_eq!(base.pending(e).unwrap().flags, Fired::empty());
    }
    let ok = base
        .new_event_on(e, R, |_, n: &mut usize| *n += 10)
        .unwrap();
    base.add(ok, None).unwrap();
    write_all(&a, b"x");
    let mut n = 0;
    base.run(&mut n).unwrap();
    assert_eq!(n, 10);
}

/// Close the fd under a registered persistent event and keep running: the event is reported
/// at most once (READ, so its own read sees the error: poll and select notice the close at
/// the next wait; epoll and kqueue cannot see a close at all) and is then deleted — never a
/// spin — and the loop and new events on other fds work as before.
pub fn fd_closed_while_registered(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Log>();
    let e = logging_event(&mut base, raw(&b), R | P, "closed fd");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    drop(b);
    let t = base.new_timer(TimerKind::OneShot, |ctx, log: &mut Log| {
        log.push(("timer", ctx.fired()));
        ctx.loop_break();
    });
    base.add(t.unwrap(), Some(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::Broken);
    assert!(log.contains(&("timer", Fired::TIMEOUT)), "{log:?}");
    let reports = log.iter().filter(|(name, _)| *name == "closed fd").count();
    assert!(
        reports <= 1,
        "the closed fd was reported {reports} times: {log:?}"
    );
    for (name, flags) in &log {
        assert!(
            *name == "timer" || *flags == Fired::READ,
            "unexpected report {log:?}"
        );
    }
    if reports == 1 {
        assert_eq!(base.pending(e).unwrap().flags, Fired::empty());
    }
    base.free(e).unwrap();
    drop(a);
    let (c, d) = socketpair();
    write_all(&c, b"x");
    let ok = logging_event(&mut base, raw(&d), R, "new");
    base.add(ok, None).unwrap();
    log.clear();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("new", Fired::READ)]);
}

/// Close the fd under a persistent event that is never deleted, let the loop run, reuse the
/// number for a new socket and watch it with a new event: the new event fires, and the old
/// one is reported exactly once and deleted, on every backend — poll and select see the close
/// at their next wait, epoll and kqueue when the new event's registration finds the old one
/// gone.
#[cfg(unix)]
pub fn new_event_on_a_reused_number_fires_despite_a_stale_registration(h: &Harness) {
    let (a, b) = socketpair();
    let number = raw(&b);
    let mut base = h.base::<Log>();
    let old = logging_event(&mut base, number, R | P, "old");
    base.add(old, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    drop(a);
    let (peer, reused) = renumber(b); // closes the old socket under `old`
    for _ in 0..3 {
        turn(&mut base, &mut log);
    }
    let fd = raw(&reused);
    assert_eq!(fd, number);
    let new = base
        .watch(fd, R | P, move |ctx, log: &mut Log| {
            log.push(("new", ctx.fired()));
            read_available(borrow(fd));
        })
        .unwrap();
    base.add(new, None).unwrap();
    write_all(&peer, b"x");
    run_until(&mut base, &mut log, "event on the reused fd", |l| {
        l.contains(&("new", Fired::READ))
    });
    for _ in 0..3 {
        turn(&mut base, &mut log);
    }
    let olds: Vec<_> = log.iter().filter(|(name, _)| *name == "old").collect();
    assert_eq!(olds, [&("old", Fired::READ)], "the stale event: {log:?}");
    assert_eq!(base.pending(old).unwrap().flags, Fired::empty());
    assert_eq!(base.pending(new).unwrap().flags, Fired::READ);
    base.free(new).unwrap();
    base.free(old).unwrap();
}

/// Delete an event, close its fd, get the same fd number from a new socket and watch it with
/// a new event in the same iteration: the new event must work (the change list must not
/// mistake the new fd for the old registration).
#[cfg(unix)]
pub fn fd_number_reused_after_close(h: &Harness) {
    let (a, b) = socketpair();
    let old = raw(&b);
    let mut base = h.base::<Log>();
    let e = logging_event(&mut base, old, R | P, "old");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    base.del(e).unwrap();
    drop(a);
    let (peer, reused) = renumber(b);
    let fd = raw(&reused);
    let e2 = base
        .watch(fd, R | P, move |ctx, log: &mut Log| {
            log.push(("new", ctx.fired()));
            read_available(borrow(fd));
        })
        .unwrap();
    base.add(e2, None).unwrap();
    write_all(&peer, b"x");
    run_until(&mut base, &mut log, "event on the reused fd", |l| {
        !l.is_empty()
    });
    assert_eq!(log, [("new", Fired::READ)]);
    base.free(e2).unwrap();
}

#[cfg(unix)]
/// Free an fd's last event, then close the fd while a duplicate of it lives on: the backend
/// must have forgotten the fd before the close. (epoll keeps a closed fd's registration while
/// its file is open elsewhere, and would report that file's readiness under the number of
/// the next fd to take it.)
#[cfg(unix)]
pub fn freed_fd_with_a_live_duplicate_leaves_no_registration(h: &Harness) {
    let (a, b) = socketpair();
    let number = raw(&b);
    let duplicate = rustix::io::dup(&b).unwrap();
    let mut base = h.base::<Log>();
    let e = logging_event(&mut base, number, R | P, "old");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    turn(&mut base, &mut log);
    base.free(e).unwrap();
    // `b`'s socket lives on through `duplicate`.
    let (_peer, _reused) = renumber(b);
    let e2 = logging_event(&mut base, number, R | P, "new");
    base.add(e2, None).unwrap();
    write_all(&a, b"x"); // the old socket is readable now; the new one is not
    for _ in 0..5 {
        turn(&mut base, &mut log);
    }
    assert_eq!(
        log,
        [],
        "the old socket's readiness was reported for the new fd"
    );
    base.free(e2).unwrap();
    drop(duplicate);
}

/// Deleting and re-adding events before the next wait costs no interest change at all, and
/// the events still work afterwards.
pub fn delete_then_readd_costs_no_change(h: &Harness) {
    let pairs: Vec<_> = (0..50).map(|_| socketpair()).collect();
    let (mut base, changes) = h.counting_base::<usize>();
    let events: Vec<_> = pairs
        .iter()
        .map(|(_, b)| {
            let fd = raw(b);
            let e = base
                .watch(fd, R | P, move |_, n: &mut usize| {
                    *n += 1;
                    read_available(borrow(fd));
                })
                .unwrap();
            base.add(e, None).unwrap();
            e
        })
        .collect();
    let mut n = 0;
    turn(&mut base, &mut n);
    let before = changes.get();
    for round in 0..3 {
        for &e in &events {
            base.del(e).unwrap();
            base.add(e, None).unwrap();
        }
        turn(&mut base, &mut n);
        if !h.backend().immediate_changes() {
            assert_eq!(
                changes.get(),
                before,
                "round {round}: delete+add reached the backend"
            );
        }
    }
    write_all(&pairs[17].0, b"x");
    run_until(&mut base, &mut n, "event after re-adds", |&n| n == 1);
}

/// A persistent I/O event's timeout restarts from now after an I/O activation, and fires
/// with TIMEOUT when nothing arrives.
pub fn persistent_io_timeout_restarts_on_activity(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"x");
    let interval = Duration::from_millis(100);
    let mut base = h.base::<Log>();
    let fd = raw(&b);
    let e = base
        .watch(fd, R | P, move |ctx, log: &mut Log| {
            log.push(("io", ctx.fired()));
            read_available(borrow(fd));
            let me = ctx.id();
            let deadline = ctx.pending(me).unwrap().deadline.expect("timer re-armed");
            if ctx.fired().contains(Fired::TIMEOUT) {
                // Re-armed from the old deadline, which is in the future again.
                assert!(deadline > ctx.now());
                ctx.del(me).unwrap();
            } else {
                assert_eq!(
                    deadline,
                    ctx.now() + interval,
                    "re-armed from now after I/O"
                );
            }
        })
        .unwrap();
    base.add(e, Some(interval)).unwrap();
    let started = std::time::Instant::now();
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("io", Fired::READ), ("io", Fired::TIMEOUT)]);
    assert!(started.elapsed() >= interval);
}

/// With early-close detection, CLOSED is reported while unread data is still queued, and
/// the data is still there to read.
pub fn closed_reported_before_data_is_read(h: &Harness) {
    let (a, b) = socketpair();
    write_all(&a, b"unread");
    rustix::net::shutdown(&a, Shutdown::Write).unwrap();
    let mut base = h.base::<Log>();
    let e = owned_logging_event(&mut base, b, Interest::CLOSED, "closed");
    base.add(e, None).unwrap();
    let mut log = Log::new();
    run_until(&mut base, &mut log, "early CLOSED", |l| !l.is_empty());
    assert_eq!(log, [("closed", Fired::CLOSED)]);
    let b = base.free_and_take_fd(e).unwrap();
    assert_eq!(read_available(&b), b"unread");
}
