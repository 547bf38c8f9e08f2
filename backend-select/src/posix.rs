//! select(2) with rustix's caller-sized bit vectors (see the crate documentation).

use evloop_core::fd::RawFd;
use std::io;
use std::time::Duration;

use evloop_core::backend::{fd_error, fd_is_open, ReadyList};
use evloop_core::backend::{registration_lost, wait_timeout, FileId};
use evloop_core::{Backend, EventFlags, Features};
use rustix::event::{
    fd_set_bound, fd_set_insert, fd_set_num_elements, fd_set_remove, FdSetElement, FdSetIter,
};
use rustix::io::Errno;

/// The select backend.
///
/// # Examples
///
/// ```
/// use evloop_core::Base;
/// let base: Base = Base::with_backend(Box::new(evloop_select::SelectBackend::new()), Default::default()).unwrap();
/// assert_eq!(base.method(), "select");
/// ```
#[derive(Default)]
pub struct SelectBackend {
    read_interest: Vec<FdSetElement>,
    write_interest: Vec<FdSetElement>,
    read_out: Vec<FdSetElement>,
    write_out: Vec<FdSetElement>,
    bad: Vec<RawFd>,
    /// The file each registered fd named when it was registered.
    file_of: Vec<FileId>,
}

impl std::fmt::Debug for SelectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectBackend")
            .field("nfds", &self.nfds())
            .finish()
    }
}

fn set(fds: &mut Vec<FdSetElement>, fd: RawFd, on: bool) {
    let need = fd_set_num_elements(1, fd + 1);
    if fds.len() < need {
        fds.resize(need, FdSetElement::default());
    }
    if on {
        fd_set_insert(fds, fd);
    } else {
        fd_set_remove(fds, fd);
    }
}

impl SelectBackend {
    /// An empty backend; select(2) needs no kernel object.
    pub fn new() -> Self {
        Self::default()
    }

    fn nfds(&self) -> RawFd {
        fd_set_bound(&self.read_interest).max(fd_set_bound(&self.write_interest))
    }

    /// One select(2) over the interest, leaving out the fds in `self.bad`.
    fn select_once(&mut self, nfds: RawFd, timeout: Option<Duration>) -> rustix::io::Result<i32> {
        let len = fd_set_num_elements(1, nfds);
        self.read_out.clear();
        self.read_out
            .extend_from_slice(&self.read_interest[..len.min(self.read_interest.len())]);
        self.read_out.resize(len, FdSetElement::default());
        self.write_out.clear();
        self.write_out
            .extend_from_slice(&self.write_interest[..len.min(self.write_interest.len())]);
        self.write_out.resize(len, FdSetElement::default());
        for &fd in &self.bad {
            fd_set_remove(&mut self.read_out, fd);
            fd_set_remove(&mut self.write_out, fd);
        }
        let timeout = wait_timeout(timeout);
        // SAFETY: both sets hold `len` elements, enough for `nfds` bits. Every fd in them was
        // open when registered; one closed since makes select fail with EBADF, handled by
        // the caller — the kernel never touches memory for it.
        unsafe {
            rustix::event::select(
                nfds,
                Some(&mut self.read_out),
                Some(&mut self.write_out),
                None,
                timeout.as_ref(),
            )
        }
    }
}

impl Backend for SelectBackend {
    fn name(&self) -> &'static str {
        "select"
    }

    fn features(&self) -> Features {
        Features::FDS | Features::CLOSE_TOLERANT
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        let idx = fd as usize;
        if old.is_empty() && !new.is_empty() {
            let id = FileId::of(fd).map_err(|e| fd_error("select", "add", fd, e))?;
            if idx >= self.file_of.len() {
                self.file_of.resize(idx + 1, FileId::default());
            }
            self.file_of[idx] = id;
        } else if old == new
            && !new.is_empty()
            && FileId::of(fd).ok() != self.file_of.get(idx).copied()
        {
            // A revalidation (see the backend contract): the number names another file now.
            return Err(registration_lost("select", fd));
        }
        set(&mut self.read_interest, fd, new.contains(EventFlags::READ));
        set(
            &mut self.write_interest,
            fd,
            new.contains(EventFlags::WRITE),
        );
        Ok(())
    }

    /// `select`'s timeval (`pselect6`'s timespec on Linux): microseconds at worst.
    fn timeout_resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        let nfds = self.nfds();
        self.bad.clear();
        let mut result = self.select_once(nfds, timeout);
        if result == Err(Errno::BADF) {
            // Find the closed fds, report them, and wait again without them (not blocking:
            // their events must run).
            let mut bad: Vec<RawFd> = FdSetIter::new(&self.read_interest)
                .chain(FdSetIter::new(&self.write_interest))
                .filter(|&fd| fd_is_open(fd).is_err())
                .collect();
            bad.sort_unstable();
            bad.dedup();
            self.bad = bad;
            for &fd in &self.bad {
                ready.push_closed(fd);
            }
            result = self.select_once(nfds, Some(Duration::ZERO));
        }
        match result {
            Ok(0) | Err(Errno::INTR) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(evloop_core::backend::os_error("select", e)),
        }
        // An fd ready both ways is pushed twice; the core merges the two reports.
        for fd in FdSetIter::new(&self.read_out) {
            ready.push(fd, EventFlags::READ);
        }
        for fd in FdSetIter::new(&self.write_out) {
            ready.push(fd, EventFlags::WRITE);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;

    /// The tests close fds and expect their numbers to stay unused: another test opening
    /// fds at the same time could take the number, so they run one at a time.
    static FD_NUMBERS: Mutex<()> = Mutex::new(());

    #[test]
    fn closed_fd_is_reported_not_fatal() {
        let _serial = FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = rustix::pipe::pipe().unwrap();
        let keep = rustix::pipe::pipe().unwrap();
        let mut s = SelectBackend::new();
        let fa = a.as_raw_fd();
        s.change(fa, EventFlags::empty(), EventFlags::READ).unwrap();
        s.change(keep.1.as_raw_fd(), EventFlags::empty(), EventFlags::WRITE)
            .unwrap();
        drop(a);
        drop(b);
        let mut ready = ReadyList::new();
        s.dispatch(Some(Duration::from_millis(100)), &mut ready)
            .unwrap();
        assert_eq!(ready.closed(), [fa]);
        let got: Vec<_> = ready.iter().collect();
        assert!(
            got.contains(&(keep.1.as_raw_fd(), EventFlags::WRITE)),
            "{got:?}"
        );
    }

    #[test]
    fn removal_shrinks_nfds() {
        let _serial = FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let (a, _b) = rustix::pipe::pipe().unwrap();
        let mut s = SelectBackend::new();
        let fa = a.as_raw_fd();
        s.change(fa, EventFlags::empty(), EventFlags::READ).unwrap();
        assert_eq!(s.nfds(), fa + 1);
        s.change(fa, EventFlags::READ, EventFlags::empty()).unwrap();
        assert_eq!(s.nfds(), 0);
    }
}
