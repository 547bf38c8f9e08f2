//! Events: their ids, their stored state, and the context a callback runs with.
//!
//! Events live in a slab inside the base and are named by an [`EventId`] — the base's id, the
//! slot index and the slot's generation — so an id outlives nothing: once the event is freed,
//! its id (and any copy of it) is refused with a clear error, even after the slot is reused.
//! While a callback runs, its boxed closure is taken out of the slot; that is what lets the
//! callback add, delete, activate and even free its own event through the [`Context`]
//! without `unsafe` or `RefCell`.

use std::fmt;
use std::os::fd::RawFd;
use std::time::Instant;

use crate::base::Inner;
use crate::flags::EventFlags;

/// The boxed callback of an event: the context of this run, and the user data passed to
/// [`Base::run`](crate::Base::run).
pub type Callback<D> = Box<dyn FnMut(&mut Context<'_, D>, &mut D)>;

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

/// What [`Base::pending`](crate::Base::pending) reports about an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// READ/WRITE/CLOSED while the event watches its fd, TIMEOUT while its timer runs, and the
    /// result flags of an activation waiting for its callback.
    pub flags: EventFlags,
    /// When the timer expires, if it runs.
    pub deadline: Option<Instant>,
}

/// The state bits of a [`Slot`], one `u16` so that "does this event keep the loop alive" and
/// similar questions are one mask test.
pub(crate) mod state {
    /// Internal events (the loop-exit timer is not one) do not keep the loop alive.
    pub const INTERNAL: u16 = 1 << 0;
    /// Freed after its callback runs (`once`, `loop_exit`).
    pub const ONCE: u16 = 1 << 1;
    /// Has been in the io map before (see the fd-reuse note in `io_map`).
    pub const REGISTERED: u16 = 1 << 2;
    /// Watching its fd.
    pub const PENDING_IO: u16 = 1 << 3;
    /// Deleted, but still in the io map until the next wait (see `Inner::del_idx`).
    pub const DETACHED: u16 = 1 << 4;
    /// Queued on the base's list of lazy deletes.
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
    /// Pending or active: what makes a non-internal event count.
    pub const WAITING: u16 = PENDING_IO | PENDING_SIG | TIMER | ACTIVE;
}

/// One event's stored state, 40 bytes (its deadline lives in the timer heap, a persistent
/// timeout's length in the base). `gen` is odd while the slot holds an event and even
/// while it is free, so checking an id is one comparison; `ncalls` doubles as the free list's
/// link while the slot is free.
pub(crate) struct Slot<D> {
    pub callback: Option<Callback<D>>,
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

impl<D> Slot<D> {
    /// A fresh event in a slot whose last generation was `gen` (even: free).
    #[inline]
    pub fn new(gen: u32, fd: RawFd, flags: EventFlags, prio: u16, callback: Callback<D>) -> Self {
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

/// What a callback gets: why it runs, and every operation of the base.
///
/// Through the context a callback can create, add, delete, activate and free any event of its
/// base, including the one running, and stop the loop. The operations are the same as on
/// [`Base`](crate::Base) and documented there; running the loop is the one thing a callback
/// cannot do (loops do not nest).
///
/// # Examples
///
/// A persistent timer that deletes itself on its third run:
///
/// ```
/// use std::time::Duration;
/// use evloop_core::{Base, EventFlags};
/// # fn backend() -> Box<dyn evloop_core::Backend> { evloop_core::doc_backend() }
///
/// let mut base: Base<u32> = Base::with_backend(backend(), Default::default()).unwrap();
/// let t = base
///     .new_timer(EventFlags::PERSIST, |ctx, runs: &mut u32| {
///         *runs += 1;
///         if *runs == 3 {
///             let me = ctx.id();
///             ctx.del(me).unwrap();
///         }
///     })
///     .unwrap();
/// base.add(t, Some(Duration::from_millis(1))).unwrap();
/// let mut runs = 0;
/// base.run(&mut runs).unwrap();
/// assert_eq!(runs, 3);
/// ```
pub struct Context<'a, D> {
    pub(crate) inner: &'a mut Inner<D>,
    pub(crate) id: EventId,
    pub(crate) fired: EventFlags,
    pub(crate) ncalls: u32,
}

impl<D> Context<'_, D> {
    /// The event whose callback is running.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Why it runs: READ, WRITE, CLOSED, TIMEOUT (or what a manual activation passed).
    pub fn fired(&self) -> EventFlags {
        self.fired
    }

    /// How many activations this run stands for (the count passed to
    /// [`activate`](crate::Base::activate), or deliveries of a signal).
    pub fn ncalls(&self) -> u32 {
        self.ncalls
    }

    /// The fd of the running event (-1 for a timer, the signal number for a signal event).
    pub fn fd(&self) -> RawFd {
        self.inner.slots[self.id.index as usize].fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot's size matters to memory per timer (see the README's performance notes).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Slot<()>>(), 40);
    }
}
