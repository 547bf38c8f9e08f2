//! The contract between the core and an OS mechanism (libevent's `eventop`).
//!
//! A backend knows nothing of events, callbacks or timers. The core merges every event that
//! watches one fd into a single *combined interest* (see the core's `io_map` module) and tells
//! the backend only how that interest changes; the backend waits and reports which fds are
//! ready. Everything else — timeouts, priorities, persistence, which events to wake — is the
//! core's, so every backend gets the same semantics for free.
//!
//! # The contract
//!
//! * [`change`](Backend::change)`(fd, old, new)`: the combined interest of `fd` goes from `old`
//!   to `new`. Both contain only [`READ`](EventFlags::READ), [`WRITE`](EventFlags::WRITE),
//!   [`CLOSED`](EventFlags::CLOSED) and [`ET`](EventFlags::ET). `old` is what the core last
//!   told the backend successfully, with one exception: when the core suspects the fd number
//!   was closed and reused, it passes `old = empty` for an fd the backend may still hold, and
//!   the backend must then register the fd afresh (epoll: `ADD`, falling back to `MOD` on
//!   `EEXIST`). A change with `old` not empty for an fd the kernel no longer holds (closed,
//!   perhaps reused since: epoll's `MOD` fails with `ENOENT`) must fail with
//!   [`NotFound`](std::io::ErrorKind::NotFound): the core then reports the old events as
//!   closed and registers the fd afresh. A new event on an fd that already has registered
//!   events is checked this way, with `change(fd, old, old)`, so a number reused under a
//!   forgotten registration is noticed. `new = empty` means forget the fd; failures of that removal caused by the fd
//!   being closed already must be ignored. An error is returned to whoever caused the change,
//!   with a message naming the fd.
//! * By default the core coalesces changes made between two waits (its *change list*): an fd
//!   deleted and re-added before the next [`dispatch`](Backend::dispatch) costs no call at all.
//!   New registrations are applied at once so that their errors (a closed fd, a regular file
//!   on epoll) reach the caller of `add`, and so is the removal of an fd whose last event is
//!   freed, so that the kernel hears of it before the fd is closed. A backend that wants every
//!   change at once returns `true` from [`immediate_changes`](Backend::immediate_changes).
//!   A backend that queues changes itself (kqueue batches them into the next `kevent`) must
//!   still apply the changes of one fd in the order they were made: a registration it
//!   applies at once goes after that fd's queued changes, not before them.
//! * [`dispatch`](Backend::dispatch)`(timeout, ready)`: wait at most `timeout` (`None`: no
//!   limit; zero: do not block) and push every ready fd with its readiness onto `ready`.
//!   Readiness holds READ, WRITE and CLOSED; errors and hang-ups report READ|WRITE so that the
//!   callbacks' own I/O sees the error. An fd found closed while still registered (poll's
//!   `POLLNVAL`) is pushed with [`ReadyList::push_closed`] instead: the core reports it to
//!   its events once and deletes them. A wait cut short by a signal (`EINTR`) is not an
//!   error: return `Ok(())` with what is ready, possibly nothing. The timeout must be rounded
//!   *up* to the mechanism's resolution (never wake early) and clamped to what it accepts.
//!   Reporting an fd that is not ready, or one nobody watches any more, is allowed: the core
//!   filters.
//! * [`features`](Backend::features): advertise [`Features::EDGE_TRIGGERED`] only if `ET` is
//!   honoured (the core refuses `ET` otherwise), and [`Features::EARLY_CLOSE`] only if CLOSED
//!   is reported by the kernel (the core emulates it otherwise by watching READ and checking
//!   for end of file).
//! * [`need_reinit`](Backend::need_reinit) and [`reinit`](Backend::reinit): after `fork`, a
//!   backend whose kernel object is shared with the parent re-creates it; the core then calls
//!   `change(fd, empty, interest)` for every fd it watches.
//!
//! The conformance suite (`evloop-conformance`) checks all of this scenario by scenario;
//! run it against a new backend before trusting it.

use crate::fd::RawFd;
use std::io;
use std::time::Duration;

use crate::flags::{EventFlags, Features};

/// An OS readiness mechanism: epoll, kqueue, poll, select, or your own.
///
/// See the [module documentation](self) for the contract every method follows.
///
/// # Examples
///
/// A backend that never reports anything: enough for timers, manual activation and the loop
/// logic, and a template for the shape of a real one.
///
/// ```
/// use std::{io, time::Duration};
/// use evloop::fd::RawFd;
/// use evloop::backend::{Backend, ReadyList};
/// use evloop::{Base, EventFlags, Features, TimerKind};
///
/// struct Sleeper;
/// impl Backend for Sleeper {
///     fn name(&self) -> &'static str { "sleeper" }
///     fn features(&self) -> Features { Features::O1 }
///     fn change(&mut self, fd: RawFd, _old: EventFlags, _new: EventFlags) -> io::Result<()> {
///         Err(io::Error::new(io::ErrorKind::Unsupported, format!("sleeper cannot watch fd {fd}")))
///     }
///     fn dispatch(&mut self, timeout: Option<Duration>, _ready: &mut ReadyList) -> io::Result<()> {
///         std::thread::sleep(timeout.unwrap_or(Duration::from_millis(10)));
///         Ok(())
///     }
/// }
///
/// let mut base: Base = Base::with_backend(Box::new(Sleeper), Default::default()).unwrap();
/// let t = base.new_timer(TimerKind::OneShot, |ctx, _| ctx.loop_break()).unwrap();
/// base.add(t, Some(Duration::from_millis(1))).unwrap();
/// base.run(&mut ()).unwrap();
/// assert!(base.got_break());
/// ```
pub trait Backend {
    /// A short lowercase name (`"epoll"`), as printed by `EVENT_SHOW_METHOD`.
    fn name(&self) -> &'static str;

    /// What this backend can do.
    fn features(&self) -> Features;

    /// The combined interest of `fd` changes from `old` to `new`.
    ///
    /// # Errors
    ///
    /// The OS error, with a message naming the fd and the backend, when the kernel refuses
    /// the registration (a closed fd, a regular file on epoll, a limit reached).
    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()>;

    /// Wait at most `timeout` and push every ready fd onto `ready`.
    ///
    /// # Errors
    ///
    /// A hard error of the wait itself (`ENOMEM`, say). `EINTR` is not an error.
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()>;

    /// The unit `dispatch` rounds its timeout up to: how late, beyond the OS's own wake-up
    /// latency, a wait for a timer can end. The default, one millisecond, is the coarsest
    /// unit any supported mechanism counts in; a backend that waits more finely says so.
    fn timeout_resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    /// Wait with the finest timeout the mechanism offers from now on, even at some cost per
    /// wait (a base made with `BaseOptions::precise_timers` calls this once, before its first
    /// wait); afterwards [`timeout_resolution`](Self::timeout_resolution) says what it is. The
    /// default does nothing: right for a backend that waits as finely as it can already.
    ///
    /// # Errors
    ///
    /// Creating what the finer waits need failed (epoll's fallback timerfd, say).
    fn set_precise_timeouts(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether every interest change must reach the backend at once instead of being
    /// coalesced until the next dispatch. Default: `false`.
    fn immediate_changes(&self) -> bool {
        false
    }

    /// Whether the kernel object behind this backend must be re-created after `fork` in the
    /// child. Default: `false` (stateless mechanisms such as poll and select).
    fn need_reinit(&self) -> bool {
        false
    }

    /// Re-create the kernel object after `fork`; the core re-adds every fd afterwards.
    /// Default: nothing to do.
    ///
    /// # Errors
    ///
    /// The OS error if the new object cannot be created.
    fn reinit(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether the backend delivers signals itself (kqueue's `EVFILT_SIGNAL`), through
    /// [`ReadyList::push_signal`]. Default: `false`, and the core uses its self-pipe (or
    /// signalfd) for every backend.
    fn handles_signals(&self) -> bool {
        false
    }

    /// Start delivering `signo`; called only if [`handles_signals`](Backend::handles_signals),
    /// when the first event watches it. The backend owns the signal's disposition until
    /// [`del_signal`](Backend::del_signal). Default: unsupported.
    ///
    /// # Errors
    ///
    /// The OS error, naming the signal.
    fn add_signal(&mut self, signo: i32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "backend {} does not deliver signals (signal {signo})",
                self.name()
            ),
        ))
    }

    /// A way for other threads to interrupt this backend's wait, where the mechanism has one
    /// (kqueue's `EVFILT_USER`); a wait it interrupts reports [`ReadyList::push_wake`].
    /// Called when the base's first [`Handle`](crate::Handle) is made, and again after
    /// [`reinit`](Backend::reinit). Default: `None`, and the core wakes the loop through an
    /// eventfd (Linux) or a pipe that it watches like any fd.
    ///
    /// # Errors
    ///
    /// Registering the wake-up with the kernel failed.
    fn waker(&mut self) -> Option<io::Result<std::sync::Arc<dyn Waker>>> {
        None
    }

    /// Stop delivering `signo` and restore its disposition. Default: nothing to do.
    ///
    /// # Errors
    ///
    /// The OS error, naming the signal.
    fn del_signal(&mut self, signo: i32) -> io::Result<()> {
        let _ = signo;
        Ok(())
    }
}

/// Interrupts a backend's wait from any thread (see [`Backend::waker`]).
pub trait Waker: Send + Sync {
    /// Make the current or next wait return, reporting [`ReadyList::push_wake`]. Many calls
    /// before the wait returns may be reported once.
    fn wake(&self);
}

/// The fds a backend found ready in one dispatch, with their readiness.
///
/// The core keeps one list per base and clears it before each dispatch, so pushing does not
/// allocate once the list has grown to the largest batch seen.
#[derive(Debug, Default)]
pub struct ReadyList {
    items: Vec<(RawFd, EventFlags)>,
    closed: Vec<RawFd>,
    signals: Vec<(i32, u32)>,
    woken: bool,
}

impl ReadyList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Report `fd` as ready with `readiness` (READ, WRITE and/or CLOSED).
    #[inline]
    pub fn push(&mut self, fd: RawFd, readiness: EventFlags) {
        self.items.push((fd, readiness));
    }

    /// Report every `(fd, readiness)` of `ready` (one capacity check for all of them).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::backend::ReadyList;
    /// use evloop::EventFlags;
    /// let mut ready = ReadyList::new();
    /// ready.extend([(3, EventFlags::READ), (4, EventFlags::WRITE)]);
    /// assert_eq!(ready.len(), 2);
    /// ```
    #[inline]
    pub fn extend(&mut self, ready: impl IntoIterator<Item = (RawFd, EventFlags)>) {
        self.items.extend(ready);
    }

    /// How many fds were reported.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The reported fds in report order.
    pub fn iter(&self) -> impl Iterator<Item = (RawFd, EventFlags)> + '_ {
        self.items.iter().copied()
    }

    /// Report that `fd` was closed while still registered (poll's `POLLNVAL`, select's
    /// `EBADF`). The core reports it once to the fd's events and deletes them, so a closed fd
    /// is one error event and then quiet, never a spin.
    pub fn push_closed(&mut self, fd: RawFd) {
        self.closed.push(fd);
    }

    /// The fds reported closed.
    pub fn closed(&self) -> &[RawFd] {
        &self.closed
    }

    /// Report `count` deliveries of signal `signo` (backends that
    /// [handle signals](Backend::handles_signals) only).
    pub fn push_signal(&mut self, signo: i32, count: u32) {
        self.signals.push((signo, count));
    }

    /// Report that the backend's [`Waker`] interrupted this wait.
    pub fn push_wake(&mut self) {
        self.woken = true;
    }

    /// Whether the backend's [`Waker`] interrupted this wait.
    pub fn woken(&self) -> bool {
        self.woken
    }

    /// The reported signal deliveries.
    pub fn signals(&self) -> impl Iterator<Item = (i32, u32)> + '_ {
        self.signals.iter().copied()
    }

    /// Forget every report, keeping the allocation.
    pub fn clear(&mut self) {
        self.items.clear();
        self.closed.clear();
        self.signals.clear();
        self.woken = false;
    }

    pub(crate) fn take_woken(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    pub(crate) fn take_signals(&mut self, out: &mut Vec<(i32, u32)>) {
        out.append(&mut self.signals);
    }
}

/// Whether `fd` is an open file descriptor (`fcntl(F_GETFD)`; on Windows, whether it is a
/// socket: `getsockopt(SO_TYPE)`): for mechanisms whose registration does not check the fd
/// itself (poll, select), so that adding a closed fd is an error at once, and for the core
/// before its per-fd table grows to a new fd number.
///
/// # Errors
///
/// `EBADF` (`WSAENOTSOCK` on Windows) from the kernel, as the OS error.
///
/// # Examples
///
/// ```
/// use evloop::fd::AsRawFd;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// assert!(evloop::backend::fd_is_open(listener.as_raw_fd()).is_ok());
/// assert!(evloop::backend::fd_is_open(evloop::fd::NO_FD).is_err());
/// # #[cfg(unix)]
/// assert!(evloop::backend::fd_is_open(1 << 30).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fd_is_open(fd: RawFd) -> io::Result<()> {
    if !crate::fd::is_valid(fd) {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::BADF.raw_os_error(),
        ));
    }
    // SAFETY: the call only inspects the descriptor (socket) table; a closed fd gives EBADF
    // (WSAENOTSOCK).
    let borrowed = unsafe { crate::fd::BorrowedFd::borrow_raw(fd) };
    #[cfg(unix)]
    let result = rustix::io::fcntl_getfd(borrowed).map(drop);
    #[cfg(windows)]
    let result = rustix::net::sockopt::socket_type(borrowed).map(drop);
    result.map_err(Into::into)
}

/// Which open file an fd refers to: device and inode on Unix, the socket on Windows. A
/// backend without kernel registrations (poll, select) keeps it per fd, so a revalidating
/// `change(fd, old, old)` can tell a number reused for another file from the one registered
/// under it and fail with `NotFound` as the contract asks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FileId(u64, u64);

impl FileId {
    /// The file `fd` refers to now.
    ///
    /// # Errors
    ///
    /// `EBADF` (`WSAENOTSOCK` on Windows) for a closed fd, as [`fd_is_open`] gives.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::backend::FileId;
    /// use evloop::fd::AsRawFd;
    /// let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// assert_eq!(FileId::of(a.as_raw_fd())?, FileId::of(a.as_raw_fd())?);
    /// assert_ne!(FileId::of(a.as_raw_fd())?, FileId::of(b.as_raw_fd())?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of(fd: RawFd) -> io::Result<FileId> {
        fd_is_open(fd)?;
        #[cfg(unix)]
        {
            // SAFETY: fstat only reads the fd's metadata; `fd` was open a moment ago, and a
            // close since gives EBADF.
            let borrowed = unsafe { crate::fd::BorrowedFd::borrow_raw(fd) };
            let st = rustix::fs::fstat(borrowed)?;
            #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
            Ok(FileId(st.st_dev as u64, st.st_ino as u64))
        }
        #[cfg(windows)]
        {
            #[allow(clippy::unnecessary_cast)]
            Ok(FileId(fd as u64, 0))
        }
    }
}

/// The error of a revalidating change (see the contract) whose fd now names another file.
pub fn registration_lost(backend: &str, fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{backend}: fd {fd} was closed (and its number reused) while registered"),
    )
}

/// Build the error a backend returns when the kernel refuses `fd`: the OS error kind, with a
/// message naming the backend, the operation and the fd.
///
/// # Examples
///
/// ```
/// let e = evloop::backend::fd_error("epoll", "add", 7, std::io::Error::from_raw_os_error(9));
/// assert!(e.to_string().contains("fd 7"));
/// ```
pub fn fd_error(backend: &str, op: &str, fd: RawFd, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{backend}: cannot {op} fd {fd}: {err}"))
}

/// An OS error with a message naming what failed: `"{what}: {err}"`, of the error's kind.
///
/// # Examples
///
/// ```
/// let e = evloop::backend::os_error("epoll_wait", std::io::Error::from_raw_os_error(4));
/// assert!(e.to_string().starts_with("epoll_wait: "));
/// ```
pub fn os_error(what: &str, err: impl Into<io::Error>) -> io::Error {
    let err = err.into();
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// The longest single wait handed to the kernel: 35 minutes, as libevent does. Older Linux
/// kernels mishandle larger epoll timeouts, and a larger `i32` millisecond count would make
/// rustix switch to `epoll_pwait2`, which kernels before 5.11 lack. The loop simply waits
/// again when nothing happened, so clamping costs one wake-up per 35 minutes.
pub const MAX_WAIT: Duration = Duration::from_secs(35 * 60);

/// Convert the core's timeout to the `Timespec` the wait syscalls take: `None` stays `None`
/// (wait without limit), anything longer than [`MAX_WAIT`] is clamped. Sub-millisecond
/// precision is kept; rustix rounds up where the syscall counts milliseconds, so a wait never
/// ends before the timer it waits for.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::backend::{wait_timeout, MAX_WAIT};
/// assert_eq!(wait_timeout(Some(Duration::MAX)).unwrap().tv_sec as u64, MAX_WAIT.as_secs());
/// assert_eq!(wait_timeout(Some(Duration::from_micros(1500))).unwrap().tv_nsec, 1_500_000);
/// ```
pub fn wait_timeout(timeout: Option<Duration>) -> Option<rustix::event::Timespec> {
    timeout.map(|t| {
        let t = t.min(MAX_WAIT);
        rustix::event::Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        }
    })
}

impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.name())
    }
}
