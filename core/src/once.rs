//! Events freed after they run once: `once` (libevent's `event_base_once`) on an fd or a
//! timeout, `after` and `every` for timers that need no id, and `loop_exit`, whose timer
//! ends the loop.

use crate::fd::{RawFd, NO_FD};
use std::io;
use std::time::Duration;

use crate::event::{state, EventId};
use crate::flags::{EventFlags, Interest};
use crate::registry::{invalid, Callback, Context, Registry};

impl<D> Registry<D> {
    /// Run `callback` once, `delay` from now (zero: in this or the next iteration, after the
    /// callbacks already active). The timer frees itself after it runs; until then, freeing
    /// the returned id cancels it.
    ///
    /// A timeout counts from the loop's cached time ([`now`](Self::now)): inside a callback,
    /// the time taken after the loop's last wait, not `Instant::now()`. After a long
    /// computation in a callback, call [`update_cache_time`](Self::update_cache_time) first,
    /// or the timeout counts from the stale reading and fires that much sooner than
    /// `Instant::now()` would say.
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
    /// base.after(Duration::from_millis(2), |_, log: &mut Vec<&str>| log.push("later"))?;
    /// base.after(Duration::ZERO, |_, log: &mut Vec<&str>| log.push("now"))?;
    /// let mut log = Vec::new();
    /// base.run(&mut log)?;
    /// assert_eq!(log, ["now", "later"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn after(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        let mut callback = Some(callback);
        self.once_boxed(
            NO_FD,
            EventFlags::empty(),
            Some(delay),
            Box::new(move |ctx, data| {
                if let Some(cb) = callback.take() {
                    cb(ctx, data)
                }
            }),
        )
    }

    /// Run `callback` every `period`, the first time `period` from now: a persistent timer,
    /// added. Delete or free the returned id to stop it; each run comes `period` after the
    /// last was due, so a late run does not shift the ones after it.
    ///
    /// The first period counts from the loop's cached time ([`now`](Self::now)): inside a callback,
    /// the time taken after the loop's last wait, not `Instant::now()`. After a long
    /// computation in a callback, call [`update_cache_time`](Self::update_cache_time) first,
    /// or the timeout counts from the stale reading and fires that much sooner than
    /// `Instant::now()` would say.
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base<u32> = evloop::new_base()?;
    /// base.every(Duration::from_millis(1), |ctx, ticks: &mut u32| {
    ///     *ticks += 1;
    ///     if *ticks == 3 {
    ///         let me = ctx.id();
    ///         ctx.free(me).unwrap();
    ///     }
    /// })?;
    /// let mut ticks = 0;
    /// base.run(&mut ticks)?;
    /// assert_eq!(ticks, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn every(
        &mut self,
        period: Duration,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        let id = self.make_event(NO_FD, EventFlags::PERSIST, Box::new(callback))?;
        self.add(id, Some(period))?;
        Ok(id)
    }

    /// Run `callback` once when `fd` is ready for `interest` or `timeout` expires (with no fd
    /// interest: after `timeout`, or at once if it is `None` or zero). Its storage is freed
    /// after it runs, or with the base (libevent's `event_base_once`). For a timer alone,
    /// [`after`](Self::after) is the safe way.
    ///
    /// # Safety
    ///
    /// With fd flags, `fd` must stay open until the callback ran (or the base is dropped):
    /// the promise of [`new_event`](Self::new_event).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for PERSIST, or a negative fd with READ, WRITE or CLOSED; the backend's
    /// refusal of the fd.
    pub unsafe fn once(
        &mut self,
        fd: RawFd,
        interest: Interest,
        timeout: Option<Duration>,
        callback: impl FnOnce(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<()> {
        let mut callback = Some(callback);
        self.once_boxed(
            fd,
            interest.into(),
            timeout,
            Box::new(move |ctx, data| {
                if let Some(cb) = callback.take() {
                    cb(ctx, data)
                }
            }),
        )
        .map(drop)
    }

    fn once_boxed(
        &mut self,
        fd: RawFd,
        flags: EventFlags,
        timeout: Option<Duration>,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        if flags.contains(EventFlags::PERSIST) {
            return Err(invalid(
                "once: PERSIST is not allowed: a one-shot event runs once".to_string(),
            ));
        }
        let id = self.make_event(fd, flags, callback)?;
        let idx = id.index as usize;
        self.events.slots[idx].set(state::ONCE);
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
        result.map(|()| id)
    }

    /// Make the loop return after `after` (`None`: once the callbacks active now have run),
    /// as a one-shot timer (libevent's `event_base_loopexit`). It survives until it fires, so
    /// calling it before [`run`](crate::Base::run) works.
    pub fn loop_exit(&mut self, after: Option<Duration>) {
        let timer = self.once_boxed(
            NO_FD,
            EventFlags::empty(),
            after,
            Box::new(|ctx, _| ctx.registry.flow.got_exit = true),
        );
        if timer.is_err() {
            // Only with u32::MAX events in the base: stop as soon as possible rather than
            // never, as a break would.
            self.loop_break();
        }
    }
}
