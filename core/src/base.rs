//! The event base: the events, their registrations, and the loop that runs them.
//!
//! One iteration of the loop (libevent's `event_base_loop`, kept in the same order, with
//! libev's hooks where libev runs them):
//! 1. stop if `loop_exit` or `loop_break` took effect, or if no event is registered (unless
//!    [`LoopFlags::NO_EXIT_ON_EMPTY`]);
//! 2. run the prepare watchers (stop if one called `loop_break`);
//! 3. compute the wait: zero if something is active, an idle watcher is started, or
//!    [`LoopFlags::NONBLOCK`], else up to the earliest timer, else unbounded; shortened by a
//!    prepare watcher's `limit_next_wait`;
//! 4. flush the change list, then let the backend wait and report ready fds;
//! 5. refresh the cached time, activate the events of ready fds, then expired timers;
//! 6. run the check watchers (stop if one called `loop_break`);
//! 7. if nothing is active at their priority or a more urgent one, run the idle watchers;
//! 8. run the callbacks of the most urgent non-empty priority that were queued when this
//!    step began, in activation order (see [`Base::run_with`] for the exact stopping rules),
//!    then go around again: what they activate at that priority runs in the next iteration.
//!
//! Steps 4, 5 and 8 are the `dispatch` module's, 2, 6 and 7 the `watchers`'; the events and every operation on them are the
//! [`Registry`]'s, which a base dereferences to. What is left here is what only the owner of
//! the loop does: create the base, run the loop, and renew it after `fork`.

use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::backend::Backend;
use crate::flags::LoopFlags;
use crate::hooks::HookKind;
use crate::options::BaseOptions;
use crate::registry::{invalid, Registry};
use crate::signal::{Mechanism, Signals};

static NEXT_BASE_ID: AtomicU32 = AtomicU32::new(1);

/// Why [`Base::run_with`] returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// No event was registered any more (libevent's return value 1).
    NoEvents,
    /// [`loop_exit`](crate::Registry::loop_exit) took effect.
    Exited,
    /// [`loop_break`](crate::Registry::loop_break) took effect.
    Broken,
    /// [`LoopFlags::ONCE`] or [`LoopFlags::NONBLOCK`] ended the run.
    Returned,
}

/// The event base: owns the events and the backend, and runs the loop.
///
/// `D` is the user data every callback receives as `&mut D`, passed to [`run`](Self::run):
/// shared state without `Rc<RefCell<_>>` (calloop's model). A base is not `Send`: it and its
/// callbacks belong to the thread that runs it. The event operations (`new_event`, `add`,
/// `del`, `free`, `activate`, ...) are the [`Registry`]'s, which a base dereferences to.
///
/// There is no `Base::new()`: this crate knows no backend. `evloop::new_base()` picks one
/// (kqueue, epoll, polling, poll, select, as compiled in and allowed by the environment),
/// `evloop::Config` picks one with constraints, and [`Base::with_backend`] takes yours.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::{Base, TimerKind};
///
/// let mut base: Base<Vec<&str>> = evloop::new_base().unwrap();
/// let late = base.new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| log.push("late")).unwrap();
/// let soon = base.new_timer(TimerKind::OneShot, |_, log: &mut Vec<&str>| log.push("soon")).unwrap();
/// base.add(late, Some(Duration::from_millis(20))).unwrap();
/// base.add(soon, Some(Duration::from_millis(1))).unwrap();
/// let mut log = Vec::new();
/// base.run(&mut log).unwrap();
/// assert_eq!(log, ["soon", "late"]);
/// ```
pub struct Base<D = ()> {
    registry: Registry<D>,
    options: BaseOptions,
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
    /// use evloop::{Base, BaseOptions};
    /// let name = evloop::supported_methods()[0];
    /// let base: Base = Base::with_backend(evloop::backend::by_name(name)?, BaseOptions { priorities: 3, ..Default::default() })?;
    /// assert_eq!((base.method(), base.priorities()), (name, 3));
    /// let backend = evloop::backend::by_name(name)?;
    /// assert!(Base::<()>::with_backend(backend, BaseOptions { priorities: 0, ..Default::default() }).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_backend(mut backend: Box<dyn Backend>, options: BaseOptions) -> io::Result<Self> {
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
        if options.precise_timers {
            backend.set_precise_timeouts()?;
        }
        let id = NEXT_BASE_ID.fetch_add(1, Ordering::Relaxed);
        let signals = Signals::new(mechanism, id);
        let mut registry = Registry::new(id, backend, options.priorities, signals);
        registry.metrics.timed = options.metrics;
        Ok(Base { registry, options })
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
    /// those that were active when it began, in activation order, and stops early when a
    /// callback calls `loop_break`, when a more urgent event becomes active, or when a
    /// dispatch limit of [`BaseOptions`] is reached; then it checks for new events without
    /// waiting. An event a callback activates at the same or a less urgent priority (itself
    /// again, say) runs in the next iteration, after the backend was polled and the timers
    /// checked, so no callback can keep the loop from I/O and timers. Lower priorities run
    /// only when every more urgent queue is empty after a check.
    ///
    /// # Errors
    ///
    /// `Other` if the loop is already running (loops do not nest), or the backend's hard
    /// error from its wait. Every registration is intact after an error,
    /// so the caller may run again.
    pub fn run_with(&mut self, flags: LoopFlags, data: &mut D) -> io::Result<RunOutcome> {
        if self.registry.flow.running {
            return Err(io::Error::other(
                "the loop of this base is already running (loops do not nest)",
            ));
        }
        self.registry.flow.running = true;
        let options = &self.options;
        let guard = LoopGuard(&mut self.registry);
        let registry = &mut *guard.0;
        registry.flow.got_exit = false;
        registry.flow.got_break = false;
        if std::mem::take(&mut registry.flow.break_pending) {
            registry.flow.got_break = true;
            return Ok(RunOutcome::Broken);
        }
        loop {
            #[cfg(debug_assertions)]
            registry.verify();
            if registry.flow.got_exit {
                return Ok(RunOutcome::Exited);
            }
            if registry.flow.got_break {
                return Ok(RunOutcome::Broken);
            }
            if registry.is_empty(flags) {
                return Ok(RunOutcome::NoEvents);
            }
            // Without hooks (or a wait limit) one byte says so, and the loop is libevent's.
            // Only the prepare watchers can put hooks in use before the wait; nothing runs
            // between the wait and the check watchers.
            let mut hooked = registry.hooks.in_use();
            if hooked && registry.hooks.any(HookKind::Prepare) {
                registry.run_hooks(HookKind::Prepare, data);
                if registry.flow.got_break {
                    return Ok(RunOutcome::Broken);
                }
                // A prepare watcher may have ended the last event or task (the async
                // runtime's does): waiting now would wait for nothing.
                if registry.is_empty(flags) {
                    return Ok(RunOutcome::NoEvents);
                }
                hooked = registry.hooks.in_use();
            }
            registry.flush_changes();
            let timeout = if !registry.active.is_empty() || flags.contains(LoopFlags::NONBLOCK) {
                Some(Duration::ZERO)
            } else if hooked {
                let timeout = registry.next_wait();
                registry.hooks.clear_wait_limit();
                timeout
            } else {
                registry.timers.next_deadline().map(|deadline| {
                    Duration::from_nanos(deadline.saturating_sub(registry.clock.read()))
                })
            };
            registry.clock.cache = None;
            registry.ready.clear();
            registry.metrics.iterations += 1;
            // Blocked time, when measured, is this reading to the one after the wait.
            let before = if options.metrics {
                registry.clock.read()
            } else {
                0
            };
            registry.backend.dispatch(timeout, &mut registry.ready)?;
            let now = registry.clock.read();
            if options.metrics {
                registry.metrics.blocked_ns += now.saturating_sub(before);
            }
            registry.clock.cache = Some(now);
            registry.activate_ready();
            registry.expire_timers(now);
            registry.metrics.waiting = registry.active.len();
            let mut ran = 0;
            let found_work = if hooked {
                if registry.hooks.any(HookKind::Check) {
                    registry.run_hooks(HookKind::Check, data);
                    if registry.flow.got_break {
                        return Ok(RunOutcome::Broken);
                    }
                }
                let found_work = !registry.active.is_empty();
                if registry.hooks.any(HookKind::Idle) {
                    ran = registry.run_idle(data);
                    if registry.flow.got_break {
                        return Ok(RunOutcome::Broken);
                    }
                }
                found_work
            } else {
                !registry.active.is_empty()
            };
            let ran_active = registry.process_active(data, options);
            registry.metrics.callbacks += ran_active as u64;
            ran += ran_active;
            if flags.contains(LoopFlags::ONCE) && registry.active.is_empty() && ran > 0 {
                return Ok(RunOutcome::Returned);
            }
            // One pass, or with UNTIL_IDLE passes until one finds nothing to do.
            if flags.contains(LoopFlags::NONBLOCK)
                && !(flags.contains(LoopFlags::UNTIL_IDLE) && found_work)
            {
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
    /// Creating a new kernel object or fd failed. An fd the new backend refuses (closed since)
    /// is reported once to its events, which are then deleted, as any fd found closed under
    /// its events is.
    ///
    /// Windows has no `fork`: there nothing is shared to renew, and this re-creates nothing.
    pub fn reinit(&mut self) -> io::Result<()> {
        self.registry.reinit()
    }
}

impl<D> Registry<D> {
    /// Nothing keeps a run with `flags` going: no event pending or active, no task alive.
    #[inline]
    fn is_empty(&self, flags: LoopFlags) -> bool {
        self.events.live == 0
            && self.internal.async_work.get() == 0
            && !flags.contains(LoopFlags::NO_EXIT_ON_EMPTY)
    }
}

impl<D> Deref for Base<D> {
    type Target = Registry<D>;

    fn deref(&self) -> &Registry<D> {
        &self.registry
    }
}

impl<D> DerefMut for Base<D> {
    fn deref_mut(&mut self) -> &mut Registry<D> {
        &mut self.registry
    }
}

impl<D> std::fmt::Debug for Base<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.registry;
        f.debug_struct("Base")
            .field("id", &r.id)
            .field("method", &r.backend.name())
            .field("events", &r.events.live)
            .field("timers", &r.timers.len())
            .field("active", &r.active.len())
            .finish()
    }
}

/// Resets the loop state when `run_with` returns or unwinds.
struct LoopGuard<'a, D>(&'a mut Registry<D>);

impl<D> Drop for LoopGuard<'_, D> {
    fn drop(&mut self) {
        self.0.flow.running = false;
        self.0.clock.cache = None;
    }
}
