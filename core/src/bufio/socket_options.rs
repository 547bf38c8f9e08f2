//! Socket options for connections, without `unsafe` (rustix carries the `setsockopt`s): set
//! on a [`BufferedSocket`](super::BufferedSocket) when it is made or connects (through
//! [`BevOptions::socket`](super::BevOptions)), on every connection a
//! [`Listener`](super::Listener) accepts ([`ListenerOptions::socket`](super::ListenerOptions)),
//! or later on a live socket.

use std::io;
use std::time::Duration;

use crate::fd::{AsFd, AsRawFd};

/// TCP and socket options for a connection; `None` leaves the system's default.
///
/// # Examples
///
/// ```
/// use evloop::SocketOptions;
///
/// let options = SocketOptions {
///     nodelay: Some(true),
///     send_buffer: Some(256 * 1024),
///     ..SocketOptions::default()
/// };
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let stream = std::net::TcpStream::connect(listener.local_addr()?)?;
/// options.apply(&stream)?;
/// assert!(stream.nodelay()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY`: send small writes at once instead of holding them to coalesce
    /// (Nagle's algorithm); what request/response protocols want.
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE`, with the idle time before the first probe (`TCP_KEEPIDLE`;
    /// `TCP_KEEPALIVE` on macOS), in whole seconds, at least one. Not on OpenBSD, which has
    /// no per-socket idle time, nor under Wine (Windows has it since 10 1709): there
    /// [`apply`](Self::apply) says so with an error naming `TCP_KEEPIDLE`.
    pub keepalive: Option<Duration>,
    /// `SO_SNDBUF`: the kernel's send buffer, in bytes (the kernel may round or double it).
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF`: the kernel's receive buffer, in bytes. Set it before connecting (through
    /// `BevOptions::socket`) for it to shape the TCP window scale.
    pub recv_buffer: Option<usize>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl SocketOptions {
    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        *self == SocketOptions::default()
    }

    /// Check the values without a socket.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the value: a buffer of 0 bytes, a keep-alive idle time under one
    /// second or not in whole seconds.
    pub fn validate(&self) -> io::Result<()> {
        for (name, size) in [("send", self.send_buffer), ("receive", self.recv_buffer)] {
            if size == Some(0) {
                return Err(invalid(format!(
                    "socket options: a {name} buffer of 0 bytes"
                )));
            }
        }
        if let Some(idle) = self.keepalive {
            if idle < Duration::from_secs(1) || idle.subsec_nanos() != 0 {
                return Err(invalid(format!(
                    "socket options: a keep-alive idle time of {idle:?} (whole seconds, at least one)"
                )));
            }
        }
        Ok(())
    }

    /// Set the options on `fd`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate); or the system refusing one, the error naming the fd
    /// and the option (`TCP_NODELAY` on a Unix-domain socket, say). Options before the one
    /// refused are set.
    pub fn apply(&self, fd: impl AsFd) -> io::Result<()> {
        self.validate()?;
        let fd = fd.as_fd();
        let failed = |what: &str, e: rustix::io::Errno| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("fd {}: {what}: {e}", fd.as_raw_fd()))
        };
        use rustix::net::sockopt;
        if let Some(on) = self.nodelay {
            sockopt::set_tcp_nodelay(fd, on).map_err(|e| failed("TCP_NODELAY", e))?;
        }
        if let Some(idle) = self.keepalive {
            sockopt::set_socket_keepalive(fd, true).map_err(|e| failed("SO_KEEPALIVE", e))?;
            #[cfg(not(target_os = "openbsd"))]
            sockopt::set_tcp_keepidle(fd, idle)
                .map_err(|e| failed(&format!("TCP_KEEPIDLE of {idle:?}"), e))?;
            #[cfg(target_os = "openbsd")]
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "fd {}: TCP_KEEPIDLE of {idle:?}: OpenBSD has no per-socket keep-alive idle time (SO_KEEPALIVE is on, with the system's)",
                    fd.as_raw_fd()
                ),
            ));
        }
        if let Some(size) = self.send_buffer {
            sockopt::set_socket_send_buffer_size(fd, size)
                .map_err(|e| failed(&format!("SO_SNDBUF of {size} bytes"), e))?;
        }
        if let Some(size) = self.recv_buffer {
            sockopt::set_socket_recv_buffer_size(fd, size)
                .map_err(|e| failed(&format!("SO_RCVBUF of {size} bytes"), e))?;
        }
        Ok(())
    }
}
