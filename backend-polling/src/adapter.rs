//! The adapter itself: a `Backend` over `polling::Poller` (see the crate documentation).

use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop_core::backend::MAX_WAIT;
use evloop_core::backend::{fd_error, ReadyList};
use evloop_core::fd::{BorrowedFd, RawFd};
use evloop_core::{Backend, EventFlags, Features};
use polling::{Event, Events, PollMode, Poller};

/// The most events taken in one wait; the buffer starts small and doubles while waits fill it.
const MAX_EVENTS: usize = 4096;
const INITIAL_EVENTS: NonZeroUsize = match NonZeroUsize::new(64) {
    Some(n) => n,
    None => unreachable!(),
};

/// Whether polling's mechanism on this system is O(1) per wait; elsewhere it falls back to
/// poll(2).
const O1: bool = cfg!(polling_o1);

/// The poller and the flag that tells a dispatch it was woken, shared with the [`Waker`]s.
///
/// [`Waker`]: evloop_core::backend::Waker
#[derive(Debug)]
struct Shared {
    poller: Poller,
    woken: AtomicBool,
}

impl evloop_core::backend::Waker for Shared {
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        // A failed notify leaves nothing to report to: the loop wakes at its next deadline.
        let _ = self.poller.notify();
    }
}

/// The `polling` adapter backend.
///
/// # Examples
///
/// ```
/// use evloop_core::{Backend, Base};
/// let backend = evloop_polling::PollingBackend::new().unwrap();
/// assert_eq!(backend.name(), "polling");
/// let base: Base = Base::with_backend(Box::new(backend), Default::default()).unwrap();
/// assert_eq!(base.method(), "polling");
/// ```
#[derive(Debug)]
pub struct PollingBackend {
    shared: Arc<Shared>,
    events: Events,
}

impl PollingBackend {
    /// A new poller (polling's `Poller::new`).
    ///
    /// # Errors
    ///
    /// The OS error of creating the poller (the fd or handle limit, say).
    pub fn new() -> io::Result<Self> {
        let poller =
            Poller::new().map_err(|e| evloop_core::backend::os_error("polling: new poller", e))?;
        Ok(Self {
            shared: Arc::new(Shared {
                poller,
                woken: AtomicBool::new(false),
            }),
            events: Events::with_capacity(INITIAL_EVENTS),
        })
    }
}

/// polling's interest for a combined interest: the fd is its own key.
pub fn interest(fd: RawFd, interest: EventFlags) -> Event {
    Event::new(
        fd as usize,
        interest.contains(EventFlags::READ),
        interest.contains(EventFlags::WRITE),
    )
}

/// The mode for a combined interest: edge-triggered with `ET`, level-triggered otherwise.
pub fn mode(interest: EventFlags) -> PollMode {
    if interest.contains(EventFlags::ET) {
        PollMode::Edge
    } else {
        PollMode::Level
    }
}

/// The readiness a polling event reports.
pub fn readiness(event: &Event) -> EventFlags {
    let mut r = EventFlags::empty();
    if event.is_interrupt() || event.is_err() == Some(true) {
        r |= EventFlags::READ | EventFlags::WRITE;
    }
    if event.readable {
        r |= EventFlags::READ;
    }
    if event.writable {
        r |= EventFlags::WRITE;
    }
    r
}

impl Backend for PollingBackend {
    fn name(&self) -> &'static str {
        "polling"
    }

    fn features(&self) -> Features {
        let mut f = Features::empty();
        if O1 {
            f |= Features::O1;
        }
        if self.shared.poller.supports_edge() {
            f |= Features::EDGE_TRIGGERED;
        }
        // epoll, kqueue, event ports and poll(2) drop or report a closed fd; IOCP's AFD polls
        // need the socket deleted before it is closed.
        if cfg!(unix) {
            f |= Features::CLOSE_TOLERANT;
        }
        f
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        let poller = &self.shared.poller;
        // SAFETY: the fd is only handed to the poller's own syscalls; if the caller closed it,
        // they fail with EBADF (or its IOCP equivalent), which is handled below.
        let source = unsafe { BorrowedFd::borrow_raw(fd) };
        if new.is_empty() {
            return match poller.delete(source) {
                // Gone already: closed (the kernel dropped it), or never accepted.
                Ok(()) => Ok(()),
                Err(e) if gone(&e) => Ok(()),
                Err(e) => Err(fd_error("polling", "delete", fd, e)),
            };
        }
        let (ev, mode) = (interest(fd, new), mode(new));
        let add = || {
            // SAFETY: polling asks that a source leave the poller before it is closed. The
            // core deletes an fd at once when its last event is freed, and documents that an
            // fd must outlive its events; an fd closed early only makes the kernel forget it
            // (epoll, kqueue, event ports) or fails the next poll of it (IOCP), never touches
            // memory.
            unsafe { poller.add_with_mode(fd, ev, mode) }
        };
        let result = if old.is_empty() {
            match add() {
                // Still registered: a dup'd fd, or a number reused before our delete ran.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    poller.modify_with_mode(source, ev, mode)
                }
                r => r,
            }
        } else {
            // NotFound: closed (and perhaps reused) since we registered it, so the kernel
            // forgot it; the core reports the old events and registers the fd afresh.
            poller.modify_with_mode(source, ev, mode)
        };
        result.map_err(|e| {
            let op = if old.is_empty() { "add" } else { "modify" };
            if e.kind() == io::ErrorKind::PermissionDenied {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("polling: cannot {op} fd {fd}: the mechanism beneath does not support this kind of file (a regular file or directory?); use the poll or select backend"),
                )
            } else {
                fd_error("polling", op, fd, e)
            }
        })
    }

    /// What polling's mechanism beneath waits in: milliseconds for IOCP on Windows (and
    /// for its poll(2) fallback); nanoseconds for event ports and kqueue, and for epoll,
    /// which polling backs with a timerfd.
    fn timeout_resolution(&self) -> Duration {
        if cfg!(all(polling_o1, not(windows))) {
            Duration::from_nanos(1)
        } else {
            Duration::from_millis(1)
        }
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        // polling turns a timeout into a deadline and retries on EINTR by itself.
        let mut timeout = timeout.map(|t| t.min(MAX_WAIT));
        // A wait that fills the buffer may have left ready fds behind: take the rest at once
        // (not blocking) with a buffer twice as large, so no fd waits for another iteration
        // because the buffer was small; this ends once the buffer outgrows the ready fds.
        loop {
            self.events.clear();
            self.shared
                .poller
                .wait(&mut self.events, timeout)
                .map_err(|e| evloop_core::backend::os_error("polling: wait", e))?;
            ready.extend(
                self.events
                    .iter()
                    .map(|ev| (ev.key as RawFd, readiness(&ev))),
            );
            let capacity = self.events.capacity();
            if self.events.len() < capacity.get() {
                break;
            }
            let two = NonZeroUsize::new(2).expect("two is not zero");
            self.events = Events::with_capacity(capacity.saturating_mul(two));
            timeout = Some(Duration::ZERO);
        }
        if self.shared.woken.swap(false, Ordering::AcqRel) {
            ready.push_wake();
        }
        // Keep the buffer that one wait needed, within bounds.
        if self.events.capacity().get() > MAX_EVENTS {
            let max = NonZeroUsize::new(MAX_EVENTS).expect("MAX_EVENTS is not zero");
            self.events = Events::with_capacity(max);
        }
        Ok(())
    }

    fn waker(&mut self) -> Option<io::Result<Arc<dyn evloop_core::backend::Waker>>> {
        Some(Ok(self.shared.clone()))
    }

    /// epoll and kqueue objects are shared with (or, for kqueue, not even inherited by) a
    /// forked child, so the child needs a poller of its own.
    fn need_reinit(&self) -> bool {
        cfg!(unix)
    }

    /// A new poller for the child. The old one is forgotten, not dropped: its `Drop` would
    /// deregister its notifier from the kernel object the parent still uses (epoll) or close
    /// fd numbers the child may have reused since (kqueue). Its few fds stay open in the child.
    fn reinit(&mut self) -> io::Result<()> {
        let fresh = Self::new()?;
        std::mem::forget(std::mem::replace(&mut self.shared, fresh.shared));
        self.events = fresh.events;
        Ok(())
    }
}

/// Whether a delete failed because the fd is no longer there to delete: `ENOENT` (closed, so
/// the kernel dropped it), `EBADF` (closed and not reused; `WSAENOTSOCK` on Windows), `EPERM`
/// (never accepted).
fn gone(e: &io::Error) -> bool {
    #[cfg(unix)]
    const CLOSED: i32 = libc::EBADF;
    #[cfg(windows)]
    const CLOSED: i32 = 10038; // WSAENOTSOCK
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(CLOSED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_maps_to_events_and_modes() {
        let ev = interest(7, EventFlags::READ | EventFlags::WRITE);
        assert_eq!((ev.key, ev.readable, ev.writable), (7, true, true));
        assert_eq!(mode(EventFlags::READ), PollMode::Level);
        assert_eq!(mode(EventFlags::READ | EventFlags::ET), PollMode::Edge);
        assert_eq!(readiness(&Event::writable(3)), EventFlags::WRITE);
    }

    #[test]
    fn a_waker_reports_one_wake_and_then_nothing() {
        let mut b = PollingBackend::new().unwrap();
        let waker = b.waker().unwrap().unwrap();
        waker.wake();
        waker.wake();
        let mut ready = ReadyList::new();
        b.dispatch(Some(Duration::from_secs(30)), &mut ready)
            .unwrap();
        assert!(ready.woken());
        ready.clear();
        b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
        assert!(!ready.woken());
    }
}
