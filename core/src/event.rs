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

pub(crate) struct Slot<D> {
    pub gen: u32,
    pub live: bool,
    pub fd: RawFd,
    pub flags: EventFlags,
    pub prio: u16,
    /// Internal events (the loop-exit timer is not one) do not keep the loop alive.
    pub internal: bool,
    /// Freed after its callback runs (`once`, `loop_exit`).
    pub once: bool,
    /// Has been in the io map before (see the fd-reuse note in `io_map`).
    pub registered: bool,
    pub pending_io: bool,
    /// Deleted, but still in the io map until the next wait (see `Inner::del_idx`).
    pub detached: bool,
    /// Queued on the base's list of lazy deletes.
    pub lazy_queued: bool,
    /// Watching its signal (`fd` holds the signal number).
    pub pending_sig: bool,
    pub timer: bool,
    pub active: bool,
    /// Counted in the base's number of live events.
    pub counted: bool,
    pub res: EventFlags,
    pub ncalls: u32,
    /// Timeout of a persistent event, re-armed after each activation.
    pub interval: Option<u64>,
    pub deadline: u64,
    pub callback: Option<Callback<D>>,
    pub next_free: u32,
}

impl<D> Slot<D> {
    pub fn new(gen: u32, fd: RawFd, flags: EventFlags, prio: u16, callback: Callback<D>) -> Self {
        Slot {
            gen,
            live: true,
            fd,
            flags,
            prio,
            internal: false,
            once: false,
            registered: false,
            pending_io: false,
            detached: false,
            lazy_queued: false,
            pending_sig: false,
            timer: false,
            active: false,
            counted: false,
            res: EventFlags::empty(),
            ncalls: 0,
            interval: None,
            deadline: 0,
            callback: Some(callback),
            next_free: u32::MAX,
        }
    }

    /// Whether the event keeps the loop alive now.
    pub fn should_count(&self) -> bool {
        self.live
            && !self.internal
            && (self.pending_io || self.pending_sig || self.timer || self.active)
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
