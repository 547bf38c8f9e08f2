//! evloop's poll backend: portable to every Unix, any kind of fd, O(n) per wait.
//!
//! The interest lives in a compact `pollfd` array handed to poll(2) as is; `slot_of[fd]` is
//! the fd's index in it, so a change is O(1), and a removal moves the last entry into the
//! hole. poll(2) does not check fds when they are added, so a new registration checks the fd
//! with `fcntl(F_GETFD)` to give the caller of `add` a clear error. A closed fd that stays
//! registered comes back as `POLLNVAL`, reported to the core as closed (one error event to
//! its events, which are then deleted).
//! CLOSED uses `POLLRDHUP` on Linux and Android; elsewhere the core emulates it.
//!
//! References: poll(2).
//!
//! Unix only (Windows' `WSAPoll` is a different animal: on Windows the select backend and the
//! `polling` adapter serve); elsewhere this crate is empty.

#![cfg(unix)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use evloop_core::backend::wait_timeout;
use evloop_core::backend::{fd_error, ReadyList};
use evloop_core::backend::{registration_lost, FileId};
use evloop_core::{Backend, EventFlags, Features};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

const NO_SLOT: u32 = u32::MAX;

/// Whether the kernel reports a peer's close to poll(2) (`POLLRDHUP`).
const HAS_RDHUP: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The poll backend.
///
/// # Examples
///
/// ```
/// use evloop_core::{Backend, Base};
/// let base: Base = Base::with_backend(Box::new(evloop_poll::PollBackend::new()), Default::default()).unwrap();
/// assert_eq!(base.method(), "poll");
/// ```
#[derive(Debug, Default)]
pub struct PollBackend {
    // The 'static is a promise we keep by never using these fds except as poll(2)'s input,
    // where a closed one is harmless (POLLNVAL).
    fds: Vec<PollFd<'static>>,
    slot_of: Vec<u32>,
    /// The file each registered fd named when it was registered.
    file_of: Vec<FileId>,
}

impl PollBackend {
    /// An empty backend; poll(2) needs no kernel object.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The poll flags for a combined interest.
pub fn poll_flags(interest: EventFlags) -> PollFlags {
    let mut f = PollFlags::empty();
    if interest.contains(EventFlags::READ) {
        f |= PollFlags::IN;
    }
    if interest.contains(EventFlags::WRITE) {
        f |= PollFlags::OUT;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if interest.contains(EventFlags::CLOSED) {
        f |= PollFlags::RDHUP;
    }
    f
}

/// The readiness poll(2) reports in `revents`.
pub fn readiness(revents: PollFlags) -> EventFlags {
    let mut r = EventFlags::empty();
    if revents.intersects(PollFlags::ERR | PollFlags::HUP) {
        r |= EventFlags::READ | EventFlags::WRITE;
    }
    if revents.contains(PollFlags::IN) {
        r |= EventFlags::READ;
    }
    if revents.contains(PollFlags::OUT) {
        r |= EventFlags::WRITE;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if revents.contains(PollFlags::RDHUP) {
        r |= EventFlags::CLOSED;
    }
    r
}

impl Backend for PollBackend {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn features(&self) -> Features {
        if HAS_RDHUP {
            Features::FDS | Features::EARLY_CLOSE | Features::CLOSE_TOLERANT
        } else {
            Features::FDS | Features::CLOSE_TOLERANT
        }
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        let idx = fd as usize;
        let slot = self.slot_of.get(idx).copied().unwrap_or(NO_SLOT);
        if new.is_empty() {
            if slot != NO_SLOT {
                self.fds.swap_remove(slot as usize);
                if let Some(moved) = self.fds.get(slot as usize) {
                    self.slot_of[moved.as_fd().as_raw_fd() as usize] = slot;
                }
                self.slot_of[idx] = NO_SLOT;
            }
            return Ok(());
        }
        // SAFETY: see the field comment: the fd is only ever handed to poll(2) or fcntl(2),
        // both of which report a closed fd instead of touching it.
        let borrowed: BorrowedFd<'static> = unsafe { BorrowedFd::borrow_raw(fd) };
        if old.is_empty() && slot == NO_SLOT {
            let id = FileId::of(fd).map_err(|e| fd_error("poll", "add", fd, e))?;
            if idx >= self.file_of.len() {
                self.file_of.resize(idx + 1, FileId::default());
            }
            self.file_of[idx] = id;
        } else if old == new && FileId::of(fd).ok() != self.file_of.get(idx).copied() {
            // A revalidation (see the backend contract): the number names another file now.
            return Err(registration_lost("poll", fd));
        }
        let entry = PollFd::from_borrowed_fd(borrowed, poll_flags(new));
        if slot == NO_SLOT {
            if idx >= self.slot_of.len() {
                self.slot_of.resize(idx + 1, NO_SLOT);
            }
            self.slot_of[idx] = self.fds.len() as u32;
            self.fds.push(entry);
        } else {
            self.fds[slot as usize] = entry;
        }
        Ok(())
    }

    /// `ppoll`'s timespec where rustix calls it (Linux, Android, FreeBSD, DragonFly);
    /// `poll`'s milliseconds, rounded up, elsewhere.
    fn timeout_resolution(&self) -> Duration {
        if cfg!(has_ppoll) {
            Duration::from_nanos(1)
        } else {
            Duration::from_millis(1)
        }
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        let timeout = wait_timeout(timeout);
        match rustix::event::poll(&mut self.fds, timeout.as_ref()) {
            Ok(0) | Err(Errno::INTR) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(evloop_core::backend::os_error("poll", e)),
        }
        for pfd in &self.fds {
            let revents = pfd.revents();
            if revents.contains(PollFlags::NVAL) {
                // Closed under its events: the core reports it once and deletes them.
                ready.push_closed(pfd.as_fd().as_raw_fd());
            } else if !revents.is_empty() {
                ready.push(pfd.as_fd().as_raw_fd(), readiness(revents));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_moves_the_last_slot_into_the_hole() {
        let (a, b) = rustix::pipe::pipe().unwrap();
        use std::os::fd::AsRawFd;
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        let mut p = PollBackend::new();
        p.change(fa, EventFlags::empty(), EventFlags::READ).unwrap();
        p.change(fb, EventFlags::empty(), EventFlags::WRITE)
            .unwrap();
        p.change(fa, EventFlags::READ, EventFlags::empty()).unwrap();
        assert_eq!(p.fds.len(), 1);
        assert_eq!(p.slot_of[fb as usize], 0);
        let mut ready = ReadyList::new();
        p.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
        assert_eq!(ready.iter().collect::<Vec<_>>(), [(fb, EventFlags::WRITE)]);
    }

    #[test]
    fn closed_fds_are_refused_by_name() {
        let mut p = PollBackend::new();
        let err = p
            .change(100_000, EventFlags::empty(), EventFlags::READ)
            .unwrap_err();
        assert!(err.to_string().contains("fd 100000"), "{err}");
    }
}
