//! The one method set that changes a buffered socket: [`BevControl`]. A callback's
//! [`BevContext`](super::BevContext) dereferences to one (the state already borrowed); a
//! [`BufferedSocket`](super::BufferedSocket) handle makes one with
//! [`on`](super::BufferedSocket::on) (the state borrowed per call, or the change queued while
//! the socket's own callback runs: see `deferred`). The two differ only in how they reach the
//! state, which is the type parameter; every method is written once, here, and each builds
//! the same `Control` for the one `State::apply`.

use std::io;
use std::time::Duration;

use super::{
    base_gone_error, freed_error, BevContext, Control, FlushMode, RateLimit, Shared, State, Which,
};
use crate::flags::{EventFlags, Interest};
use crate::registry::Registry;

/// Changes a buffered socket: enable and disable, write, flush, watermarks, timeouts, a rate
/// limit, the callbacks, and a flush-then-close. The same methods serve inside the socket's
/// callbacks (a [`BevContext`] dereferences to its `BevControl`) and outside them (a handle's
/// [`BufferedSocket::on`](super::BufferedSocket::on) makes one).
///
/// Inside one of the socket's own callbacks, a change made through a handle to that socket
/// is queued and takes effect, in order, when the callback returns (or before the
/// callback's next call through its [`BevContext`]); one made through the context takes
/// effect at once. Either way, changes happen in the order the program made them.
///
/// `S` says how the state is reached ([`FromHandle`] or [`InCallback`]); nothing else
/// differs. A helper that works on both is generic over [`BevReach`]:
///
/// ```
/// use evloop::{BevControl, BevReach};
///
/// fn line_mode<D: 'static, S: BevReach<D>>(bev: &mut BevControl<'_, D, S>) -> std::io::Result<()> {
///     bev.set_read_watermark(1, 64 * 1024)?;
///     bev.set_write_watermark(0, 1024 * 1024)
/// }
/// ```
///
/// # Examples
///
/// ```
/// use evloop::{Base, BevOptions, BufferedSocket, Interest};
///
/// let mut base: Base<Vec<u8>> = evloop::new_base()?;
/// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
/// let mut reader = b.on(&mut base);
/// reader.set_read_callback(|bev, got: &mut Vec<u8>| {
///     got.extend(bev.input().read_line(evloop::Eol::Lf).unwrap_or_default());
///     bev.write(b"pong\n").unwrap(); // the same method, on the callback's context
///     bev.disable(Interest::READ).unwrap();
/// });
/// reader.enable(Interest::READ)?;
/// let mut writer = a.on(&mut base);
/// writer.set_read_callback(|bev, got: &mut Vec<u8>| {
///     got.extend(bev.input().read_line(evloop::Eol::Lf).unwrap_or_default());
///     bev.free();
/// });
/// writer.enable(Interest::READ)?;
/// writer.write(b"ping\n")?;
/// let mut got = Vec::new();
/// base.run(&mut got)?;
/// assert_eq!(got, b"pingpong");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BevControl<'a, D, S> {
    pub(super) registry: &'a mut Registry<D>,
    pub(super) rc: &'a Shared<D>,
    pub(super) state: S,
}

/// How a [`BevControl`] made by [`BufferedSocket::on`](super::BufferedSocket::on) reaches the
/// state: borrowed for each call; queued while the socket's own callback holds it.
pub struct FromHandle(pub(super) ());

/// How the [`BevControl`] of a callback's [`BevContext`] reaches the state: it holds it.
pub struct InCallback<'a, D>(pub(super) &'a mut State<D>);

/// How a [`BevControl`] reaches a socket's state: [`FromHandle`] or [`InCallback`]. Sealed:
/// only the library implements it; name it to write a helper that takes either.
pub trait BevReach<D>: sealed::Reach<D> {}

impl<D, S: sealed::Reach<D>> BevReach<D> for S {}

mod sealed {
    pub trait Reach<D> {
        /// The state, when it is already held (inside the socket's callback).
        fn held(&mut self) -> Option<super::InCallback<'_, D>>;
    }
}
use sealed::Reach;

impl<D> Reach<D> for FromHandle {
    #[inline]
    fn held(&mut self) -> Option<InCallback<'_, D>> {
        None
    }
}

impl<D> Reach<D> for InCallback<'_, D> {
    #[inline]
    fn held(&mut self) -> Option<InCallback<'_, D>> {
        Some(InCallback(self.0))
    }
}

/// The state, to change now, when only the shared cell is at hand (a handle); `None` while
/// the socket's own callback holds it, when a change is queued instead (see `deferred`).
///
/// # Errors
///
/// The socket was freed, began closing in its running callback, or lost its base.
pub(super) fn state_now<D>(rc: &Shared<D>) -> io::Result<Option<std::cell::RefMut<'_, State<D>>>> {
    match rc.try_borrow_mut() {
        Ok(st) if st.base_gone => Err(base_gone_error()),
        Ok(st) if st.freed => Err(freed_error()),
        Ok(st) => Ok(Some(st)),
        Err(_) if rc.ended.get() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "this buffered socket was freed (or began closing) by its running callback",
        )),
        Err(_) => Ok(None),
    }
}

impl<D: 'static, S: BevReach<D>> BevControl<'_, D, S> {
    /// Carry out `op`: at once on a held state, after what handles queued before it; from a
    /// handle, now, or queued while the socket's callback runs. A close that completed at
    /// once through a handle is torn down here, where the state is not borrowed.
    fn control(&mut self, op: Control<D>) -> io::Result<()> {
        if let Some(InCallback(st)) = self.state.held() {
            st.settle(self.registry, self.rc);
            return st.apply(self.registry, self.rc, op);
        }
        let Some(mut st) = state_now(self.rc)? else {
            self.rc.defer(op);
            return Ok(());
        };
        let result = st.apply(self.registry, self.rc, op);
        if st.freed {
            st.teardown(self.registry);
        }
        result
    }

    /// Replace the read callback, called when at least the read low watermark is buffered
    /// in the input. From inside any of the socket's callbacks (libevent's
    /// `bufferevent_setcb` from a callback, as its le-proxy does) the new one is used from
    /// the next time it is due; the running one finishes first. On a freed socket it does
    /// nothing: the callback could never run.
    pub fn set_read_callback(&mut self, cb: impl FnMut(&mut BevContext<'_, D>, &mut D) + 'static) {
        // Fails only on a freed socket, where the callback could never run.
        let _ = self.control(Control::Callback(Which::Read, Box::new(cb)));
    }

    /// Replace the write callback, called when the output drained to the write low
    /// watermark; as [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_write_callback(&mut self, cb: impl FnMut(&mut BevContext<'_, D>, &mut D) + 'static) {
        let _ = self.control(Control::Callback(Which::Write, Box::new(cb)));
    }

    /// Replace the event callback, called on EOF, errors, timeouts and connects (see
    /// [`BevContext::fired`]); as [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_event_callback(&mut self, cb: impl FnMut(&mut BevContext<'_, D>, &mut D) + 'static) {
        let _ = self.control(Control::Callback(Which::Event, Box::new(cb)));
    }

    /// Queue `data` for writing. A write queued through a handle inside the socket's own
    /// callback is not held to the write high watermark (it was already accepted).
    ///
    /// # Errors
    ///
    /// Freed or closing; `WouldBlock` past the write high watermark
    /// ([`set_write_watermark`](Self::set_write_watermark)); a frozen output.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        // Not a `Control`: the data is borrowed, and copied only when the write is queued.
        if let Some(InCallback(st)) = self.state.held() {
            st.settle(self.registry, self.rc);
            return st.write(self.registry, data);
        }
        match state_now(self.rc)? {
            Some(mut st) => st.write(self.registry, data),
            None => {
                self.rc.defer(Control::Write(data.to_vec()));
                Ok(())
            }
        }
    }

    /// Start reading and/or writing.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn enable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), true))
    }

    /// Stop reading and/or writing.
    ///
    /// # Errors
    ///
    /// Freed.
    pub fn disable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), false))
    }

    /// Re-arm after the buffers were changed in place (a handle's
    /// [`with_input`](super::BufferedSocket::with_input)), so that reading resumes below the
    /// high watermark.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn flush(&mut self) -> io::Result<()> {
        self.control(Control::Flush(EventFlags::empty(), None))
    }

    /// Push bytes through a filtered socket's filters in `mode` (libevent's
    /// `bufferevent_flush`): `READ` runs the input side, `WRITE` the output side, which
    /// stays in `mode` until the filter has pushed everything; `flush_with(Interest::WRITE,
    /// FlushMode::Finished)` ends a filtered stream (a compressor's trailer). On any other
    /// socket, only starts writing what the output holds.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn flush_with(&mut self, dirs: Interest, mode: FlushMode) -> io::Result<()> {
        self.control(Control::Flush(dirs.into(), Some(mode)))
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
    /// Freed; `Unsupported` on a pair (it has no fd).
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
    /// let limit = RateLimit::new(100, 400, 100, 400, Duration::from_millis(100))?;
    /// bev.on(&mut base).set_rate_limit(Some(limit))?;
    /// bev.on(&mut base).set_rate_limit(None)?; // and no limit again
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_rate_limit(&mut self, limit: Option<RateLimit>) -> io::Result<()> {
        self.control(Control::RateLimit(limit))
    }

    /// Set the read watermarks: the read callback waits for `low` bytes; reading stops while
    /// `high` (0: no limit) are buffered.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing to re-arm the fd.
    pub fn set_read_watermark(&mut self, low: usize, high: usize) -> io::Result<()> {
        self.control(Control::ReadWatermark(low, high))
    }

    /// Set the write watermarks: the write callback runs once the output drains to `low`;
    /// [`write`](Self::write) refuses (`WouldBlock`) what would make more than `high` bytes
    /// wait (0: no limit), so a peer that never reads cannot make the output grow without
    /// bound.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing to re-arm the fd.
    pub fn set_write_watermark(&mut self, low: usize, high: usize) -> io::Result<()> {
        self.control(Control::WriteWatermark(low, high))
    }

    /// Set the read and write timeouts (`None`: no timeout): a direction that sees no
    /// progress for that long reports TIMEOUT and is disabled. Like every timeout, they count
    /// from the loop's cached time ([`Registry::now`]; [`Registry::update_cache_time`]
    /// refreshes it after a long computation in a callback).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing to re-arm the fd.
    pub fn set_timeouts(
        &mut self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.control(Control::Timeouts(read, write))
    }

    /// Flush, then close: stop reading, let what the socket holds go out, then free it
    /// (closing the fd; on TLS after close_notify). Where a free drops the output, this is
    /// how a server ends a reply; libevent programs write it by hand with a write callback.
    /// No callback of this socket runs after the call (inside one, after it returns); an
    /// error, or the write timeout if one is set ([`set_timeouts`](Self::set_timeouts)),
    /// frees it at once, so a peer that stops reading cannot keep it forever. On a pair, it
    /// waits for the other end to read.
    ///
    /// # Errors
    ///
    /// Freed already, or the backend refusing the fd.
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
    /// let mut control = bev.on(&mut base);
    /// control.write(&[7; 100_000])?;
    /// control.free_after_flush()?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut all = Vec::new();
    ///     peer.read_to_end(&mut all).map(|_| all.len()) // to EOF: the socket closed
    /// });
    /// base.run(&mut ())?; // returns once the socket is gone
    /// assert_eq!(reader.join().unwrap()?, 100_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn free_after_flush(&mut self) -> io::Result<()> {
        self.control(Control::FreeAfterFlush)
    }
}
