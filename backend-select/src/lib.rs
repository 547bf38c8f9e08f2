//! evloop's select backend: the lowest common denominator, with no `FD_SETSIZE` limit.
//!
//! Interest is kept in two bit vectors (read and write) sized to the highest registered fd,
//! and copied into working sets before each select(2). The sets are rustix's caller-sized
//! `FdSetElement` arrays, never a fixed `fd_set`, so fds at and above 1024 work: Debian's
//! libevent aborts the process there (glibc's fortified `FD_SET`: "bit out of range 0 -
//! FD_SETSIZE on fd_set").
//!
//! select(2) fails the whole wait with `EBADF` when any fd in the sets was closed. Instead of
//! a dead loop (libevent treats it as fatal), the closed fds are found with `fcntl(F_GETFD)`,
//! reported to the core as closed (one error event, then their events are deleted), and the
//! wait is retried without them. Edge
//! triggering is not offered; CLOSED is emulated by the core.
//!
//! On Windows, Winsock's `select` takes a count and an array of sockets rather than a bit
//! vector, and the array may be as long as the caller allocates: the sets are built that way,
//! with no 64-socket `FD_SETSIZE` limit (libevent's win32select does the same). A failed
//! connect is reported in the exception set there, so sockets watched for WRITE are watched
//! for exceptions too and reported READ|WRITE. A wait with no socket at all would fail
//! (`WSAEINVAL`), so it sleeps instead.
//!
//! References: select(2); Winsock's `select`.
//!
//! Where rustix has no caller-sized select (illumos, Solaris, other Unixes: their `fd_set` is
//! fixed at `FD_SETSIZE`), this crate is empty; poll and the `polling` adapter serve there.

#![cfg(has_select)]

#[cfg(unix)]
mod posix;
#[cfg(unix)]
pub use posix::SelectBackend;
#[cfg(windows)]
mod winsock;
#[cfg(windows)]
pub use winsock::SelectBackend;
