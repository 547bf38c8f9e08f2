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
//! * timeouts are rounded up to milliseconds and clamped (see `evloop_core::backend::MAX_WAIT`).
//!
//! References: epoll_ctl(2), epoll_wait(2).
//!
//! On systems without epoll this crate is empty, so a workspace build for the BSDs or macOS
//! still compiles.

#![cfg(any(target_os = "linux", target_os = "android"))]

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
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
        })
    }
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
        let timeout = wait_timeout(timeout);
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
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

    fn need_reinit(&self) -> bool {
        true
    }

    /// After fork the epoll instance is shared with the parent: a new one is created and the
    /// old one merely closed, which leaves the parent's registrations alone.
    fn reinit(&mut self) -> io::Result<()> {
        *self = Self::new()?;
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
