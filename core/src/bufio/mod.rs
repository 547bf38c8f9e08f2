//! Buffered I/O, libevent's bufferevent layer on top of the loop: [`Buffer`], a chained byte
//! queue; [`BufferedSocket`], an fd with an input and an output buffer, watermarks and
//! timeouts, whose callbacks are told [`BevEvent`]s; and [`Listener`], which accepts
//! connections. They use the loop only through the [`Registry`](crate::Registry) they are
//! given, like any user code.

mod buffer;
mod buffered_socket;
mod file_segment;
mod listener;
mod socket_options;
#[cfg(feature = "tls")]
mod tls;

pub use buffer::{Buffer, BufferChange, CallbackId, Eol, IoOutcome};
pub use buffered_socket::{
    BevCallback, BevContext, BevControl, BevOptions, BevReach, BufferedSocket, Filter,
    FilterResult, FlushMode, FromHandle, InCallback, RateLimit, RateLimitGroup,
};
pub use file_segment::FileSegment;
pub(crate) use listener::nonblocking_socket;
pub use listener::{AcceptCallback, Listener, ListenerErrorCallback, ListenerOptions, PeerAddr};
pub use socket_options::SocketOptions;

use crate::flags::flag_set;

flag_set! {
    /// What a buffered socket's event callback is told (libevent's `BEV_EVENT_*`): what
    /// happened, and while doing what.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::BevEvent;
    /// let what = BevEvent::EOF | BevEvent::READING;
    /// assert!(what.contains(BevEvent::EOF));
    /// ```
    BevEvent: u8 {
        /// While reading.
        READING = 0x01,
        /// While writing.
        WRITING = 0x02,
        /// The peer closed its end.
        EOF = 0x10,
        /// An I/O error; the callback's context holds it.
        ERROR = 0x20,
        /// A read or write timeout expired; that direction is disabled.
        TIMEOUT = 0x40,
        /// A connect finished.
        CONNECTED = 0x80,
    }
}
