//! The event base: the events, their registrations, and the loop that runs them.
//!
//! One iteration of the loop (libevent's `event_base_loop`, kept in the same order):
//! 1. stop if `loop_exit` or `loop_break` took effect, or if no event is registered (unless
//!    [`LoopFlags::NO_EXIT_ON_EMPTY`]);
//! 2. compute the wait: zero if something is active or [`LoopFlags::NONBLOCK`], else up to
//!    the earliest timer, else unbounded;
//! 3. flush the change list, then let the backend wait and report ready fds;
//! 4. refresh the cached time, activate the events of ready fds, then expired timers;
//! 5. run the callbacks of the most urgent non-empty priority, in activation order (see
//!    [`Base::run_with`] for the exact stopping rules), then go around again.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::active_queues::ActiveQueues;
use crate::backend::{Backend, ReadyList};
use crate::event::{state, Callback, Context, EventId, Pending, Slot};
use crate::flags::{EventFlags, Features, LoopFlags};
use crate::io_map::IoMap;
use crate::remote::{Command, Handle, Remote};
use crate::signal::{self, Mechanism, Signals};
use crate::timer_heap::TimerHeap;

static NEXT_BASE_ID: AtomicU32 = AtomicU32::new(1);
const NO_SLOT: u32 = u32::MAX;
/// The most events a base holds at once: slot numbers are `u32`, and `u32::MAX` is taken (the
/// free list's end, the active queues' tombstone).
const MAX_EVENTS: usize = u32::MAX as usize;

/// How a base is set up: priorities and the dispatch limits (libevent's `event_config`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_core::BaseOptions;
/// let opts = BaseOptions {
///     priorities: 3,
///     max_dispatch_callbacks: Some(64),
///     max_dispatch_interval: Some(Duration::from_millis(5)),
///     ..Default::default()
/// };
/// assert_eq!(opts.limit_callbacks_after_prio, 0);
/// ```
#[derive(Clone, Debug)]
pub struct BaseOptions {
    /// How many priority queues (1 to 256). Priority 0 runs first; new events get
    /// `priorities / 2`.
    pub priorities: u16,
    /// After this many callbacks of one priority, go back to check for new events.
    pub max_dispatch_callbacks: Option<u32>,
    /// After running callbacks for this long, go back to check for new events.
    pub max_dispatch_interval: Option<Duration>,
    /// Priorities below this one are never limited by the two settings above.
    pub limit_callbacks_after_prio: u16,
    /// Deliver signals through a signalfd instead of the self-pipe (Linux only; see the
    /// [`signal`](crate::signal) module for the blocking rule it needs).
    pub signalfd: bool,
}

impl Default for BaseOptions {
    fn default() -> Self {
        Self {
            priorities: 1,
            max_dispatch_callbacks: None,
            max_dispatch_interval: None,
            limit_callbacks_after_prio: 0,
            signalfd: false,
        }
    }
}

/// Why [`Base::run_with`] returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// No event was registered any more (libevent's return value 1).
    NoEvents,
    /// [`loop_exit`](Base::loop_exit) took effect.
    Exited,
    /// [`loop_break`](Base::loop_break) took effect.
    Broken,
    /// [`LoopFlags::ONCE`] or [`LoopFlags::NONBLOCK`] ended the run.
    Returned,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `CLOCK_MONOTONIC` in nanoseconds, through libc: rustix's own vDSO lookup crashes under
/// valgrind, which the benchmarks' instruction counts and memcheck runs rely on.
fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime fills the zeroed local it is given.
    let t = unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
        t
    };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// The next deadline of a persistent timeout: `interval` after `from`, or after `now` if that
/// is not later than now — a timer that fell behind restarts instead of running a burst of
/// catch-up callbacks (libevent's event_persist_closure).
fn next_deadline(from: u64, interval: u64, now: u64) -> u64 {
    let deadline = from.saturating_add(interval);
    if deadline <= now {
        now.saturating_add(interval)
    } else {
        deadline
    }
}

fn to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) struct Inner<D> {
    pub id: u32,
    pub backend: Box<dyn Backend>,
    features: Features,
    pub slots: Vec<Slot<D>>,
    free_head: u32,
    io: IoMap,
    timers: TimerHeap,
    active: ActiveQueues,
    ready: ReadyList,
    failed: Vec<RawFd>,
    epoch: Instant,
    /// `epoch` on the raw monotonic clock, read just before it.
    #[cfg_attr(any(target_os = "macos", target_os = "ios"), allow(dead_code))]
    epoch_ns: u64,
    now_cache: Option<u64>,
    live: usize,
    running: bool,
    pub got_exit: bool,
    got_break: bool,
    break_pending: bool,
    opts: BaseOptions,
    signals: Signals,
    signal_buf: Vec<(i32, u32)>,
    signal_event: Option<EventId>,
    remote: Option<Remote<D>>,
    remote_buf: Vec<Command<D>>,
    iterations: u64,
    /// Slots deleted from their fd but left in the io map until the next wait: a delete
    /// followed by an add of the same event is then two flag flips.
    lazy_io: Vec<u32>,
    lazy: bool,
    /// The timeouts of persistent events (`intervals[idx]` while slot `idx` has `INTERVAL`),
    /// kept out of the slots: most events have none, and every event would pay 8 bytes.
    intervals: Vec<u64>,
}

impl<D> Inner<D> {
    #[inline]
    fn clock(&self) -> u64 {
        // The raw monotonic clock in nanoseconds: one vDSO call, no `Duration` or u128
        // arithmetic (a timer re-arm is dominated by this otherwise). `Instant` is the same
        // clock on Linux and the BSDs; macOS's `Instant` is another clock, so it is used there.
        #[cfg(not(any(target_os = "macos", target_os = "ios")))]
        {
            monotonic_ns().saturating_sub(self.epoch_ns)
        }
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        {
            to_ns(self.epoch.elapsed())
        }
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        match self.now_cache {
            Some(now) => now,
            None => self.clock(),
        }
    }

    #[inline]
    fn check(&self, id: EventId) -> io::Result<usize> {
        // A live slot's generation is odd, a free one's even: one comparison checks both.
        match self.slots.get(id.index as usize) {
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

    #[inline]
    fn sync_count(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let should = slot.should_count();
        if should != slot.is(state::COUNTED) {
            slot.state ^= state::COUNTED;
            if should {
                self.live += 1;
            } else {
                self.live -= 1;
            }
        }
    }

    fn alloc(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        if self.free_head == NO_SLOT && self.slots.len() >= MAX_EVENTS {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("too many events: a base holds at most {MAX_EVENTS}"),
            ));
        }
        let prio = self.active.priorities() / 2;
        let index = if self.free_head != NO_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = slot.ncalls;
            *slot = Slot::new(slot.gen, fd, flags, prio, callback);
            index
        } else {
            self.slots.push(Slot::new(0, fd, flags, prio, callback));
            (self.slots.len() - 1) as u32
        };
        Ok(EventId {
            base: self.id,
            index,
            gen: self.slots[index as usize].gen,
        })
    }

    pub fn new_event(
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
            signal::validate(fd)?;
            return self.alloc(fd, flags.without(EventFlags::TIMEOUT), callback);
        }
        let io = flags.intersects(EventFlags::IO);
        if io && fd < 0 {
            return Err(invalid(format!(
                "fd {fd} is negative: {flags:?} events need an open fd"
            )));
        }
        if flags.contains(EventFlags::ET) && !io {
            return Err(invalid("ET needs READ, WRITE or CLOSED".to_string()));
        }
        let flags = flags.without(EventFlags::TIMEOUT);
        self.alloc(if io { fd } else { -1 }, flags, callback)
    }

    fn new_event_fn<F>(&mut self, fd: RawFd, flags: EventFlags, callback: F) -> io::Result<EventId>
    where
        F: FnMut(&mut Context<'_, D>, &mut D) + 'static,
    {
        self.new_event(fd, flags, Box::new(callback))
    }

    fn new_signal_fn<F>(&mut self, signo: i32, callback: F) -> io::Result<EventId>
    where
        F: FnMut(&mut Context<'_, D>, &mut D) + 'static,
    {
        self.new_event(
            signo,
            EventFlags::SIGNAL | EventFlags::PERSIST,
            Box::new(callback),
        )
    }

    fn new_timer_fn<F>(&mut self, flags: EventFlags, callback: F) -> io::Result<EventId>
    where
        F: FnMut(&mut Context<'_, D>, &mut D) + 'static,
    {
        if !EventFlags::PERSIST.contains(flags) {
            return Err(invalid(format!(
                "a timer takes only PERSIST, not {flags:?}"
            )));
        }
        self.new_event(-1, flags, Box::new(callback))
    }

    fn once_fn<F>(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        timeout: Option<Duration>,
        callback: F,
    ) -> io::Result<()>
    where
        F: FnOnce(&mut Context<'_, D>, &mut D) + 'static,
    {
        let mut callback = Some(callback);
        let boxed: Callback<D> = Box::new(move |ctx, data| {
            if let Some(cb) = callback.take() {
                cb(ctx, data)
            }
        });
        self.once(fd, flags, timeout, boxed)
    }

    #[inline]
    pub fn add(&mut self, id: EventId, timeout: Option<Duration>) -> io::Result<()> {
        let idx = self.check(id)?;
        let slot = &mut self.slots[idx];
        match timeout {
            // Fast path: an I/O event deleted earlier in this iteration, re-added without a
            // timeout, is still in the io map: undo the delete, and it counts again.
            None if slot.state & (state::PENDING_IO | state::DETACHED) == state::DETACHED => {
                slot.state ^= state::DETACHED | state::PENDING_IO;
            }
            // Fast path: a pure timer.
            Some(t) if !slot.flags.intersects(EventFlags::IO | EventFlags::SIGNAL) => {
                let flags = slot.flags;
                self.add_timer(idx, flags, to_ns(t));
            }
            _ => return self.add_idx(idx, timeout),
        }
        // Pending now, so it counts (unless internal).
        let slot = &mut self.slots[idx];
        if !slot.is(state::COUNTED | state::INTERNAL) {
            slot.set(state::COUNTED);
            self.live += 1;
        }
        Ok(())
    }

    #[inline(never)]
    fn add_idx(&mut self, idx: usize, timeout: Option<Duration>) -> io::Result<()> {
        let slot = &mut self.slots[idx];
        let flags = slot.flags;
        if flags.intersects(EventFlags::IO) && !slot.is(state::PENDING_IO) {
            if slot.is(state::DETACHED) {
                // Deleted earlier in this iteration and still in the io map: undo the delete.
                slot.state ^= state::DETACHED | state::PENDING_IO;
            } else {
                self.add_io(idx, flags)?;
            }
        }
        if flags.contains(EventFlags::SIGNAL) && !self.slots[idx].is(state::PENDING_SIG) {
            self.watch_signal(idx)?;
        }
        if let Some(t) = timeout {
            self.add_timer(idx, flags, to_ns(t));
        }
        self.sync_count(idx);
        Ok(())
    }

    /// Put a new registration of the event into the io map (and so the backend). Kept out of
    /// line, like the other slow paths below, so that the fast paths stay small.
    #[inline(never)]
    fn add_io(&mut self, idx: usize, flags: EventFlags) -> io::Result<()> {
        let fd = self.slots[idx].fd;
        if flags.contains(EventFlags::ET) && !self.features.contains(Features::EDGE_TRIGGERED) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "backend {} does not support edge-triggered events (ET) on fd {fd}",
                    self.backend.name(),
                ),
            ));
        }
        // The io map must see the deletes that stand before it changes otherwise: the
        // fd-reuse rule and the ET check look at the events really there.
        self.apply_lazy_deletes();
        if !self.io.covers(fd) {
            check_open(fd)?;
        }
        let fresh = !self.slots[idx].is(state::REGISTERED);
        self.io
            .add(&mut *self.backend, fd, idx as u32, flags, fresh)?;
        self.slots[idx].set(state::PENDING_IO | state::REGISTERED);
        Ok(())
    }

    /// (Re)start the event's timer `ns` from now.
    #[inline]
    fn add_timer(&mut self, idx: usize, flags: EventFlags, ns: u64) {
        let deadline = self.now_ns().saturating_add(ns);
        let slot = &mut self.slots[idx];
        if flags.contains(EventFlags::PERSIST) {
            slot.set(state::INTERVAL);
            if self.intervals.len() <= idx {
                self.intervals.resize(idx + 1, 0);
            }
            self.intervals[idx] = ns;
        }
        // An activation by the old timeout is superseded by the new one (libevent).
        if slot.is(state::ACTIVE) && slot.res.contains(EventFlags::TIMEOUT) {
            slot.clear(state::ACTIVE | state::REARMED);
            slot.res = EventFlags::empty();
            slot.ncalls = 0;
            self.active.remove(idx as u32, slot.prio, slot.ticket);
        }
        self.slots[idx].set(state::TIMER);
        self.timers.schedule(idx as u32, deadline);
    }

    fn del_idx(&mut self, idx: usize) -> io::Result<()> {
        let slot = &mut self.slots[idx];
        if !slot.is(state::WAITING | state::COUNTED) {
            return Ok(());
        }
        let mut result = Ok(());
        if slot.is(state::PENDING_IO) {
            slot.clear(state::PENDING_IO);
            if self.lazy {
                // Left in the io map until the next wait (see `lazy_io`).
                slot.set(state::DETACHED);
                if !slot.is(state::LAZY_QUEUED) {
                    slot.set(state::LAZY_QUEUED);
                    self.lazy_io.push(idx as u32);
                }
            } else {
                let (fd, flags) = (slot.fd, slot.flags);
                result = self.io.remove(&mut *self.backend, fd, idx as u32, flags);
            }
        }
        if self.slots[idx].is(state::PENDING_SIG | state::TIMER | state::ACTIVE) {
            self.del_rest(idx);
        }
        // Nothing is pending or active any more, so the event no longer counts.
        let slot = &mut self.slots[idx];
        if slot.is(state::COUNTED) {
            slot.clear(state::COUNTED);
            self.live -= 1;
        }
        result
    }

    /// The signal, timer and activation part of a delete.
    #[inline(never)]
    fn del_rest(&mut self, idx: usize) {
        if self.slots[idx].is(state::PENDING_SIG) {
            self.unwatch_signal(idx);
        }
        let slot = &mut self.slots[idx];
        if slot.is(state::TIMER) {
            slot.clear(state::TIMER);
            self.timers.remove(idx as u32);
        }
        let slot = &mut self.slots[idx];
        if slot.is(state::ACTIVE) {
            slot.clear(state::ACTIVE | state::REARMED);
            slot.res = EventFlags::empty();
            slot.ncalls = 0;
            self.active.remove(idx as u32, slot.prio, slot.ticket);
        }
    }

    #[inline]
    pub fn del(&mut self, id: EventId) -> io::Result<()> {
        let idx = self.check(id)?;
        let slot = &mut self.slots[idx];
        // Fast path: an event that only watches its fd is detached lazily (see `lazy_io`).
        if self.lazy && slot.state & state::WAITING == state::PENDING_IO {
            slot.state ^= state::PENDING_IO | state::DETACHED;
            if !slot.is(state::LAZY_QUEUED) {
                slot.set(state::LAZY_QUEUED);
                self.lazy_io.push(idx as u32);
            }
            if slot.is(state::COUNTED) {
                slot.clear(state::COUNTED);
                self.live -= 1;
            }
            return Ok(());
        }
        self.del_idx(idx)
    }

    fn free_idx(&mut self, idx: usize) -> Option<Callback<D>> {
        let _ = self.del_idx(idx);
        self.remove_detached(idx);
        let slot = &mut self.slots[idx];
        // Freeing an fd's last event usually comes right before closing the fd.
        if slot.flags.intersects(EventFlags::IO) && slot.is(state::REGISTERED) {
            let fd = slot.fd;
            self.io.release(&mut *self.backend, fd);
        }
        let slot = &mut self.slots[idx];
        slot.gen = slot.gen.wrapping_add(1); // even: free
        slot.state = 0;
        slot.ncalls = self.free_head;
        self.free_head = idx as u32;
        slot.callback.take()
    }

    pub fn free(&mut self, id: EventId) -> io::Result<()> {
        let idx = self.check(id)?;
        // Dropped here, after the base is consistent again. A callback freeing its own event
        // finds `None`: the running closure is dropped when it returns.
        drop(self.free_idx(idx));
        Ok(())
    }

    #[inline]
    fn activate_idx(&mut self, idx: usize, res: EventFlags, ncalls: u32) {
        let slot = &mut self.slots[idx];
        Self::activate_slot(
            slot,
            idx as u32,
            res,
            ncalls,
            &mut self.active,
            &mut self.live,
        );
    }

    /// Activate the event in `slot` (number `idx`), or add to its pending activation.
    #[inline(always)]
    fn activate_slot(
        slot: &mut Slot<D>,
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
        // Becoming active can only make a live, non-internal event count.
        if !slot.is(state::COUNTED | state::INTERNAL) {
            slot.set(state::COUNTED);
            *live += 1;
        }
        slot.set(state::ACTIVE);
        slot.ticket = active.push(idx, slot.prio);
    }

    pub fn activate(&mut self, id: EventId, res: EventFlags, ncalls: u32) -> io::Result<()> {
        let idx = self.check(id)?;
        self.activate_idx(idx, res, ncalls.max(1));
        Ok(())
    }

    pub fn pending(&self, id: EventId) -> io::Result<Pending> {
        let slot = &self.slots[self.check(id)?];
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
            .map(|ns| self.epoch + Duration::from_nanos(ns));
        Ok(Pending { flags, deadline })
    }

    pub fn set_priority(&mut self, id: EventId, prio: u16) -> io::Result<()> {
        let idx = self.check(id)?;
        let n = self.active.priorities();
        if prio >= n {
            return Err(invalid(format!(
                "priority {prio} is out of range: this base has {n} (0..{n})"
            )));
        }
        let slot = &mut self.slots[idx];
        if slot.is(state::ACTIVE) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{id:?} is active: its priority cannot change until its callback ran"),
            ));
        }
        slot.prio = prio;
        Ok(())
    }

    pub fn once(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        timeout: Option<Duration>,
        callback: Callback<D>,
    ) -> io::Result<()> {
        if flags.intersects(EventFlags::SIGNAL | EventFlags::PERSIST) {
            return Err(invalid(format!(
                "once: {:?} is not allowed: a one-shot event takes READ, WRITE, CLOSED or a timeout",
                flags & (EventFlags::SIGNAL | EventFlags::PERSIST)
            )));
        }
        let id = self.new_event(fd, flags, callback)?;
        let idx = id.index as usize;
        self.slots[idx].set(state::ONCE);
        let io = flags.intersects(EventFlags::IO);
        let result = if !io && timeout.is_none_or(|t| t.is_zero()) {
            self.activate_idx(idx, EventFlags::TIMEOUT, 1);
            Ok(())
        } else {
            self.add(id, timeout)
        };
        if result.is_err() {
            drop(self.free_idx(idx));
        }
        result
    }

    pub fn loop_exit(&mut self, after: Option<Duration>) -> io::Result<()> {
        self.once(
            -1,
            EventFlags::empty(),
            after,
            Box::new(|ctx, _| ctx.inner.got_exit = true),
        )
    }

    pub fn loop_break(&mut self) {
        if self.running {
            self.got_break = true;
        } else {
            self.break_pending = true;
        }
    }

    fn activate_ready(&mut self) {
        if self.ready.take_woken() {
            if let Some(ev) = self.remote.as_ref().and_then(|r| r.event) {
                self.activate_idx(ev.index as usize, EventFlags::READ, 1);
            }
        }
        if self.signals.mechanism == Mechanism::Backend {
            let mut delivered = std::mem::take(&mut self.signal_buf);
            self.ready.take_signals(&mut delivered);
            for (signo, count) in delivered.drain(..) {
                self.deliver_signal(signo, count);
            }
            self.signal_buf = delivered;
        }
        // Borrowed apart, so the io map's lists are read while the slots and queues change.
        let Inner {
            ready,
            io,
            slots,
            active,
            live,
            ..
        } = self;
        for (fd, mut ready) in ready.iter() {
            if ready.contains(EventFlags::READ) && io.emulates_closed(fd) && at_eof(fd) {
                ready |= EventFlags::CLOSED;
            }
            // Events are activated in the order they were added to the fd.
            for &idx in io.events(fd) {
                let slot = &mut slots[idx as usize];
                let res = ready & slot.flags & EventFlags::IO;
                if !res.is_empty() && slot.is(state::PENDING_IO) {
                    Self::activate_slot(slot, idx, res, 1, active, live);
                }
            }
        }
    }

    /// First watcher of a signal on this base: create the mechanism's fd (and the internal
    /// event reading it) if needed, take ownership of the signal, start receiving it.
    #[inline(never)]
    fn watch_signal(&mut self, idx: usize) -> io::Result<()> {
        let signo = self.slots[idx].fd;
        if self.signals.watchers[signo as usize].is_empty() {
            if let Some(fd) = self.signals.ensure_source()? {
                match self.add_internal(fd, Box::new(|ctx, _| ctx.inner.drain_signals())) {
                    Ok(id) => self.signal_event = Some(id),
                    Err(e) => {
                        self.signals.source = None;
                        return Err(e);
                    }
                }
            }
            self.signals.install(signo)?;
            if self.signals.mechanism == Mechanism::Backend {
                if let Err(e) = self.backend.add_signal(signo) {
                    self.signals.uninstall(signo);
                    return Err(e);
                }
            }
        }
        self.signals.watchers[signo as usize].push(idx as u32);
        self.slots[idx].set(state::PENDING_SIG);
        Ok(())
    }

    /// An internal event: persistent READ on `fd`, priority 0, not keeping the loop alive.
    fn add_internal(&mut self, fd: RawFd, callback: Callback<D>) -> io::Result<EventId> {
        let id = self.alloc(fd, EventFlags::READ | EventFlags::PERSIST, callback)?;
        let slot = &mut self.slots[id.index as usize];
        slot.set(state::INTERNAL);
        slot.prio = 0;
        if let Err(e) = self.add(id, None) {
            drop(self.free_idx(id.index as usize));
            return Err(e);
        }
        Ok(id)
    }

    /// The internal event that runs remote commands: a READ event on our wake-up fd, or,
    /// when the backend wakes itself, one the core activates when the backend says so.
    fn remote_event(&mut self, fd: Option<RawFd>) -> io::Result<EventId> {
        let run: Callback<D> = Box::new(|ctx, data| run_remote_commands(ctx, data));
        match fd {
            Some(fd) => self.add_internal(fd, run),
            None => {
                let id = self.alloc(-1, EventFlags::empty(), run)?;
                let slot = &mut self.slots[id.index as usize];
                slot.set(state::INTERNAL);
                slot.prio = 0;
                Ok(id)
            }
        }
    }

    fn handle(&mut self) -> io::Result<Handle<D>> {
        if self.remote.is_none() {
            let waker = self.backend.waker().transpose()?;
            let mut remote = Remote::new(waker)?;
            remote.event = Some(self.remote_event(remote.fd())?);
            self.remote = Some(remote);
        }
        Ok(Handle::new(
            self.remote.as_ref().expect("just set").shared.clone(),
        ))
    }

    /// After fork: replace the fds shared with the parent (signal pipe or signalfd, wake-up
    /// channel) and their internal events.
    fn renew_internal_fds(&mut self) -> io::Result<()> {
        if let Some(old) = self.signal_event.take() {
            let _ = self.free(old);
            self.signals.renew()?;
            if let Some(fd) = self.signals.source.as_ref().map(|f| f.as_raw_fd()) {
                self.signal_event =
                    Some(self.add_internal(fd, Box::new(|ctx, _| ctx.inner.drain_signals()))?);
            }
        }
        if let Some(mut remote) = self.remote.take() {
            if let Some(old) = remote.event.take() {
                let _ = self.free(old);
            }
            let waker = self.backend.waker().transpose();
            let renewed = waker.and_then(|w| remote.renew(w));
            let fd = remote.fd();
            self.remote = Some(remote);
            renewed?;
            let id = self.remote_event(fd)?;
            self.remote.as_mut().expect("just set").event = Some(id);
        }
        Ok(())
    }

    fn unwatch_signal(&mut self, idx: usize) {
        let signo = self.slots[idx].fd;
        self.slots[idx].clear(state::PENDING_SIG);
        let watchers = &mut self.signals.watchers[signo as usize];
        watchers.retain(|&w| w != idx as u32);
        if watchers.is_empty() {
            if self.signals.mechanism == Mechanism::Backend {
                let _ = self.backend.del_signal(signo);
            }
            self.signals.uninstall(signo);
        }
    }

    /// The internal event's callback: take every delivery and activate the watchers.
    fn drain_signals(&mut self) {
        let mut delivered = std::mem::take(&mut self.signal_buf);
        self.signals.drain(&mut delivered);
        for (signo, count) in delivered.drain(..) {
            self.deliver_signal(signo, count);
        }
        self.signal_buf = delivered;
    }

    fn deliver_signal(&mut self, signo: i32, count: u32) {
        let mut n = 0;
        while let Some(&idx) = self
            .signals
            .watchers
            .get(signo as usize)
            .and_then(|w| w.get(n))
        {
            n += 1;
            self.activate_idx(idx as usize, EventFlags::SIGNAL, count);
        }
    }

    /// Take an event that was deleted lazily out of the io map for real.
    #[inline(never)]
    fn remove_detached(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        if slot.is(state::DETACHED) {
            slot.clear(state::DETACHED);
            let (fd, flags) = (slot.fd, slot.flags);
            let _ = self.io.remove(&mut *self.backend, fd, idx as u32, flags);
        }
    }

    /// Apply every lazy delete still standing.
    fn apply_lazy_deletes(&mut self) {
        if self.lazy_io.is_empty() {
            return;
        }
        let mut lazy = std::mem::take(&mut self.lazy_io);
        for &idx in &lazy {
            // Usually re-added since (a delete-then-add): only the mark goes.
            let slot = &mut self.slots[idx as usize];
            slot.clear(state::LAZY_QUEUED);
            if slot.is(state::DETACHED) {
                self.remove_detached(idx as usize);
            }
        }
        lazy.clear();
        self.lazy_io = lazy;
    }

    fn flush_changes(&mut self) {
        self.apply_lazy_deletes();
        self.io.flush(&mut *self.backend, &mut self.failed);
        self.report_failed();
    }

    /// fds the backend refused after the fact (closed behind our back) are reported to their
    /// events as READ|WRITE, like poll's POLLNVAL, so the callbacks' I/O sees the error.
    fn report_failed(&mut self) {
        while let Some(fd) = self.failed.pop() {
            let mut n = 0;
            while let Some(&idx) = self.io.events(fd).get(n) {
                n += 1;
                let slot = &self.slots[idx as usize];
                let res = EventFlags::READ | EventFlags::WRITE;
                if slot.is(state::PENDING_IO) {
                    self.activate_idx(idx as usize, res & slot.flags, 1);
                }
            }
        }
    }

    fn expire_timers(&mut self, now: u64) {
        let Inner {
            timers,
            slots,
            active,
            live,
            intervals,
            ..
        } = self;
        while let Some((idx, deadline)) = timers.pop_expired(now) {
            let slot = &mut slots[idx as usize];
            slot.clear(state::TIMER);
            // An event still waiting for the run of an earlier expiry (starved by a more
            // urgent priority) runs once for both, as in libevent.
            if !(slot.is(state::ACTIVE) && slot.res.contains(EventFlags::TIMEOUT)) {
                Self::activate_slot(slot, idx, EventFlags::TIMEOUT, 1, active, live);
            }
            // A persistent timeout is re-armed here rather than before its callback: its
            // cadence runs from the deadline that passed, and no slot keeps a copy of that.
            // The new deadline is after `now`, so this pass does not meet it again. A zero
            // interval would be met again: it is re-armed before the callback, from now.
            if slot.is(state::INTERVAL) {
                let interval = intervals[idx as usize];
                if interval != 0 {
                    slot.set(state::TIMER | state::REARMED);
                    timers.schedule(idx, next_deadline(deadline, interval, now));
                }
            }
        }
    }

    /// Run the best non-empty priority; returns how many user callbacks ran.
    fn process_active(&mut self, data: &mut D) -> usize {
        let Some(prio) = self.active.best() else {
            return 0;
        };
        let limited = prio >= self.opts.limit_callbacks_after_prio
            && (self.opts.max_dispatch_callbacks.is_some()
                || self.opts.max_dispatch_interval.is_some());
        let mut count = 0usize;
        if !limited {
            while let Some(idx) = self.active.pop(prio) {
                count += usize::from(!self.slots[idx as usize].is(state::INTERNAL));
                self.run_one(idx as usize, data);
                // Stop for a break, or when a callback activated a more urgent event: it
                // runs first.
                if self.got_break || self.active.has_better_than(prio) {
                    break;
                }
            }
            return count;
        }
        let max_cb = self.opts.max_dispatch_callbacks;
        let max_time = self.opts.max_dispatch_interval;
        let started = Instant::now();
        while let Some(idx) = self.active.pop(prio) {
            count += usize::from(!self.slots[idx as usize].is(state::INTERNAL));
            self.run_one(idx as usize, data);
            if self.got_break || self.active.has_better_than(prio) {
                break;
            }
            if max_cb.is_some_and(|m| count >= m as usize) {
                break;
            }
            if max_time.is_some_and(|max| started.elapsed() >= max) {
                break;
            }
        }
        count
    }

    /// Run the callback of the active event `idx`, just taken off its queue.
    #[inline(always)]
    fn run_one(&mut self, idx: usize, data: &mut D) {
        let slot = &mut self.slots[idx];
        slot.clear(state::ACTIVE);
        let fired = std::mem::take(&mut slot.res);
        let ncalls = std::mem::take(&mut slot.ncalls);
        // The common case, a persistent event without a timeout that still watches its fd
        // or signal, needs nothing before its callback: it stays pending and counted.
        if !(slot.flags.contains(EventFlags::PERSIST)
            && !slot.is(state::INTERVAL)
            && slot.is(state::WAITING))
        {
            self.before_run(idx, fired);
        }
        let slot = &mut self.slots[idx];
        let Some(mut callback) = slot.callback.take() else {
            return;
        };
        let id = EventId {
            base: self.id,
            index: idx as u32,
            gen: slot.gen,
        };
        let mut guard = Unwinding {
            inner: self,
            id,
            armed: true,
        };
        let mut ctx = Context {
            inner: &mut *guard.inner,
            id,
            fired,
            ncalls,
        };
        callback(&mut ctx, data);
        guard.armed = false;
        guard.inner.put_back(id, callback);
    }

    /// What the other activations need before their callback runs: a one-shot event is
    /// deleted, a persistent timeout re-armed, and an event no longer pending stops counting.
    #[inline(never)]
    fn before_run(&mut self, idx: usize, fired: EventFlags) {
        let slot = &mut self.slots[idx];
        if !slot.flags.contains(EventFlags::PERSIST) {
            if slot.is(state::WAITING) {
                let _ = self.del_idx(idx);
            } else if slot.is(state::COUNTED) {
                // An expired one-shot timer, say: nothing left to delete.
                slot.clear(state::COUNTED);
                self.live -= 1;
            }
            return;
        }
        if slot.is(state::INTERVAL) {
            self.rearm_persistent(idx, fired);
        }
        // A persistent event still watching something counts as before; one that was
        // activated by hand while not pending stops counting now.
        let slot = &mut self.slots[idx];
        if !slot.is(state::WAITING) && slot.is(state::COUNTED) {
            slot.clear(state::COUNTED);
            self.live -= 1;
        }
    }

    /// Re-arm a persistent event's timeout before its callback (libevent's
    /// event_persist_closure), unless its expiry did already (see `expire_timers`). A
    /// timeout activated by hand keeps the cadence of the pending deadline; any other
    /// activation restarts the timeout from now.
    #[inline(never)]
    fn rearm_persistent(&mut self, idx: usize, fired: EventFlags) {
        let slot = &mut self.slots[idx];
        if slot.is(state::REARMED) {
            slot.clear(state::REARMED);
            return;
        }
        let now = self.now_ns();
        let from = match self.timers.deadline(idx as u32) {
            Some(pending) if fired.contains(EventFlags::TIMEOUT) => pending,
            _ => now,
        };
        self.slots[idx].set(state::TIMER);
        let deadline = next_deadline(from, self.intervals[idx], now);
        self.timers.schedule(idx as u32, deadline);
    }

    /// Give a callback back to its slot after it returned — or free the event if it was a
    /// one-shot; nothing if the callback freed its own event (the closure drops here).
    #[inline(always)]
    fn put_back(&mut self, id: EventId, callback: Callback<D>) {
        let idx = id.index as usize;
        let Some(slot) = self.slots.get_mut(idx).filter(|s| s.gen == id.gen) else {
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

/// The wake-up channel's internal callback: run what other threads sent, in order.
fn run_remote_commands<D>(ctx: &mut Context<'_, D>, data: &mut D) {
    let mut commands = std::mem::take(&mut ctx.inner.remote_buf);
    if let Some(remote) = ctx.inner.remote.as_ref() {
        remote.take_commands(&mut commands);
    }
    for command in commands.drain(..) {
        match command {
            Command::Activate(id, flags, ncalls) => {
                let _ = ctx.inner.activate(id, flags, ncalls); // freed by now: ignored
            }
            Command::Run(f) => f(ctx, data),
            Command::Exit(after) => {
                let _ = ctx.inner.loop_exit(after);
            }
            Command::Break => ctx.inner.loop_break(),
        }
    }
    ctx.inner.remote_buf = commands;
}

/// Frees the event whose callback is unwinding (a panic): its closure may be half-way through
/// an update, and running it again would observe that. Disarmed when the callback returns.
struct Unwinding<'a, D> {
    inner: &'a mut Inner<D>,
    id: EventId,
    armed: bool,
}

impl<D> Drop for Unwinding<'_, D> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            let idx = self.id.index as usize;
            if self
                .inner
                .slots
                .get(idx)
                .is_some_and(|s| s.gen == self.id.gen)
            {
                self.inner.free_after_run(idx);
            }
        }
    }
}

/// Resets the loop state when `run_with` returns or unwinds.
struct LoopGuard<'a, D>(&'a mut Inner<D>);

impl<D> Drop for LoopGuard<'_, D> {
    fn drop(&mut self) {
        self.0.running = false;
        self.0.now_cache = None;
    }
}

/// Refuse an fd number nobody opened before the io map grows its table to it (fd 1 << 30
/// would otherwise mean gigabytes for nothing). Only fds beyond the table pay this fcntl.
fn check_open(fd: RawFd) -> io::Result<()> {
    crate::backend::fd_is_open(fd)
        .map_err(|e| invalid(format!("fd {fd} is not an open file descriptor: {e}")))
}

/// Whether a readable fd is at end of file: nothing to read. Used to emulate CLOSED.
fn at_eof(fd: RawFd) -> bool {
    // SAFETY: the fd is only passed to ioctl(FIONREAD); if it was closed meanwhile the call
    // fails with EBADF and we report no CLOSED.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    matches!(rustix::io::ioctl_fionread(fd), Ok(0))
}

/// The event base: owns the events and the backend, and runs the loop.
///
/// `D` is the user data every callback receives as `&mut D`, passed to [`run`](Self::run):
/// shared state without `Rc<RefCell<_>>` (calloop's model). A base is not `Send`: it and its
/// callbacks belong to the thread that runs it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_core::{Base, EventFlags};
/// # fn backend() -> Box<dyn evloop_core::Backend> { evloop_core::doc_backend() }
///
/// let mut base: Base<Vec<&str>> = Base::with_backend(backend(), Default::default()).unwrap();
/// let late = base.new_timer(EventFlags::empty(), |_, log: &mut Vec<&str>| log.push("late")).unwrap();
/// let soon = base.new_timer(EventFlags::empty(), |_, log: &mut Vec<&str>| log.push("soon")).unwrap();
/// base.add(late, Some(Duration::from_millis(20))).unwrap();
/// base.add(soon, Some(Duration::from_millis(1))).unwrap();
/// let mut log = Vec::new();
/// base.run(&mut log).unwrap();
/// assert_eq!(log, ["soon", "late"]);
/// ```
pub struct Base<D = ()> {
    inner: Inner<D>,
}

/// Defines each operation once and exposes it on both `Base` and `Context`. `mut fn` takes
/// `&mut self`, `ref fn` takes `&self`.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $kind:ident fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:expr;
    )*) => {
        impl<D> Base<D> {
            $( operations!(@base $kind [$(#[$doc])*] $name ($($arg: $ty),*) ($($ret)?) $body); )*
        }
        impl<D> Context<'_, D> {
            $( operations!(@ctx $kind $name ($($arg: $ty),*) ($($ret)?) $body); )*
        }
    };
    (@base mut [$($doc:tt)*] $name:ident ($($arg:ident: $ty:ty),*) ($($ret:ty)?) $body:expr) => {
        $($doc)*
        pub fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            $body(&mut self.inner $(, $arg)*)
        }
    };
    (@base ref [$($doc:tt)*] $name:ident ($($arg:ident: $ty:ty),*) ($($ret:ty)?) $body:expr) => {
        $($doc)*
        pub fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
            $body(&self.inner $(, $arg)*)
        }
    };
    (@ctx mut $name:ident ($($arg:ident: $ty:ty),*) ($($ret:ty)?) $body:expr) => {
        #[doc = concat!("See [`Base::", stringify!($name), "`].")]
        pub fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            $body(&mut *self.inner $(, $arg)*)
        }
    };
    (@ctx ref $name:ident ($($arg:ident: $ty:ty),*) ($($ret:ty)?) $body:expr) => {
        #[doc = concat!("See [`Base::", stringify!($name), "`].")]
        pub fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
            $body(&*self.inner $(, $arg)*)
        }
    };
}

operations! {
    /// Create an event watching `fd` for `flags` (READ, WRITE, CLOSED, with PERSIST and ET),
    /// not yet pending: [`add`](Self::add) it.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a negative fd with I/O flags, ET without I/O flags, or SIGNAL.
    mut fn new_event(fd: RawFd, flags: EventFlags, callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static) -> io::Result<EventId>
        => Inner::new_event_fn;

    /// Create a signal event for `signo` (SIGNAL|PERSIST, libevent's `evsignal_new`). Its
    /// callback runs in the loop, once per wake-up, with [`Context::ncalls`] the number of
    /// deliveries since its last run (ten raises before the loop runs: one run, count 10).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number out of range, SIGKILL or SIGSTOP.
    mut fn new_signal(signo: i32, callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static) -> io::Result<EventId>
        => Inner::new_signal_fn;

    /// Create a timer event (no fd); `flags` may hold PERSIST to make it periodic.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `flags` holds anything but PERSIST.
    mut fn new_timer(flags: EventFlags, callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static) -> io::Result<EventId>
        => Inner::new_timer_fn;

    /// Make the event pending: watch its fd, and if `timeout` is given, (re)start its timer.
    /// Adding a pending event again replaces its timeout; `None` keeps the running one. A
    /// persistent event's timer restarts after each activation.
    ///
    /// # Errors
    ///
    /// A freed or foreign id; ET on a backend without it; the backend's refusal of the fd
    /// (closed, a regular file on epoll), naming the fd. The event is unchanged then.
    mut fn add(id: EventId, timeout: Option<Duration>) -> io::Result<()>
        => Inner::add;

    /// Make the event non-pending: stop watching its fd, stop its timer and cancel an
    /// activation whose callback has not run yet. Deleting a non-pending event is a no-op.
    /// The backend hears of it at the next wait (a delete followed by an add costs nothing);
    /// before closing an fd, [`free`](Base::free) its events instead, which tells the
    /// backend at once — epoll would keep watching a closed fd whose file a duplicate keeps
    /// open.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    mut fn del(id: EventId) -> io::Result<()> => Inner::del;

    /// Delete the event and free it: its callback is dropped (after it returns, if it is the
    /// one running) and the id is refused from now on. Freeing the last event of an fd
    /// unregisters the fd from the backend at once, so the fd may be closed right after.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    mut fn free(id: EventId) -> io::Result<()> => Inner::free;

    /// Activate the event by hand with result `flags`, as if `ncalls` (at least 1) things
    /// happened (libevent's `event_active`). Activating an active event ORs the flags.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    mut fn activate(id: EventId, flags: EventFlags, ncalls: u32) -> io::Result<()>
        => Inner::activate;

    /// What the event is waiting for and when its timer expires.
    ///
    /// # Errors
    ///
    /// A freed or foreign id.
    ref fn pending(id: EventId) -> io::Result<Pending> => Inner::pending;

    /// Set the priority the event runs at (0 is the most urgent).
    ///
    /// # Errors
    ///
    /// `InvalidInput` beyond the base's priorities; `ResourceBusy` while the event is active.
    mut fn set_priority(id: EventId, prio: u16) -> io::Result<()> => Inner::set_priority;

    /// Run `callback` once when `fd` is ready for `flags` or `timeout` expires (with no fd
    /// flags: after `timeout`, or at once if it is `None` or zero). Its storage is freed
    /// after it runs, or with the base (libevent's `event_base_once`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for SIGNAL or PERSIST, or a negative fd with fd flags; the backend's
    /// refusal of the fd.
    mut fn once(fd: RawFd, flags: EventFlags, timeout: Option<Duration>, callback: impl FnOnce(&mut Context<'_, D>, &mut D) + 'static) -> io::Result<()>
        => Inner::once_fn;

    /// Make the loop return after `after` (`None`: once the callbacks active now have run),
    /// as a one-shot timer (libevent's `event_base_loopexit`). It survives until it fires, so
    /// calling it before [`run`](Self::run) works.
    ///
    /// # Errors
    ///
    /// Never in practice; the signature leaves room for allocation limits.
    mut fn loop_exit(after: Option<Duration>) -> io::Result<()> => Inner::loop_exit;

    /// Make the loop return as soon as the running callback returns. Called while the loop is
    /// not running, it makes the next run return at once (libevent loses it: its issues #573,
    /// #729, #1292).
    mut fn loop_break() => Inner::loop_break;

    /// Whether the last run ended through [`loop_exit`](Self::loop_exit).
    ref fn got_exit() -> bool => |inner: &Inner<D>| inner.got_exit;

    /// Whether the last run ended through [`loop_break`](Self::loop_break).
    ref fn got_break() -> bool => |inner: &Inner<D>| inner.got_break;

    /// The loop's cached time (taken after each wait), or the clock outside the loop.
    ref fn now() -> Instant => |inner: &Inner<D>| inner.epoch + Duration::from_nanos(inner.now_ns());

    /// A handle through which other threads reach this base (created on first use, with an
    /// eventfd or pipe the loop watches). See [`Handle`].
    ///
    /// # Errors
    ///
    /// Creating the wake-up fd failed (the fd limit).
    mut fn handle() -> io::Result<Handle<D>> => Inner::handle;

    /// How many times the loop has waited on the backend (for diagnostics and tests).
    ref fn iterations() -> u64 => |inner: &Inner<D>| inner.iterations;

    /// The backend's name (libevent's `event_base_get_method`).
    ref fn method() -> &'static str => |inner: &Inner<D>| inner.backend.name();

    /// How signals reach this base: `"self-pipe"`, `"signalfd"`, or the backend's name
    /// (libevent 2.2's `event_base_get_signal_method`).
    ref fn signal_method() -> &'static str => |inner: &Inner<D>| inner.signals.method(inner.backend.name());

    /// The backend's features.
    ref fn features() -> Features => |inner: &Inner<D>| inner.features;

    /// How many priorities this base has.
    ref fn priorities() -> u16 => |inner: &Inner<D>| inner.active.priorities();

    /// How many events keep the loop alive: pending or active, not internal.
    ref fn num_events() -> usize => |inner: &Inner<D>| inner.live;
}

impl<D> Base<D> {
    /// A base on `backend`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `options.priorities` is not within 1 to 256.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn backend() -> Box<dyn evloop_core::Backend> { evloop_core::doc_backend() }
    /// use evloop_core::{Base, BaseOptions};
    /// let base: Base = Base::with_backend(backend(), BaseOptions { priorities: 3, ..Default::default() }).unwrap();
    /// assert_eq!(base.priorities(), 3);
    /// assert!(Base::<()>::with_backend(backend(), BaseOptions { priorities: 0, ..Default::default() }).is_err());
    /// ```
    pub fn with_backend(backend: Box<dyn Backend>, options: BaseOptions) -> io::Result<Self> {
        if !(1..=256).contains(&options.priorities) {
            return Err(invalid(format!(
                "{} priorities requested: a base has 1 to 256",
                options.priorities
            )));
        }
        let mechanism = if options.signalfd {
            if cfg!(any(target_os = "linux", target_os = "android")) {
                Mechanism::Signalfd
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "signalfd exists only on Linux and Android",
                ));
            }
        } else if backend.handles_signals() {
            Mechanism::Backend
        } else {
            Mechanism::SelfPipe
        };
        let id = NEXT_BASE_ID.fetch_add(1, Ordering::Relaxed);
        let features = backend.features();
        let emulate_closed = !features.contains(Features::EARLY_CLOSE);
        let immediate = backend.immediate_changes();
        Ok(Base {
            inner: Inner {
                id,
                backend,
                features,
                slots: Vec::new(),
                free_head: NO_SLOT,
                io: IoMap::new(emulate_closed, immediate),
                timers: TimerHeap::new(),
                active: ActiveQueues::new(options.priorities),
                ready: ReadyList::new(),
                failed: Vec::new(),
                epoch_ns: monotonic_ns(),
                epoch: Instant::now(),
                now_cache: None,
                live: 0,
                running: false,
                got_exit: false,
                got_break: false,
                break_pending: false,
                opts: options,
                signals: Signals::new(mechanism, id),
                signal_buf: Vec::new(),
                signal_event: None,
                remote: None,
                remote_buf: Vec::new(),
                iterations: 0,
                lazy_io: Vec::new(),
                intervals: Vec::new(),
                lazy: !immediate,
            },
        })
    }

    /// Run the loop until no event is registered, or `loop_exit`/`loop_break`
    /// (libevent's `event_base_dispatch`).
    ///
    /// # Errors
    ///
    /// See [`run_with`](Self::run_with).
    pub fn run(&mut self, data: &mut D) -> io::Result<RunOutcome> {
        self.run_with(LoopFlags::empty(), data)
    }

    /// Run the loop with `flags` (libevent's `event_base_loop`).
    ///
    /// Each iteration runs the callbacks of the most urgent priority that has active events,
    /// in activation order, and stops early when a callback calls `loop_break`, when a more
    /// urgent event becomes active, or when a dispatch limit of [`BaseOptions`] is reached;
    /// then it checks for new events without waiting. Lower priorities therefore run only
    /// when every more urgent queue is empty after a check.
    ///
    /// # Errors
    ///
    /// `Other` if the loop is already running (loops do not nest), or the backend's hard
    /// error from its wait. Every registration is intact after an error,
    /// so the caller may run again.
    pub fn run_with(&mut self, flags: LoopFlags, data: &mut D) -> io::Result<RunOutcome> {
        if self.inner.running {
            return Err(io::Error::other(
                "the loop of this base is already running (loops do not nest)",
            ));
        }
        self.inner.running = true;
        let guard = LoopGuard(&mut self.inner);
        let inner = &mut *guard.0;
        inner.got_exit = false;
        inner.got_break = false;
        if std::mem::take(&mut inner.break_pending) {
            inner.got_break = true;
            return Ok(RunOutcome::Broken);
        }
        loop {
            if inner.got_exit {
                return Ok(RunOutcome::Exited);
            }
            if inner.got_break {
                return Ok(RunOutcome::Broken);
            }
            if inner.live == 0 && !flags.contains(LoopFlags::NO_EXIT_ON_EMPTY) {
                return Ok(RunOutcome::NoEvents);
            }
            inner.flush_changes();
            let timeout = if !inner.active.is_empty() || flags.contains(LoopFlags::NONBLOCK) {
                Some(Duration::ZERO)
            } else {
                inner.timers.peek().map(|(_, deadline)| {
                    Duration::from_nanos(deadline.saturating_sub(inner.clock()))
                })
            };
            inner.now_cache = None;
            inner.ready.clear();
            inner.iterations += 1;
            inner.backend.dispatch(timeout, &mut inner.ready)?;
            let now = inner.clock();
            inner.now_cache = Some(now);
            inner.activate_ready();
            inner.expire_timers(now);
            let ran = inner.process_active(data);
            if flags.contains(LoopFlags::ONCE) && inner.active.is_empty() && ran > 0 {
                return Ok(RunOutcome::Returned);
            }
            if flags.contains(LoopFlags::NONBLOCK) {
                return Ok(RunOutcome::Returned);
            }
        }
    }

    /// Call in the child after `fork` (libevent's `event_reinit`): re-create what the child
    /// shares with its parent — the backend's kernel object where it has one (epoll, kqueue),
    /// the signal pipe or signalfd, the handles' wake-up fd — and register every fd afresh.
    /// The parent's registrations are never touched: the shared objects are only closed in
    /// the child, never modified.
    ///
    /// # Errors
    ///
    /// Creating a new kernel object or fd failed. fds the new backend refuses are reported to
    /// their events as READ|WRITE.
    pub fn reinit(&mut self) -> io::Result<()> {
        let inner = &mut self.inner;
        inner.apply_lazy_deletes();
        let recreate = inner.backend.need_reinit();
        if recreate {
            inner.backend.reinit()?;
        }
        inner.renew_internal_fds()?;
        if recreate {
            inner
                .io
                .reregister_all(&mut *inner.backend, &mut inner.failed);
            // A backend that delivers signals lost them with its old kernel object.
            if inner.signals.mechanism == Mechanism::Backend {
                for signo in 1..signal::NSIG {
                    if !inner.signals.watchers[signo as usize].is_empty() {
                        inner.backend.add_signal(signo)?;
                    }
                }
            }
        }
        inner.report_failed();
        Ok(())
    }
}

/// The event operations of [`Base`] and [`Context`], for code that works with either — the
/// buffered socket and the listener take `&mut impl EventOps<D>` (or `&mut dyn`), so they
/// can be set up before the loop runs and driven from inside callbacks.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_core::{Base, EventFlags, EventOps};
/// # fn backend() -> Box<dyn evloop_core::Backend> { evloop_core::doc_backend() }
///
/// fn arm_tick<D>(ops: &mut dyn EventOps<D>) -> std::io::Result<()> {
///     let t = ops.new_event_boxed(-1, EventFlags::empty(), Box::new(|_, _| {}))?;
///     ops.add(t, Some(Duration::from_millis(1)))
/// }
/// let mut base: Base = Base::with_backend(backend(), Default::default())?;
/// arm_tick(&mut base)?;
/// assert_eq!(base.num_events(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait EventOps<D> {
    /// See [`Base::new_event`]; the callback comes boxed.
    ///
    /// # Errors
    ///
    /// As [`Base::new_event`].
    fn new_event_boxed(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        callback: Callback<D>,
    ) -> io::Result<EventId>;
    /// See [`Base::add`].
    ///
    /// # Errors
    ///
    /// As [`Base::add`].
    fn add(&mut self, id: EventId, timeout: Option<Duration>) -> io::Result<()>;
    /// See [`Base::del`].
    ///
    /// # Errors
    ///
    /// As [`Base::del`].
    fn del(&mut self, id: EventId) -> io::Result<()>;
    /// See [`Base::free`].
    ///
    /// # Errors
    ///
    /// As [`Base::free`].
    fn free(&mut self, id: EventId) -> io::Result<()>;
    /// See [`Base::activate`].
    ///
    /// # Errors
    ///
    /// As [`Base::activate`].
    fn activate(&mut self, id: EventId, flags: EventFlags, ncalls: u32) -> io::Result<()>;
    /// See [`Base::pending`].
    ///
    /// # Errors
    ///
    /// As [`Base::pending`].
    fn pending(&self, id: EventId) -> io::Result<Pending>;
}

macro_rules! event_ops_for {
    ($ty:ty) => {
        impl<D> EventOps<D> for $ty {
            fn new_event_boxed(
                &mut self,
                fd: RawFd,
                flags: EventFlags,
                callback: Callback<D>,
            ) -> io::Result<EventId> {
                self.inner.new_event(fd, flags, callback)
            }
            fn add(&mut self, id: EventId, timeout: Option<Duration>) -> io::Result<()> {
                self.inner.add(id, timeout)
            }
            fn del(&mut self, id: EventId) -> io::Result<()> {
                self.inner.del(id)
            }
            fn free(&mut self, id: EventId) -> io::Result<()> {
                self.inner.free(id)
            }
            fn activate(&mut self, id: EventId, flags: EventFlags, ncalls: u32) -> io::Result<()> {
                self.inner.activate(id, flags, ncalls)
            }
            fn pending(&self, id: EventId) -> io::Result<Pending> {
                self.inner.pending(id)
            }
        }
    };
}
event_ops_for!(Base<D>);
event_ops_for!(Context<'_, D>);

impl<D> std::fmt::Debug for Base<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Base")
            .field("id", &self.inner.id)
            .field("method", &self.inner.backend.name())
            .field("events", &self.inner.live)
            .field("timers", &self.inner.timers.len())
            .field("active", &self.inner.active.len())
            .finish()
    }
}
