//! The signal scenarios themselves (POSIX signals).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::{Fired, Interest, RunOutcome, TimerKind};

use crate::util::{patience, read_available, socketpair, write_all};
use crate::Harness;

const USR1: i32 = libc::SIGUSR1;
const USR2: i32 = libc::SIGUSR2;

fn raise(signo: i32) {
    // SAFETY: raise has no preconditions; the scenario installed a handler (or blocked it).
    let rc = unsafe { libc::raise(signo) };
    assert_eq!(rc, 0, "raise({signo})");
}

/// The handler address currently installed for `signo`.
fn disposition(signo: i32) -> libc::sighandler_t {
    // SAFETY: queries the current action into a local.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signo, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

fn set_disposition(signo: i32, handler: libc::sighandler_t) {
    // SAFETY: installs SIG_IGN or SIG_DFL, which need no handler code.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigaction(signo, &action, std::ptr::null_mut());
    }
}

type Log = Vec<(&'static str, Fired, u32)>;

/// A signal event that logs its run as `(name, fired, ncalls)` and then deletes itself.
fn logging_once(
    base: &mut evloop_core::Base<Log>,
    signo: i32,
    name: &'static str,
) -> evloop_core::EventId {
    base.new_signal(signo, move |ctx, log: &mut Log| {
        log.push((name, ctx.fired(), ctx.ncalls()));
        let me = ctx.id();
        ctx.del(me).unwrap();
    })
    .unwrap()
}

/// One raise, one run with SIGNAL and count 1.
pub fn simple_signal(h: &Harness) {
    let mut base = h.base::<Log>();
    let e = logging_once(&mut base, USR1, "usr1");
    base.add(e, None).unwrap();
    assert_eq!(base.pending(e).unwrap().flags, Fired::SIGNAL);
    raise(USR1);
    let mut log = Log::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, [("usr1", Fired::SIGNAL, 1)]);
}

/// A signal event with a timeout runs with TIMEOUT when no signal comes.
pub fn signal_with_timeout(h: &Harness) {
    let mut base = h.base::<Log>();
    let e = logging_once(&mut base, USR1, "usr1");
    let start = Instant::now();
    base.add(e, Some(Duration::from_millis(30))).unwrap();
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("usr1", Fired::TIMEOUT, 1)]);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

/// Two events on one signal both run, in add order.
pub fn two_events_on_one_signal(h: &Harness) {
    let mut base = h.base::<Log>();
    for name in ["first", "second"] {
        let e = logging_once(&mut base, USR1, name);
        base.add(e, None).unwrap();
    }
    raise(USR1);
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(
        log,
        [("first", Fired::SIGNAL, 1), ("second", Fired::SIGNAL, 1)]
    );
}

/// Two signals reach their own events.
pub fn two_signals(h: &Harness) {
    let mut base = h.base::<Log>();
    for (name, signo) in [("usr1", USR1), ("usr2", USR2)] {
        let e = logging_once(&mut base, signo, name);
        base.add(e, None).unwrap();
    }
    raise(USR2);
    raise(USR1);
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    log.sort();
    assert_eq!(
        log,
        [("usr1", Fired::SIGNAL, 1), ("usr2", Fired::SIGNAL, 1)]
    );
}

/// Add, delete, add again: the event still receives the signal, once.
pub fn add_delete_add_again(h: &Harness) {
    let mut base = h.base::<Log>();
    let e = logging_once(&mut base, USR1, "usr1");
    base.add(e, None).unwrap();
    base.del(e).unwrap();
    base.add(e, None).unwrap();
    raise(USR1);
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [("usr1", Fired::SIGNAL, 1)]);
}

/// A signal raised before the loop runs is delivered when it runs.
pub fn raised_before_the_loop_runs(h: &Harness) {
    let mut base = h.base::<Log>();
    let e = logging_once(&mut base, USR1, "usr1");
    base.add(e, None).unwrap();
    raise(USR1);
    std::thread::sleep(Duration::from_millis(20));
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log.len(), 1);
}

/// Ten raises before the loop runs: one callback run whose count is 10 (self-pipe; with
/// signalfd the kernel may merge pending raises, so at least 1).
pub fn raises_before_the_loop_coalesce_into_one_run(h: &Harness) {
    let mut base = h.base::<Log>();
    let e = logging_once(&mut base, USR1, "usr1");
    base.add(e, None).unwrap();
    for _ in 0..10 {
        raise(USR1);
    }
    let mut log = Log::new();
    base.run(&mut log).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    if h.uses_signalfd() {
        assert!((1..=10).contains(&log[0].2), "{log:?}");
    } else {
        assert_eq!(log[0].2, 10);
    }
}

/// A callback that deletes its event hears no later delivery; another event on the same
/// signal still does.
pub fn delete_inside_the_callback_stops_repeats(h: &Harness) {
    // (runs of the deleting event, deliveries seen by the staying one)
    let mut base = h.base::<(u32, u32)>();
    let leaver = base
        .new_signal(USR1, |ctx, (runs, _): &mut (u32, u32)| {
            *runs += 1;
            let me = ctx.id();
            ctx.del(me).unwrap();
            raise(USR1); // after the delete: must reach only the other event
        })
        .unwrap();
    let stayer = base
        .new_signal(USR1, |ctx, (_, seen): &mut (u32, u32)| {
            *seen += ctx.ncalls();
            if *seen >= 2 {
                let me = ctx.id();
                ctx.del(me).unwrap();
            }
        })
        .unwrap();
    base.add(leaver, None).unwrap();
    base.add(stayer, None).unwrap();
    raise(USR1);
    let mut data = (0, 0);
    assert_eq!(base.run(&mut data).unwrap(), RunOutcome::NoEvents);
    assert_eq!(data, (1, 2));
}

/// A callback that frees its event: no further runs, and the signal is released.
pub fn free_inside_the_callback(h: &Harness) {
    let before = disposition(USR1);
    let mut base = h.base::<usize>();
    let e = base
        .new_signal(USR1, |ctx, runs: &mut usize| {
            *runs += 1;
            let me = ctx.id();
            ctx.free(me).unwrap();
        })
        .unwrap();
    base.add(e, None).unwrap();
    raise(USR1);
    let mut runs = 0;
    assert_eq!(base.run(&mut runs).unwrap(), RunOutcome::NoEvents);
    assert_eq!(runs, 1);
    assert_eq!(disposition(USR1), before);
    let mut other = h.base::<usize>();
    let e2 = other.new_signal(USR1, |_, _| {}).unwrap();
    other.add(e2, None).unwrap(); // released: another base may take it
}

/// The disposition before the first add is restored after the last delete and when the base
/// is dropped (the self-pipe installs a handler; signalfd never touches it).
pub fn previous_handler_restored(h: &Harness) {
    set_disposition(USR2, libc::SIG_IGN);
    let mut base = h.base::<()>();
    let e = base.new_signal(USR2, |_, _| {}).unwrap();
    base.add(e, None).unwrap();
    if h.uses_signalfd() {
        assert_eq!(disposition(USR2), libc::SIG_IGN);
    } else {
        assert_ne!(disposition(USR2), libc::SIG_IGN, "handler not installed");
    }
    base.del(e).unwrap();
    assert_eq!(
        disposition(USR2),
        libc::SIG_IGN,
        "not restored after the last delete"
    );
    base.add(e, None).unwrap();
    drop(base);
    assert_eq!(
        disposition(USR2),
        libc::SIG_IGN,
        "not restored when the base was dropped"
    );
    set_disposition(USR2, libc::SIG_DFL);
}

/// A second base cannot take a signal the first one watches (a clear error); once the first
/// deletes its event, the second can, and receives it.
pub fn second_base_is_refused_until_the_first_lets_go(h: &Harness) {
    let mut first = h.base::<usize>();
    let mut second = h.base::<usize>();
    let a = first.new_signal(USR1, |_, n: &mut usize| *n += 1).unwrap();
    first.add(a, None).unwrap();
    let b = second
        .new_signal(USR1, |ctx, n: &mut usize| {
            *n += 1;
            let me = ctx.id();
            ctx.del(me).unwrap();
        })
        .unwrap();
    let err = second.add(b, None).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains("SIGUSR1") && err.to_string().contains("another base"),
        "{err}"
    );
    assert_eq!(second.pending(b).unwrap().flags, Fired::empty());
    first.del(a).unwrap();
    second.add(b, None).unwrap();
    raise(USR1);
    let mut n = 0;
    second.run(&mut n).unwrap();
    assert_eq!(n, 1);
}

/// 100,000 raises from another thread while the loop does I/O: no deadlock, the I/O goes on,
/// and with the self-pipe every delivery is counted.
pub fn signal_storm_during_io(h: &Harness) {
    const RAISES: u32 = 100_000;
    let (a, b) = socketpair();
    // (signal deliveries counted, ping-pong rounds)
    let mut base = h.base::<(u64, u64)>();
    let sig = base
        .new_signal(USR1, |ctx, (count, _): &mut (u64, u64)| {
            *count += u64::from(ctx.ncalls())
        })
        .unwrap();
    base.add(sig, None).unwrap();
    // Each end answers what it reads: one byte goes back and forth.
    write_all(&a, b"p");
    for end in [a, b] {
        let e = base
            .new_owned_event(
                end,
                Interest::READ | Interest::PERSIST,
                move |ctx, (_, rounds): &mut (u64, u64)| {
                    let fd = ctx.borrow_fd().unwrap();
                    if !read_available(fd).is_empty() {
                        *rounds += 1;
                        write_all(fd, b"p");
                    }
                },
            )
            .unwrap();
        base.add(e, None).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let signalfd = h.uses_signalfd();
    let pid = rustix::process::getpid();
    let raiser = std::thread::spawn(move || {
        for _ in 0..RAISES {
            if signalfd {
                // Blocked everywhere: direct it at the process, where the signalfd looks.
                rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
            } else {
                raise(USR1);
            }
        }
        finished.store(true, Ordering::Release);
    });
    let start = Instant::now();
    let mut data = (0u64, 0u64);
    let mut rounds_at_finish = None;
    loop {
        base.run_with(evloop_core::LoopFlags::ONCE, &mut data)
            .unwrap();
        if done.load(Ordering::Acquire) {
            let at = *rounds_at_finish.get_or_insert(data.1);
            let complete = if signalfd {
                data.0 >= 1
            } else {
                data.0 == u64::from(RAISES)
            };
            if complete && data.1 > at + 10 {
                break;
            }
        }
        assert!(
            start.elapsed() < patience() * 3,
            "storm: {data:?} after {:?}",
            start.elapsed()
        );
    }
    raiser.join().unwrap();
    assert!(data.1 > 10, "I/O starved during the storm: {data:?}");
    if !signalfd {
        assert_eq!(data.0, u64::from(RAISES), "deliveries lost");
    }
}

/// The internal fd that carries signals does not keep an otherwise empty loop alive.
pub fn internal_source_does_not_keep_the_loop_alive(h: &Harness) {
    let mut base = h.base::<()>();
    let e = base.new_signal(USR1, |_, _| {}).unwrap();
    base.add(e, None).unwrap();
    assert_eq!(base.num_events(), 1);
    base.del(e).unwrap();
    assert_eq!(base.num_events(), 0);
    let start = Instant::now();
    assert_eq!(base.run(&mut ()).unwrap(), RunOutcome::NoEvents);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// Out-of-range numbers, SIGKILL and SIGSTOP are refused with `InvalidInput`; the base still
/// works. (SIGNAL mixed with I/O interest no longer compiles: `Interest` has no SIGNAL.)
pub fn bad_signal_numbers_are_refused(h: &Harness) {
    let mut base = h.base::<usize>();
    for signo in [0, -1, 65, 1000, libc::SIGKILL, libc::SIGSTOP] {
        let err = base.new_signal(signo, |_, _| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signo}: {err}");
    }
    let err = base.new_signal(libc::SIGKILL, |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    let t = base
        .new_timer(TimerKind::OneShot, |_, n: &mut usize| *n += 1)
        .unwrap();
    base.activate(t, Fired::TIMEOUT, 1).unwrap();
    let mut n = 0;
    base.run(&mut n).unwrap();
    assert_eq!(n, 1);
}

/// `signal_method` names the mechanism in use.
pub fn signal_method_names_the_mechanism(h: &Harness) {
    let base = h.base::<()>();
    let expected = if h.uses_signalfd() {
        "signalfd"
    } else {
        "self-pipe"
    };
    assert_eq!(base.signal_method(), expected);
}

/// With signalfd, adding a signal that is not blocked in the calling thread is refused with
/// an error that says so (it would never be seen); the self-pipe takes it.
pub fn signalfd_refuses_an_unblocked_signal(h: &Harness) {
    let mut base = h.base::<()>();
    let e = base.new_signal(libc::SIGWINCH, |_, _| {}).unwrap();
    let result = base.add(e, None);
    if h.uses_signalfd() {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("SIGWINCH is not blocked"), "{err}");
        assert_eq!(base.num_events(), 0);
    } else {
        result.unwrap();
        base.del(e).unwrap();
    }
}

#[derive(Default)]
struct Seen {
    io: bool,
    signal: bool,
    remote: bool,
    timer: bool,
}

impl Seen {
    fn all(&self) -> bool {
        self.io && self.signal && self.remote && self.timer
    }
}

/// Fork a process whose base watches fds, a timer, a signal and has a handle. The child calls
/// `reinit` and gets its own I/O, timer, signal and remote activation; afterwards the parent
/// still gets all of its own — the child's reinit touched none of the parent's registrations.
pub fn fork_and_reinit_keep_both_loops_working(h: &Harness) {
    let (parent_w, parent_r) = socketpair();
    let (child_w, child_r) = socketpair();
    let mut base = h.base::<Seen>();
    for end in [parent_r, child_r] {
        let e = base
            .new_owned_event(
                end,
                Interest::READ | Interest::PERSIST,
                move |ctx, seen: &mut Seen| {
                    if !read_available(ctx.borrow_fd().unwrap()).is_empty() {
                        seen.io = true;
                    }
                },
            )
            .unwrap();
        base.add(e, None).unwrap();
    }
    let sig = base
        .new_signal(USR1, |_, seen: &mut Seen| seen.signal = true)
        .unwrap();
    base.add(sig, None).unwrap();
    let remote = base
        .new_timer(TimerKind::OneShot, |_, seen: &mut Seen| seen.remote = true)
        .unwrap();
    let timer = base
        .new_timer(TimerKind::OneShot, |_, seen: &mut Seen| seen.timer = true)
        .unwrap();
    let handle = base.handle().unwrap();
    let mut seen = Seen::default();
    base.run_with(evloop_core::LoopFlags::NONBLOCK, &mut seen)
        .unwrap(); // commit everything

    let drive = |base: &mut evloop_core::Base<Seen>, peer: &evloop_core::fd::OwnedFd| -> Seen {
        base.add(timer, Some(Duration::from_millis(5))).unwrap();
        write_all(peer, b"x");
        raise(USR1);
        handle.activate(remote, Fired::TIMEOUT, 1).unwrap();
        let mut seen = Seen::default();
        let start = Instant::now();
        while !seen.all() && start.elapsed() < patience() {
            base.run_with(evloop_core::LoopFlags::NONBLOCK, &mut seen)
                .unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    };

    // SAFETY: the child only runs this scenario's loop and leaves with _exit, never
    // returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            base.reinit().unwrap();
            drive(&mut base, &child_w).all()
        }));
        // SAFETY: ends the child at once, without running the parent's destructors twice.
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: status {status}"
    );
    let parent = drive(&mut base, &parent_w);
    assert!(
        parent.all(),
        "parent after the child's reinit: io {} signal {} remote {} timer {}",
        parent.io,
        parent.signal,
        parent.remote,
        parent.timer
    );
}
