//! The registry's loop hooks — prepare, check and idle watchers — and the wait they shape:
//! creating them, running them at their points of the loop (see `hooks` for the picture),
//! the timeout of the coming wait, and the loop's metrics.
//!
//! Semantics, and where they come from:
//! * **prepare** watchers run at the top of each iteration, before the loop computes its
//!   wait, so what they add or activate counts for that wait (libev). They see the timeout
//!   the loop would use ([`Registry::wait_timeout`]) and may shorten it
//!   ([`Registry::limit_next_wait`]; libevent 2.2 shows the timeout read-only).
//! * **check** watchers run right after the wait, after the ready fds and expired timers were
//!   activated, before any active callback (libevent 2.2, libev).
//! * **idle** watchers run when a pass found nothing else to do, and while one is started the
//!   loop polls without blocking (libev; libuv runs its idle handles every iteration,
//!   busy or not, which makes them a poor fit for "background work when idle"). With
//!   priorities, the idle watchers of the most urgent priority that has any run when nothing
//!   of that priority or a more urgent one is active (libev's rule).
//! * A started idle watcher keeps the loop alive, as in libev and libuv: it is work the loop
//!   has to do. Prepare and check watchers do not (libevent 2.2): they observe a loop that
//!   lives for other reasons, and a loop kept alive by them alone would block forever.
//! * Each kind runs its started watchers in the order they were started. One started from a
//!   watcher of its own kind first runs at the kind's next turn; one stopped or freed before
//!   its turn does not run. A watcher's callback may start, stop or free any watcher or event,
//!   itself included, and call `loop_break`, which takes effect once its kind has run.

use std::io;
use std::time::Duration;

use crate::event::{state, EventId};
use crate::fd::NO_FD;
use crate::flags::EventFlags;
use crate::hooks::HookKind;
use crate::metrics::LoopMetrics;
use crate::registry::{Context, Registry};

impl<D> Registry<D> {
    /// Create a prepare watcher: once started with [`add`](Self::add)`(id, None)`, its
    /// callback runs at the top of every loop iteration, before the loop decides how long to
    /// wait (libev's `ev_prepare`, libuv's `uv_prepare_t`, libevent 2.2's
    /// `evwatch_prepare_new`). Use it to flush a batch before the loop sleeps; in it,
    /// [`wait_timeout`](Self::wait_timeout) says how long the loop would wait, and
    /// [`limit_next_wait`](Self::limit_next_wait) shortens that. `del` stops it, `free` frees
    /// it. It does not keep the loop alive: a loop with nothing else to do returns.
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base<Vec<&str>> = evloop::new_base()?;
    /// let prepare = base.new_prepare(|ctx, log: &mut Vec<&str>| {
    ///     log.push("prepare");
    ///     // The timer below is the only thing to wait for.
    ///     assert!(ctx.wait_timeout().unwrap() <= Duration::from_millis(2));
    /// })?;
    /// base.add(prepare, None)?;
    /// base.after(Duration::from_millis(2), |_, log: &mut Vec<&str>| log.push("timer"))?;
    /// let mut log = Vec::new();
    /// base.run(&mut log)?;
    /// assert_eq!(log.last(), Some(&"timer"));
    /// assert_eq!(log[0], "prepare");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_prepare(
        &mut self,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.new_hook(HookKind::Prepare, Box::new(callback))
    }

    /// Create a check watcher: once started with [`add`](Self::add)`(id, None)`, its callback
    /// runs right after every wait, when the ready fds and expired timers have been
    /// activated and before any of their callbacks (libev's `ev_check`, libuv's
    /// `uv_check_t`, libevent 2.2's `evwatch_check_new`): the place to run another library's
    /// tick after each wake-up. `del` stops it, `free` frees it. It does not keep the loop
    /// alive.
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base<Vec<&str>> = evloop::new_base()?;
    /// let check = base.new_check(|_, log: &mut Vec<&str>| log.push("check"))?;
    /// base.add(check, None)?;
    /// base.after(Duration::from_millis(1), |_, log: &mut Vec<&str>| log.push("timer"))?;
    /// let mut log = Vec::new();
    /// base.run(&mut log)?;
    /// // The wait that found the timer expired is followed by the check, then the timer.
    /// assert_eq!(&log[log.len() - 2..], ["check", "timer"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_check(
        &mut self,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.new_hook(HookKind::Check, Box::new(callback))
    }

    /// Create an idle watcher: once started with [`add`](Self::add)`(id, None)`, its callback
    /// runs in every pass of the loop that found nothing else to do, and while it is started
    /// the loop polls without blocking (libev's `ev_idle`). Use it for background work done
    /// in slices; stop it (`del`) when the work is done. A started idle watcher keeps the
    /// loop alive. Its priority ([`set_priority`](Self::set_priority)) orders it against
    /// active events: it runs when nothing of its priority or a more urgent one is active.
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut base: evloop::Base<u32> = evloop::new_base()?;
    /// // Count to 1,000 in slices, one per idle pass, then stop.
    /// let idle = base.new_idle(|ctx, n: &mut u32| {
    ///     *n += 1;
    ///     if *n == 1000 {
    ///         let me = ctx.id();
    ///         ctx.del(me).unwrap();
    ///     }
    /// })?;
    /// base.add(idle, None)?;
    /// let mut n = 0;
    /// base.run(&mut n)?; // returns once the idle watcher stopped: nothing else is left
    /// assert_eq!(n, 1000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_idle(
        &mut self,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.new_hook(HookKind::Idle, Box::new(callback))
    }

    fn new_hook(&mut self, kind: HookKind, callback: crate::Callback<D>) -> io::Result<EventId> {
        let id = self.alloc(NO_FD, kind.flag(), callback)?;
        if kind != HookKind::Idle {
            self.events.slots[id.index as usize].set(state::INTERNAL);
        }
        Ok(id)
    }

    /// How long the loop's next wait would block as things stand: zero if an event is active
    /// or an idle watcher is started, else until the earliest timer (`None`: no timer, so
    /// without limit), shortened by [`limit_next_wait`](Self::limit_next_wait). In a
    /// prepare watcher this is the timeout the loop is about to use (a run with
    /// [`LoopFlags::NONBLOCK`](crate::LoopFlags::NONBLOCK) does not wait at all). Reads the
    /// clock, and takes `&mut self` because finding the earliest timer may sort a bucket of
    /// the timer ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// assert_eq!(base.wait_timeout(), None);
    /// base.after(Duration::from_secs(1), |_, _| {})?;
    /// assert!(base.wait_timeout().unwrap() <= Duration::from_secs(1));
    /// base.limit_next_wait(Duration::from_millis(5));
    /// assert!(base.wait_timeout().unwrap() <= Duration::from_millis(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_timeout(&mut self) -> Option<Duration> {
        self.next_wait()
    }

    /// The timeout of the next wait; see [`wait_timeout`](Self::wait_timeout). Out of line:
    /// the loop calls it only while hooks are in use.
    #[inline(never)]
    pub(crate) fn next_wait(&mut self) -> Option<Duration> {
        let timeout = if !self.active.is_empty() || self.hooks.any(HookKind::Idle) {
            Some(Duration::ZERO)
        } else {
            self.timers
                .next_deadline()
                .map(|deadline| Duration::from_nanos(deadline.saturating_sub(self.clock.read())))
        };
        if self.hooks.wait_limit().is_some() {
            return self.hooks.limit(timeout, self.clock.read());
        }
        timeout
    }

    /// Let the loop's next wait block for at most `max` from now (from a prepare watcher:
    /// the wait about to be made). Several calls keep the shortest; the limit lasts for one
    /// wait. A shorter wait wakes the loop without anything to run, so the prepare and check
    /// watchers run once more.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base<u32> = evloop::new_base()?;
    /// // Wake at least every millisecond while the 50 ms timer waits.
    /// let prepare = base.new_prepare(|ctx, _| ctx.limit_next_wait(Duration::from_millis(1)))?;
    /// let check = base.new_check(|_, wakeups: &mut u32| *wakeups += 1)?;
    /// base.add(prepare, None)?;
    /// base.add(check, None)?;
    /// base.after(Duration::from_millis(50), |_, _| {})?;
    /// let mut wakeups = 0;
    /// base.run(&mut wakeups)?;
    /// assert!(wakeups > 2, "{wakeups}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn limit_next_wait(&mut self, max: Duration) {
        let until = self.clock.read().saturating_add(crate::clock::to_ns(max));
        self.hooks.set_wait_limit(until);
    }

    /// What the loop has done: iterations, callbacks run, events waiting after the last
    /// wait, and time blocked in the backend when the base was made with
    /// [`BaseOptions::metrics`](crate::BaseOptions::metrics). Readable from the base and,
    /// through the context, from callbacks.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// base.after(std::time::Duration::ZERO, |ctx, _| assert_eq!(ctx.metrics().callbacks, 0))?;
    /// base.run(&mut ())?;
    /// assert_eq!(base.metrics().callbacks, 1);
    /// assert_eq!(base.metrics().blocked_time, None); // not asked for
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> LoopMetrics {
        self.metrics.snapshot()
    }

    /// Run the started watchers of `kind` (prepare or check), in start order; returns how
    /// many ran.
    #[cold]
    pub(crate) fn run_hooks(&mut self, kind: HookKind, data: &mut D) -> usize {
        if let &[idx] = self.hooks.list(kind) {
            return self.run_one_hook(idx, data);
        }
        let mut batch = std::mem::take(&mut self.hooks.batch);
        batch.clear();
        batch.extend(
            self.hooks
                .list(kind)
                .iter()
                .map(|&idx| (idx, self.events.slots[idx as usize].gen)),
        );
        let ran = self.run_batch(&batch, data);
        self.hooks.batch = batch;
        ran
    }

    /// Run the idle watchers of the most urgent priority that has started ones, unless an
    /// event of that priority or a more urgent one is active; returns how many ran.
    #[cold]
    pub(crate) fn run_idle(&mut self, data: &mut D) -> usize {
        let slots = &self.events.slots;
        let idle = self.hooks.list(HookKind::Idle);
        let Some(best) = idle.iter().map(|&i| slots[i as usize].prio).min() else {
            return 0;
        };
        if !self.active.is_empty() && self.active.best().is_some_and(|p| p <= best) {
            return 0;
        }
        if let &[idx] = self.hooks.list(HookKind::Idle) {
            return self.run_one_hook(idx, data);
        }
        let mut batch = std::mem::take(&mut self.hooks.batch);
        batch.clear();
        batch.extend(self.hooks.list(HookKind::Idle).iter().filter_map(|&idx| {
            let slot = &self.events.slots[idx as usize];
            (slot.prio == best).then_some((idx, slot.gen))
        }));
        let ran = self.run_batch(&batch, data);
        self.hooks.batch = batch;
        ran
    }

    /// The common case of one watcher of a kind: no snapshot to take.
    fn run_one_hook(&mut self, idx: u32, data: &mut D) -> usize {
        self.run_callback(idx as usize, EventFlags::empty(), 1, data);
        self.metrics.callbacks += 1;
        1
    }

    /// Run each watcher of `batch` still started with the generation it was taken with.
    fn run_batch(&mut self, batch: &[(u32, u32)], data: &mut D) -> usize {
        let mut ran = 0;
        for &(idx, gen) in batch {
            let slot = &self.events.slots[idx as usize];
            if slot.gen == gen && slot.is(state::HOOKED) {
                self.run_callback(idx as usize, EventFlags::empty(), 1, data);
                ran += 1;
            }
        }
        self.metrics.callbacks += ran as u64;
        ran
    }
}
