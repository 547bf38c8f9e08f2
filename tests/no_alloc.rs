//! The performance budget's allocation claims, as behaviour: once the base has grown,
//! dispatching ready events, re-arming timers and deleting/re-adding fds allocate nothing.
//! A counting global allocator counts only on the thread that opts in.

use evloop::fd::{AsFd, OwnedFd};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evloop::{Base, EventFlags, LoopFlags};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local!(static COUNTING: Cell<bool> = const { Cell::new(false) });

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round<D>(base: &mut Base<D>, data: &mut D, events: &[evloop::EventId], writers: &[OwnedFd]) {
    for &e in events {
        base.del(e).unwrap();
        base.add(e, Some(Duration::from_secs(60))).unwrap();
    }
    for w in writers.iter().step_by(3) {
        evloop::fd::write(w.as_fd(), b"x").unwrap();
    }
    base.run_with(LoopFlags::NONBLOCK, data).unwrap();
}

/// A non-blocking pipe (a loopback socket pair on Windows): `(read end, write end)`.
fn pair() -> (OwnedFd, OwnedFd) {
    #[cfg(unix)]
    {
        let (b, a) = rustix::pipe::pipe().unwrap();
        rustix::io::ioctl_fionbio(&b, true).unwrap();
        (b, a)
    }
    #[cfg(windows)]
    {
        evloop::fd::socket_pair().unwrap()
    }
}

#[test]
fn steady_state_dispatch_allocates_nothing() {
    for method in evloop::supported_methods() {
        let mut base: Base<usize> = Base::with_backend(
            evloop::backend::by_name(method).unwrap(),
            Default::default(),
        )
        .unwrap();
        let mut writers = Vec::new();
        let mut events = Vec::new();
        for _ in 0..64 {
            let (b, a) = pair(); // (read end, write end)
            let e = base
                .new_owned_event(
                    b,
                    EventFlags::READ | EventFlags::PERSIST,
                    move |ctx, n: &mut usize| {
                        let mut buf = [0u8; 16];
                        if let Some(fd) = ctx.borrow_fd() {
                            let _ = evloop::fd::read(fd, &mut buf);
                        }
                        *n += 1;
                    },
                )
                .unwrap();
            events.push(e);
            writers.push(a);
        }
        let tick = base
            .new_timer(EventFlags::PERSIST, |_, n: &mut usize| *n += 1)
            .unwrap();
        base.add(tick, Some(Duration::from_micros(1))).unwrap();
        let mut n = 0;
        for _ in 0..20 {
            round(&mut base, &mut n, &events, &writers); // grow every buffer
        }
        let before_runs = n;
        COUNTING.with(|c| c.set(true));
        for _ in 0..200 {
            round(&mut base, &mut n, &events, &writers);
        }
        COUNTING.with(|c| c.set(false));
        let allocations = ALLOCATIONS.swap(0, Ordering::Relaxed);
        assert!(
            n > before_runs + 200,
            "{method}: callbacks did not run ({n})"
        );
        assert_eq!(
            allocations, 0,
            "{method}: {allocations} allocations in 200 steady-state rounds"
        );
    }
}
