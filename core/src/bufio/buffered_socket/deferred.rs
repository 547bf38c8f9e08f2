//! One way to use a socket, inside and outside its callbacks. Every change to a socket is a
//! [`BevControl`](super::BevControl) method (enable, disable, flush, timeouts, watermarks,
//! callbacks, rate limit, close), reached from a handle's `on` or a callback's
//! [`BevContext`](super::BevContext); each builds a [`Control`], carried out by one function,
//! [`State::apply`]: the two ways in differ only in when it runs. A handle used while the socket's own callback
//! runs finds the state borrowed; instead of failing, its control is queued here and applied
//! in order — before the next call through the callback's context, and when the callback
//! returns — so program order holds however the two are mixed. Calls that read the socket
//! (`input_len`, `with_input`, ...) cannot wait and answer `ResourceBusy` there. Writes keep
//! a path of their own (the data is borrowed, and a queued write was promised to its caller,
//! so it is not held to the high watermark), and so does a handle's `free`, which hands the fd
//! back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Deref;
use std::time::Duration;

use std::io;

use super::{
    freed_error, BevCallback, EventFlags, FlushMode, RateLimit, Registry, Shared, State, Which,
};

/// A socket's state, with the queue of calls made while it was borrowed.
pub(super) struct SocketCell<D> {
    state: RefCell<State<D>>,
    queue: RefCell<VecDeque<Control<D>>>,
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
    pub(super) fn defer(&self, op: Control<D>) {
        if matches!(op, Control::Free | Control::FreeAfterFlush) {
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

/// A change to a socket, made through a handle or a callback's context.
pub(super) enum Control<D> {
    /// Only queued writes (see the module note).
    Write(Vec<u8>),
    Enable(EventFlags, bool),
    /// A flush; with a mode, `flush_with`.
    Flush(EventFlags, Option<FlushMode>),
    Timeouts(Option<Duration>, Option<Duration>),
    ReadWatermark(usize, usize),
    WriteWatermark(usize, usize),
    Callback(Which, BevCallback<D>),
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
            let _ = self.apply(ops, rc, op);
        }
    }

    /// Carry out `op`, whichever front end it came from. A free or the start of a close marks
    /// the socket (`freed`, and the cell's `ended`, so a handle used later in the running
    /// callback is refused); the caller tears it down when the state is no longer borrowed.
    pub(super) fn apply(
        &mut self,
        ops: &mut Registry<D>,
        rc: &Shared<D>,
        op: Control<D>,
    ) -> io::Result<()> {
        if self.freed {
            // Refused alike from both front ends: a handle finds the socket freed before it
            // gets here, a callback's context after its own `free`.
            return Err(freed_error());
        }
        match op {
            Control::Write(data) => self.write_unbounded(ops, &data),
            Control::Enable(flags, on) => self.set_enabled(ops, flags, on),
            Control::Flush(dirs, Some(mode)) => self.flush_with(ops, dirs, mode),
            Control::Flush(_, None) => self.sync(ops),
            Control::Timeouts(read, write) => self.set_timeouts(ops, read, write),
            Control::ReadWatermark(low, high) => {
                (self.marks.read_low, self.marks.read_high) = (low, high);
                self.sync(ops)
            }
            Control::WriteWatermark(low, high) => {
                (self.marks.write_low, self.marks.write_high) = (low, high);
                self.sync(ops)
            }
            Control::Callback(which, cb) => {
                *self.callbacks.get(which) = Some(cb);
                Ok(())
            }
            Control::RateLimit(limit) => self.set_rate_limit(ops, rc, limit),
            Control::FreeAfterFlush => {
                rc.ended.set(true);
                if self.free_after_flush(ops)? {
                    self.freed = true;
                }
                Ok(())
            }
            Control::Free => {
                rc.ended.set(true);
                self.freed = true;
                Ok(())
            }
        }
    }
}
