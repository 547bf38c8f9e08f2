//! Bad input and injected faults: clear errors, no panic, nothing registered lost.

use evloop_core::fd::{AsRawFd, RawFd};
use std::io;
use std::time::{Duration, Instant};

use evloop_core::backend::ReadyList;
use evloop_core::{
    Backend, Base, BaseOptions, EventFlags, Fired, Interest, LoopFlags, RunOutcome, TimerKind,
};
use rustix::io::Errno;

use crate::util::{
    borrow, patience, raw, socketpair, write_all, Intercept, Rng, WatchRaw, Wrapped,
};
use crate::Harness;

#[track_caller]
fn invalid(result: io::Result<impl std::fmt::Debug>, needle: &str) {
    let err = result.expect_err(needle);
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(needle), "{err:?} lacks {needle:?}");
}

/// Negative, closed and absurd fds, extreme timeouts, priorities out of range, adding twice,
/// more than 65535 events on one fd: each gets a clear error or a defined behaviour, and the
/// base works afterwards.
pub fn bad_input_gets_clear_errors_and_the_base_keeps_working(h: &Harness) {
    let mut base = h.base_with::<usize>(BaseOptions {
        priorities: 2,
        ..Default::default()
    });
    let bad = evloop_core::fd::NO_FD;
    invalid(
        base.watch(bad, Interest::READ, |_, _| {}),
        &format!("fd {bad}"),
    );
    // A closed fd: refused at add, naming it (by the backend, or by the map).
    let (closed, other) = socketpair();
    let closed_fd = raw(&closed);
    drop(closed);
    let e = base.watch(closed_fd, Interest::READ, |_, _| {}).unwrap();
    match base.add(e, None) {
        Err(err) => {
            assert!(
                err.to_string().contains(&format!("fd {closed_fd}")),
                "{err}"
            );
            assert_eq!(base.pending(e).unwrap().flags, Fired::empty());
        }
        // Trials run in parallel threads: another one may have opened an fd that got the
        // closed number in the meantime. Only then may the add succeed.
        Ok(()) => {
            assert!(
                evloop_core::backend::fd_is_open(closed_fd).is_ok(),
                "fd {closed_fd} is closed, yet add accepted it"
            );
            base.free(e).unwrap();
        }
    }
    // An fd number nobody opened, far above the table: refused without allocating for it.
    let far = base.watch(1 << 30, Interest::READ, |_, _| {}).unwrap();
    invalid(
        base.add(far, None),
        "fd 1073741824 is not an open file descriptor",
    );
    // Duration::MAX means "never" (saturating), zero means "at the next iteration".
    let never = base
        .new_timer(TimerKind::OneShot, |_, n: &mut usize| *n += 1000)
        .unwrap();
    base.add(never, Some(Duration::MAX)).unwrap();
    let deadline = base.pending(never).unwrap().deadline.unwrap();
    assert!(deadline > Instant::now() + Duration::from_secs(100 * 365 * 86400));
    let soon = base.new_timer(TimerKind::OneShot, |ctx, n: &mut usize| {
        assert_eq!(ctx.fired(), Fired::TIMEOUT);
        *n += 1;
    });
    let soon = soon.unwrap();
    base.add(soon, Some(Duration::ZERO)).unwrap();
    base.add(soon, Some(Duration::ZERO)).unwrap(); // added twice: still one run
    let mut n = 0;
    base.run_with(LoopFlags::NONBLOCK, &mut n).unwrap();
    assert_eq!(n, 1);
    invalid(base.set_priority(soon, 2), "priority 2");
    base.free(never).unwrap();
    // A working event after all of it.
    let ok = base
        .watch(raw(&other), Interest::WRITE, |_, n: &mut usize| *n += 10)
        .unwrap();
    base.add(ok, None).unwrap();
    assert_eq!(base.run(&mut n).unwrap(), RunOutcome::NoEvents);
    assert_eq!(n, 11);
}

/// 65,535 readers of one fd are accepted; the next is refused with the limit named.
pub fn more_than_65535_events_on_one_fd_are_refused(h: &Harness) {
    let (_a, b) = socketpair();
    let mut base = h.base::<()>();
    let owner = base.new_owned_event(b, Interest::READ, |_, _| {}).unwrap();
    base.add(owner, None).unwrap();
    for _ in 1..65_535 {
        let e = base.new_event_on(owner, Interest::READ, |_, _| {}).unwrap();
        base.add(e, None).unwrap();
    }
    let e = base.new_event_on(owner, Interest::READ, |_, _| {}).unwrap();
    invalid(base.add(e, None), "65535");
    assert_eq!(base.num_events(), 65_535);
}

/// Injected faults around a backend: waits that return at once with nothing (what a backend
/// does on `EINTR`), spurious readiness of every watched fd, and one `ENOMEM`.
struct Faults {
    watched: Vec<RawFd>,
    rng: Rng,
    calls: usize,
    enomem_at: usize,
}

impl Intercept for Faults {
    fn change(
        &mut self,
        inner: &mut dyn Backend,
        fd: RawFd,
        old: EventFlags,
        new: EventFlags,
    ) -> io::Result<()> {
        inner.change(fd, old, new)?;
        self.watched.retain(|&w| w != fd);
        if !new.is_empty() {
            self.watched.push(fd);
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        inner: &mut dyn Backend,
        timeout: Option<Duration>,
        ready: &mut ReadyList,
    ) -> io::Result<()> {
        self.calls += 1;
        let roll = self.rng.below(4);
        if self.calls == self.enomem_at {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "injected ENOMEM",
            ));
        }
        match roll {
            0 => Ok(()), // interrupted: nothing ready, no wait
            1 => {
                for &fd in &self.watched {
                    ready.push(fd, EventFlags::READ | EventFlags::WRITE);
                }
                inner.dispatch(Some(Duration::ZERO), ready)
            }
            _ => inner.dispatch(timeout.map(|t| t.min(Duration::from_millis(5))), ready),
        }
    }
}

/// Under injected EINTR, spurious readiness and one ENOMEM: callbacks that read see
/// `WouldBlock` on spurious wake-ups and go on, timers are neither lost nor doubled, every
/// byte arrives, and after the hard error the same registrations work when run again.
pub fn injected_faults_lose_nothing(h: &Harness) {
    #[derive(Default)]
    struct S {
        bytes: usize,
        spurious: usize,
        ticks: usize,
        oneshot: usize,
    }
    let faults = Faults {
        watched: Vec::new(),
        rng: Rng(0x9e37_79b9),
        calls: 0,
        enomem_at: 40,
    };
    let backend = Wrapped::new(h.backend(), faults);
    let mut base: Base<S> = Base::with_backend(Box::new(backend), BaseOptions::default()).unwrap();
    let pairs: Vec<_> = (0..8).map(|_| socketpair()).collect();
    for (_, b) in &pairs {
        let fd = b.as_raw_fd();
        let e = base
            .watch(
                fd,
                Interest::READ | Interest::PERSIST,
                move |_, s: &mut S| {
                    let mut buf = [0u8; 64];
                    match rustix::io::read(borrow(fd), &mut buf) {
                        Ok(n) => s.bytes += n,
                        Err(Errno::AGAIN) => s.spurious += 1,
                        Err(e) => panic!("read: {e}"),
                    }
                },
            )
            .unwrap();
        base.add(e, None).unwrap();
    }
    let tick = base
        .new_timer(TimerKind::Periodic, |_, s: &mut S| s.ticks += 1)
        .unwrap();
    base.add(tick, Some(Duration::from_millis(2))).unwrap();
    let once = base
        .new_timer(TimerKind::OneShot, |_, s: &mut S| s.oneshot += 1)
        .unwrap();
    base.add(once, Some(Duration::from_millis(30))).unwrap();
    let mut s = S::default();
    let mut hard_errors = 0;
    let mut sent = 0;
    let start = Instant::now();
    while s.bytes < 100 || s.oneshot == 0 || s.ticks < 5 {
        assert!(
            start.elapsed() < patience(),
            "bytes {} ticks {} oneshot {}",
            s.bytes,
            s.ticks,
            s.oneshot
        );
        if sent < 100 {
            write_all(&pairs[sent % 8].0, b"x");
            sent += 1;
        }
        match base.run_with(LoopFlags::ONCE | LoopFlags::NONBLOCK, &mut s) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
                assert!(e.to_string().contains("injected"), "{e}");
                hard_errors += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    assert_eq!(hard_errors, 1);
    assert_eq!(s.bytes, 100, "bytes lost or duplicated");
    assert_eq!(s.oneshot, 1);
    assert!(s.spurious > 0, "no spurious readiness reached a callback");
    assert_eq!(base.pending(tick).unwrap().flags, Fired::TIMEOUT);
}
