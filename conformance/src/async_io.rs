//! The async column: the runtime's futures on this backend. Readiness futures complete
//! exactly when the callback API would fire; a future dropped mid-wait leaves nothing
//! behind; 1,000 tasks on 500 socket pairs; timers never early and in order; a wake from
//! another thread; `block_on` refusing what it cannot do; panics reported where awaited.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};

use std::time::{Duration, Instant};

use evloop_core::rt::{Async, Runtime};
use evloop_core::{Base, Interest, LoopFlags};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::util::{noop_waker, read_available, socketpair, write_all};
use crate::Harness;

const GENEROUS: Duration = Duration::from_secs(10);

/// A connected pair of loopback TCP streams (every backend, Windows included, watches them).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let a = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

/// Poll `future` once per loop pass until it completes, at most `passes` passes; `None` if it
/// did not. Shows exactly in which pass a future completes.
fn poll_passes<F: Future>(
    base: &mut Base<Vec<&'static str>>,
    log: &mut Vec<&'static str>,
    passes: usize,
    future: F,
) -> Option<F::Output> {
    let mut future = pin!(future);
    let waker = noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    for _ in 0..passes {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        base.run_with(LoopFlags::NONBLOCK, log).unwrap();
    }
    None
}

/// `readable()` stays pending while a callback watching the same kind of fd does not fire,
/// and completes in the same pass as that callback once the peer writes; end of file and a
/// writable socket complete it too.
pub fn async_readiness_matches_callbacks(h: &Harness) {
    let mut base = h.base::<Vec<&'static str>>();
    let rt = Runtime::new(&mut base).unwrap();
    let (a, b) = tcp_pair();
    let a = Async::new(&rt, a).unwrap();
    let (c, d) = socketpair();
    let watcher = base
        .new_owned_event(c, Interest::READ | Interest::PERSIST, |ctx, log| {
            read_available(ctx.borrow_fd().unwrap());
            log.push("callback");
        })
        .unwrap();
    base.add(watcher, None).unwrap();
    let mut log = Vec::new();
    {
        let mut readable = pin!(a.readable());
        let waker = noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        for _ in 0..5 {
            assert!(
                readable.as_mut().poll(&mut cx).is_pending(),
                "nothing written yet"
            );
            base.run_with(LoopFlags::NONBLOCK, &mut log).unwrap();
        }
        assert!(log.is_empty());
        // Both peers write; one wait reports both.
        (&b).write_all(b"ping").unwrap();
        write_all(&d, b"x");
        let start = Instant::now();
        loop {
            base.run_with(LoopFlags::NONBLOCK, &mut log).unwrap();
            if !log.is_empty() {
                break;
            }
            assert!(start.elapsed() < GENEROUS, "the callback never fired");
        }
        assert!(
            readable.as_mut().poll(&mut cx).is_ready(),
            "readable completes in the pass the callback fired in"
        );
    }
    let mut buf = [0u8; 8];
    let n = poll_passes(
        &mut base,
        &mut log,
        1,
        a.read_with(|s| (&*s).read(&mut buf)),
    )
    .expect("data is there")
    .unwrap();
    assert_eq!(&buf[..n], b"ping");
    // Writable at once; end of file is readable.
    poll_passes(&mut base, &mut log, 100, a.writable())
        .expect("a fresh socket is writable")
        .unwrap();
    drop(b);
    let n = poll_passes(
        &mut base,
        &mut log,
        10_000,
        a.read_with(|s| (&*s).read(&mut buf)),
    )
    .expect("end of file is reported")
    .unwrap();
    assert_eq!(n, 0);
    base.free(watcher).unwrap();
}

/// The events of a base, internal ones included (the runtime's never keep the loop alive,
/// so `num_events` does not count them).
fn events(base: &Base<()>) -> usize {
    base.dump_events().lines().count()
}

/// Everything `a` reads until end of file, by `block_on`.
fn read_all<T: 'static>(rt: &Runtime, base: &mut Base<()>, a: &Async<T>) -> Vec<u8>
where
    for<'x> &'x T: Read,
{
    rt.block_on(base, &mut (), async {
        let mut buf = Vec::new();
        (&*a).read_to_end(&mut buf).await.map(|_| buf)
    })
    .unwrap()
    .unwrap()
}

/// A read that returns less than asked ends readiness on a stream socket (no extra call that
/// would fail with `WouldBlock`), yet the end of file behind it is still seen: whether the
/// bytes and the close arrive before the first wait or while a task waits, and on TCP and
/// Unix streams alike.
pub fn async_short_reads_still_see_end_of_file(h: &Harness) {
    let mut base = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    // Bytes and close before anything is watched.
    let (a, b) = tcp_pair();
    let mut b_writer = b;
    b_writer.write_all(b"hello").unwrap();
    drop(b_writer);
    let a = Async::new(&rt, a).unwrap();
    let got = read_all(&rt, &mut base, &a);
    assert_eq!(got, b"hello");
    // Bytes, then the close, while a task waits.
    let (a, b) = tcp_pair();
    let a = Async::new(&rt, a).unwrap();
    let writer = std::thread::spawn(move || {
        let mut b = b;
        std::thread::sleep(Duration::from_millis(20));
        b.write_all(b"one").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // The close right behind the bytes: one report for both, on an edge-triggered
        // backend the only one.
        b.write_all(b"two").unwrap();
    });
    let got = read_all(&rt, &mut base, &a);
    writer.join().unwrap();
    assert_eq!(got, b"onetwo");
    #[cfg(unix)]
    {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut b = b;
        b.write_all(b"unix").unwrap();
        drop(b);
        let a = Async::new(&rt, a).unwrap();
        let got = read_all(&rt, &mut base, &a);
        assert_eq!(got, b"unix");
    }
}

/// A task waiting on a socket is cancelled (its `Task` dropped): the loop frees the socket's
/// event and then closes it (the peer sees end of file), a later write wakes nothing, and
/// the base is left with the events it had before.
pub fn async_future_dropped_mid_wait(h: &Harness) {
    let mut base = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    let before = events(&base);
    let (a, mut b) = tcp_pair();
    let woke = Rc::new(RefCell::new(0));
    let task = rt.spawn({
        let rt = rt.clone();
        let woke = woke.clone();
        async move {
            let a = Async::new(&rt, a).unwrap();
            a.readable().await.unwrap();
            *woke.borrow_mut() += 1;
        }
    });
    // Let the task start waiting.
    for _ in 0..3 {
        base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    }
    assert!(
        events(&base) > before,
        "the waiting task's event is registered"
    );
    assert_eq!(
        base.num_events(),
        0,
        "the runtime's events keep no loop alive"
    );
    drop(task);
    base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    assert_eq!(events(&base), before, "the cancelled task's event is freed");
    // Closed after the event was freed: the peer sees end of file.
    b.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(b.read(&mut buf).unwrap(), 0, "the socket is closed");
    let _ = b.write(b"late");
    for _ in 0..3 {
        base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    }
    assert_eq!(*woke.borrow(), 0);
    // A plain future dropped mid-wait, outside any task: the same.
    let (c, _d) = tcp_pair();
    let c = Async::new(&rt, c).unwrap();
    {
        let mut readable = pin!(c.readable());
        let waker = noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        assert!(readable.as_mut().poll(&mut cx).is_pending());
        base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    }
    assert!(events(&base) > before);
    drop(c);
    base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    assert_eq!(events(&base), before);
}

/// 500 connections through an `Async<TcpListener>`: 500 client tasks and 500 server tasks
/// (1,000 at once), each client sending 4 KiB and reading it back from its echoing server.
pub fn async_1000_concurrent_tasks_on_sockets(h: &Harness) {
    const PAIRS: usize = 500;
    const BYTES: usize = 4096;
    let mut base = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    let listener = Async::<TcpListener>::bind(&rt, ([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    let server = rt.spawn({
        let rt = rt.clone();
        async move {
            for _ in 0..PAIRS {
                let (stream, _) = listener.accept().await.unwrap();
                rt.spawn(async move {
                    let mut buf = vec![0u8; BYTES];
                    (&stream).read_exact(&mut buf).await.unwrap();
                    (&stream).write_all(&buf).await.unwrap();
                })
                .detach();
            }
        }
    });
    let clients: Vec<_> = (0..PAIRS)
        .map(|i| {
            let rt = rt.clone();
            rt.clone().spawn(async move {
                let mut s = Async::<TcpStream>::connect(&rt, addr).await.unwrap();
                let sent: Vec<u8> = (0..BYTES).map(|j| (i + j) as u8).collect();
                s.write_all(&sent).await.unwrap();
                let mut got = vec![0u8; BYTES];
                s.read_exact(&mut got).await.unwrap();
                got == sent
            })
        })
        .collect();
    let start = Instant::now();
    let all = rt
        .block_on(&mut base, &mut (), async move {
            server.await;
            let mut ok = 0;
            for c in clients {
                ok += usize::from(c.await);
            }
            ok
        })
        .unwrap();
    assert_eq!(all, PAIRS, "every client got its bytes back");
    assert!(start.elapsed() < GENEROUS * 3);
}

/// Sleeps of different lengths complete in deadline order, none before its deadline; an
/// interval's ticks are a period apart or more; a timeout fires after its limit and a future
/// that completes in time wins.
pub fn async_timers_never_early_and_in_order(h: &Harness) {
    let mut base = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = [30u64, 10, 20, 0, 5]
        .into_iter()
        .map(|ms| {
            let rt2 = rt.clone();
            let order = order.clone();
            rt.spawn(async move {
                rt2.sleep(Duration::from_millis(ms)).await;
                let at = start.elapsed();
                assert!(
                    at >= Duration::from_millis(ms),
                    "{ms} ms sleep done after {at:?}"
                );
                order.borrow_mut().push(ms);
            })
        })
        .collect();
    rt.block_on(&mut base, &mut (), async {
        for t in tasks {
            t.await;
        }
    })
    .unwrap();
    assert_eq!(*order.borrow(), [0, 5, 10, 20, 30]);
    assert!(start.elapsed() < GENEROUS);

    let mut interval = rt.interval(Duration::from_millis(5));
    let first = Instant::now();
    let ticks = rt
        .block_on(&mut base, &mut (), async {
            let mut ticks = Vec::new();
            for _ in 0..4 {
                ticks.push(interval.tick().await);
            }
            ticks
        })
        .unwrap();
    assert!(ticks[0] >= first + Duration::from_millis(5) - Duration::from_millis(1));
    for w in ticks.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(5), "ticks {w:?}");
    }

    let t0 = Instant::now();
    let late = rt
        .block_on(
            &mut base,
            &mut (),
            rt.timeout(Duration::from_millis(10), rt.sleep(Duration::from_secs(60))),
        )
        .unwrap();
    assert!(late.is_err());
    assert!(t0.elapsed() >= Duration::from_millis(10));
    let in_time = rt
        .block_on(
            &mut base,
            &mut (),
            rt.timeout(Duration::from_secs(60), async { 5 }),
        )
        .unwrap();
    assert_eq!(in_time, Ok(5));
    // Nothing of the timers is left registered.
    base.run_with(LoopFlags::NONBLOCK, &mut ()).unwrap();
    assert_eq!(
        base.run(&mut ()).unwrap(),
        evloop_core::RunOutcome::NoEvents
    );
}

/// A one-shot channel whose sender lives on another thread.
#[derive(Default)]
struct Slot {
    value: Option<u32>,
    waker: Option<Waker>,
    wakes: u32,
}

/// A task waiting on a value sent from another thread (no fd, no timer of its own: the
/// wake-up alone ends the wait), and a burst of 1,000 wakes from that thread before the loop
/// runs, which must all be served by a few wake-ups of the loop.
pub fn async_wake_from_another_thread(h: &Harness) {
    let mut base = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    let slot = Arc::new(Mutex::new(Slot::default()));
    let sender = {
        let slot = slot.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let mut s = slot.lock().unwrap();
            s.value = Some(42);
            if let Some(w) = s.waker.take() {
                // Many wakes of the same task: one run.
                for _ in 0..1000 {
                    w.wake_by_ref();
                }
                s.wakes += 1000;
            }
        })
    };
    let polls = Rc::new(RefCell::new(0u32));
    let got = rt
        .block_on(&mut base, &mut (), {
            let polls = polls.clone();
            let slot = slot.clone();
            rt.spawn(std::future::poll_fn(move |cx| {
                *polls.borrow_mut() += 1;
                let mut s = slot.lock().unwrap();
                match s.value {
                    Some(v) => Poll::Ready(v),
                    None => {
                        s.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }))
        })
        .unwrap();
    sender.join().unwrap();
    assert_eq!(got, 42);
    assert!(
        *polls.borrow() <= 3,
        "1,000 wakes of a waiting task run it once, not {} times",
        polls.borrow()
    );
    assert_eq!(slot.lock().unwrap().wakes, 1000);
}

/// `block_on` with another base's runtime is refused with a clear error; a runtime of
/// another base runs nested inside a callback of this one; a task's panic reaches whoever
/// awaits it, and the loop keeps working.
pub fn async_block_on_refusals_and_panics(h: &Harness) {
    let mut base = h.base::<()>();
    let mut other = h.base::<()>();
    let rt = Runtime::new(&mut base).unwrap();
    let other_rt = Runtime::new(&mut other).unwrap();
    let err = rt.block_on(&mut other, &mut (), async {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("belongs to base"), "{err}");

    // A callback of `base` drives `other`'s runtime to completion (different loops nest).
    let other = Rc::new(RefCell::new(other));
    let nested = Rc::new(RefCell::new(None));
    base.after(Duration::from_millis(1), {
        let other = other.clone();
        let nested = nested.clone();
        move |_, _| {
            let mut other = other.borrow_mut();
            let out = other_rt.block_on(&mut other, &mut (), {
                let rt = other_rt.clone();
                async move {
                    rt.sleep(Duration::from_millis(1)).await;
                    7
                }
            });
            *nested.borrow_mut() = Some(out.unwrap());
        }
    })
    .unwrap();
    base.run(&mut ()).unwrap();
    assert_eq!(*nested.borrow(), Some(7));

    // A panicking task: the panic comes out where it is awaited.
    let task = rt.spawn(async {
        panic!("task failed on purpose");
    });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(&mut base, &mut (), task)
    }));
    let payload = caught.expect_err("the panic reaches block_on");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"task failed on purpose")
    );
    // The loop and the runtime still work.
    let ok = rt
        .block_on(&mut base, &mut (), {
            let rt = rt.clone();
            async move {
                rt.sleep(Duration::from_millis(1)).await;
                rt.spawn(async { 1 }).await + 1
            }
        })
        .unwrap();
    assert_eq!(ok, 2);
}

/// Callbacks spawn tasks and tasks wait on what callbacks do; dropping the base closes the
/// runtime: I/O futures then answer `NotConnected`, and new tasks are dropped.
pub fn async_callbacks_and_tasks_mix_and_close_with_the_base(h: &Harness) {
    let mut base = h.base::<Vec<String>>();
    let rt = Runtime::new(&mut base).unwrap();
    let (a, b) = tcp_pair();
    let a = Rc::new(Async::new(&rt, a).unwrap());
    // A callback timer spawns a task that reads what a second timer writes.
    base.after(Duration::from_millis(1), {
        let rt = rt.clone();
        let a = a.clone();
        move |_, log: &mut Vec<String>| {
            log.push("callback spawns".into());
            let a = a.clone();
            rt.spawn(async move {
                let mut buf = [0u8; 16];
                let n = (&*a).read(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"from a callback");
            })
            .detach();
        }
    })
    .unwrap();
    base.after(Duration::from_millis(5), move |_, log: &mut Vec<String>| {
        log.push("callback writes".into());
        (&b).write_all(b"from a callback").unwrap();
    })
    .unwrap();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, ["callback spawns", "callback writes"]);
    // The runtime closes with its base.
    drop(base);
    assert!(rt.is_closed());
    let waker = noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    let mut readable = pin!(a.readable());
    match readable.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::NotConnected),
        other => panic!("readable after the base was dropped: {other:?}"),
    }
    drop(rt.spawn(async {}));
}
