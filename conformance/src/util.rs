//! Helpers for scenarios: fds, I/O, loop driving with generous bounds, and a backend wrapper
//! that counts interest changes. Modelled on mio's `tests/util`: helpers are
//! `#[track_caller]`, so a failure points at the scenario line.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::{
    Backend, Base, BevOptions, BufferedSocket, EventFlags, EventId, Features, Listener,
    ListenerOptions, LoopFlags, ReadyList, Registry,
};
use rustix::io::Errno;
use rustix::net::{socketpair as sys_socketpair, AddressFamily, SocketFlags, SocketType};

/// What ran, in order: a name and the flags its callback was given.
pub type Log = Vec<(&'static str, EventFlags)>;

/// A new (not yet added) event on `fd` whose callback logs `name` and what fired.
#[track_caller]
pub fn logging_event(
    base: &mut Base<Log>,
    fd: RawFd,
    flags: EventFlags,
    name: &'static str,
) -> EventId {
    base.new_event(fd, flags, move |ctx, log: &mut Log| {
        log.push((name, ctx.fired()))
    })
    .unwrap()
}

/// How long a scenario waits for something that should take milliseconds before failing:
/// 10 s, or `EVLOOP_PATIENCE_SECS` for slow runs (valgrind, sanitizers).
pub fn patience() -> Duration {
    let secs = std::env::var("EVLOOP_PATIENCE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

/// A non-blocking, close-on-exec AF_UNIX stream socket pair. (macOS has no
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, so the flags are set afterwards, portably.)
#[track_caller]
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    let (a, b) = sys_socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )
    .expect("socketpair");
    for fd in [&a, &b] {
        rustix::io::ioctl_fionbio(fd, true).expect("FIONBIO");
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).expect("FD_CLOEXEC");
    }
    (a, b)
}

/// Borrow a raw fd that the scenario keeps open for as long as the borrow is used.
pub fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: scenarios own every fd they pass here (as an `OwnedFd` in scope) and close it
    // only after the loop that uses it has returned; a closed fd only makes the syscall fail.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Write all of `bytes` to a non-blocking fd that has room for them.
#[track_caller]
pub fn write_all(fd: impl AsFd, bytes: &[u8]) {
    let n = rustix::io::write(fd, bytes).expect("write");
    assert_eq!(n, bytes.len(), "short write");
}

/// Read whatever is available (until `EAGAIN` or end of file).
pub fn read_available(fd: impl AsFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd.as_fd(), &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::AGAIN) => return out,
            Err(Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Fill the send buffer of `fd` until the kernel refuses more; returns the bytes written.
pub fn fill(fd: impl AsFd) -> usize {
    let chunk = [0x55u8; 65536];
    let mut total = 0;
    loop {
        match rustix::io::write(fd.as_fd(), &chunk) {
            Ok(n) => total += n,
            Err(Errno::AGAIN) => return total,
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Run `base` with `ONCE|NONBLOCK` iterations until `done(data)`, failing after
/// [`patience`]. Sleeps a millisecond between idle iterations.
#[track_caller]
pub fn run_until<D>(
    base: &mut Base<D>,
    data: &mut D,
    what: &str,
    mut done: impl FnMut(&D) -> bool,
) {
    let (start, limit) = (Instant::now(), patience());
    while !done(data) {
        assert!(
            start.elapsed() < limit,
            "{what}: still not done after {limit:?}"
        );
        base.run_with(LoopFlags::NONBLOCK, data)
            .expect("loop iteration");
        if !done(data) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Run one non-blocking iteration.
#[track_caller]
pub fn turn<D>(base: &mut Base<D>, data: &mut D) {
    base.run_with(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY, data)
        .expect("loop iteration");
}

/// Close `fd` and give its number to one end of a new socket pair at once (other threads may
/// be opening fds): returns the pair's other end and the renumbered one.
pub fn renumber(fd: OwnedFd) -> (OwnedFd, OwnedFd) {
    let number = raw(&fd);
    let (peer, fresh) = socketpair();
    let mut renumbered = fd;
    rustix::io::dup2(&fresh, &mut renumbered).unwrap();
    assert_eq!(raw(&renumbered), number);
    (peer, renumbered)
}

/// Raise the soft fd limit to the hard limit, for the scenarios that open thousands of fds.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The number of interest changes a [`Counting`] backend was told about.
#[derive(Clone, Default)]
pub struct ChangeCounter(Rc<Cell<usize>>);

impl ChangeCounter {
    /// Changes so far.
    pub fn get(&self) -> usize {
        self.0.get()
    }
}

/// Wraps a backend and counts the calls to `change` (each is a syscall on epoll and kqueue).
pub struct Counting {
    inner: Box<dyn Backend>,
    changes: ChangeCounter,
}

impl Counting {
    /// Wrap `inner`.
    pub fn wrap(inner: Box<dyn Backend>) -> (Self, ChangeCounter) {
        let changes = ChangeCounter::default();
        (
            Self {
                inner,
                changes: changes.clone(),
            },
            changes,
        )
    }
}

impl Backend for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        self.changes.0.set(self.changes.0.get() + 1);
        self.inner.change(fd, old, new)
    }
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        self.inner.dispatch(timeout, ready)
    }
    fn immediate_changes(&self) -> bool {
        self.inner.immediate_changes()
    }
}

/// The raw fd of an owned one (shorthand).
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

/// An echo server on 127.0.0.1 (a free port: see `Listener::local_addr`): every connection
/// gets a buffered socket that moves its input to its output; `on_accept` hears each accept.
pub fn echo_listener<D: 'static>(
    ops: &mut Registry<D>,
    options: ListenerOptions,
    on_accept: fn(&mut D),
) -> Listener<D> {
    let addr = "127.0.0.1:0".parse().expect("a loopback address");
    Listener::bind(ops, addr, options, move |ctx, fd, _, data: &mut D| {
        on_accept(data);
        let bev = BufferedSocket::new(ctx, fd, BevOptions::default()).expect("buffered socket");
        bev.set_read_callback(|bev, _| {
            let (input, output) = bev.buffers();
            output.append_buffer(input).expect("unfrozen buffers");
        })
        .expect("fresh socket");
        bev.set_event_callback(|bev, _| {
            bev.free();
        })
        .expect("fresh socket");
        bev.enable(ctx, EventFlags::READ | EventFlags::WRITE)
            .expect("enable");
    })
    .expect("listen on loopback")
}
