//! The handle: [`BufferedSocket`], cheap to clone, usable outside the socket's callbacks
//! (given the registry) and inside them (what it changes is queued and applied in order when
//! the callback returns: see `deferred`). Its changes are the same `Control`s a callback's
//! [`BevContext`] makes, carried out by the one `State::apply`.

use std::io;
use std::time::Duration;

use super::{
    base_gone_error, busy, freed_error, BevCallback, BevContext, Buffer, Control, FlushMode,
    RateLimit, Shared, State, Which,
};
use crate::fd::{OwnedFd, RawFd, NO_FD};
use crate::flags::{EventFlags, Interest};
use crate::registry::Registry;

/// A handle to a buffered socket. Cloning it is cheap; the socket lives until
/// [`free`](Self::free) (or its context's `free`, or [`free_after_flush`](Self::free_after_flush)),
/// or until the base is dropped: then its fd is closed even if a handle is still held, and
/// every call through such a handle answers `NotConnected`.
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
/// b.set_read_callback(|bev, got: &mut Vec<u8>| {
///     let n = bev.input().len();
///     got.resize(n, 0);
///     bev.input().remove(got).unwrap();
///     bev.free();
/// });
/// b.enable(&mut base, Interest::READ)?;
/// a.write(&mut base, b"ping")?;
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
    /// Run `f` on the state now; a read cannot wait, so inside the socket's own callback it
    /// is `ResourceBusy`.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut State<D>) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state_now()?.ok_or_else(busy)?;
        f(&mut st)
    }

    /// The state, to change now; `None` while the socket's own callback runs (its state
    /// borrowed), when a change is queued instead (see `deferred`).
    ///
    /// # Errors
    ///
    /// The socket was freed, began closing in its running callback, or lost its base.
    fn state_now(&self) -> io::Result<Option<std::cell::RefMut<'_, State<D>>>> {
        match self.state.try_borrow_mut() {
            Ok(st) if st.base_gone => Err(base_gone_error()),
            Ok(st) if st.freed => Err(freed_error()),
            Ok(st) => Ok(Some(st)),
            Err(_) if self.state.ended.get() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "this buffered socket was freed (or began closing) by its running callback",
            )),
            Err(_) => Ok(None),
        }
    }

    /// Carry out `op` now, or queue it to run in order when the socket's running callback
    /// returns. A close that completed at once is torn down here, where the state is not
    /// borrowed.
    fn control(&self, ops: &mut Registry<D>, op: Control<D>) -> io::Result<()> {
        let Some(mut st) = self.state_now()? else {
            self.state.defer(op);
            return Ok(());
        };
        let result = st.apply(ops, &self.state, op);
        if st.freed {
            st.teardown(ops);
        }
        result
    }

    fn set_callback(&self, which: Which, cb: BevCallback<D>) {
        // On a freed socket the callback could never run: nothing is lost by dropping it.
        match self.state.try_borrow_mut() {
            Ok(mut st) if !st.freed => *st.callbacks.get(which) = Some(cb),
            Ok(_) => {}
            Err(_) if self.state.ended.get() => {}
            Err(_) => self.state.defer(Control::Callback(which, cb)),
        }
    }

    /// Called when at least the read low watermark is buffered in the input. From inside
    /// one of the socket's own callbacks it replaces the callback when that one returns (as
    /// [`BevContext::set_read_callback`] does at once). On a freed socket it does nothing:
    /// the callback could never run.
    pub fn set_read_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Read, Box::new(cb))
    }

    /// Called when the output drained to the write low watermark; as
    /// [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_write_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Write, Box::new(cb))
    }

    /// Called on EOF, errors, timeouts and connects (see [`BevContext::fired`]); as
    /// [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_event_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Event, Box::new(cb))
    }

    /// Start reading and/or writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn enable(&self, ops: &mut Registry<D>, dirs: Interest) -> io::Result<()> {
        self.control(ops, Control::Enable(dirs.into(), true))
    }

    /// Stop reading and/or writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed.
    pub fn disable(&self, ops: &mut Registry<D>, dirs: Interest) -> io::Result<()> {
        self.control(ops, Control::Enable(dirs.into(), false))
    }

    /// Queue `data` for writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]). A write queued so is
    /// not held to the write high watermark (it was already accepted).
    ///
    /// # Errors
    ///
    /// Freed or closing; `WouldBlock` past the write high watermark; a frozen output.
    pub fn write(&self, ops: &mut Registry<D>, data: &[u8]) -> io::Result<()> {
        match self.state_now()? {
            Some(mut st) => st.write(ops, data),
            None => {
                self.state.defer(Control::Write(data.to_vec()));
                Ok(())
            }
        }
    }

    /// Work on the input buffer.
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn with_input<R>(&self, f: impl FnOnce(&mut Buffer) -> R) -> io::Result<R> {
        self.with(|st| Ok(f(&mut st.input)))
    }

    /// Work on the output buffer; what `f` appends is then sent as [`write`](Self::write)
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
    /// b.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     got.extend(bev.input().read_line(evloop::Eol::Lf).unwrap_or_default());
    ///     bev.free();
    /// });
    /// b.enable(&mut base, Interest::READ)?;
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

    /// Re-arm after buffers were changed through `with_input`.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn flush(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.control(ops, Control::Flush(EventFlags::empty(), None))
    }

    /// See [`BevContext::flush_with`]; `flush_with(ops, Interest::WRITE,
    /// FlushMode::Finished)` ends a filtered stream (a compressor's trailer).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd. Queued inside the socket's own callbacks, as
    /// [`flush`](Self::flush).
    pub fn flush_with(
        &self,
        ops: &mut Registry<D>,
        dirs: Interest,
        mode: FlushMode,
    ) -> io::Result<()> {
        self.control(ops, Control::Flush(dirs.into(), Some(mode)))
    }

    /// Limit how fast the socket reads and writes (libevent's `bufferevent_set_rate_limit`):
    /// a token bucket per direction, refilled by `limit`'s rate each tick up to its burst;
    /// each read or write moves at most what the bucket holds, and a direction whose bucket
    /// is empty waits for the next tick (a one-shot timer, armed only then). `None` removes
    /// the limit; a new limit on a live socket keeps what the bucket holds, clipped to the
    /// new bursts. The limit counts bytes on the fd: TLS records on a TLS socket; on a
    /// filtered socket it is set on the socket under it. A socket may also be in a
    /// [`RateLimitGroup`](crate::RateLimitGroup); then both limits hold.
    ///
    /// # Errors
    ///
    /// Freed; `Unsupported` on a pair (it has no fd). Queued inside the socket's own
    /// callbacks, as [`flush`](Self::flush).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{BevOptions, BufferedSocket, RateLimit};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let bev = BufferedSocket::connect(&mut base, listener.local_addr()?, BevOptions::default())?;
    /// // 1,000 bytes a second each way, in ticks of 100 ms.
    /// bev.set_rate_limit(&mut base, Some(RateLimit::new(100, 400, 100, 400, Duration::from_millis(100))?))?;
    /// bev.set_rate_limit(&mut base, None)?; // and no limit again
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_rate_limit(
        &self,
        ops: &mut Registry<D>,
        limit: Option<RateLimit>,
    ) -> io::Result<()> {
        self.control(ops, Control::RateLimit(limit))
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

    /// See [`BevContext::set_read_watermark`].
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn set_read_watermark(
        &self,
        ops: &mut Registry<D>,
        low: usize,
        high: usize,
    ) -> io::Result<()> {
        self.control(ops, Control::ReadWatermark(low, high))
    }

    /// See [`BevContext::set_write_watermark`]; takes `ops` as
    /// [`set_read_watermark`](Self::set_read_watermark) does.
    ///
    /// # Errors
    ///
    /// Freed. Queued inside the socket's own callbacks, as [`flush`](Self::flush).
    pub fn set_write_watermark(
        &self,
        ops: &mut Registry<D>,
        low: usize,
        high: usize,
    ) -> io::Result<()> {
        self.control(ops, Control::WriteWatermark(low, high))
    }

    /// Set the read and write timeouts: a direction that sees no progress for that long
    /// reports TIMEOUT and is disabled. Like every timeout, they count from the loop's cached
    /// time ([`Registry::now`]; [`Registry::update_cache_time`] refreshes it after a long
    /// computation in a callback).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing to re-arm. Queued inside the socket's own callbacks,
    /// as [`flush`](Self::flush).
    pub fn set_timeouts(
        &self,
        ops: &mut Registry<D>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.control(ops, Control::Timeouts(read, write))
    }

    /// The fd (-1 for a pair, or once the socket is freed).
    pub fn fd(&self) -> RawFd {
        self.state
            .try_borrow()
            .map_or(NO_FD, |s| if s.freed { NO_FD } else { s.fd })
    }

    /// Flush, then close: stop reading, let what the socket holds go out, then free it
    /// (closing the fd; on TLS after close_notify). Where [`free`](Self::free) drops the
    /// output, this is how a server ends a reply; libevent programs write it by hand with a
    /// write callback. No callback of this socket runs after the call; an error, or the
    /// write timeout if one is set ([`set_timeouts`](Self::set_timeouts)), frees it at once,
    /// so a peer that stops reading cannot keep it forever. On a pair, it waits for the
    /// other end to read.
    ///
    /// # Errors
    ///
    /// Freed already, or the backend refusing the fd. Queued inside the socket's own
    /// callbacks, as [`flush`](Self::flush).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use evloop::{BevOptions, BufferedSocket};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut peer = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let (ours, _) = listener.accept()?;
    /// ours.set_nonblocking(true)?;
    /// let bev = BufferedSocket::new(&mut base, ours, BevOptions::default())?;
    /// bev.write(&mut base, &[7; 100_000])?;
    /// bev.free_after_flush(&mut base)?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut all = Vec::new();
    ///     peer.read_to_end(&mut all).map(|_| all.len()) // to EOF: the socket closed
    /// });
    /// base.run(&mut ())?; // returns once the socket is gone
    /// assert_eq!(reader.join().unwrap()?, 100_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn free_after_flush(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.control(ops, Control::FreeAfterFlush)
    }

    /// Free the socket now: its events go, buffered output is dropped, and the fd is closed
    /// or (without `close_on_free`) returned. Inside the socket's own callbacks it is freed
    /// when the callback returns, as [`BevContext::free`] does.
    ///
    /// # Errors
    ///
    /// Freed already; `ResourceBusy` inside the socket's own callbacks when it was made
    /// without `close_on_free`, since the fd could not be handed back here (use
    /// [`BevContext::free`], which returns it).
    pub fn free(self, ops: &mut Registry<D>) -> io::Result<Option<OwnedFd>> {
        if self.state.try_borrow().is_err() && !self.state.close_on_free {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "this buffered socket's callback is running and it keeps its fd on free: use the BevContext's free, which returns the fd",
            ));
        }
        match self.state_now()? {
            Some(mut st) => Ok(st.teardown(ops)),
            None => {
                self.state.defer(Control::Free);
                Ok(None)
            }
        }
    }
}
