//! The handle: [`BufferedSocket`], cheap to clone, usable outside the socket's callbacks
//! and inside them. What changes the socket is [`BevControl`]'s, reached with
//! [`BufferedSocket::on`]; the handle itself keeps what needs no loop (its buffers, lengths,
//! socket options) and `free`, which can hand the fd back.

use std::io;

use super::control::{state_now, FromHandle};
use super::{busy, BevControl, Buffer, Control, Shared, State};
use crate::fd::{OwnedFd, RawFd, NO_FD};
use crate::flags::Interest;
use crate::registry::Registry;

/// A handle to a buffered socket. Cloning it is cheap; the socket lives until
/// [`free`](Self::free) (or its context's `free`, or
/// [`free_after_flush`](super::BevControl::free_after_flush)), or until the base is dropped:
/// then its fd is closed even if a handle is still held, and every call through such a
/// handle answers `NotConnected`. What changes the socket goes through [`on`](Self::on).
///
/// # Examples
///
/// A pair of connected sockets in one process:
///
/// ```
/// use evloop::{Base, BevOptions, BufferedSocket, Interest};
///
/// let mut base: Base<Vec<u8>> = evloop::new_base()?;
/// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
/// let mut reader = b.on(&mut base);
/// reader.set_read_callback(|bev, got: &mut Vec<u8>| {
///     let n = bev.input().len();
///     got.resize(n, 0);
///     bev.input().remove(got).unwrap();
///     bev.free();
/// });
/// reader.enable(Interest::READ)?;
/// a.on(&mut base).write(b"ping")?;
/// let mut got = Vec::new();
/// base.run(&mut got)?;
/// assert_eq!(got, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BufferedSocket<D> {
    pub(super) state: Shared<D>,
}

impl<D> Clone for BufferedSocket<D> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<D> std::fmt::Debug for BufferedSocket<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("BufferedSocket")
                .field("fd", &s.fd)
                .field("input", &s.input.len())
                .field("output", &s.output.len())
                .field("freed", &s.freed)
                .finish(),
            Err(_) => f.write_str("BufferedSocket(in its callback)"),
        }
    }
}

impl<D: 'static> BufferedSocket<D> {
    /// The socket's [`BevControl`], through `registry` (the base, or a callback's
    /// [`Context`](crate::Context) or [`BevContext::context`](super::BevContext::context)):
    /// enable, write, watermarks, timeouts, callbacks and the rest, the same methods a
    /// callback's [`BevContext`](super::BevContext) has. Inside this socket's own callbacks,
    /// what it changes is queued and takes effect, in order, when the callback returns (or
    /// before the callback's next call through its context).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{BevOptions, BufferedSocket, Interest};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let (a, _b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
    /// let mut control = a.on(&mut base);
    /// control.set_write_watermark(0, 64 * 1024)?;
    /// control.enable(Interest::READ | Interest::WRITE)?;
    /// control.write(b"hello")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on<'a>(&'a self, registry: &'a mut Registry<D>) -> BevControl<'a, D, FromHandle> {
        BevControl {
            registry,
            rc: &self.state,
            state: FromHandle(()),
        }
    }

    /// Run `f` on the state now; a read cannot wait, so inside the socket's own callback it
    /// is `ResourceBusy`.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut State<D>) -> io::Result<R>) -> io::Result<R> {
        let mut st = state_now(&self.state)?.ok_or_else(busy)?;
        f(&mut st)
    }

    /// Work on the input buffer.
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn with_input<R>(&self, f: impl FnOnce(&mut Buffer) -> R) -> io::Result<R> {
        self.with(|st| Ok(f(&mut st.input)))
    }

    /// Work on the output buffer; what `f` appends is then sent as [`BevControl::write`]
    /// would send it (the socket re-arms its write event, so nothing waits for a flush).
    ///
    /// # Errors
    ///
    /// Freed or busy, or the backend refusing the fd.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::{Base, BevOptions, BufferedSocket, Interest};
    /// let mut base: Base<Vec<u8>> = evloop::new_base()?;
    /// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
    /// let mut reader = b.on(&mut base);
    /// reader.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     got.extend(bev.input().read_line(evloop::Eol::Lf).unwrap_or_default());
    ///     bev.free();
    /// });
    /// reader.enable(Interest::READ)?;
    /// a.with_output(&mut base, |out| write!(out, "{} + {} = {}\n", 1, 2, 1 + 2))??;
    /// let mut got = Vec::new();
    /// base.run(&mut got)?;
    /// assert_eq!(got, b"1 + 2 = 3");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_output<R>(
        &self,
        ops: &mut Registry<D>,
        f: impl FnOnce(&mut Buffer) -> R,
    ) -> io::Result<R> {
        self.with(|st| {
            let r = f(&mut st.output);
            st.sync(ops)?;
            Ok(r)
        })
    }

    /// How many bytes the input holds.
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn input_len(&self) -> io::Result<usize> {
        self.with(|st| Ok(st.input.len()))
    }

    /// How many bytes wait in the output. On a TLS socket, records already encrypted and not
    /// yet sent count too — as one byte, since rustls does not say how many — so that 0 means
    /// everything went out (what a flush-then-close waits for).
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn output_len(&self) -> io::Result<usize> {
        self.with(|st| Ok(st.unsent()))
    }

    /// Which directions are enabled (READ, WRITE).
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn enabled(&self) -> io::Result<Interest> {
        self.with(|st| Ok(Interest::of(st.enabled)))
    }

    /// Whether the socket was freed, by a `free` or by the loop once nothing could reach it
    /// any more (false while its own callback runs).
    pub fn is_freed(&self) -> bool {
        self.state.try_borrow().is_ok_and(|s| s.freed)
    }

    /// Set socket options on the live socket's fd (a filtered socket's is the one under it).
    ///
    /// # Errors
    ///
    /// Freed or busy; `Unsupported` on a pair; as [`SocketOptions::apply`](crate::bufio::SocketOptions::apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{BevOptions, BufferedSocket, SocketOptions};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let bev = BufferedSocket::connect(&mut base, listener.local_addr()?, BevOptions::default())?;
    /// bev.set_socket_options(SocketOptions { nodelay: Some(true), ..SocketOptions::default() })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_socket_options(&self, options: crate::bufio::SocketOptions) -> io::Result<()> {
        self.with(|st| {
            if st.fd == NO_FD {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "socket options on a pair, which has no fd",
                ));
            }
            options.apply(st.borrowed_fd())
        })
    }

    /// The fd (-1 for a pair, or once the socket is freed).
    pub fn fd(&self) -> RawFd {
        self.state
            .try_borrow()
            .map_or(NO_FD, |s| if s.freed { NO_FD } else { s.fd })
    }

    /// Free the socket now: its events go, buffered output is dropped, and the fd is closed
    /// or (without `close_on_free`) returned. Inside the socket's own callbacks it is freed
    /// when the callback returns, as [`BevContext::free`](super::BevContext::free) does. (Not
    /// a [`BevControl`] method: it consumes the handle, and hands the fd back here, where a
    /// callback's free hands it back from the context.)
    ///
    /// # Errors
    ///
    /// Freed already; `ResourceBusy` inside the socket's own callbacks when it was made
    /// without `close_on_free`, since the fd could not be handed back here (use
    /// [`BevContext::free`](super::BevContext::free), which returns it).
    pub fn free(self, ops: &mut Registry<D>) -> io::Result<Option<OwnedFd>> {
        if self.state.try_borrow().is_err() && !self.state.close_on_free {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "this buffered socket's callback is running and it keeps its fd on free: use the BevContext's free, which returns the fd",
            ));
        }
        match state_now(&self.state)? {
            Some(mut st) => Ok(st.teardown(ops)),
            None => {
                self.state.defer(Control::Free);
                Ok(None)
            }
        }
    }
}
