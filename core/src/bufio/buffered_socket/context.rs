//! The callback's view of a buffered socket: [`BevContext`], the state already borrowed and
//! the loop's [`Context`] beside it. Its changes are the same `Control`s a handle sends,
//! carried out by the one `State::apply` (see `deferred`), after whatever handles queued
//! while the callback ran.

use std::io;
use std::time::Duration;

use super::{
    BevEvent, Buffer, BufferedSocket, Control, FlushMode, RateLimit, Shared, State, Which,
};
use crate::fd::{OwnedFd, RawFd};
use crate::flags::Interest;
use crate::registry::Context;

/// What a buffered socket's callback works with: the socket (buffers, writing, enabling,
/// freeing), why the callback runs, and the loop's [`Context`].
pub struct BevContext<'a, 'b, D> {
    pub(super) ctx: &'a mut Context<'b, D>,
    pub(super) state: &'a mut State<D>,
    pub(super) rc: &'a Shared<D>,
    pub(super) what: BevEvent,
    pub(super) error: Option<io::Error>,
}

impl<'b, D> BevContext<'_, 'b, D> {
    /// Why the callback runs: READING or WRITING for the read and write callbacks; for the
    /// event callback what happened (EOF, ERROR, TIMEOUT, CONNECTED) and in which direction
    /// (libevent's `what`; named as [`Context::fired`] is).
    pub fn fired(&self) -> BevEvent {
        self.what
    }

    /// Which directions are enabled (READ, WRITE).
    pub fn enabled(&self) -> Interest {
        Interest::of(self.state.enabled)
    }

    /// The error behind an ERROR event.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The bytes read and not yet consumed.
    pub fn input(&mut self) -> &mut Buffer {
        &mut self.state.input
    }

    /// The bytes waiting to be written. Appending here directly is fine: they go out when
    /// the callback returns.
    pub fn output(&mut self) -> &mut Buffer {
        &mut self.state.output
    }

    /// Both buffers at once, `(input, output)`: an echo moves one into the other.
    pub fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (&mut self.state.input, &mut self.state.output)
    }

    /// The socket's fd (-1 for a pair).
    pub fn fd(&self) -> RawFd {
        self.state.fd
    }

    /// The socket's TLS connection (`None` for a plain socket): negotiated protocol version,
    /// ALPN protocol, cipher suite, peer certificates.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&rustls::Connection> {
        self.state.tls.as_ref().map(|t| &t.conn)
    }

    /// The loop: every event operation, `loop_exit`, `loop_break`.
    pub fn context(&mut self) -> &mut Context<'b, D> {
        self.ctx
    }

    /// A handle to this socket, to keep elsewhere (for use outside its own callbacks).
    pub fn handle(&self) -> BufferedSocket<D> {
        BufferedSocket {
            state: self.rc.clone(),
        }
    }
}

/// The methods that change what the socket does; they may arm a rate limit's timer, whose
/// callback holds the socket, so `D` is `'static` as for [`BufferedSocket`].
impl<D: 'static> BevContext<'_, '_, D> {
    /// Apply what handles to this socket queued while its callback runs, so that they and
    /// the context's own calls take effect in program order.
    fn settle(&mut self) {
        self.state.settle(self.ctx, self.rc);
    }

    /// Carry out `op` now, after what handles queued before it (see `deferred`).
    fn control(&mut self, op: Control<D>) -> io::Result<()> {
        self.settle();
        self.state.apply(self.ctx, self.rc, op)
    }

    /// Replace the read callback, from inside any of this socket's callbacks (libevent's
    /// `bufferevent_setcb` from a callback, as its le-proxy does): the new one is used from
    /// the next time it is due; the running one finishes first.
    pub fn set_read_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Read, Box::new(cb))); // cannot fail
    }

    /// Replace the write callback; see [`set_read_callback`](Self::set_read_callback).
    pub fn set_write_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Write, Box::new(cb))); // cannot fail
    }

    /// Replace the event callback; see [`set_read_callback`](Self::set_read_callback).
    pub fn set_event_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Event, Box::new(cb))); // cannot fail
    }

    /// Queue `data` for writing.
    ///
    /// # Errors
    ///
    /// After `free`; a frozen output.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.settle();
        self.state.write(self.ctx, data)
    }

    /// Start reading and/or writing.
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn enable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), true))
    }

    /// Stop reading and/or writing.
    ///
    /// # Errors
    ///
    /// After `free`.
    pub fn disable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), false))
    }

    /// Push bytes through a filtered socket's filters in `mode` (libevent's
    /// `bufferevent_flush`): `READ` runs the input side, `WRITE` the output side, which
    /// stays in `mode` until the filter has pushed everything. On any other socket, only
    /// starts writing what the output holds.
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn flush_with(&mut self, dirs: Interest, mode: FlushMode) -> io::Result<()> {
        self.control(Control::Flush(dirs.into(), Some(mode)))
    }

    /// Set (`Some`), change or remove (`None`) this socket's own rate limit; see
    /// [`BufferedSocket::set_rate_limit`].
    ///
    /// # Errors
    ///
    /// After `free`; `Unsupported` on a pair.
    pub fn set_rate_limit(&mut self, limit: Option<RateLimit>) -> io::Result<()> {
        self.control(Control::RateLimit(limit))
    }

    /// Set the read watermarks: the read callback waits for `low` bytes; reading stops while
    /// `high` (0: no limit) are buffered.
    pub fn set_read_watermark(&mut self, low: usize, high: usize) {
        // A refused re-arm also reaches the event callback as the I/O fails.
        let _ = self.control(Control::ReadWatermark(low, high));
    }

    /// Set the write watermarks: the write callback runs once the output drains to `low`;
    /// `write` refuses (`WouldBlock`) what would make more than `high` bytes wait (0: no
    /// limit), so a peer that never reads cannot make the output grow without bound.
    pub fn set_write_watermark(&mut self, low: usize, high: usize) {
        // A refused re-arm also reaches the event callback as the I/O fails.
        let _ = self.control(Control::WriteWatermark(low, high));
    }

    /// Set the read and write timeouts (`None`: no timeout), counted from the loop's cached
    /// time; see [`BufferedSocket::set_timeouts`].
    ///
    /// # Errors
    ///
    /// The backend refusing to re-arm the fd.
    pub fn set_timeouts(
        &mut self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.control(Control::Timeouts(read, write))
    }

    /// Flush, then close (the usual end of a reply): stop reading, let the output drain, then
    /// free the socket once this callback has returned and everything went out (a TLS
    /// socket's close_notify after the last record). No callback of this socket runs after
    /// this; an error, or the write timeout if one is set, frees it at once. See
    /// [`BufferedSocket::free_after_flush`].
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn free_after_flush(&mut self) -> io::Result<()> {
        self.control(Control::FreeAfterFlush)
    }

    /// Free the socket once this callback returns: its events go, and its fd is closed
    /// (`close_on_free`) or returned here.
    pub fn free(&mut self) -> Option<OwnedFd> {
        let _ = self.control(Control::Free);
        if self.state.close_on_free {
            None
        } else {
            self.state.owned.take()
        }
    }
}
