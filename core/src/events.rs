//! The event table: every event's slot, the free list, the live count, and the two side
//! tables most events never use (persistent timeouts' lengths, owned fds). Its methods are an
//! event's state transitions that touch nothing but the table, the active queues and the io
//! map's queue of deferred deletes: allocate and release a slot, count or stop counting,
//! activate and deactivate, detach from the fd lazily, undo or finish that, record a period,
//! own or share an fd. Whether an event counts toward the live total is decided here, from
//! its state, by [`Events::recount`]; the registry above decides what to tell the io map, the
//! timers and the backend.
//!
//! An event's life in its slot: [`alloc`](Events::alloc) gives it an odd generation; `add`
//! (the registry) sets its pending bits and counts it; [`activate_slot`] queues it, which
//! makes it count; its run or `del` clears bits and stops counting it once nothing is left;
//! [`release`](Events::release) makes the generation even and links the slot into the free
//! list, so a stale id no longer matches. The transitions that must borrow the table beside
//! another of the registry's parts (dispatch activates while it reads the io map) are free
//! functions taking the slot: [`activate_slot`], [`deactivate`], [`detach`], [`count`].

use crate::fd::{OwnedFd, RawFd};
use std::io;
use std::rc::Rc;

use crate::active_queues::ActiveQueues;
use crate::event::{cover, state, Slot};
use crate::flags::EventFlags;
use crate::io_map::IoMap;

/// The end of the free list.
pub(crate) const NO_SLOT: u32 = u32::MAX;
/// The most events a base holds at once: slot numbers are `u32`, and `u32::MAX` is taken (the
/// free list's end, the active queues' tombstone).
pub(crate) const MAX_EVENTS: usize = u32::MAX as usize;

/// Every event of a base, by slot number; `C` is the callback type.
pub(crate) struct Events<C> {
    pub slots: Vec<Slot<C>>,
    /// The first free slot; each free slot's `ncalls` links to the next.
    pub free_head: u32,
    /// Events that keep the loop alive: changed by [`count`] only.
    pub live: usize,
    /// The timeouts of persistent events (`intervals[idx]` while slot `idx` has `INTERVAL`),
    /// kept out of the slots: most events have none, and every event would pay 8 bytes.
    pub intervals: Vec<u64>,
    /// The fds of events made by `new_owned_event` and `new_event_on` (`owned_fds[idx]` while
    /// slot `idx` has `OWNS_FD`), kept out of the slots for the same reason. Shared by the
    /// events on one fd: it closes when the last of them is released.
    pub owned_fds: Vec<Option<Rc<OwnedFd>>>,
}

impl<C> Events<C> {
    pub fn new() -> Self {
        Events {
            slots: Vec::new(),
            free_head: NO_SLOT,
            live: 0,
            intervals: Vec::new(),
            owned_fds: Vec::new(),
        }
    }

    /// A slot for a new event, not pending and not counted: its number and generation.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when [`MAX_EVENTS`] slots are taken.
    #[inline]
    pub fn alloc(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        prio: u16,
        callback: C,
    ) -> io::Result<(u32, u32)> {
        if self.free_head != NO_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = slot.ncalls;
            *slot = Slot::new(slot.gen, fd, flags, prio, callback);
            Ok((index, slot.gen))
        } else if self.slots.len() < MAX_EVENTS {
            let slot = Slot::new(0, fd, flags, prio, callback);
            let gen = slot.gen;
            self.slots.push(slot);
            Ok(((self.slots.len() - 1) as u32, gen))
        } else {
            Err(too_many_events())
        }
    }

    /// Free slot `idx`, which the registry has made non-pending and inactive: its share of an
    /// owned fd goes (the fd closes if it was the last), its generation turns even, and it
    /// joins the free list. Returns the callback, unless it is running (out of its slot).
    pub fn release(&mut self, idx: usize) -> Option<C> {
        debug_assert!(!self.slots[idx].is(state::COUNTED));
        if self.slots[idx].is(state::OWNS_FD) {
            drop(self.owned_fds[idx].take());
        }
        let slot = &mut self.slots[idx];
        slot.gen = slot.gen.wrapping_add(1); // even: free
        slot.state = 0;
        slot.ncalls = self.free_head;
        self.free_head = idx as u32;
        slot.callback.take()
    }

    /// Count slot `idx` toward the live total, or stop counting it, as its state says now
    /// (live, not internal, pending or active).
    #[inline(always)]
    pub fn recount(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let counted = slot.should_count();
        count(slot, &mut self.live, counted);
    }

    /// Finish the lazy delete of slot `idx` if it is detached: its flags, which the caller
    /// takes out of the io map. Early for an event being freed or whose fd was found closed;
    /// otherwise when the io map settles ([`settle_detached`](Self::settle_detached)).
    #[inline]
    pub fn finish_detach(&mut self, idx: u32) -> Option<EventFlags> {
        let slot = &mut self.slots[idx as usize];
        if slot.is(state::DETACHED) {
            slot.clear(state::DETACHED);
            Some(slot.flags)
        } else {
            None
        }
    }

    /// The io map's question as it settles its deferred deletes (see `io_map`): slot `idx`
    /// leaves the queue; if it is still detached, its delete is finished and its fd and
    /// flags say what to drop.
    #[inline(always)]
    pub fn settle_detached(&mut self, idx: u32) -> Option<(RawFd, EventFlags)> {
        let slot = &mut self.slots[idx as usize];
        slot.clear(state::LAZY_QUEUED);
        let fd = slot.fd;
        self.finish_detach(idx).map(|flags| (fd, flags))
    }

    /// The period of a persistent timeout is `ns` from now on.
    #[inline]
    pub fn record_interval(&mut self, idx: usize, ns: u64) {
        self.slots[idx].set(state::INTERVAL);
        if self.intervals.len() <= idx {
            cover(&mut self.intervals, idx, 0);
        }
        self.intervals[idx] = ns;
    }

    /// Slot `idx` owns (a share of) `fd` from now on.
    pub fn share_fd(&mut self, idx: usize, fd: Rc<OwnedFd>) {
        if self.owned_fds.len() <= idx {
            cover(&mut self.owned_fds, idx, None);
        }
        self.owned_fds[idx] = Some(fd);
        self.slots[idx].set(state::OWNS_FD);
    }

    /// The fd slot `idx` owns, if it owns one.
    pub fn owned_fd(&self, idx: usize) -> Option<&Rc<OwnedFd>> {
        match self.owned_fds.get(idx) {
            Some(Some(fd)) if self.slots[idx].is(state::OWNS_FD) => Some(fd),
            _ => None,
        }
    }

    /// Slot `idx` gives up its fd without closing it: the caller takes it.
    pub fn take_fd(&mut self, idx: usize) -> Option<Rc<OwnedFd>> {
        self.slots[idx].clear(state::OWNS_FD);
        self.owned_fds.get_mut(idx).and_then(Option::take)
    }
}

/// The one place the live count changes: mark `slot` counted or not, keeping `live` in step.
/// Callers on the hot paths know the answer from the transition they just made (an
/// activation can only make an event count) and pass it, saving the three tests of
/// [`Slot::should_count`]; a debug build checks every such answer against the slot's state,
/// so a wrong one fails where it is given. [`Events::recount`] works it out.
#[inline(always)]
pub(crate) fn count<C>(slot: &mut Slot<C>, live: &mut usize, counted: bool) {
    debug_assert_eq!(
        counted,
        slot.should_count(),
        "counted? state {:#06x}, flags {:?}",
        slot.state,
        slot.flags
    );
    if slot.is(state::COUNTED) != counted {
        slot.state ^= state::COUNTED;
        if counted {
            *live += 1;
        } else {
            *live -= 1;
        }
    }
}

/// Detach an event from its fd lazily: no longer pending, but left listed in the io map, which
/// drops it when it next settles unless it is added back first (see `io_map`). Queued there
/// once, however often it is deleted and added back before that.
#[inline(always)]
pub(crate) fn detach<C>(slot: &mut Slot<C>, idx: usize, io: &mut IoMap) {
    slot.state ^= state::PENDING_IO | state::DETACHED;
    if !slot.is(state::LAZY_QUEUED) {
        slot.set(state::LAZY_QUEUED);
        io.defer_remove(idx as u32);
    }
}

/// Undo a lazy detach: the event is still in the io map, so it is pending again at once.
#[inline(always)]
pub(crate) fn undo_detach<C>(slot: &mut Slot<C>) {
    slot.state ^= state::DETACHED | state::PENDING_IO;
}

/// Cancel an activation whose callback has not run.
#[inline]
pub(crate) fn deactivate<C>(slot: &mut Slot<C>, idx: usize, active: &mut ActiveQueues) {
    slot.clear(state::ACTIVE | state::REARMED);
    slot.res = EventFlags::empty();
    slot.ncalls = 0;
    active.remove(idx as u32, slot.prio, slot.ticket);
}

/// Activate the event in `slot` (number `idx`), or add to its pending activation. Takes the
/// parts it needs, so dispatch can call it while it borrows the io map or the timers.
#[inline(always)]
pub(crate) fn activate_slot<C>(
    slot: &mut Slot<C>,
    idx: u32,
    res: EventFlags,
    ncalls: u32,
    active: &mut ActiveQueues,
    live: &mut usize,
) {
    if slot.is(state::ACTIVE) {
        slot.res |= res;
        slot.ncalls = slot.ncalls.saturating_add(ncalls);
        return;
    }
    slot.res = res;
    slot.ncalls = ncalls;
    slot.set(state::ACTIVE);
    // Becoming active can only make a live, non-internal event count.
    if !slot.is(state::INTERNAL) {
        count(slot, live, true);
    }
    slot.ticket = active.push(idx, slot.prio);
}

#[cold]
fn too_many_events() -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("too many events: a base holds at most {MAX_EVENTS}"),
    )
}
