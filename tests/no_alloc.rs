//! The performance budget's allocation claims, as behaviour: once the base has grown,
//! dispatching ready events, re-arming timers and deleting/re-adding fds allocate nothing.
//! A counting global allocator counts only on the thread that opts in.

use evloop::fd::{AsFd, OwnedFd};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evloop::{Base, Interest, LoopFlags, TimerKind};

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
                    Interest::READ | Interest::PERSIST,
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
            .new_timer(TimerKind::Periodic, |_, n: &mut usize| *n += 1)
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

/// A task woken by readiness on the loop thread, reading, and waiting again: in steady state
/// the wake, the run and the wait allocate nothing, on every backend.
#[test]
fn steady_state_task_wakes_allocate_nothing() {
    use evloop::rt::{Async, Runtime};
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    for method in evloop::supported_methods() {
        let mut base: Base = Base::with_backend(
            evloop::backend::by_name(method).unwrap(),
            Default::default(),
        )
        .unwrap();
        let rt = Runtime::new(&mut base).unwrap();
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (reader, _) = listener.accept().unwrap();
        let reader = Async::new(&rt, reader).unwrap();
        let reads = Rc::new(Cell::new(0usize));
        let task = rt.spawn({
            let reads = reads.clone();
            async move {
                let mut buf = [0u8; 64];
                loop {
                    let n = reader
                        .read_with(|s| std::io::Read::read(&mut &*s, &mut buf))
                        .await
                        .unwrap();
                    if n == 0 {
                        return;
                    }
                    reads.set(reads.get() + 1);
                }
            }
        });
        // One byte, then passes until the task has read it.
        let step = |base: &mut Base| {
            let before = reads.get();
            std::io::Write::write_all(&mut &writer, b"x").unwrap();
            for _ in 0..10_000 {
                base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
                if reads.get() > before {
                    return;
                }
            }
            panic!("{method}: the task did not read");
        };
        for _ in 0..20 {
            step(&mut base); // grow every buffer
        }
        COUNTING.with(|c| c.set(true));
        for _ in 0..200 {
            step(&mut base);
        }
        COUNTING.with(|c| c.set(false));
        let allocations = ALLOCATIONS.swap(0, Ordering::Relaxed);
        assert_eq!(
            allocations, 0,
            "{method}: {allocations} allocations in 200 steady-state task wakes"
        );
        drop(task);
    }
}
