//! Event lifecycle: one-shot events, deleting, re-adding and freeing from callbacks, stale
//! ids, and a panicking callback.

use evloop_core::fd::{RawFd, NO_FD};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::{Fired, Interest, LoopFlags, RunOutcome, TimerKind};

use crate::util::{raw, read_available, read_available_or_eof, socketpair, write_all, WatchRaw};
use crate::Harness;

/// `once` with a timeout runs its callback once, with TIMEOUT, after the timeout; then the
/// loop has nothing left.
pub fn once_with_timeout(h: &Harness) {
    let mut base = h.base::<Vec<(Fired, Instant)>>();
    let start = Instant::now();
    base.watch_once(
        NO_FD,
        Interest::empty(),
        Some(Duration::from_millis(20)),
        |ctx, log: &mut Vec<_>| log.push((ctx.fired(), Instant::now())),
    )
    .unwrap();
    assert_eq!(base.num_events(), 1);
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, Fired::TIMEOUT);
    assert!(log[0].1 - start >= Duration::from_millis(20));
    assert_eq!(base.num_events(), 0);
}

/// `once` on an fd runs with READ when data arrives, or with TIMEOUT when its timeout comes
/// first.
pub fn once_with_fd(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Vec<Fired>>();
    base.watch_once(
        raw(&b),
        Interest::READ,
        None,
        |ctx, log: &mut Vec<Fired>| log.push(ctx.fired()),
    )
    .unwrap();
    base.watch_once(
        raw(&a),
        Interest::READ,
        Some(Duration::from_millis(10)),
        |ctx, log: &mut Vec<Fired>| log.push(ctx.fired()),
    )
    .unwrap();
    write_all(&a, b"x");
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [Fired::READ, Fired::TIMEOUT]);
}

/// `once` refuses PERSIST and a negative fd with READ, with `InvalidInput`, and the base is
/// unchanged. (SIGNAL no longer compiles there: `Interest` has none.)
pub fn once_rejections(h: &Harness) {
    let mut base = h.base::<()>();
    for (fd, flags) in [
        (NO_FD, Interest::PERSIST),
        (0, Interest::READ | Interest::PERSIST),
        (NO_FD, Interest::READ),
    ] {
        let err = base
            .watch_once(fd, flags, Some(Duration::from_millis(1)), |_, _| {})
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{flags:?}: {err}");
    }
    assert_eq!(base.num_events(), 0);
    assert_eq!(base.run(&mut ()).unwrap(), RunOutcome::NoEvents);
}

/// Callbacks of never-fired one-shot events and of ordinary events are dropped with the base.
pub fn once_storage_freed_with_the_base(h: &Harness) {
    let guard = Rc::new(());
    let mut base = h.base::<()>();
    let g = guard.clone();
    base.watch_once(
        NO_FD,
        Interest::empty(),
        Some(Duration::from_secs(3600)),
        move |_, _| drop(g),
    )
    .unwrap();
    let g = guard.clone();
    let e = base.new_timer(TimerKind::OneShot, move |_, _| {
        let _ = &g;
    });
    base.add(e.unwrap(), Some(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(Rc::strong_count(&guard), 3);
    drop(base);
    assert_eq!(Rc::strong_count(&guard), 1);
}

/// A callback deletes its own persistent event and another active event: neither runs again.
pub fn delete_self_and_another_from_a_callback(h: &Harness) {
    let mut base = h.base::<Vec<&'static str>>();
    let b = base
        .new_timer(TimerKind::Periodic, |_, log: &mut Vec<&str>| log.push("B"))
        .unwrap();
    let a = base
        .new_timer(TimerKind::Periodic, move |ctx, log: &mut Vec<&str>| {
            log.push("A");
            let me = ctx.id();
            ctx.del(me).unwrap();
            ctx.del(b).unwrap();
        })
        .unwrap();
    base.add(a, Some(Duration::from_millis(1))).unwrap();
    base.add(b, Some(Duration::from_secs(60))).unwrap();
    base.activate(a, Fired::TIMEOUT, 1).unwrap();
    base.activate(b, Fired::TIMEOUT, 1).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, ["A"]);
}

/// A non-persistent timer that adds itself again from its callback keeps running.
pub fn readd_inside_the_callback(h: &Harness) {
    let mut base = h.base::<usize>();
    let t = base
        .new_timer(TimerKind::OneShot, |ctx, n: &mut usize| {
            *n += 1;
            if *n < 3 {
                let me = ctx.id();
                ctx.add(me, Some(Duration::from_millis(1))).unwrap();
            }
        })
        .unwrap();
    base.add(t, Some(Duration::from_millis(1))).unwrap();
    let mut n = 0;
    base.run(&mut n).unwrap();
    assert_eq!(n, 3);
}

/// A callback frees its own event and another active one: the other never runs, both
/// closures are dropped (the running one when it returns), and both ids are refused.
pub fn free_inside_the_callback(h: &Harness) {
    let guard = Rc::new(());
    let mut base = h.base::<Vec<&'static str>>();
    let g = guard.clone();
    let b = base
        .new_timer(TimerKind::OneShot, move |_, log: &mut Vec<&str>| {
            let _ = &g;
            log.push("B")
        })
        .unwrap();
    let g = guard.clone();
    let a = base
        .new_timer(TimerKind::Periodic, move |ctx, log: &mut Vec<&str>| {
            let _ = &g;
            log.push("A");
            let me = ctx.id();
            ctx.free(b).unwrap();
            ctx.free(me).unwrap();
            assert!(ctx.pending(me).is_err());
        })
        .unwrap();
    base.add(a, Some(Duration::from_millis(1))).unwrap();
    base.activate(a, Fired::TIMEOUT, 1).unwrap();
    base.activate(b, Fired::TIMEOUT, 1).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, ["A"]);
    assert_eq!(Rc::strong_count(&guard), 1);
    for id in [a, b] {
        assert_eq!(
            base.add(id, None).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}

/// A callback's `Context` names what its event watches: the fd of an I/O event, the number
/// of a signal event (activated by hand here: no handler is installed), neither for a timer
/// or a user event, and nothing once the callback freed its own event.
pub fn context_names_what_the_event_watches(h: &Harness) {
    type Seen = Vec<(&'static str, Option<RawFd>, Option<i32>)>;
    let (a, b) = socketpair();
    let mut base = h.base::<Seen>();
    let record = |name: &'static str| {
        move |ctx: &mut evloop_core::Context<'_, Seen>, seen: &mut Seen| {
            seen.push((name, ctx.fd(), ctx.signal()));
            if name == "freed" {
                let me = ctx.id();
                ctx.free(me).unwrap();
                seen.push(("after free", ctx.fd(), ctx.signal()));
            }
        }
    };
    let (fa, fb) = (raw(&a), raw(&b));
    let io = base
        .new_owned_event(b, Interest::READ, record("io"))
        .unwrap();
    let signal = base.new_signal(2, record("signal")).unwrap();
    let timer = base.new_timer(TimerKind::OneShot, record("timer")).unwrap();
    let user = base.new_user_event(record("user")).unwrap();
    let freed = base
        .new_owned_event(a, Interest::READ, record("freed"))
        .unwrap();
    for (id, what) in [
        (io, Fired::READ),
        (signal, Fired::SIGNAL),
        (timer, Fired::TIMEOUT),
        (user, Fired::empty()),
        (freed, Fired::READ),
    ] {
        base.activate(id, what, 1).unwrap();
    }
    let mut seen = Vec::new();
    base.run_with(LoopFlags::NONBLOCK, &mut seen).unwrap();
    assert_eq!(
        seen,
        [
            ("io", Some(fb), None),
            ("signal", None, Some(2)),
            ("timer", None, None),
            ("user", None, None),
            ("freed", Some(fa), None),
            ("after free", None, None),
        ]
    );
}

/// Events made with `new_event_on` share their owner's fd: both run when it is ready, each
/// with its own callback; freeing the owner leaves the fd open for the other (it still
/// watches and does I/O), and the fd closes when the last of them is freed (the peer reads
/// end-of-file). `free_and_take_fd` refuses a shared fd and leaves the event, then hands the
/// fd back once it is the only owner.
pub fn events_on_one_owned_fd_share_it(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Vec<&'static str>>();
    let reader = base
        .new_owned_event(a, Interest::READ, |ctx, log: &mut Vec<&str>| {
            log.push("reader");
            read_available(ctx.borrow_fd().unwrap());
        })
        .unwrap();
    let second = base
        .new_event_on(reader, Interest::READ, |_, log: &mut Vec<&str>| {
            log.push("second reader")
        })
        .unwrap();
    let writer = base
        .new_event_on(second, Interest::WRITE, |ctx, log: &mut Vec<&str>| {
            log.push("writer");
            write_all(ctx.borrow_fd().unwrap(), b"from the writer");
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    for id in [reader, second] {
        base.add(id, None).unwrap();
    }
    write_all(&b, b"x");
    let mut log = Vec::new();
    base.run_with(LoopFlags::ONCE, &mut log).unwrap();
    assert_eq!(
        log,
        ["reader", "second reader"],
        "both events on the fd ran"
    );

    let refused = base.free_and_take_fd(reader).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("shares its fd"), "{refused}");
    assert!(
        base.pending(reader).is_ok(),
        "a refused take leaves the event"
    );

    base.free(reader).unwrap();
    base.free(second).unwrap();
    base.add(writer, None).unwrap();
    log.clear();
    base.run(&mut log).unwrap();
    assert_eq!(
        log,
        ["writer"],
        "the fd outlived the events that made and shared it"
    );
    assert_eq!(read_available(&b), b"from the writer");

    let fd = base.free_and_take_fd(writer).unwrap();
    drop(fd);
    let (_, eof) = read_available_or_eof(&b);
    assert!(eof, "the last owner's fd closed");
}

/// `new_event_on` refuses an owner that owns no fd (a timer, an event on a raw fd), a freed
/// owner, and flags without I/O or with SIGNAL, each with a message naming what is wrong;
/// nothing is created.
pub fn new_event_on_refusals(h: &Harness) {
    let (a, _b) = socketpair();
    let (c, _d) = socketpair();
    let mut base = h.base::<()>();
    let owner = base
        .new_owned_event(a, Interest::READ, |_, _: &mut ()| {})
        .unwrap();
    let timer = base
        .new_timer(TimerKind::OneShot, |_, _: &mut ()| {})
        .unwrap();
    let raw_event = base
        .watch(raw(&c), Interest::READ, |_, _: &mut ()| {})
        .unwrap();
    let before = base.num_events();
    for not_an_owner in [timer, raw_event] {
        let e = base
            .new_event_on(not_an_owner, Interest::READ, |_, _: &mut ()| {})
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("owns no fd"), "{e}");
    }
    // An interest without READ, WRITE or CLOSED is refused; SIGNAL no longer compiles here.
    for flags in [Interest::PERSIST, Interest::empty()] {
        let e = base
            .new_event_on(owner, flags, |_, _: &mut ()| {})
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{flags:?}: {e}");
    }
    base.free(owner).unwrap();
    let e = base
        .new_event_on(owner, Interest::READ, |_, _: &mut ()| {})
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert_eq!(base.num_events(), before, "nothing was added");
    base.free(raw_event).unwrap();
}

/// Ids of freed events (even after their slot is reused) and of other bases are refused
/// with clear errors, and the base still works.
pub fn stale_and_foreign_ids_are_refused(h: &Harness) {
    let mut base = h.base::<usize>();
    let mut other = h.base::<usize>();
    let old = base.new_timer(TimerKind::OneShot, |_, _| {}).unwrap();
    base.free(old).unwrap();
    let reused = base
        .new_timer(TimerKind::OneShot, |_, n: &mut usize| *n += 1)
        .unwrap();
    let err = base.activate(old, Fired::TIMEOUT, 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("freed"), "{err}");
    let err = other.add(reused, None).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("another base"), "{err}");
    assert!(base.free(old).is_err());
    base.activate(reused, Fired::TIMEOUT, 1).unwrap();
    let mut n = 0;
    base.run(&mut n).unwrap();
    assert_eq!(n, 1);
    assert_eq!(other.run(&mut n).unwrap(), RunOutcome::NoEvents);
}

/// A panicking callback propagates out of `run`; its event is freed, the other events stay
/// registered, and the base runs again normally.
pub fn panicking_callback_leaves_the_base_usable(h: &Harness) {
    let (a, b) = socketpair();
    let mut base = h.base::<Vec<&'static str>>();
    // resume_unwind skips the panic hook, so the expected panic prints no backtrace.
    let bad = base
        .new_timer(TimerKind::Periodic, |_, _| {
            std::panic::resume_unwind(Box::new("callback panic (expected)"))
        })
        .unwrap();
    base.add(bad, Some(Duration::from_millis(1))).unwrap();
    let reader = base
        .new_owned_event(b, Interest::READ, |_, log: &mut Vec<&str>| log.push("read"))
        .unwrap();
    base.add(reader, None).unwrap();
    let mut log = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| base.run(&mut log)));
    assert!(result.is_err(), "the panic must propagate");
    assert_eq!(
        base.pending(bad).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(base.num_events(), 1);
    write_all(&a, b"x");
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, ["read"]);
}
