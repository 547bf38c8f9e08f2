//! evloop's epoll backend (Linux): O(1) registration and dispatch, edge-triggered events, and
//! CLOSED through `EPOLLRDHUP`.
//!
//! It implements the contract written down in `evloop_core::backend`; what is particular to
//! epoll is handled where it arises:
//! * the kernel's view and ours can differ (an fd closed and reused, a `dup`'d fd): `MOD`
//!   failing with `ENOENT` is retried as `ADD`, `ADD` failing with `EEXIST` as `MOD`, and
//!   `DEL` failing because the fd is gone is ignored;
//! * regular files and directories give `EPERM`: reported as an error naming the fd;
//! * `EPOLLERR` and `EPOLLHUP` report READ|WRITE so the callback's own I/O sees the error;
//! * timeouts are rounded up to milliseconds and clamped (see `evloop_core::backend::MAX_WAIT`);
//!   with precise timeouts (`BaseOptions::precise_timers`) a timerfd in the epoll set ends a
//!   wait whose timeout is not a whole number of milliseconds, to the nanosecond.
//!   (`epoll_pwait2` takes a timespec too, but the kernel adds the thread's timer slack, 50 µs
//!   by default, to such a sleep and none to a timerfd's expiry: measured with
//!   `loop_hooks`, a 1 ms timer ran 80 µs late at the median through `epoll_pwait2` and 28 µs
//!   through the timerfd.)
//!
//! References: epoll_ctl(2), epoll_wait(2), timerfd_create(2), prctl(2) `PR_SET_TIMERSLACK`.
//!
//! On systems without epoll this crate is empty, so a workspace build for the BSDs or macOS
//! still compiles.

#![cfg(has_epoll)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use evloop_core::backend::wait_timeout;
use evloop_core::backend::{fd_error, ReadyList};
use evloop_core::{Backend, EventFlags, Features};
use rustix::event::epoll;
use rustix::io::Errno;

/// The most events taken from the kernel in one wait; the buffer starts small and doubles
/// while waits fill it (libevent's policy).
const MAX_EVENTS: usize = 4096;
const INITIAL_EVENTS: usize = 64;

/// The epoll backend.
///
/// # Examples
///
/// ```
/// use evloop_core::{Backend, Base};
/// let backend = evloop_epoll::EpollBackend::new().unwrap();
/// assert_eq!(backend.name(), "epoll");
/// let base: Base = Base::with_backend(Box::new(backend), Default::default()).unwrap();
/// assert_eq!(base.method(), "epoll");
/// ```
pub struct EpollBackend {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
    precision: Precision,
}

/// How a wait's timeout reaches the kernel.
#[derive(Debug)]
enum Precision {
    /// `epoll_wait`'s milliseconds, rounded up by rustix: the default, no cost.
    Millis,
    /// A timerfd in the epoll set, armed before a wait whose timeout is not whole
    /// milliseconds (one more syscall then; it expires without the timer slack a sleeping
    /// `epoll_wait` or `epoll_pwait2` gets); epoll's own timeout, rounded up, backs it.
    Timerfd(OwnedFd),
}

impl std::fmt::Debug for EpollBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollBackend")
            .field("epoll", &self.epoll)
            .finish()
    }
}

impl EpollBackend {
    /// After a wait that filled the buffer, which may have left ready fds behind: grow the
    /// buffer and take the rest at once (not blocking), so no fd waits for another iteration
    /// because the buffer was small. epoll hands out fds not yet reported before those it
    /// reports again, so this ends once the buffer is larger than the number of ready fds.
    /// The buffer keeps the size it needed, up to `MAX_EVENTS` (libevent's policy).
    #[cold]
    fn take_the_rest(&mut self) {
        while self.events.len() == self.events.capacity() {
            self.events.reserve(self.events.capacity());
            let got = epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.events),
                Some(&rustix::event::Timespec::default()),
            );
            if got.is_err() {
                break; // EINTR or worse: what we have is reported; the next wait sees the rest
            }
        }
        if self.events.capacity() > MAX_EVENTS {
            self.events.shrink_to(MAX_EVENTS);
        }
    }

    /// A new epoll instance (close-on-exec).
    ///
    /// # Errors
    ///
    /// `epoll_create1`'s error (the fd limit, say).
    pub fn new() -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| evloop_core::backend::os_error("epoll_create1", e))?;
        Ok(Self {
            epoll,
            events: Vec::with_capacity(INITIAL_EVENTS),
            precision: Precision::Millis,
        })
    }

    /// Switch to precise timeouts: a timerfd in the epoll set.
    fn use_timerfd(&mut self) -> io::Result<()> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .map_err(|e| evloop_core::backend::os_error("timerfd_create", e))?;
        // Edge-triggered: an expiry is reported once, and arming the timer again (which
        // resets its count) is all the clearing it needs, without a read.
        let data = epoll::EventData::new_u64(timer.as_raw_fd() as u64);
        epoll::add(
            &self.epoll,
            &timer,
            data,
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .map_err(|e| evloop_core::backend::os_error("epoll_ctl(timerfd)", e))?;
        self.precision = Precision::Timerfd(timer);
        Ok(())
    }

    /// One wait, with the timeout as precise as `self.precision` allows.
    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> rustix::io::Result<()> {
        match &self.precision {
            Precision::Millis => plain_wait(&self.epoll, &mut self.events, timeout),
            _ => self.wait_precisely(timeout),
        }
    }

    #[cold]
    fn wait_precisely(&mut self, timeout: Option<Duration>) -> rustix::io::Result<()> {
        let timer = match &self.precision {
            Precision::Millis => return plain_wait(&self.epoll, &mut self.events, timeout),
            Precision::Timerfd(timer) => timer,
        };
        // A whole number of milliseconds is what epoll_wait does exactly.
        if let Some(t) = timeout.filter(|t| t.subsec_nanos() % 1_000_000 != 0) {
            arm(timer, t)?;
        }
        plain_wait(&self.epoll, &mut self.events, timeout)?;
        // Our own timer's expiry is no fd of the user's. (Were it to slip through
        // `take_the_rest`, the core would drop it: no event watches that fd.)
        let own = timer.as_raw_fd() as u64;
        self.events.retain(|ev| ev.data.u64() != own);
        Ok(())
    }
}

/// `epoll_wait` with the timeout rounded up to milliseconds (by rustix) and clamped.
#[inline]
fn plain_wait(
    epoll: &OwnedFd,
    events: &mut Vec<epoll::Event>,
    timeout: Option<Duration>,
) -> rustix::io::Result<()> {
    epoll::wait(
        epoll,
        rustix::buffer::spare_capacity(events),
        wait_timeout(timeout).as_ref(),
    )
    .map(drop)
}

/// Arm `timer` to expire once, `after` from now (`timerfd_settime`, relative).
fn arm(timer: &OwnedFd, after: Duration) -> rustix::io::Result<()> {
    use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
    let value = Timespec {
        tv_sec: after.as_secs() as _,
        tv_nsec: after.subsec_nanos() as _,
    };
    let spec = Itimerspec {
        it_interval: Timespec::default(),
        it_value: value,
    };
    timerfd_settime(timer, TimerfdTimerFlags::empty(), &spec).map(drop)
}

/// The epoll flags for a combined interest.
pub fn epoll_flags(interest: EventFlags) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if interest.contains(EventFlags::READ) {
        f |= epoll::EventFlags::IN;
    }
    if interest.contains(EventFlags::WRITE) {
        f |= epoll::EventFlags::OUT;
    }
    if interest.contains(EventFlags::CLOSED) {
        f |= epoll::EventFlags::RDHUP;
    }
    if interest.contains(EventFlags::ET) {
        f |= epoll::EventFlags::ET;
    }
    f
}

/// The readiness an epoll event reports.
pub fn readiness(flags: epoll::EventFlags) -> EventFlags {
    let mut r = EventFlags::empty();
    if flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP) {
        r |= EventFlags::READ | EventFlags::WRITE;
    }
    if flags.contains(epoll::EventFlags::IN) {
        r |= EventFlags::READ;
    }
    if flags.contains(epoll::EventFlags::OUT) {
        r |= EventFlags::WRITE;
    }
    if flags.contains(epoll::EventFlags::RDHUP) {
        r |= EventFlags::CLOSED;
    }
    r
}

impl Backend for EpollBackend {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn features(&self) -> Features {
        Features::EDGE_TRIGGERED | Features::O1 | Features::EARLY_CLOSE | Features::CLOSE_TOLERANT
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        // SAFETY: the fd is only passed to epoll_ctl; if the caller closed it, the call fails
        // with EBADF, which is handled below like any other refusal.
        let source = unsafe { BorrowedFd::borrow_raw(fd) };
        let data = epoll::EventData::new_u64(fd as u64);
        let flags = epoll_flags(new);
        if new.is_empty() {
            return match epoll::delete(&self.epoll, source) {
                // Gone already: closed (the kernel dropped it), or never accepted.
                Ok(()) | Err(Errno::NOENT | Errno::BADF | Errno::PERM) => Ok(()),
                Err(e) => Err(fd_error("epoll", "delete", fd, e.into())),
            };
        }
        let result = if old.is_empty() {
            match epoll::add(&self.epoll, source, data, flags) {
                // Still registered: a dup'd fd, or a number reused before our delete ran.
                Err(Errno::EXIST) => epoll::modify(&self.epoll, source, data, flags),
                r => r,
            }
        } else {
            // ENOENT: closed (and perhaps reused) since we registered it, so the kernel forgot
            // it; the error's kind is NotFound, which tells the core so (see the contract).
            epoll::modify(&self.epoll, source, data, flags)
        };
        result.map_err(|e| match e {
            Errno::PERM => io::Error::new(
                io::ErrorKind::Unsupported,
                format!("epoll: cannot watch fd {fd}: epoll does not support this kind of file (a regular file or directory?); use the poll or select backend"),
            ),
            e => fd_error("epoll", if old.is_empty() { "add" } else { "modify" }, fd, e.into()),
        })
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        self.events.clear();
        match self.wait(timeout) {
            Ok(()) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(evloop_core::backend::os_error("epoll_wait", e)),
        }
        if self.events.len() == self.events.capacity() {
            self.take_the_rest();
        }
        ready.extend(
            self.events
                .iter()
                .map(|ev| (ev.data.u64() as RawFd, readiness(ev.flags))),
        );
        Ok(())
    }

    fn timeout_resolution(&self) -> Duration {
        match self.precision {
            Precision::Millis => Duration::from_millis(1),
            Precision::Timerfd(_) => Duration::from_nanos(1),
        }
    }

    fn set_precise_timeouts(&mut self) -> io::Result<()> {
        match self.precision {
            Precision::Millis => self.use_timerfd(),
            Precision::Timerfd(_) => Ok(()),
        }
    }

    fn need_reinit(&self) -> bool {
        true
    }

    /// After fork the epoll instance is shared with the parent: a new one is created and the
    /// old one merely closed, which leaves the parent's registrations alone.
    fn reinit(&mut self) -> io::Result<()> {
        let precise = matches!(self.precision, Precision::Timerfd(_));
        *self = Self::new()?;
        if precise {
            self.use_timerfd()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_maps_to_flags_and_back() {
        let all = EventFlags::READ | EventFlags::WRITE | EventFlags::CLOSED;
        assert_eq!(readiness(epoll_flags(all)), all);
        assert!(epoll_flags(EventFlags::READ | EventFlags::ET).contains(epoll::EventFlags::ET));
        assert_eq!(
            readiness(epoll::EventFlags::HUP),
            EventFlags::READ | EventFlags::WRITE
        );
    }

    /// A wait of `t` on an idle backend: how long it took (never less than `t`).
    fn idle_wait(b: &mut EpollBackend, t: Duration) -> Duration {
        let mut ready = ReadyList::new();
        let start = std::time::Instant::now();
        b.dispatch(Some(t), &mut ready).unwrap();
        let took = start.elapsed();
        assert!(ready.iter().next().is_none(), "nothing is watched");
        took
    }

    #[test]
    fn every_precision_waits_no_less_than_asked_and_reports_no_timerfd() {
        let t = Duration::from_micros(1_300);
        let mut millis = EpollBackend::new().unwrap();
        assert_eq!(millis.timeout_resolution(), Duration::from_millis(1));
        let mut precise = EpollBackend::new().unwrap();
        precise.set_precise_timeouts().unwrap();
        assert_eq!(precise.timeout_resolution(), Duration::from_nanos(1));
        for b in [&mut millis, &mut precise] {
            for _ in 0..5 {
                // Generous upper bound: timing goals live in the benchmarks.
                let took = idle_wait(b, t);
                assert!(
                    took >= t && took < Duration::from_secs(5),
                    "{:?}: {took:?}",
                    b.precision
                );
            }
            // Whole milliseconds and zero go the plain way in every mode.
            assert!(idle_wait(b, Duration::from_millis(2)) >= Duration::from_millis(2));
            assert!(idle_wait(b, Duration::ZERO) < Duration::from_secs(5));
        }
    }

    #[test]
    fn the_timerfd_way_still_reports_fds_and_survives_reinit() {
        let mut b = EpollBackend::new().unwrap();
        b.set_precise_timeouts().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        b.change(r.as_raw_fd(), EventFlags::empty(), EventFlags::READ)
            .unwrap();
        rustix::io::write(&w, b"x").unwrap();
        let mut ready = ReadyList::new();
        b.dispatch(Some(Duration::from_micros(1_500)), &mut ready)
            .unwrap();
        let got: Vec<_> = ready.iter().collect();
        assert_eq!(got, [(r.as_raw_fd(), EventFlags::READ)]);
        b.reinit().unwrap();
        assert!(matches!(b.precision, Precision::Timerfd(_)));
        assert!(idle_wait(&mut b, Duration::from_micros(700)) >= Duration::from_micros(700));
    }

    #[test]
    fn regular_files_are_refused_by_name() {
        let file = std::fs::File::open("/proc/self/exe")
            .or_else(|_| std::fs::File::open("Cargo.toml"))
            .unwrap();
        use std::os::fd::AsRawFd;
        let mut b = EpollBackend::new().unwrap();
        let err = b
            .change(file.as_raw_fd(), EventFlags::empty(), EventFlags::READ)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("fd {}", file.as_raw_fd())),
            "{err}"
        );
    }
}
