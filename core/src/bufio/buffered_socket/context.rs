//! The callback's view of a buffered socket: [`BevContext`], the state already borrowed and
//! the loop's [`Registry`] beside it. What changes the socket comes from its [`BevControl`],
//! the same methods a handle's `on` gives; the context adds what only a callback has (why it
//! runs, the buffers borrowed, the loop) and a free that hands the fd back.

use std::io;
use std::ops::{Deref, DerefMut};

use super::control::InCallback;
use super::{BevControl, BevEvent, Buffer, BufferedSocket, Control, State};
use crate::fd::{OwnedFd, RawFd};
use crate::flags::Interest;
use crate::registry::Registry;

/// What a buffered socket's callback works with: the socket (its buffers, and through
/// [`BevControl`], to which it dereferences, writing, enabling and the rest), why the
/// callback runs, and the loop's [`Registry`].
pub struct BevContext<'a, D> {
    pub(super) control: BevControl<'a, D, InCallback<'a, D>>,
    pub(super) what: BevEvent,
    pub(super) error: Option<io::Error>,
}

impl<D> BevContext<'_, D> {
    /// The socket's state and the loop, for the library's own callbacks (a filter's).
    pub(super) fn parts(&mut self) -> (&mut State<D>, &mut Registry<D>) {
        (self.control.state.0, self.control.registry)
    }

    /// Why the callback runs: READING or WRITING for the read and write callbacks; for the
    /// event callback what happened (EOF, ERROR, TIMEOUT, CONNECTED) and in which direction
    /// (libevent's `what`; named as [`Context::fired`](crate::Context::fired) is).
    pub fn fired(&self) -> BevEvent {
        self.what
    }

    /// Which directions are enabled (READ, WRITE).
    pub fn enabled(&self) -> Interest {
        Interest::of(self.control.state.0.enabled)
    }

    /// The error behind an ERROR event.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The bytes read and not yet consumed.
    pub fn input(&mut self) -> &mut Buffer {
        &mut self.control.state.0.input
    }

    /// The bytes waiting to be written. Appending here directly is fine: they go out when
    /// the callback returns.
    pub fn output(&mut self) -> &mut Buffer {
        &mut self.control.state.0.output
    }

    /// Both buffers at once, `(input, output)`: an echo moves one into the other.
    pub fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (
            &mut self.control.state.0.input,
            &mut self.control.state.0.output,
        )
    }

    /// The socket's fd (-1 for a pair).
    pub fn fd(&self) -> RawFd {
        self.control.state.0.fd
    }

    /// The socket's TLS connection (`None` for a plain socket): negotiated protocol version,
    /// ALPN protocol, cipher suite, peer certificates.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&rustls::Connection> {
        self.control.state.0.tls.as_ref().map(|t| &t.conn)
    }

    /// The loop: every event operation, `loop_exit`, `loop_break`, and other sockets'
    /// [`on`](BufferedSocket::on).
    pub fn context(&mut self) -> &mut Registry<D> {
        self.control.registry
    }

    /// A handle to this socket, to keep elsewhere (for use outside its own callbacks).
    pub fn handle(&self) -> BufferedSocket<D> {
        BufferedSocket {
            state: self.control.rc.clone(),
        }
    }
}

/// The socket's [`BevControl`]: enable, write, watermarks, timeouts, callbacks and the rest,
/// at once (after whatever handles to this socket queued while the callback ran).
impl<'a, D> Deref for BevContext<'a, D> {
    type Target = BevControl<'a, D, InCallback<'a, D>>;

    fn deref(&self) -> &Self::Target {
        &self.control
    }
}

impl<D> DerefMut for BevContext<'_, D> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.control
    }
}

impl<D: 'static> BevContext<'_, D> {
    /// Free the socket once this callback returns: its events go, and its fd is closed
    /// (`close_on_free`) or returned here. (Not a [`BevControl`] method: a handle's
    /// [`free`](BufferedSocket::free) frees at once and consumes the handle.)
    pub fn free(&mut self) -> Option<OwnedFd> {
        let state = &mut *self.control.state.0;
        state.settle(self.control.registry, self.control.rc);
        // Cannot fail: a socket freed already only stays freed.
        let _ = state.apply(self.control.registry, self.control.rc, Control::Free);
        if state.close_on_free {
            None
        } else {
            state.owned.take()
        }
    }
}
