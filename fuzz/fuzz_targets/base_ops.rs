//! Random event operations on a base (poll backend, two socket pairs): create (on raw fds,
//! owning a duplicate, or sharing another event's fd), add with
//! timeouts (in the heap's and the bucket ring's ranges), delete, free, activate, change
//! priority, run without blocking, in any order and on stale ids. Nothing may panic; bad ids must be errors; and after every
//! operation the registry's invariants hold (`verify`), so a broken count fails where it breaks.
#![no_main]

use std::os::fd::AsRawFd;
use std::time::Duration;

use evloop_core::{Base, BaseOptions, EventId, Fired, Interest, LoopFlags, TimerKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let backend = Box::new(evloop_poll::PollBackend::new());
    let pairs: Vec<_> = (0..2)
        .map(|_| {
            rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::NONBLOCK,
                None,
            )
            .unwrap()
        })
        .collect();
    // Declared after `pairs`, so dropped first: the sockets outlive every event.
    let mut base: Base<u64> = Base::with_backend(backend, BaseOptions { priorities: 3, ..Default::default() }).unwrap();
    let mut ids: Vec<EventId> = Vec::new();
    let mut runs = 0u64;
    for op in data.chunks(2) {
        let (kind, arg) = (op[0] % 12, *op.get(1).unwrap_or(&0));
        let pick = |ids: &Vec<EventId>| ids.get(arg as usize % ids.len().max(1)).copied();
        match kind {
            0 => {
                let kind = if arg & 1 == 1 { TimerKind::Periodic } else { TimerKind::OneShot };
                if let Ok(id) = base.new_timer(kind, |_, n: &mut u64| *n += 1) {
                    ids.push(id);
                }
            }
            1 => {
                let (a, _) = &pairs[arg as usize % 2];
                let flags = Interest::READ | Interest::WRITE | if arg & 2 == 2 { Interest::PERSIST } else { Interest::empty() };
                // SAFETY: `pairs` outlives `base` (see above).
                let made = unsafe {
                    base.new_event(a.as_raw_fd(), flags, |ctx, n: &mut u64| {
                        *n += 1;
                        if *n % 7 == 0 {
                            let me = ctx.id();
                            let _ = ctx.del(me);
                        }
                    })
                };
                if let Ok(id) = made {
                    ids.push(id);
                }
            }
            2 => {
                if let Some(id) = pick(&ids) {
                    // Below 2.6 ms (the timer heap) or up to 1.3 s (the bucket ring, and
                    // past it: the heap again).
                    let timeout = match arg {
                        0..=127 => Duration::from_micros(u64::from(arg) * 20),
                        _ => Duration::from_millis(u64::from(arg - 128) * 10),
                    };
                    let _ = base.add(id, Some(timeout));
                }
            }
            3 => {
                if let Some(id) = pick(&ids) {
                    let _ = base.del(id);
                }
            }
            4 => {
                if let Some(id) = pick(&ids) {
                    let _ = base.free(id); // stale ids stay in `ids`: later uses must be errors
                }
            }
            5 => {
                if let Some(id) = pick(&ids) {
                    let _ = base.activate(id, Fired::TIMEOUT, u32::from(arg));
                }
            }
            6 => {
                if let Some(id) = pick(&ids) {
                    let _ = base.set_priority(id, u16::from(arg % 4));
                }
            }
            7 => {
                let _ = base.run_with(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY, &mut runs);
            }
            9 => {
                // An event owning a duplicate of a pair's socket.
                let (a, _) = &pairs[arg as usize % 2];
                if let Ok(fd) = rustix::io::dup(a) {
                    let flags = Interest::READ | if arg & 2 == 2 { Interest::PERSIST } else { Interest::empty() };
                    if let Ok(id) = base.new_owned_event(fd, flags, |_, n: &mut u64| *n += 1) {
                        ids.push(id);
                    }
                }
            }
            10 => {
                // A second event sharing the fd of the picked one (refused unless it owns one).
                if let Some(id) = pick(&ids) {
                    let flags = if arg & 4 == 4 { Interest::WRITE } else { Interest::READ | Interest::PERSIST };
                    if let Ok(id) = base.new_event_on(id, flags, |_, n: &mut u64| *n += 1) {
                        ids.push(id);
                    }
                }
            }
            11 => {
                // Refused while shared or not owned; the event stays then.
                if let Some(id) = pick(&ids) {
                    drop(base.free_and_take_fd(id));
                }
            }
            _ => {
                let (_, b) = &pairs[arg as usize % 2];
                let _ = rustix::io::write(b, b"x");
            }
        }
        base.verify();
    }
    let _ = base.run_with(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY, &mut runs);
    base.verify();
});
