//! Helpers for scenarios: fds, I/O, loop driving with generous bounds, and a backend wrapper
//! that counts interest changes. Modelled on mio's `tests/util`: helpers are
//! `#[track_caller]`, so a failure points at the scenario line.

use evloop_core::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::backend::ReadyList;
use evloop_core::fd::{read, write};
use evloop_core::{
    Backend, Base, BevOptions, BufferedSocket, Context, EventFlags, EventId, Features, Fired,
    Interest, Listener, ListenerOptions, LoopFlags, Registry,
};
use rustix::io::Errno;

/// Raw-fd events, for the scenarios that are about raw fds — an fd closed or its number
/// reused under its event, numbers nobody opened, an event that owns no fd, the same fd in
/// evloop and in a reference poller — and for `once`, which has only a raw form: `watch` is
/// `Registry::new_event`, `watch_once` is `Registry::once`, without an `unsafe` block at
/// every call. Every other scenario watches fds its events own (`new_owned_event`,
/// `new_event_on`, [`owned_logging_event`]).
pub trait WatchRaw<D> {
    /// `Registry::new_event`.
    fn watch(
        &mut self,
        fd: RawFd,
        flags: Interest,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId>;

    /// `Registry::once`.
    fn watch_once(
        &mut self,
        fd: RawFd,
        flags: Interest,
        timeout: Option<Duration>,
        callback: impl FnOnce(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<()>;
}

impl<D> WatchRaw<D> for Registry<D> {
    fn watch(
        &mut self,
        fd: RawFd,
        flags: Interest,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        // SAFETY: a scenario keeps each fd open until it freed the fd's events, except the
        // scenarios that close one under its event on purpose, to check what the contract
        // promises then (one error report, then quiet); none of them does I/O through a
        // borrowed fd after the close.
        unsafe { self.new_event(fd, flags, callback) }
    }

    fn watch_once(
        &mut self,
        fd: RawFd,
        flags: Interest,
        timeout: Option<Duration>,
        callback: impl FnOnce(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<()> {
        // SAFETY: as in `watch`.
        unsafe { self.once(fd, flags, timeout, callback) }
    }
}

/// What ran, in order: a name and what fired for its callback.
pub type Log = Vec<(&'static str, Fired)>;

/// A callback that logs `name` and what fired.
pub fn log_as(name: &'static str) -> impl FnMut(&mut Context<'_, Log>, &mut Log) + 'static {
    move |ctx, log| log.push((name, ctx.fired()))
}

/// A new (not yet added) event on `fd` whose callback logs `name` and what fired.
#[track_caller]
pub fn logging_event(
    base: &mut Base<Log>,
    fd: RawFd,
    flags: Interest,
    name: &'static str,
) -> EventId {
    base.watch(fd, flags, log_as(name)).unwrap()
}

/// A new (not yet added) event owning `fd` whose callback logs `name` and what fired: the
/// safe form of [`logging_event`], for scenarios that do not need the raw fd.
#[track_caller]
pub fn owned_logging_event(
    base: &mut Base<Log>,
    fd: OwnedFd,
    flags: Interest,
    name: &'static str,
) -> EventId {
    base.new_owned_event(fd, flags, log_as(name)).unwrap()
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

/// A non-blocking, close-on-exec AF_UNIX stream socket pair (on Windows a connected pair of
/// loopback TCP sockets, which every Windows mechanism can watch). (macOS has no
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, so the flags are set afterwards, portably.)
#[track_caller]
#[cfg(windows)]
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    evloop_core::fd::socket_pair().expect("loopback socket pair")
}

/// A non-blocking, close-on-exec AF_UNIX stream socket pair (on Windows a connected pair of
/// loopback TCP sockets, which every Windows mechanism can watch). (macOS has no
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, so the flags are set afterwards, portably.)
#[track_caller]
#[cfg(unix)]
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    use rustix::net::{socketpair as sys_socketpair, AddressFamily, SocketFlags, SocketType};
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
    let n = write(fd.as_fd(), bytes).expect("write");
    assert_eq!(n, bytes.len(), "short write");
}

/// Read whatever is available (until `EAGAIN` or end of file).
pub fn read_available(fd: impl AsFd) -> Vec<u8> {
    read_available_or_eof(fd).0
}

/// Read what `fd` has without blocking; returns the bytes and whether the peer closed (end
/// of file after them).
pub fn read_available_or_eof(fd: impl AsFd) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match read(fd.as_fd(), &mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::AGAIN) => return (out, false),
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
        match write(fd.as_fd(), &chunk) {
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
/// be opening fds): returns the pair's other end and the renumbered one. Unix: Windows socket
/// values are not numbers a program can choose.
#[cfg(unix)]
pub fn renumber(fd: OwnedFd) -> (OwnedFd, OwnedFd) {
    let number = raw(&fd);
    let (peer, fresh) = socketpair();
    let mut renumbered = fd;
    rustix::io::dup2(&fresh, &mut renumbered).unwrap();
    assert_eq!(raw(&renumbered), number);
    (peer, renumbered)
}

/// Raise the soft fd limit to the hard limit, for the scenarios that open thousands of fds.
/// (Windows has no such limit to raise.)
#[cfg(windows)]
pub fn raise_fd_limit() -> u64 {
    u64::MAX
}

/// Raise the soft fd limit to the hard limit, for the scenarios that open thousands of fds.
#[cfg(unix)]
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// What a test wrapper changes about a backend: its `change` and `dispatch`, each given the
/// wrapped backend (the defaults forward unchanged). Every other [`Backend`] method reaches
/// the wrapped backend through [`Wrapped`], so wrapping kqueue keeps its signals, its waker
/// and its reinit.
pub trait Intercept {
    /// A `change` of the wrapped backend.
    ///
    /// # Errors
    ///
    /// What the interceptor or the backend returns.
    fn change(
        &mut self,
        inner: &mut dyn Backend,
        fd: RawFd,
        old: EventFlags,
        new: EventFlags,
    ) -> io::Result<()> {
        inner.change(fd, old, new)
    }

    /// A `dispatch` of the wrapped backend.
    ///
    /// # Errors
    ///
    /// What the interceptor or the backend returns.
    fn dispatch(
        &mut self,
        inner: &mut dyn Backend,
        timeout: Option<Duration>,
        ready: &mut ReadyList,
    ) -> io::Result<()> {
        inner.dispatch(timeout, ready)
    }
}

/// Forwards nothing differently.
impl Intercept for () {}

/// A backend wrapped with an [`Intercept`]: every method of [`Backend`] is forwarded, and
/// `change` and `dispatch` go through the interceptor.
pub struct Wrapped<I> {
    inner: Box<dyn Backend>,
    intercept: I,
}

impl<I: Intercept> Wrapped<I> {
    /// Wrap `inner`.
    pub fn new(inner: Box<dyn Backend>, intercept: I) -> Self {
        Self { inner, intercept }
    }
}

impl<I: Intercept> Backend for Wrapped<I> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        self.intercept.change(&mut *self.inner, fd, old, new)
    }
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        self.intercept.dispatch(&mut *self.inner, timeout, ready)
    }
    fn immediate_changes(&self) -> bool {
        self.inner.immediate_changes()
    }
    fn need_reinit(&self) -> bool {
        self.inner.need_reinit()
    }
    fn reinit(&mut self) -> io::Result<()> {
        self.inner.reinit()
    }
    fn handles_signals(&self) -> bool {
        self.inner.handles_signals()
    }
    fn add_signal(&mut self, signo: i32) -> io::Result<()> {
        self.inner.add_signal(signo)
    }
    fn waker(&mut self) -> Option<io::Result<std::sync::Arc<dyn evloop_core::backend::Waker>>> {
        self.inner.waker()
    }
    fn del_signal(&mut self, signo: i32) -> io::Result<()> {
        self.inner.del_signal(signo)
    }
    fn timeout_resolution(&self) -> Duration {
        self.inner.timeout_resolution()
    }
    fn set_precise_timeouts(&mut self) -> io::Result<()> {
        self.inner.set_precise_timeouts()
    }
}

/// Counts the interest changes a backend is told about (each is a syscall on epoll and kqueue).
#[derive(Clone, Default)]
pub struct ChangeCounter(Rc<Cell<usize>>);

impl ChangeCounter {
    /// Changes so far.
    pub fn get(&self) -> usize {
        self.0.get()
    }
}

impl Intercept for ChangeCounter {
    fn change(
        &mut self,
        inner: &mut dyn Backend,
        fd: RawFd,
        old: EventFlags,
        new: EventFlags,
    ) -> io::Result<()> {
        self.0.set(self.0.get() + 1);
        inner.change(fd, old, new)
    }
}

/// Wrap `inner` so that its `change` calls are counted.
pub fn counting(inner: Box<dyn Backend>) -> (Wrapped<ChangeCounter>, ChangeCounter) {
    let counter = ChangeCounter::default();
    (Wrapped::new(inner, counter.clone()), counter)
}

/// A xorshift64 generator: deterministic randomness for the scenarios, no crate needed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number (the state must not be zero).
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
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
        let mut bev = bev.on(ctx);
        bev.set_read_callback(|bev, _| {
            let (input, output) = bev.buffers();
            output.append_buffer(input).expect("unfrozen buffers");
        });
        bev.set_event_callback(|bev, _| {
            bev.free();
        });
        bev.enable(Interest::READ | Interest::WRITE)
            .expect("enable");
    })
    .expect("listen on loopback")
}

/// A waker that does nothing, for polling a future by hand (`Waker::noop` needs Rust 1.85).
pub fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// A connected TCP pair on loopback: ours (non-blocking) and the peer's (blocking, with a
/// read timeout of [`patience`]).
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (ours, _) = listener.accept().expect("accept");
    ours.set_nonblocking(true).unwrap();
    peer.set_read_timeout(Some(patience())).unwrap();
    (ours, peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Answers every method with something no default gives, and records the calls.
    struct Probe(Arc<AtomicUsize>);
    struct NoWake;
    impl evloop_core::backend::Waker for NoWake {
        fn wake(&self) {}
    }
    impl Backend for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn features(&self) -> Features {
            Features::EDGE_TRIGGERED
        }
        fn change(&mut self, _: RawFd, _: EventFlags, _: EventFlags) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn dispatch(&mut self, _: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
            ready.push_wake();
            Ok(())
        }
        fn immediate_changes(&self) -> bool {
            true
        }
        fn need_reinit(&self) -> bool {
            true
        }
        fn reinit(&mut self) -> io::Result<()> {
            self.0.fetch_add(10, Ordering::SeqCst);
            Ok(())
        }
        fn handles_signals(&self) -> bool {
            true
        }
        fn add_signal(&mut self, _: i32) -> io::Result<()> {
            self.0.fetch_add(100, Ordering::SeqCst);
            Ok(())
        }
        fn waker(&mut self) -> Option<io::Result<Arc<dyn evloop_core::backend::Waker>>> {
            Some(Ok(Arc::new(NoWake)))
        }
        fn del_signal(&mut self, _: i32) -> io::Result<()> {
            self.0.fetch_add(1000, Ordering::SeqCst);
            Ok(())
        }
    }

    fn forwards_everything(mut b: impl Backend, calls: &AtomicUsize) {
        assert_eq!(b.name(), "probe");
        assert_eq!(b.features(), Features::EDGE_TRIGGERED);
        assert!(b.immediate_changes() && b.need_reinit() && b.handles_signals());
        assert!(b.waker().is_some());
        let mut ready = ReadyList::new();
        b.dispatch(None, &mut ready).unwrap();
        assert!(ready.woken());
        b.change(3, EventFlags::empty(), EventFlags::READ).unwrap();
        b.reinit().unwrap();
        b.add_signal(10).unwrap();
        b.del_signal(10).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1111);
    }

    #[test]
    fn wrappers_forward_every_backend_method() {
        let calls = Arc::new(AtomicUsize::new(0));
        forwards_everything(Wrapped::new(Box::new(Probe(calls.clone())), ()), &calls);
        let calls = Arc::new(AtomicUsize::new(0));
        let (counting, counter) = counting(Box::new(Probe(calls.clone())));
        forwards_everything(counting, &calls);
        assert_eq!(counter.get(), 1);
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
