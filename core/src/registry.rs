//! The registry: a base's events and everything they are registered with — the event table
//! (`events`), the io map, the timers, the active queues — and every operation on them, each
//! written once as a plain method of [`Registry`].
//!
//! [`Base`](crate::Base) (outside the loop) and [`Context`] (inside a callback) both
//! dereference to the registry, so `base.add(id, t)` and `ctx.add(id, t)` are the same method
//! and go-to-definition lands on it. `Deref` rather than an accessor such as `base.registry()`:
//! a base *is* a registry with a loop attached, and a context a registry with the running
//! event's identity attached; neither adds an operation of its own that could be confused with
//! one of the registry's. Code that works with both — the buffered socket, the listener —
//! takes `&mut Registry<D>`, and `&mut base` or `ctx` coerce to it.
//!
//! The registry and the types that name it — a callback's [`Context`], the boxed
//! [`Callback`], a [`Command`] from another thread — live together in this module: each names
//! the others, and keeping them in one place is what keeps the module graph acyclic. Here too
//! is what `add` and `del` need beneath them: the io registration (with the lazy detach the
//! io map settles: see `io_map`), the timers, signal watching. The rest of the registry's
//! methods are in the modules of what they do, each calling down into this one and never
//! called from it: `constructors` (making events), `once` (events freed after one run,
//! `loop_exit`), `dispatch` (activating and running events), `internal` (remote commands and
//! fork), `watchers` (loop hooks), `verify` (the invariant checker).
//!
//! # The live count
//!
//! The event table's `live` counts the events that keep the loop alive: not internal, and
//! pending or active. Each such slot carries the `COUNTED` bit, and `events::count` is the one
//! function that changes either, so the two cannot drift apart; a debug build checks every
//! answer a caller gives it against the slot's state, and `verify` checks the total.

use crate::fd::{AsRawFd, BorrowedFd, RawFd, NO_FD};
use std::io;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::active_queues::ActiveQueues;
use crate::backend::{Backend, ReadyList};
use crate::clock::{to_ns, Clock};
use crate::event::{state, EventId, Pending, Slot};
use crate::events::{activate_slot, count, deactivate, detach, undo_detach, Events};
use crate::flags::{EventFlags, Features, Fired};
use crate::hooks::{HookKind, Hooks};
use crate::io_map::IoMap;
use crate::metrics::Metrics;
use crate::remote::Remote;
use crate::signal::{self, Mechanism, Signals};
use crate::timers::{Rearm, Timers};

/// The boxed callback of an event: the context of this run, and the user data passed to
/// [`Base::run`](crate::Base::run).
pub type Callback<D> = Box<dyn FnMut(&mut Context<'_, D>, &mut D)>;

/// A closure sent to the loop thread (see [`Handle::run_in_loop`](crate::Handle::run_in_loop)).
pub type RemoteFn<D> = Box<dyn FnOnce(&mut Context<'_, D>, &mut D) + Send>;

/// What another thread asks of the loop through a [`Handle`](crate::Handle), besides
/// activations (which merge per event, apart from these: see `remote`).
pub(crate) enum Command<D> {
    Run(RemoteFn<D>),
    Exit(Option<Duration>),
    Break,
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Whether the loop runs, and what ends it: what `loop_exit` and `loop_break` set and the
/// loop reads after each callback.
#[derive(Default)]
pub(crate) struct LoopFlow {
    pub running: bool,
    pub got_exit: bool,
    pub got_break: bool,
    /// `loop_break` called while the loop was not running: the next run returns at once.
    pub break_pending: bool,
}

/// The internal events' state — how signals and other threads' commands reach the loop —
/// and the async runtimes' count of work that keeps it alive.
pub(crate) struct Internals<D> {
    pub signals: Signals,
    /// Reused for every batch of signal deliveries.
    pub signal_buf: Vec<(i32, u32)>,
    /// The internal event reading the self-pipe or signalfd, once a signal is watched.
    pub signal_event: Option<EventId>,
    pub remote: Option<Remote<Command<D>>>,
    /// The event running remote commands, once a handle exists.
    pub remote_event: Option<EventId>,
    /// Reused for every batch of remote commands.
    pub remote_buf: Vec<Command<D>>,
    /// The same for the merged activations.
    pub remote_activations: Vec<crate::remote::Activation>,
    /// The async runtimes' work that keeps the loop alive, as pending events do: each task
    /// not yet completed or dropped, and one while requests of futures wait to be applied
    /// (`rt` counts; the loop reads the count).
    pub async_work: std::rc::Rc<std::cell::Cell<usize>>,
}

/// A base's events and their registrations; every event operation is a method of this type.
///
/// Reached through [`Base`](crate::Base) and [`Context`], which dereference to it (see the
/// module documentation), and taken as `&mut Registry<D>` by code that works with both.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::{Base, Registry, TimerKind};
///
/// fn arm_tick<D>(registry: &mut Registry<D>) -> std::io::Result<()> {
///     let t = registry.new_timer(TimerKind::OneShot, |_, _| {})?;
///     registry.add(t, Some(Duration::from_millis(1)))
/// }
/// let mut base: Base = evloop::new_base()?;
/// arm_tick(&mut base)?;
/// assert_eq!(base.num_events(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Registry<D> {
    pub(crate) id: u32,
    pub(crate) backend: Box<dyn Backend>,
    /// Every event's slot and state (see `events`).
    pub(crate) events: Events<Callback<D>>,
    pub(crate) io: IoMap,
    pub(crate) timers: Timers,
    pub(crate) active: ActiveQueues,
    pub(crate) ready: ReadyList,
    pub(crate) clock: Clock,
    /// Whether the loop runs, and what ends it.
    pub(crate) flow: LoopFlow,
    /// Iterations, callbacks run, time blocked: what [`metrics`](Self::metrics) reads.
    pub(crate) metrics: Metrics,
    /// The started prepare, check and idle watchers.
    pub(crate) hooks: Hooks,
    pub(crate) internal: Internals<D>,
}

impl<D> Registry<D> {
    /// An empty registry on `backend` with `priorities` (checked by the caller) and signals
    /// delivered by `signals`.
    pub(crate) fn new(
        id: u32,
        backend: Box<dyn Backend>,
        priorities: u16,
        signals: Signals,
    ) -> Self {
        let features = backend.features();
        let emulate_closed = !features.contains(Features::EARLY_CLOSE);
        let immediate = backend.immediate_changes();
        Registry {
            id,
            backend,
            events: Events::new(),
            io: IoMap::new(emulate_closed, immediate),
            timers: Timers::default(),
            active: ActiveQueues::new(priorities),
            ready: ReadyList::new(),
            clock: Clock::new(),
            flow: LoopFlow::default(),
            metrics: Metrics::default(),
            hooks: Hooks::default(),
            internal: Internals {
                signals,
                signal_buf: Vec::new(),
                signal_event: None,
                remote: None,
                remote_event: None,
                remote_buf: Vec::new(),
                remote_activations: Vec::new(),
                async_work: Default::default(),
            },
        }
    }

    /// The slot of a live event of this base.
    #[inline]
    pub(crate) fn check(&self, id: EventId) -> io::Result<usize> {
        // A live slot's generation is odd, a free one's even: one comparison checks both.
        match self.events.slots.get(id.index as usize) {
            Some(s) if s.gen == id.gen && id.base == self.id => Ok(id.index as usize),
            _ => Err(self.bad_id(id)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_id(&self, id: EventId) -> io::Error {
        if id.base != self.id {
            invalid(format!(
                "{id:?} belongs to another base (this is base {})",
                self.id
            ))
        } else {
            io::Error::new(io::ErrorKind::NotFound, format!("{id:?} was freed"))
        }
    }

    /// Take a slot for a new event.
    #[inline]
    pub(crate) fn alloc(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        let prio = self.active.priorities() / 2;
        let (index, gen) = self.events.alloc(fd, flags, prio, callback)?;
        Ok(EventId {
            base: self.id,
            index,
            gen,
        })
    }

    /// Mark a new event, not yet added, as one that never keeps the loop alive (the
    /// runtime's: its tasks do).
    pub(crate) fn make_internal(&mut self, id: EventId) {
        if let Ok(idx) = self.check(id) {
            debug_assert!(!self.events.slots[idx].is(state::COUNTED));
            self.events.slots[idx].set(state::INTERNAL);
        }
    }

    /// Lend the fd the event watches: its own if it owns one, or the one passed to
    /// [`new_event`](Self::new_event), which its caller promised to keep open.
    ///
    /// # Errors
    ///
    /// A freed or foreign id; `InvalidInput` for a timer or signal event.
    pub fn event_fd(&self, id: EventId) -> io::Result<BorrowedFd<'_>> {
        let slot = &self.events.slots[self.check(id)?];
        if !slot.flags.intersects(EventFlags::IO) {
            return Err(invalid(format!("{id:?} watches no fd")));
        }
        // SAFETY: an fd event's fd is open while the event lives: it owns the fd, or the
        // caller of the unsafe `new_event` promised so. The borrow holds `self`, so the event
        // cannot be freed while it lives.
        Ok(unsafe { BorrowedFd::borrow_raw(slot.fd) })
    }

    /// Every constructor ends here; the fd is the caller's concern (see `new_event`).
    pub(crate) fn make_event(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        if flags.contains(EventFlags::SIGNAL) {
            if flags.intersects(EventFlags::IO | EventFlags::ET) {
                return Err(invalid(format!(
                    "SIGNAL cannot be combined with {:?}: a signal event watches no fd",
                    flags & (EventFlags::IO | EventFlags::ET)
                )));
            }
            signal::validate(signal::signo_of(fd))?;
            return self.alloc(fd, flags.without(EventFlags::TIMEOUT), callback);
        }
        let io = flags.intersects(EventFlags::IO);
        if io && !crate::fd::is_valid(fd) {
            return Err(invalid(format!(
                "fd {fd} is negative: {flags:?} events need an open fd"
            )));
        }
        if flags.contains(EventFlags::ET) && !io {
            return Err(invalid("ET needs READ, WRITE or CLOSED".to_string()));
        }
        let flags = flags.without(EventFlags::TIMEOUT);
        self.alloc(if io { fd } else { NO_FD }, flags, callback)
    }

    /// Make the event pending: watch its fd, and if `timeout` is given, (re)start its timer;
    /// for a prepare, check or idle watcher, start it (`timeout` must be `None`).
    /// Adding a pending event again replaces its timeout; `None` keeps the running one. A
    /// persistent event's timer restarts after each activation.
    ///
    /// A timeout counts from the loop's cached time ([`now`](Self::now)): inside a callback,
    /// the time taken after the loop's last wait, not `Instant::now()`. After a long
    /// computation in a callback, call [`update_cache_time`](Self::update_cache_time) first,
    /// or the timeout counts from the stale reading and fires that much sooner than
    /// `Instant::now()` would say.
    ///
    /// # Errors
    ///
    /// A freed or foreign id; ET on a backend without it; the backend's refusal of the fd
    /// (closed, a regular file on epoll), naming the fd; `InvalidInput` for a timeout given
    /// to a prepare, check or idle watcher, and for `None` given to a timer that is not
    /// running (it would be pending with nothing to wait for). The event is unchanged then.
    #[inline(always)]
    pub fn add(&mut self, id: EventId, timeout: Option<Duration>) -> io::Result<()> {
        // Fast paths, kept small so that they inline; the rest is `add_idx`.
        let Some(slot) = self
            .events
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.gen == id.gen && id.base == self.id)
        else {
            return Err(self.bad_id(id));
        };
        let st = slot.state;
        match timeout {
            // An I/O event deleted earlier in this iteration, re-added without a timeout, is
            // still in the io map: undo the delete.
            None if st & (state::PENDING_IO | state::DETACHED) == state::DETACHED => {
                undo_detach(slot);
                if !slot.is(state::COUNTED | state::INTERNAL) {
                    count(slot, &mut self.events.live, true);
                }
                return Ok(());
            }
            // An event whose fd or signal (if any) is watched already and that is not active:
            // only its timer changes. A waiting timer re-armed no earlier than its place in
            // the queue of its length (a read timeout pushed back by a read) only records
            // the new deadline (lazy re-arm: see `timers`); a timer not running starts.
            Some(t)
                if st & (state::ACTIVE | state::DETACHED) == 0
                    && (!slot
                        .flags
                        .intersects(EventFlags::IO | EventFlags::SIGNAL | EventFlags::HOOK)
                        || st & (state::PENDING_IO | state::PENDING_SIG) != 0) =>
            {
                let ns = to_ns(t);
                let deadline = self.clock.now().saturating_add(ns);
                if st & state::TIMER == 0 {
                    self.start_timer(id.index as usize, deadline, ns);
                } else {
                    self.rearm_timer(id.index as usize, deadline, ns);
                }
                return Ok(());
            }
            _ => {}
        }
        // The slot was checked above.
        self.add_idx(id.index as usize, timeout)
    }

    #[inline(never)]
    fn add_idx(&mut self, idx: usize, timeout: Option<Duration>) -> io::Result<()> {
        let slot = &mut self.events.slots[idx];
        let flags = slot.flags;
        if let Some(kind) = HookKind::of(flags) {
            return self.start_hook(idx, kind, timeout);
        }
        if flags.intersects(EventFlags::IO) && !slot.is(state::PENDING_IO) {
            if slot.is(state::DETACHED) {
                undo_detach(slot);
            } else {
                self.add_io(idx, flags)?;
            }
        }
        if timeout.is_none()
            && !flags.intersects(EventFlags::IO | EventFlags::SIGNAL)
            && !self.events.slots[idx].is(state::TIMER)
        {
            // Nothing to watch and no deadline: it would be "added" and never run.
            let id = EventId {
                base: self.id,
                index: idx as u32,
                gen: self.events.slots[idx].gen,
            };
            return Err(invalid(format!(
                "{id:?} has no fd or signal to watch: a timer is added with a timeout, and an event that only runs when activated needs no add (new_user_event)"
            )));
        }
        if flags.contains(EventFlags::SIGNAL) && !self.events.slots[idx].is(state::PENDING_SIG) {
            self.watch_signal(idx)?;
        }
        if let Some(t) = timeout {
            self.add_timer(idx, to_ns(t));
        }
        self.events.recount(idx);
        Ok(())
    }

    /// Start a prepare, check or idle watcher: into its kind's list (see `hooks`); an idle
    /// watcher counts from now on, the other two never do (they are `INTERNAL`).
    #[cold]
    fn start_hook(
        &mut self,
        idx: usize,
        kind: HookKind,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if let Some(t) = timeout {
            return Err(invalid(format!(
                "{} takes no timeout (got {t:?}): add it with None; use a timer for a timeout",
                kind.name()
            )));
        }
        let slot = &mut self.events.slots[idx];
        if !slot.is(state::HOOKED) {
            slot.set(state::HOOKED);
            self.hooks.start(kind, idx as u32);
        }
        self.events.recount(idx);
        Ok(())
    }

    /// Put a new registration of the event into the io map (and so the backend). Kept out of
    /// line, like the other slow paths below, so that the fast paths stay small.
    #[inline(never)]
    fn add_io(&mut self, idx: usize, flags: EventFlags) -> io::Result<()> {
        let fd = self.events.slots[idx].fd;
        if flags.contains(EventFlags::ET)
            && !self.backend.features().contains(Features::EDGE_TRIGGERED)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "backend {} does not support edge-triggered events (ET) on fd {fd}",
                    self.backend.name(),
                ),
            ));
        }
        if !self.io.covers(fd) {
            check_open(fd)?;
        }
        let fresh = !self.events.slots[idx].is(state::REGISTERED);
        // A new event on an fd whose other events are registered: if the kernel forgot the
        // registration (the fd was closed under those events and the number reused), they are
        // stale — reported as closed and deleted — and the fd is registered afresh.
        let events = &mut self.events;
        if fresh
            && self
                .io
                .revalidate(&mut *self.backend, fd, |id| events.settle_detached(id))
                .is_err()
        {
            self.io.failed.push(fd);
            self.report_failed();
        }
        let events = &mut self.events;
        self.io
            .add(&mut *self.backend, fd, idx as u32, flags, fresh, |id| {
                events.settle_detached(id)
            })?;
        self.events.slots[idx].set(state::PENDING_IO | state::REGISTERED);
        Ok(())
    }

    /// (Re)start the event's timer `ns` from now.
    #[inline]
    fn add_timer(&mut self, idx: usize, ns: u64) {
        let deadline = self.clock.now().saturating_add(ns);
        let slot = &mut self.events.slots[idx];
        // An activation by the old timeout is superseded by the new one (libevent).
        if slot.is(state::ACTIVE) && slot.res.contains(EventFlags::TIMEOUT) {
            deactivate(slot, idx, &mut self.active);
        }
        if self.events.slots[idx].is(state::TIMER) {
            self.rearm_timer(idx, deadline, ns);
        } else {
            self.start_timer(idx, deadline, ns);
        }
    }

    /// Move the running timer of an event to `deadline`, `ns` from now. A persistent timeout
    /// joins the queue of its length (made if need be: see `timers`); a one-shot timer joins
    /// one only if its length has a queue already. The common case, a server's read timeout
    /// pushed back by a read, stays in its queue (lazy re-arm): its length was recorded as
    /// its interval when it joined, so only a timer that moved may have a new period.
    #[inline(always)]
    fn rearm_timer(&mut self, idx: usize, deadline: u64, ns: u64) {
        let persistent = |slot: &Slot<Callback<D>>| slot.flags.contains(EventFlags::PERSIST);
        let slots = &self.events.slots;
        if self
            .timers
            .rearm(idx as u32, deadline, ns, || persistent(&slots[idx]))
            == Rearm::Moved
            && persistent(&self.events.slots[idx])
        {
            self.events.record_interval(idx, ns);
        }
    }

    /// Start the timer of an event that has none running, due at `deadline`, `ns` from now;
    /// it counts from now on (unless internal).
    #[inline(never)]
    fn start_timer(&mut self, idx: usize, deadline: u64, ns: u64) {
        let slot = &mut self.events.slots[idx];
        let persistent = slot.flags.contains(EventFlags::PERSIST);
        slot.set(state::TIMER);
        if !slot.is(state::COUNTED | state::INTERNAL) {
            count(slot, &mut self.events.live, true);
        }
        if persistent {
            self.events.record_interval(idx, ns);
        }
        self.timers
            .schedule_new(idx as u32, deadline, ns, persistent);
    }

    /// Make the event non-pending: stop watching its fd, stop its timer and cancel an
    /// activation whose callback has not run yet. Deleting a non-pending event is a no-op.
    /// The backend hears of it at the next wait (a delete followed by an add costs nothing);
    /// before closing an fd, [`free`](Self::free) its events instead, which tells the
    /// backend at once — epoll would keep watching a closed fd whose file a duplicate keeps
    /// open.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    #[inline]
    pub fn del(&mut self, id: EventId) -> io::Result<()> {
        let idx = self.check(id)?;
        let slot = &mut self.events.slots[idx];
        // Fast path: an event that only watches its fd is detached lazily (see `io_map`).
        if slot.state & state::WAITING == state::PENDING_IO && self.io.defers_changes() {
            detach(slot, idx, &mut self.io);
            count(slot, &mut self.events.live, false);
            return Ok(());
        }
        self.del_idx(idx)
    }

    pub(crate) fn del_idx(&mut self, idx: usize) -> io::Result<()> {
        let slot = &mut self.events.slots[idx];
        if !slot.is(state::WAITING | state::COUNTED) {
            return Ok(());
        }
        let mut result = Ok(());
        if slot.is(state::PENDING_IO) {
            if self.io.defers_changes() {
                detach(slot, idx, &mut self.io);
            } else {
                slot.clear(state::PENDING_IO);
                let (fd, flags) = (slot.fd, slot.flags);
                result = self.io.remove(&mut *self.backend, fd, idx as u32, flags);
            }
        }
        if self.events.slots[idx]
            .is(state::PENDING_SIG | state::TIMER | state::ACTIVE | state::HOOKED)
        {
            self.del_rest(idx);
        }
        // Nothing is pending or active any more, so the event no longer counts.
        count(&mut self.events.slots[idx], &mut self.events.live, false);
        result
    }

    /// The signal, timer, activation and hook part of a delete.
    #[inline(never)]
    fn del_rest(&mut self, idx: usize) {
        if self.events.slots[idx].is(state::PENDING_SIG) {
            self.unwatch_signal(idx);
        }
        let slot = &mut self.events.slots[idx];
        if slot.is(state::HOOKED) {
            slot.clear(state::HOOKED);
            if let Some(kind) = HookKind::of(slot.flags) {
                self.hooks.stop(kind, idx as u32);
            }
        }
        let slot = &mut self.events.slots[idx];
        if slot.is(state::TIMER) {
            slot.clear(state::TIMER);
            self.timers.remove(idx as u32);
        }
        let slot = &mut self.events.slots[idx];
        if slot.is(state::ACTIVE) {
            deactivate(slot, idx, &mut self.active);
        }
    }

    /// Delete the event and free it: its callback is dropped (after it returns, if it is the
    /// one running) and the id is refused from now on. Freeing the last event of an fd
    /// unregisters the fd from the backend at once, so the fd may be closed right after.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    pub fn free(&mut self, id: EventId) -> io::Result<()> {
        let idx = self.check(id)?;
        // Dropped here, after the registry is consistent again. A callback freeing its own
        // event finds `None`: the running closure is dropped when it returns.
        drop(self.free_idx(idx));
        Ok(())
    }

    pub(crate) fn free_idx(&mut self, idx: usize) -> Option<Callback<D>> {
        let _ = self.del_idx(idx);
        self.remove_detached(idx);
        let slot = &mut self.events.slots[idx];
        // Freeing an fd's last event usually comes right before closing the fd.
        if slot.flags.intersects(EventFlags::IO) && slot.is(state::REGISTERED) {
            let fd = slot.fd;
            let events = &mut self.events;
            self.io
                .release(&mut *self.backend, fd, |id| events.settle_detached(id));
        }
        // An owned fd is closed now that the backend forgot it, unless another event on it
        // (`new_event_on`) still holds a share.
        self.events.release(idx)
    }

    /// Activate the event by hand with result `fired`, as if `ncalls` (at least 1) things
    /// happened (libevent's `event_active`). Activating an active event ORs the results.
    ///
    /// # Errors
    ///
    /// A freed or foreign id; `InvalidInput` for a prepare, check or idle watcher, which runs
    /// at its point of the loop instead.
    pub fn activate(&mut self, id: EventId, fired: Fired, ncalls: u32) -> io::Result<()> {
        let idx = self.check(id)?;
        if let Some(kind) = HookKind::of(self.events.slots[idx].flags) {
            return Err(invalid(format!(
                "{id:?} is {}: it runs at its point of the loop and cannot be activated",
                kind.name()
            )));
        }
        self.activate_idx(idx, fired.into(), ncalls.max(1));
        Ok(())
    }

    #[inline]
    pub(crate) fn activate_idx(&mut self, idx: usize, res: EventFlags, ncalls: u32) {
        let slot = &mut self.events.slots[idx];
        activate_slot(
            slot,
            idx as u32,
            res,
            ncalls,
            &mut self.active,
            &mut self.events.live,
        );
    }

    /// Drop the event's timeout and keep everything else it waits for (libevent's
    /// `event_remove_timer`): an I/O or signal event stays pending without a deadline, a
    /// persistent event loses its periodic timeout, a pure timer stops being pending. An
    /// activation the timeout already caused still runs.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{Base, TimerKind};
    /// let mut base: Base = evloop::new_base()?;
    /// let t = base.new_timer(TimerKind::Periodic, |_, _| {})?;
    /// base.add(t, Some(Duration::from_secs(1)))?;
    /// base.remove_timer(t)?;
    /// assert!(base.pending(t)?.deadline.is_none());
    /// assert_eq!(base.num_events(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_timer(&mut self, id: EventId) -> io::Result<()> {
        let idx = self.check(id)?;
        let slot = &mut self.events.slots[idx];
        if slot.is(state::TIMER) {
            slot.clear(state::TIMER);
            self.timers.remove(idx as u32);
        }
        self.events.slots[idx].clear(state::INTERVAL | state::REARMED);
        self.events.recount(idx);
        Ok(())
    }

    /// Activate every event watching `fd` for any of `flags` (READ, WRITE, CLOSED), each with
    /// the part of `flags` it watches, as if the fd had become ready (libevent's
    /// `event_base_active_by_fd`). Returns how many events were activated.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `fired` holds none of READ, WRITE and CLOSED.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{Base, Fired, Interest};
    /// use evloop::fd::AsRawFd;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let fd = listener.as_raw_fd();
    /// let mut base: Base<Vec<Fired>> = evloop::new_base()?;
    /// let e = base.new_owned_event(listener, Interest::READ, |ctx, seen: &mut Vec<Fired>| seen.push(ctx.fired()))?;
    /// base.add(e, None)?;
    /// assert_eq!(base.active_by_fd(fd, Fired::READ | Fired::WRITE)?, 1);
    /// let mut seen = Vec::new();
    /// base.run_with(evloop::LoopFlags::NONBLOCK, &mut seen)?;
    /// assert_eq!(seen, [Fired::READ]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn active_by_fd(&mut self, fd: RawFd, fired: Fired) -> io::Result<usize> {
        let flags = EventFlags::from(fired) & EventFlags::IO;
        if flags.is_empty() {
            return Err(invalid(format!(
                "active_by_fd(fd {fd}): flags hold none of READ, WRITE and CLOSED"
            )));
        }
        let Registry {
            io, events, active, ..
        } = self;
        let Events { slots, live, .. } = events;
        let mut n = 0;
        for &idx in io.events(fd) {
            let slot = &mut slots[idx as usize];
            let res = slot.flags & flags;
            if !res.is_empty() && slot.is(state::PENDING_IO) {
                activate_slot(slot, idx, res, 1, active, live);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every event of the base, one per line: its id, fd, flags, what it is pending for and
    /// its deadline (libevent's `event_base_dump_events`), for debugging.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{Base, TimerKind};
    /// let mut base: Base = evloop::new_base()?;
    /// let t = base.new_timer(TimerKind::OneShot, |_, _| {})?;
    /// base.add(t, Some(Duration::from_secs(1)))?;
    /// assert!(base.dump_events().contains("pending TIMEOUT"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump_events(&self) -> String {
        use std::fmt::Write as _;
        let now = self.clock.now();
        let mut out = String::new();
        for (idx, slot) in self
            .events
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live())
        {
            let id = EventId {
                base: self.id,
                index: idx as u32,
                gen: slot.gen,
            };
            let pending = self.pending(id).map(|p| p.flags).unwrap_or_default();
            let _ = write!(
                out,
                "{id:?} fd {} {:?} pending {:?} prio {}",
                slot.fd, slot.flags, pending, slot.prio
            );
            if slot.is(state::INTERNAL) {
                out.push_str(" internal");
            }
            if let Some(deadline) = self.timers.deadline(idx as u32) {
                let _ = write!(
                    out,
                    " in {:?}",
                    Duration::from_nanos(deadline.saturating_sub(now))
                );
            }
            out.push('\n');
        }
        out
    }

    /// What the event is waiting for and when its timer expires.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    pub fn pending(&self, id: EventId) -> io::Result<Pending> {
        let slot = &self.events.slots[self.check(id)?];
        let mut flags = EventFlags::empty();
        if slot.is(state::PENDING_IO) {
            flags |= slot.flags & EventFlags::IO;
        }
        if slot.is(state::PENDING_SIG) {
            flags |= EventFlags::SIGNAL;
        }
        if slot.is(state::TIMER) {
            flags |= EventFlags::TIMEOUT;
        }
        if slot.is(state::ACTIVE) {
            flags |= slot.res;
        }
        let deadline = self
            .timers
            .deadline(id.index)
            .map(|ns| self.clock.instant(ns));
        Ok(Pending {
            flags: Fired::of(flags),
            deadline,
        })
    }

    /// Set the priority the event runs at (0 is the most urgent).
    ///
    /// # Errors
    ///
    /// `InvalidInput` beyond the base's priorities; `ResourceBusy` while the event is active.
    pub fn set_priority(&mut self, id: EventId, prio: u16) -> io::Result<()> {
        let idx = self.check(id)?;
        let n = self.active.priorities();
        if prio >= n {
            return Err(invalid(format!(
                "priority {prio} is out of range: this base has {n} (0..{n})"
            )));
        }
        let slot = &mut self.events.slots[idx];
        if slot.is(state::ACTIVE) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{id:?} is active: its priority cannot change until its callback ran"),
            ));
        }
        slot.prio = prio;
        Ok(())
    }

    /// Make the loop return as soon as the running callback returns. Called while the loop is
    /// not running, it makes the next run return at once (libevent loses it: its issues #573,
    /// #729, #1292).
    pub fn loop_break(&mut self) {
        if self.flow.running {
            self.flow.got_break = true;
        } else {
            self.flow.break_pending = true;
        }
    }

    /// Whether the last run ended through [`loop_exit`](Self::loop_exit).
    pub fn got_exit(&self) -> bool {
        self.flow.got_exit
    }

    /// Whether the last run ended through [`loop_break`](Self::loop_break).
    pub fn got_break(&self) -> bool {
        self.flow.got_break
    }

    /// The loop's cached time (taken after each wait), or the clock outside the loop (unless
    /// [`update_cache_time`](Self::update_cache_time) pinned a reading).
    pub fn now(&self) -> Instant {
        self.clock.instant(self.clock.now())
    }

    /// Read the clock once and count every timeout armed from now on from that reading, until
    /// the loop next waits or [`clear_cache_time`](Self::clear_cache_time) is called.
    ///
    /// Inside a callback this refreshes the loop's cached time, taken after the last wait
    /// (libevent's `event_base_update_cache_time`): useful after a long computation, so that
    /// timers armed next do not count from a stale time. Outside the loop, a burst of adds
    /// then shares one reading instead of reading the clock for each (libev's
    /// `ev_now_update`; libev's adds always use its cached time). Either way a deadline is
    /// never early *counted from the reading*: a timer armed one millisecond after the
    /// reading may run up to one millisecond before its timeout has passed since its own
    /// `add`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::TimerKind;
    /// let mut base: evloop::Base<u32> = evloop::new_base()?;
    /// base.update_cache_time(); // one clock reading for the 1,000 adds below
    /// for _ in 0..1000 {
    ///     let t = base.new_timer(TimerKind::OneShot, |_, fired: &mut u32| *fired += 1)?;
    ///     base.add(t, Some(Duration::from_millis(1)))?;
    /// }
    /// let mut fired = 0;
    /// base.run(&mut fired)?;
    /// assert_eq!(fired, 1000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn update_cache_time(&mut self) {
        self.clock.cache = Some(self.clock.read());
    }

    /// Forget a reading pinned by [`update_cache_time`](Self::update_cache_time) outside the
    /// loop: timeouts count from the clock again. Inside a callback, the loop's cached time
    /// stays (it is the loop's, until its next wait).
    pub fn clear_cache_time(&mut self) {
        if !self.flow.running {
            self.clock.cache = None;
        }
    }

    /// Give timeouts of length `timeout` a queue of their own (libevent's
    /// `event_base_init_common_timeout`): timers of one length expire in the order they were
    /// armed, so arming and re-arming them is O(1), an unlink and an append, whatever the
    /// number of timers. Persistent timeouts (and buffered sockets' timeouts) get their
    /// length's queue without asking; this makes one-shot timers of that length use it too.
    /// Nothing else changes: deadlines are never early, and equal deadlines fire in the order
    /// they were armed, queue or not.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` once 32 lengths have a queue (libevent allows 256); timers of other
    /// lengths keep working, through the ring or the heap.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base<Vec<u32>> = evloop::new_base()?;
    /// base.declare_common_timeout(Duration::from_millis(5))?;
    /// for i in 0..3 {
    ///     base.after(Duration::from_millis(5), move |_, order: &mut Vec<u32>| order.push(i))?;
    /// }
    /// let mut order = Vec::new();
    /// base.run(&mut order)?;
    /// assert_eq!(order, [0, 1, 2]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn declare_common_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if self.timers.declare(to_ns(timeout)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "no room for a common timeout of {timeout:?}: {} lengths have one already",
                    crate::timers::MAX_QUEUES
                ),
            ))
        }
    }

    /// How many times the loop has waited on the backend (for diagnostics and tests); also
    /// [`metrics`](Self::metrics)`().iterations`.
    pub fn iterations(&self) -> u64 {
        self.metrics.iterations
    }

    /// The backend's name (libevent's `event_base_get_method`).
    pub fn method(&self) -> &'static str {
        self.backend.name()
    }

    /// How signals reach this base: `"self-pipe"`, `"signalfd"`, or the backend's name
    /// (libevent 2.2's `event_base_get_signal_method`).
    pub fn signal_method(&self) -> &'static str {
        self.internal.signals.method(self.backend.name())
    }

    /// The unit the backend rounds a wait's timeout up to (one millisecond for epoll, unless
    /// the base was made with [`BaseOptions::precise_timers`](crate::BaseOptions::precise_timers);
    /// a nanosecond for poll and select on Linux and for kqueue): how late beyond the OS's
    /// wake-up latency a timer can run. Never early, whatever it is.
    ///
    /// # Examples
    ///
    /// ```
    /// let base: evloop::Base = evloop::new_base()?;
    /// assert!(base.timeout_resolution() <= std::time::Duration::from_millis(16));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout_resolution(&self) -> Duration {
        self.backend.timeout_resolution()
    }

    /// The backend's features.
    pub fn features(&self) -> Features {
        self.backend.features()
    }

    /// How many priorities this base has.
    pub fn priorities(&self) -> u16 {
        self.active.priorities()
    }

    /// How many events keep the loop alive: pending or active, not internal.
    pub fn num_events(&self) -> usize {
        self.events.live
    }

    /// Take an event that was deleted lazily out of the io map for real, before the map
    /// settles (it is being freed, or its fd was found closed).
    #[inline(never)]
    pub(crate) fn remove_detached(&mut self, idx: usize) {
        if let Some(flags) = self.events.finish_detach(idx as u32) {
            let fd = self.events.slots[idx].fd;
            let _ = self.io.remove(&mut *self.backend, fd, idx as u32, flags);
        }
    }

    // Signals: the watching that `add` and `del` of a signal event do, and the delivery to
    // the watchers (`internal` keeps the rest of the internal events: remote commands, fork).

    /// First watcher of a signal on this base: create the mechanism's fd (and the internal
    /// event reading it) if needed, take ownership of the signal, start receiving it.
    #[inline(never)]
    pub(crate) fn watch_signal(&mut self, idx: usize) -> io::Result<()> {
        let signo = signal::signo_of(self.events.slots[idx].fd);
        if self.internal.signals.watchers[signo as usize].is_empty() {
            if let Some(fd) = self.internal.signals.ensure_source()? {
                match self.add_internal(fd, signal_callback()) {
                    Ok(id) => self.internal.signal_event = Some(id),
                    Err(e) => {
                        self.internal.signals.source = None;
                        return Err(e);
                    }
                }
            }
            self.internal.signals.install(signo)?;
            if self.internal.signals.mechanism == Mechanism::Backend {
                if let Err(e) = self.backend.add_signal(signo) {
                    self.internal.signals.uninstall(signo);
                    return Err(e);
                }
            }
        }
        self.internal.signals.watchers[signo as usize].push(idx as u32);
        self.events.slots[idx].set(state::PENDING_SIG);
        Ok(())
    }

    /// The last part of deleting a signal event: stop watching, and let the signal go when
    /// nobody watches it any more.
    pub(crate) fn unwatch_signal(&mut self, idx: usize) {
        let signo = signal::signo_of(self.events.slots[idx].fd);
        self.events.slots[idx].clear(state::PENDING_SIG);
        let watchers = &mut self.internal.signals.watchers[signo as usize];
        watchers.retain(|&w| w != idx as u32);
        if watchers.is_empty() {
            if self.internal.signals.mechanism == Mechanism::Backend {
                let _ = self.backend.del_signal(signo);
            }
            self.internal.signals.uninstall(signo);
        }
    }

    /// Take a batch of signal deliveries with `take` (from the signal fd, or from the
    /// backend's report) and activate the watchers of each.
    pub(crate) fn deliver_signals(&mut self, take: impl FnOnce(&mut Self, &mut Vec<(i32, u32)>)) {
        let mut delivered = std::mem::take(&mut self.internal.signal_buf);
        take(self, &mut delivered);
        for (signo, count) in delivered.drain(..) {
            let mut n = 0;
            while let Some(&idx) = self
                .internal
                .signals
                .watchers
                .get(signo as usize)
                .and_then(|w| w.get(n))
            {
                n += 1;
                self.activate_idx(idx as usize, EventFlags::SIGNAL, count);
            }
        }
        self.internal.signal_buf = delivered;
    }

    /// An internal event: persistent READ on `fd`, priority 0, not keeping the loop alive.
    pub(crate) fn add_internal(&mut self, fd: RawFd, callback: Callback<D>) -> io::Result<EventId> {
        let id = self.alloc(fd, EventFlags::READ | EventFlags::PERSIST, callback)?;
        let slot = &mut self.events.slots[id.index as usize];
        slot.set(state::INTERNAL);
        slot.prio = 0;
        if let Err(e) = self.add(id, None) {
            drop(self.free_idx(id.index as usize));
            return Err(e);
        }
        Ok(id)
    }

    /// fds found closed under their events (the backend refused a change, or reported the fd
    /// closed) are reported to each pending event once, as READ|WRITE|CLOSED within what it
    /// watches (so its own I/O sees the error), and the events are deleted: one error event,
    /// then quiet, on every backend. Re-adding such an event fails until its fd is open again.
    #[cold]
    pub(crate) fn report_failed(&mut self) {
        while let Some(fd) = self.io.failed.pop() {
            let events = self.io.events(fd).to_vec();
            for idx in events {
                let idx = idx as usize;
                let slot = &self.events.slots[idx];
                if slot.is(state::PENDING_IO) {
                    let res = slot.flags & EventFlags::IO;
                    self.activate_idx(idx, res, 1);
                }
                self.forget_io(idx);
            }
        }
    }

    /// Take the event out of its fd's list for good, pending or lazily detached (its fd was
    /// found closed); its timer and activation stay.
    pub(crate) fn forget_io(&mut self, idx: usize) {
        self.remove_detached(idx);
        let slot = &mut self.events.slots[idx];
        if slot.is(state::PENDING_IO) {
            slot.clear(state::PENDING_IO);
            let (fd, flags) = (slot.fd, slot.flags);
            let _ = self.io.remove(&mut *self.backend, fd, idx as u32, flags);
            self.events.recount(idx);
        }
    }
}

/// Refuse an fd number nobody opened before the io map grows its table to it (fd 1 << 30
/// would otherwise mean gigabytes for nothing). Only fds beyond the table pay this fcntl.
fn check_open(fd: RawFd) -> io::Result<()> {
    crate::backend::fd_is_open(fd)
        .map_err(|e| invalid(format!("fd {fd} is not an open file descriptor: {e}")))
}

/// What a callback gets: why it runs, and every operation of the registry.
///
/// A context dereferences to the [`Registry`], so a callback can create, add, delete,
/// activate and free any event of its base, including the one running, and stop the loop,
/// with the same methods as on [`Base`](crate::Base). Running the loop is the one thing a
/// callback cannot do (loops do not nest).
///
/// # Examples
///
/// A persistent timer that deletes itself on its third run:
///
/// ```
/// use std::time::Duration;
/// use evloop::{Base, TimerKind};
///
/// let mut base: Base<u32> = evloop::new_base().unwrap();
/// let t = base
///     .new_timer(TimerKind::Periodic, |ctx, runs: &mut u32| {
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
    pub(crate) registry: &'a mut Registry<D>,
    pub(crate) id: EventId,
    pub(crate) fired: EventFlags,
    pub(crate) ncalls: u32,
}

impl<D> Context<'_, D> {
    /// The event whose callback is running.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Why it runs: READ, WRITE, CLOSED, TIMEOUT, SIGNAL (or what a manual activation
    /// passed), and ET with the readiness of an edge-triggered event (libevent's epoll reports
    /// `EV_ET` too).
    pub fn fired(&self) -> Fired {
        // ET is added here, off the dispatch path. The slot keeps the event's flags even when
        // the callback freed its own event (the generation then moved on by one); only a new
        // event made in the same slot since (two steps on) has other flags.
        match self.registry.events.slots.get(self.id.index as usize) {
            Some(s)
                if s.gen.wrapping_sub(self.id.gen) <= 1
                    && self.fired.intersects(EventFlags::IO) =>
            {
                Fired::of(self.fired | (s.flags & EventFlags::ET))
            }
            _ => Fired::of(self.fired),
        }
    }

    /// How many activations this run stands for (the count passed to
    /// [`activate`](Registry::activate), or deliveries of a signal).
    pub fn ncalls(&self) -> u32 {
        self.ncalls
    }

    /// The fd the running event watches: `None` for a timer, a signal event, an event that
    /// only runs when activated, and once the callback freed its event. For I/O on the fd,
    /// [`borrow_fd`](Self::borrow_fd) lends it.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use evloop::{Base, TimerKind};
    /// let mut base: Base<Vec<Option<i32>>> = evloop::new_base()?;
    /// let timer = base.new_timer(TimerKind::OneShot, |ctx, seen: &mut Vec<Option<i32>>| {
    ///     seen.push(ctx.fd().map(|_| 0));
    /// })?;
    /// base.add(timer, Some(std::time::Duration::ZERO))?;
    /// let mut seen = Vec::new();
    /// base.run(&mut seen)?;
    /// assert_eq!(seen, [None]); // a timer watches no fd
    /// # Ok(())
    /// # }
    /// ```
    pub fn fd(&self) -> Option<RawFd> {
        self.borrow_fd().map(|fd| fd.as_raw_fd())
    }

    /// The signal number the running event watches: `None` for any other event, and once the
    /// callback freed its event.
    pub fn signal(&self) -> Option<i32> {
        let slot = &self.registry.events.slots[self.registry.check(self.id).ok()?];
        // A signal event keeps its number where an I/O event keeps its fd.
        slot.flags
            .contains(EventFlags::SIGNAL)
            .then(|| signal::signo_of(slot.fd))
    }

    /// Lend the running event's fd for I/O (`None` for a timer or signal, or once the
    /// callback freed its event): the owned fd of an event made by
    /// [`new_owned_event`](Registry::new_owned_event), or the fd the caller of `new_event`
    /// promised to keep open.
    pub fn borrow_fd(&self) -> Option<BorrowedFd<'_>> {
        self.registry.event_fd(self.id).ok()
    }
}

impl<D> Deref for Context<'_, D> {
    type Target = Registry<D>;

    fn deref(&self) -> &Registry<D> {
        self.registry
    }
}

impl<D> DerefMut for Context<'_, D> {
    fn deref_mut(&mut self) -> &mut Registry<D> {
        self.registry
    }
}

/// The signal event's callback: take every delivery from the signal fd.
pub(crate) fn signal_callback<D>() -> Callback<D> {
    Box::new(|ctx, _| {
        ctx.deliver_signals(|registry, out| registry.internal.signals.drain(out));
    })
}
