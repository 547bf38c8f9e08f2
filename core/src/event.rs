//! Events: their ids and their stored state.
//!
//! Events live in a slab inside the registry and are named by an [`EventId`] — the base's id,
//! the slot index and the slot's generation — so an id outlives nothing: once the event is
//! freed, its id (and any copy of it) is refused with a clear error, even after the slot is
//! reused. While a callback runs, its boxed closure is taken out of the slot; that is what
//! lets the callback add, delete, activate and even free its own event through its
//! [`Context`](crate::Context) without `unsafe` or `RefCell`.
//!
//! A [`Slot`] is generic over the callback it stores, so this module needs nothing of the
//! registry that owns the slots (the callback type names the registry's `Context`).

use rustix::fd::RawFd; // the alias the fd module re-exports
use std::fmt;
use std::time::Instant;

use crate::flags::{EventFlags, Fired};

/// Names one event of one base. Cheap to copy; refused once the event is freed.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    pub(crate) base: u32,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EventId(base {}, #{}.{})",
            self.base, self.index, self.gen
        )
    }
}

/// What [`Registry::pending`](crate::Registry::pending) reports about an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// What it waits for, in the terms its callback would be told: READ/WRITE/CLOSED while
    /// the event watches its fd, SIGNAL while it watches a signal, TIMEOUT while its timer
    /// runs; and the fired set of an activation waiting for its callback.
    pub flags: Fired,
    /// When the timer expires, if it runs.
    pub deadline: Option<Instant>,
}

/// The state bits of a [`Slot`], one `u16` so that "does this event keep the loop alive" and
/// similar questions are one mask test.
pub(crate) mod state {
    /// Does not keep the loop alive: the internal events (the loop-exit timer is not one),
    /// and prepare and check watchers, which observe a loop that lives for other reasons.
    pub const INTERNAL: u16 = 1 << 0;
    /// Freed after its callback runs (`once`, `loop_exit`).
    pub const ONCE: u16 = 1 << 1;
    /// Has been in the io map before (see the fd-reuse note in `io_map`).
    pub const REGISTERED: u16 = 1 << 2;
    /// Watching its fd.
    pub const PENDING_IO: u16 = 1 << 3;
    /// Deleted, but still listed in the io map until it settles (see `io_map`).
    pub const DETACHED: u16 = 1 << 4;
    /// In the io map's queue of deferred deletes.
    pub const LAZY_QUEUED: u16 = 1 << 5;
    /// Watching its signal (`fd` holds the signal number).
    pub const PENDING_SIG: u16 = 1 << 6;
    /// Its timer runs.
    pub const TIMER: u16 = 1 << 7;
    /// Waiting in the active queues for its callback.
    pub const ACTIVE: u16 = 1 << 8;
    /// Counted in the base's number of live events.
    pub const COUNTED: u16 = 1 << 9;
    /// A persistent timeout whose expiry re-armed it already; its callback has yet to run.
    pub const REARMED: u16 = 1 << 10;
    /// Has a persistent timeout, re-armed after each activation (the base keeps its length).
    pub const INTERVAL: u16 = 1 << 11;
    /// Owns (a share of) its fd (`Events::owned_fds`), closed when the last event sharing it
    /// is freed.
    pub const OWNS_FD: u16 = 1 << 12;
    /// A loop hook (prepare, check, idle) that is started: in its kind's list in `hooks`.
    pub const HOOKED: u16 = 1 << 13;
    /// Pending or active: what makes a non-internal event count.
    pub const WAITING: u16 = PENDING_IO | PENDING_SIG | TIMER | ACTIVE | HOOKED;
}

/// One event's stored state, with its callback `C`: 40 bytes for a boxed callback (its deadline lives with the timers: the ring, a queue or the heap; a persistent
/// timeout's length in the base). `gen` is odd while the slot holds an event and even
/// while it is free, so checking an id is one comparison; `ncalls` doubles as the free list's
/// link while the slot is free.
pub(crate) struct Slot<C> {
    pub callback: Option<C>,
    pub gen: u32,
    pub fd: RawFd,
    pub ncalls: u32,
    /// Its ticket in the active queues while `ACTIVE` (see `active_queues`).
    pub ticket: u32,
    pub flags: EventFlags,
    pub res: EventFlags,
    pub state: u16,
    pub prio: u16,
}

impl<C> Slot<C> {
    /// A fresh event in a slot whose last generation was `gen` (even: free).
    #[inline]
    pub fn new(gen: u32, fd: RawFd, flags: EventFlags, prio: u16, callback: C) -> Self {
        Slot {
            callback: Some(callback),
            gen: gen | 1,
            fd,
            ncalls: 0,
            ticket: 0,
            flags,
            res: EventFlags::empty(),
            state: 0,
            prio,
        }
    }

    #[inline]
    pub fn live(&self) -> bool {
        self.gen & 1 == 1
    }

    /// Whether any of `bits` is set.
    #[inline]
    pub fn is(&self, bits: u16) -> bool {
        self.state & bits != 0
    }

    #[inline]
    pub fn set(&mut self, bits: u16) {
        self.state |= bits;
    }

    #[inline]
    pub fn clear(&mut self, bits: u16) {
        self.state &= !bits;
    }

    /// Whether the event keeps the loop alive now.
    #[inline]
    pub fn should_count(&self) -> bool {
        self.live() && !self.is(state::INTERNAL) && self.is(state::WAITING)
    }
}

/// Grow a table indexed by id so that it has entry `idx`, new entries `fill`: by an eighth
/// at least, so that ids arriving one by one cost a call now and then, not one each, and
/// with little room to spare.
#[cold]
#[inline(never)]
pub(crate) fn cover<T: Clone>(v: &mut Vec<T>, idx: usize, fill: T) {
    let len = (idx + 1).max(v.len() + v.len() / 8 + 16);
    v.resize(len, fill);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot's size matters to memory per timer (see the README's performance notes).
    /// Windows sockets are 8 bytes where Unix fds are 4.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_is_40_bytes() {
        type Boxed = Box<dyn FnMut(&mut u8)>;
        let expected = if cfg!(windows) { 48 } else { 40 };
        assert_eq!(std::mem::size_of::<Slot<Boxed>>(), expected);
    }
}
