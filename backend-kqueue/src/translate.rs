//! The kqueue backend's logic without syscalls, so it is tested where kqueue does not exist.
//!
//! Interest maps to at most two kernel filters per fd:
//! * `EVFILT_READ` while READ or CLOSED is wanted. CLOSED alone registers it with `EV_CLEAR`:
//!   the filter then reports once per change (data arriving, end of file) instead of on every
//!   wait while unread data sits in the socket, and the core passes on only `EV_EOF`.
//! * `EVFILT_WRITE` while WRITE is wanted.
//!
//! ET adds `EV_CLEAR` to both. A filter whose flags change is simply added again (`EV_ADD`
//! modifies an existing registration).

use std::os::fd::RawFd;

use evloop_core::EventFlags;

/// A kqueue filter the backend uses for fds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `EVFILT_READ`.
    Read,
    /// `EVFILT_WRITE`.
    Write,
}

impl Filter {
    /// The filter's name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Read => "EVFILT_READ",
            Filter::Write => "EVFILT_WRITE",
        }
    }
}

/// What to do with one filter of one fd.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `EV_ADD`, with `EV_CLEAR` if `clear`.
    Add {
        /// Register edge-triggered (`EV_CLEAR`).
        clear: bool,
    },
    /// `EV_DELETE`.
    Delete,
}

/// One kevent change.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The fd (the kevent's ident).
    pub fd: RawFd,
    /// The filter.
    pub filter: Filter,
    /// Add or delete.
    pub action: Action,
}

/// The registration each filter needs for `interest`: `None` (absent) or `Some(clear)`.
fn filters(interest: EventFlags) -> [Option<bool>; 2] {
    let et = interest.contains(EventFlags::ET);
    let read = interest
        .intersects(EventFlags::READ | EventFlags::CLOSED)
        .then(|| {
            et || !interest.contains(EventFlags::READ) // CLOSED alone: edge-triggered
        });
    let write = interest.contains(EventFlags::WRITE).then_some(et);
    [read, write]
}

/// Append the changes that take `fd` from interest `old` to `new`.
///
/// # Examples
///
/// ```
/// use evloop_core::EventFlags;
/// use evloop_kqueue::translate::{changes, Action, Change, Filter};
/// let mut out = Vec::new();
/// changes(5, EventFlags::READ, EventFlags::WRITE, &mut out);
/// assert_eq!(out, [
///     Change { fd: 5, filter: Filter::Read, action: Action::Delete },
///     Change { fd: 5, filter: Filter::Write, action: Action::Add { clear: false } },
/// ]);
/// ```
pub fn changes(fd: RawFd, old: EventFlags, new: EventFlags, out: &mut Vec<Change>) {
    let (before, after) = (filters(old), filters(new));
    for (i, filter) in [Filter::Read, Filter::Write].into_iter().enumerate() {
        match (before[i], after[i]) {
            (Some(_), None) => out.push(Change {
                fd,
                filter,
                action: Action::Delete,
            }),
            (b, Some(clear)) if b != Some(clear) => out.push(Change {
                fd,
                filter,
                action: Action::Add { clear },
            }),
            _ => {}
        }
    }
}

/// One kevent result, as the backend reads it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The fd.
    pub fd: RawFd,
    /// The filter.
    pub filter: Filter,
    /// `EV_EOF` was set.
    pub eof: bool,
    /// `EV_ERROR` was set, with this errno (0: the change succeeded, under `EV_RECEIPT`).
    pub error: Option<i32>,
}

/// What the backend does with a result.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Report the fd ready with these flags.
    Ready(EventFlags),
    /// Nothing: a successful receipt, or deleting a registration the kernel already dropped.
    Ignore,
    /// The fd was closed before the change reached the kernel: report READ|WRITE, so its
    /// events' own I/O sees the error (as poll's `POLLNVAL`).
    Closed,
    /// Any other refusal: an error naming the fd, the filter and this errno.
    Failed(i32),
}

/// Interpret one result.
///
/// # Examples
///
/// ```
/// use evloop_core::EventFlags;
/// use evloop_kqueue::translate::{outcome, Filter, Outcome, Report};
/// let eof = Report { fd: 3, filter: Filter::Read, eof: true, error: None };
/// assert_eq!(outcome(&eof), Outcome::Ready(EventFlags::READ | EventFlags::CLOSED));
/// ```
pub fn outcome(report: &Report) -> Outcome {
    match report.error {
        Some(0) => Outcome::Ignore,
        Some(errno) if errno == libc_errno::ENOENT => Outcome::Ignore,
        Some(errno) if errno == libc_errno::EBADF || errno == libc_errno::EINVAL => Outcome::Closed,
        Some(errno) => Outcome::Failed(errno),
        None => Outcome::Ready(match (report.filter, report.eof) {
            (Filter::Read, false) => EventFlags::READ,
            (Filter::Read, true) => EventFlags::READ | EventFlags::CLOSED,
            (Filter::Write, false) => EventFlags::WRITE,
            // The peer is gone: a write fails, a read sees the end.
            (Filter::Write, true) => EventFlags::READ | EventFlags::WRITE,
        }),
    }
}

/// errno values, the same on every system this backend runs on and on Linux.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EBADF: i32 = 9;
    pub const EINVAL: i32 = 22;
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: EventFlags = EventFlags::READ;
    const W: EventFlags = EventFlags::WRITE;
    const C: EventFlags = EventFlags::CLOSED;
    const ET: EventFlags = EventFlags::ET;
    const E: EventFlags = EventFlags::empty();

    fn run(old: EventFlags, new: EventFlags) -> Vec<(Filter, Action)> {
        let mut out = Vec::new();
        changes(9, old, new, &mut out);
        out.into_iter().map(|c| (c.filter, c.action)).collect()
    }

    #[test]
    fn adds_deletes_and_modifies() {
        use Action::*;
        use Filter::*;
        assert_eq!(run(E, R), [(Read, Add { clear: false })]);
        assert_eq!(
            run(E, R | W),
            [(Read, Add { clear: false }), (Write, Add { clear: false })]
        );
        assert_eq!(run(R | W, R), [(Write, Delete)]);
        assert_eq!(run(R, E), [(Read, Delete)]);
        assert_eq!(run(R, R), []);
        assert_eq!(run(R, R | ET), [(Read, Add { clear: true })]);
        assert_eq!(run(E, W | ET), [(Write, Add { clear: true })]);
    }

    #[test]
    fn closed_alone_is_edge_triggered_and_read_makes_it_level() {
        use Action::*;
        use Filter::*;
        assert_eq!(run(E, C), [(Read, Add { clear: true })]);
        assert_eq!(run(C, C | R), [(Read, Add { clear: false })]);
        assert_eq!(run(C | R, C), [(Read, Add { clear: true })]);
        assert_eq!(run(C | R, R), []);
        assert_eq!(run(C, E), [(Read, Delete)]);
    }

    #[test]
    fn results_map_to_readiness_and_errors() {
        let r = |filter, eof, error| {
            outcome(&Report {
                fd: 4,
                filter,
                eof,
                error,
            })
        };
        assert_eq!(r(Filter::Read, false, None), Outcome::Ready(R));
        assert_eq!(r(Filter::Write, false, None), Outcome::Ready(W));
        assert_eq!(r(Filter::Read, true, None), Outcome::Ready(R | C));
        assert_eq!(r(Filter::Write, true, None), Outcome::Ready(R | W));
        assert_eq!(r(Filter::Read, false, Some(0)), Outcome::Ignore);
        assert_eq!(r(Filter::Read, false, Some(2)), Outcome::Ignore);
        assert_eq!(r(Filter::Write, false, Some(9)), Outcome::Closed);
        assert_eq!(r(Filter::Read, false, Some(22)), Outcome::Closed);
        assert_eq!(r(Filter::Read, false, Some(12)), Outcome::Failed(12));
    }
}
