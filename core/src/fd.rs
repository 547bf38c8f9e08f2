//! What an event watches, named the same on every system: on Unix a file descriptor, on
//! Windows a socket (`RawSocket`, `OwnedSocket`, ...). These are rustix's aliases: `RawFd` is
//! `std::os::fd::RawFd` on Unix and `std::os::windows::io::RawSocket` on Windows, and so on,
//! so `base.new_event(stream.as_raw_fd(), ...)` with [`AsRawFd`] from here is one line of code
//! on both. Windows socket values are sparse handles, never small indexes: nothing in evloop
//! indexes a table by them there (see `io_map`).
//!
//! # Examples
//!
//! ```
//! use evloop::fd::{AsRawFd, RawFd};
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let fd: RawFd = listener.as_raw_fd();
//! assert!(evloop::fd::is_valid(fd));
//! # Ok::<(), std::io::Error>(())
//! ```

pub use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// The fd of an event that watches none (a timer): -1 on Unix, `INVALID_SOCKET` on Windows.
#[cfg(unix)]
pub const NO_FD: RawFd = -1;
/// The fd of an event that watches none (a timer): -1 on Unix, `INVALID_SOCKET` on Windows.
#[cfg(windows)]
pub const NO_FD: RawFd = !0;

/// Whether `fd` could name an open fd or socket at all (not negative, not `INVALID_SOCKET`).
pub fn is_valid(fd: RawFd) -> bool {
    #[cfg(unix)]
    {
        fd >= 0
    }
    #[cfg(windows)]
    {
        fd != NO_FD
    }
}

/// Read what is there from `fd` (a pipe or socket on Unix, a socket on Windows): `read(2)`,
/// or `recv` on Windows.
///
/// # Errors
///
/// The OS error; `Errno::AGAIN` when nothing is there on a non-blocking fd.
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<usize> {
    #[cfg(unix)]
    {
        rustix::io::read(fd, buf)
    }
    #[cfg(windows)]
    {
        rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty()).map(|(n, _)| n)
    }
}

/// Write what fits of `buf` to `fd` (a pipe or socket on Unix, a socket on Windows):
/// `write(2)`, or `send` on Windows.
///
/// # Errors
///
/// The OS error; `Errno::AGAIN` when a non-blocking fd has no room.
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> rustix::io::Result<usize> {
    #[cfg(unix)]
    {
        rustix::io::write(fd, buf)
    }
    #[cfg(windows)]
    {
        rustix::net::send(fd, buf, rustix::net::SendFlags::empty())
    }
}

/// Read into `bufs` in order (`readv` on Unix; on Windows, where rustix has no vectored
/// socket I/O, one `recv` into the first non-empty buffer).
#[inline]
pub(crate) fn readv(
    fd: BorrowedFd<'_>,
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> rustix::io::Result<usize> {
    #[cfg(unix)]
    {
        rustix::io::readv(fd, bufs)
    }
    #[cfg(windows)]
    {
        match bufs.iter_mut().find(|b| !b.is_empty()) {
            Some(buf) => read(fd, buf),
            None => Ok(0),
        }
    }
}

/// Write `bufs` in order (`writev` on Unix; on Windows one `send` of the first non-empty one).
#[inline]
pub(crate) fn writev(
    fd: BorrowedFd<'_>,
    bufs: &[std::io::IoSlice<'_>],
) -> rustix::io::Result<usize> {
    #[cfg(unix)]
    {
        rustix::io::writev(fd, bufs)
    }
    #[cfg(windows)]
    {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(buf) => write(fd, buf),
            None => Ok(0),
        }
    }
}

/// A connected pair of non-blocking loopback TCP sockets, `(a, b)`: Windows' stand-in for a
/// pipe or `socketpair` (its `AF_UNIX` sockets cannot be watched by every mechanism).
///
/// # Errors
///
/// Creating, connecting or accepting the sockets failed.
#[cfg(windows)]
pub fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let a = TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    for s in [&a, &b] {
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
    }
    Ok((a.into(), b.into()))
}

/// Start Winsock (rustix's socket calls need it; std starts it only when std makes a socket).
#[cfg(windows)]
pub(crate) fn start_sockets() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let _ = rustix::net::wsa_startup();
    });
}
