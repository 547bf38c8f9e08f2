//! Dispatch: what the loop does with one wait's results (steps 3 to 5 of the iteration
//! described in `base`). The registry's pending changes are flushed to the backend; the events
//! of ready fds are activated, then expired timers; then the callbacks of the most urgent
//! priority run, each with a [`Context`], each followed by its re-arm or its free.
//!
//! While a callback runs, its boxed closure is out of its slot (so the callback may free its
//! own event), and a guard frees the event if the callback unwinds: a closure that panicked
//! half-way through an update must not run again.

use crate::fd::RawFd;
use std::time::Instant;

use crate::clock::next_deadline;
use crate::event::{state, EventId};
use crate::events::{activate_slot, count, Events};
use crate::flags::EventFlags;
use crate::options::BaseOptions;
use crate::registry::{Callback, Context, Registry};
use crate::signal::Mechanism;

impl<D> Registry<D> {
    /// Apply the change list (lazy deletes included: see `io_map`) before a wait. Each part
    /// is tested here, inline, so an iteration with nothing to flush calls nothing.
    #[inline]
    pub(crate) fn flush_changes(&mut self) {
        if self.io.has_changes() {
            let events = &mut self.events;
            self.io
                .flush(&mut *self.backend, |id| events.settle_detached(id));
        }
        if !self.io.failed.is_empty() {
            self.report_failed();
        }
    }

    /// Activate what the backend reported: a wake-up, signals it delivers itself, and the
    /// events of every ready fd, in the order they were added to the fd.
    #[inline]
    pub(crate) fn activate_ready(&mut self) {
        if !self.ready.closed().is_empty() {
            self.io.failed.extend_from_slice(self.ready.closed());
            self.report_failed();
        }
        if self.ready.take_woken() {
            if let Some(ev) = self.internal.remote_event {
                self.activate_idx(ev.index as usize, EventFlags::READ, 1);
            }
        }
        if self.internal.signals.mechanism == Mechanism::Backend {
            self.deliver_signals(|registry, out| registry.ready.take_signals(out));
        }
        // Borrowed apart, so the io map's lists are read while the slots and queues change.
        let Registry {
            ready,
            io,
            events,
            active,
            ..
        } = self;
        let Events { slots, live, .. } = events;
        for (fd, mut ready) in ready.iter() {
            if ready.contains(EventFlags::READ) && io.emulates_closed(fd) && at_eof(fd) {
                ready |= EventFlags::CLOSED;
            }
            for &idx in io.events(fd) {
                let slot = &mut slots[idx as usize];
                let res = ready & slot.flags & EventFlags::IO;
                if !res.is_empty() && slot.is(state::PENDING_IO) {
                    activate_slot(slot, idx, res, 1, active, live);
                }
            }
        }
    }

    /// Activate the events of every timer due at `now`.
    #[inline]
    pub(crate) fn expire_timers(&mut self, now: u64) {
        let Registry {
            timers,
            events,
            active,
            ..
        } = self;
        let Events {
            slots,
            live,
            intervals,
            ..
        } = events;
        while let Some((idx, deadline)) = timers.pop_expired(now) {
            let slot = &mut slots[idx as usize];
            slot.clear(state::TIMER);
            // An event still waiting for the run of an earlier expiry (starved by a more
            // urgent priority) runs once for both, as in libevent.
            if !(slot.is(state::ACTIVE) && slot.res.contains(EventFlags::TIMEOUT)) {
                activate_slot(slot, idx, EventFlags::TIMEOUT, 1, active, live);
            }
            // A persistent timeout is re-armed here rather than before its callback: its
            // cadence runs from the deadline that passed, and no slot keeps a copy of that.
            // The new deadline is after `now`, so this pass does not meet it again. A zero
            // interval would be met again: it is re-armed before the callback, from now.
            if slot.is(state::INTERVAL) {
                let interval = intervals[idx as usize];
                if interval != 0 {
                    slot.set(state::TIMER | state::REARMED);
                    timers.rearm(
                        idx,
                        next_deadline(deadline, interval, now),
                        interval,
                        || true,
                    );
                }
            }
        }
    }

    /// Run the best non-empty priority; returns how many user callbacks ran. Runs what was
    /// queued there when the pass began: what a callback activates at this priority (itself
    /// again, a buffered socket's next deferred callback) runs in the next iteration, after
    /// the backend was polled and the timers checked, so a busy callback cannot hold the loop
    /// in one pass. Stops early for a break or a `loop_exit` that took effect, when a callback activated a more urgent event
    /// (it runs first), or at a dispatch limit of `opts` (for priorities from
    /// `limit_callbacks_after_prio` on).
    #[inline]
    pub(crate) fn process_active(&mut self, data: &mut D, opts: &BaseOptions) -> usize {
        // An empty pass (an idle watcher's, a wake-up for nothing) asks nothing more.
        if self.active.is_empty() {
            return 0;
        }
        let Some(prio) = self.active.best() else {
            return 0;
        };
        let limited = prio >= opts.limit_callbacks_after_prio
            && (opts.max_dispatch_callbacks.is_some() || opts.max_dispatch_interval.is_some());
        let started = if limited { Some(Instant::now()) } else { None };
        let mut ran = 0usize;
        let end = self.active.end_ticket(prio);
        while let Some(idx) = self.active.pop_before(prio, end) {
            ran += usize::from(!self.events.slots[idx as usize].is(state::INTERNAL));
            self.run_one(idx as usize, data);
            // An exit timer that ran ends the pass too: what was queued behind it (after
            // `loop_exit` was called) is not "active now".
            if self.flow.got_break || self.flow.got_exit || self.active.has_better_than(prio) {
                break;
            }
            // One predictable branch per callback when no limit applies.
            if limited && limit_reached(opts, ran, started) {
                break;
            }
        }
        ran
    }

    /// Run the callback of the active event `idx`, just taken off its queue.
    #[inline(always)]
    fn run_one(&mut self, idx: usize, data: &mut D) {
        let slot = &mut self.events.slots[idx];
        slot.clear(state::ACTIVE);
        let fired = std::mem::take(&mut slot.res);
        let ncalls = std::mem::take(&mut slot.ncalls);
        // The common cases need little before the callback: a persistent event without a
        // timeout that still watches its fd or signal stays pending and counted; an expired
        // one-shot timer, waiting for nothing, stops counting.
        if slot.flags.contains(EventFlags::PERSIST) {
            if slot.is(state::INTERVAL) || !slot.is(state::WAITING) {
                self.before_run(idx, fired);
            }
        } else if slot.is(state::WAITING) {
            self.before_run(idx, fired);
        } else {
            count(slot, &mut self.events.live, false);
        }
        self.run_callback(idx, fired, ncalls, data);
    }

    /// Run the callback of event `idx` with a [`Context`] saying `fired` and `ncalls`, then
    /// give it back to its slot (or free a one-shot event); a callback that unwinds frees its
    /// event. Also how prepare, check and idle watchers run.
    #[inline(always)]
    pub(crate) fn run_callback(
        &mut self,
        idx: usize,
        fired: EventFlags,
        ncalls: u32,
        data: &mut D,
    ) {
        let slot = &mut self.events.slots[idx];
        let Some(mut callback) = slot.callback.take() else {
            return;
        };
        let id = EventId {
            base: self.id,
            index: idx as u32,
            gen: slot.gen,
        };
        let mut guard = Unwinding {
            registry: self,
            id,
            armed: true,
        };
        let mut ctx = Context {
            registry: &mut *guard.registry,
            id,
            fired,
            ncalls,
        };
        callback(&mut ctx, data);
        guard.armed = false;
        guard.registry.put_back(id, callback);
    }

    /// What the other activations need before their callback runs: a one-shot event is
    /// deleted, a persistent timeout re-armed, and an event no longer pending stops counting.
    #[inline(never)]
    fn before_run(&mut self, idx: usize, fired: EventFlags) {
        let slot = &mut self.events.slots[idx];
        if !slot.flags.contains(EventFlags::PERSIST) {
            if slot.is(state::WAITING) {
                let _ = self.del_idx(idx);
            } else {
                // An expired one-shot timer, say: nothing left to delete.
                count(slot, &mut self.events.live, false);
            }
            return;
        }
        if slot.is(state::INTERVAL) {
            self.rearm_persistent(idx, fired);
        }
        // A persistent event still watching something counts as before; one that was
        // activated by hand while not pending stops counting now.
        let slot = &mut self.events.slots[idx];
        if !slot.is(state::WAITING) {
            count(slot, &mut self.events.live, false);
        }
    }

    /// Re-arm a persistent event's timeout before its callback (libevent's
    /// event_persist_closure), unless its expiry did already (see `expire_timers`). A
    /// timeout activated by hand keeps the cadence of the pending deadline; any other
    /// activation restarts the timeout from now.
    #[inline(never)]
    fn rearm_persistent(&mut self, idx: usize, fired: EventFlags) {
        let slot = &mut self.events.slots[idx];
        if slot.is(state::REARMED) {
            slot.clear(state::REARMED);
            return;
        }
        let now = self.clock.now();
        let from = match self.timers.deadline(idx as u32) {
            Some(pending) if fired.contains(EventFlags::TIMEOUT) => pending,
            _ => now,
        };
        self.events.slots[idx].set(state::TIMER);
        let interval = self.events.intervals[idx];
        let deadline = next_deadline(from, interval, now);
        self.timers.rearm(idx as u32, deadline, interval, || true);
    }

    /// Give a callback back to its slot after it returned — or free the event if it was a
    /// one-shot; nothing if the callback freed its own event (the closure drops here).
    #[inline(always)]
    fn put_back(&mut self, id: EventId, callback: Callback<D>) {
        let idx = id.index as usize;
        let Some(slot) = self.events.slots.get_mut(idx).filter(|s| s.gen == id.gen) else {
            return;
        };
        if slot.is(state::ONCE) {
            self.free_after_run(idx);
        } else {
            let _none = slot.callback.replace(callback);
        }
    }

    /// A one-shot event after its run, or any event whose callback panicked (see
    /// [`Unwinding`]).
    #[cold]
    #[inline(never)]
    fn free_after_run(&mut self, idx: usize) {
        self.free_idx(idx);
    }
}

/// Frees the event whose callback is unwinding (a panic): its closure may be half-way through
/// an update, and running it again would observe that. Disarmed when the callback returns.
struct Unwinding<'a, D> {
    registry: &'a mut Registry<D>,
    id: EventId,
    armed: bool,
}

impl<D> Drop for Unwinding<'_, D> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            let idx = self.id.index as usize;
            if self
                .registry
                .events
                .slots
                .get(idx)
                .is_some_and(|s| s.gen == self.id.gen)
            {
                self.registry.free_after_run(idx);
            }
        }
    }
}

/// Whether `ran` callbacks, or the time since `started`, reached a dispatch limit of `opts`.
#[cold]
fn limit_reached(opts: &BaseOptions, ran: usize, started: Option<Instant>) -> bool {
    opts.max_dispatch_callbacks
        .is_some_and(|max| ran >= max as usize)
        || opts
            .max_dispatch_interval
            .zip(started)
            .is_some_and(|(max, started)| started.elapsed() >= max)
}

/// Whether a readable fd is at end of file: nothing to read. Used to emulate CLOSED.
fn at_eof(fd: RawFd) -> bool {
    // SAFETY: the fd is only passed to ioctl(FIONREAD); if it was closed meanwhile the call
    // fails with EBADF and we report no CLOSED.
    let fd = unsafe { crate::fd::BorrowedFd::borrow_raw(fd) };
    matches!(rustix::io::ioctl_fionread(fd), Ok(0))
}
