//! One way to use a socket, inside and outside its callbacks. A [`BufferedSocket`] handle
//! used while the socket's own callback runs finds the state borrowed; instead of failing,
//! a call that changes the socket (write, enable, disable, flush, timeouts, watermarks,
//! callbacks, rate limit, free) is queued here and applied in order — before the next call
//! through the callback's [`BevContext`](super::BevContext), and when the callback returns —
//! so program order holds however the two are mixed. Calls that read the socket
//! (`input_len`, `with_input`, ...) cannot wait and answer `ResourceBusy` there.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Deref;
use std::time::Duration;

use super::{BevCallback, EventFlags, FlushMode, RateLimit, Registry, Shared, State};

/// A socket's state, with the queue of calls made while it was borrowed.
pub(super) struct SocketCell<D> {
    state: RefCell<State<D>>,
    queue: RefCell<VecDeque<Deferred<D>>>,
    /// Whether `queue` holds anything: one load on every callback's return, where the queue
    /// is almost always empty.
    queued: Cell<bool>,
    /// The running callback freed the socket or began its close (the state, borrowed,
    /// cannot say so): later calls through a handle are refused, not queued.
    pub(super) ended: Cell<bool>,
    /// Whether freeing closes the fd (a queued `free` cannot hand it back).
    pub(super) close_on_free: bool,
}

impl<D> SocketCell<D> {
    pub(super) fn new(state: State<D>) -> Self {
        let close_on_free = state.close_on_free;
        SocketCell {
            state: RefCell::new(state),
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(false),
            ended: Cell::new(false),
            close_on_free,
        }
    }

    /// Queue `op` to run when the socket's callback returns. After a queued free, later
    /// calls are refused (they could only be dropped).
    pub(super) fn defer(&self, op: Deferred<D>) {
        if matches!(op, Deferred::Free | Deferred::FreeAfterFlush) {
            self.ended.set(true);
        }
        self.queue.borrow_mut().push_back(op);
        self.queued.set(true);
    }

    #[inline]
    pub(super) fn has_deferred(&self) -> bool {
        self.queued.get()
    }
}

impl<D> Deref for SocketCell<D> {
    type Target = RefCell<State<D>>;

    fn deref(&self) -> &Self::Target {
        &self.state
    }
}

/// A call made through a handle while the socket was busy.
pub(super) enum Deferred<D> {
    Write(Vec<u8>),
    Enable(EventFlags, bool),
    /// A flush; with a mode, `flush_with`.
    Flush(EventFlags, Option<FlushMode>),
    Timeouts(Option<Duration>, Option<Duration>),
    ReadWatermark(usize, usize),
    WriteWatermark(usize, usize),
    Callback(usize, BevCallback<D>),
    RateLimit(Option<RateLimit>),
    FreeAfterFlush,
    Free,
}

impl<D: 'static> State<D> {
    /// Apply the calls queued while this socket's callback ran, in order. An error now has
    /// no caller to go to; the ones possible here (the backend refusing to re-arm) also
    /// reach the event callback as the I/O fails.
    #[inline]
    pub(super) fn settle(&mut self, ops: &mut Registry<D>, rc: &Shared<D>) {
        if rc.has_deferred() {
            self.apply_deferred(ops, rc);
        }
    }

    #[inline(never)]
    fn apply_deferred(&mut self, ops: &mut Registry<D>, rc: &Shared<D>) {
        loop {
            let Some(op) = rc.queue.borrow_mut().pop_front() else {
                rc.queued.set(false);
                return;
            };
            if self.freed {
                continue;
            }
            let _ = match op {
                // Queued from inside a callback, a write was promised to the caller, so it is
                // not held to the write high watermark.
                Deferred::Write(data) => self.write_unbounded(ops, &data),
                Deferred::Enable(flags, on) => self.set_enabled(ops, flags, on),
                Deferred::Flush(dirs, Some(mode)) => self.flush_with(ops, dirs, mode),
                Deferred::Flush(_, None) => self.sync(ops),
                Deferred::Timeouts(read, write) => self.set_timeouts(ops, read, write),
                Deferred::ReadWatermark(low, high) => {
                    (self.read_low, self.read_high) = (low, high);
                    self.sync(ops)
                }
                Deferred::WriteWatermark(low, high) => {
                    (self.write_low, self.write_high) = (low, high);
                    Ok(())
                }
                Deferred::Callback(which, cb) => {
                    self.callbacks[which] = Some(cb);
                    Ok(())
                }
                Deferred::RateLimit(limit) => self.set_rate_limit(ops, rc, limit),
                Deferred::FreeAfterFlush => self.free_after_flush(ops).map(|done| {
                    if done {
                        self.freed = true;
                    }
                }),
                Deferred::Free => {
                    self.freed = true;
                    Ok(())
                }
            };
        }
    }
}
