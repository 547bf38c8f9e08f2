//! Timer futures on the loop's own timers: [`Sleep`], [`Interval`], [`Timeout`].
//!
//! A timer future owns one timer event, made the first time it waits and re-armed (not
//! re-made) when it waits again; the event is freed when the future is dropped. So a sleep
//! goes through the same ring, heap and common-timeout queues as a callback timer, and costs
//! what one costs.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event::EventId;
use crate::flags::TimerKind;
use crate::registry::Registry;

use super::{Change, Runtime};

/// What a timer future and its event's callback share.
pub(crate) struct TimerShared {
    deadline: Cell<Instant>,
    event: Cell<Option<EventId>>,
    /// The deadline the event is armed for, if armed.
    armed: Cell<Option<Instant>>,
    /// An `Arm` is queued.
    queued: Cell<bool>,
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
    dropped: Cell<bool>,
}

impl TimerShared {
    fn new(deadline: Instant) -> Rc<Self> {
        Rc::new(TimerShared {
            deadline: Cell::new(deadline),
            event: Cell::new(None),
            armed: Cell::new(None),
            queued: Cell::new(false),
            fired: Cell::new(false),
            waker: Cell::new(None),
            dropped: Cell::new(false),
        })
    }

    /// Apply a queued `Arm`: (re)start the event's timer for the deadline.
    pub(crate) fn arm<D: 'static>(self: &Rc<Self>, registry: &mut Registry<D>) {
        self.queued.set(false);
        if self.dropped.get() || self.fired.get() {
            return;
        }
        let id = match self.event.get() {
            Some(id) => id,
            None => {
                let timer = self.clone();
                let made = registry.new_timer(TimerKind::OneShot, move |ctx, _| {
                    timer.armed.set(None);
                    // The loop's clock and `Instant` are the same clock, but the timer counted
                    // from the loop's cached reading: make sure, so that a sleep is never early.
                    let deadline = timer.deadline.get();
                    if Instant::now() < deadline {
                        timer.armed.set(Some(deadline));
                        let me = ctx.id();
                        let _ = ctx.add(me, Some(deadline - Instant::now()));
                        return;
                    }
                    timer.fired.set(true);
                    if let Some(waker) = timer.waker.take() {
                        waker.wake();
                    }
                });
                match made {
                    Ok(id) => {
                        registry.make_internal(id);
                        self.event.set(Some(id));
                        id
                    }
                    // Only at the base's limit of events; the future stays pending.
                    Err(_) => return,
                }
            }
        };
        let deadline = self.deadline.get();
        // Counted from the loop's cached time, which is not later than now: never early.
        let after = deadline.saturating_duration_since(registry.now());
        if registry.add(id, Some(after)).is_ok() {
            self.armed.set(Some(deadline));
        }
    }

    /// Apply a queued `Disarm`: free the event.
    pub(crate) fn disarm<D>(&self, registry: &mut Registry<D>) {
        if let Some(id) = self.event.take() {
            let _ = registry.free(id);
        }
        self.armed.set(None);
        drop(self.waker.take());
    }

    fn poll_fired(self: &Rc<Self>, rt: &Runtime, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.fired.get() {
            return Poll::Ready(());
        }
        let deadline = self.deadline.get();
        if self.armed.get() != Some(deadline) && Instant::now() >= deadline {
            // Due already (a zero sleep, or polled late): no event needed.
            self.fired.set(true);
            return Poll::Ready(());
        }
        match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(cx.waker().clone())),
        }
        if self.armed.get() != Some(deadline) && !self.queued.replace(true) {
            rt.push(Change::Arm(self.clone()));
        }
        Poll::Pending
    }

    fn reset(&self, deadline: Instant) {
        self.deadline.set(deadline);
        self.fired.set(false);
    }
}

/// A future that completes at a deadline: [`Runtime::sleep`], [`Runtime::sleep_until`].
/// Never early: it completes at or after its deadline, by the loop's timer (at the
/// backend's [timeout resolution](crate::Registry::timeout_resolution), rounded up).
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    rt: Runtime,
    timer: Rc<TimerShared>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.timer.deadline.get())
            .finish()
    }
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.timer.deadline.get()
    }

    /// Move the deadline (earlier or later); a completed sleep waits again.
    pub fn reset(&mut self, deadline: Instant) {
        self.timer.reset(deadline);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.timer.poll_fired(&self.rt, cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        let timer = &self.timer;
        timer.dropped.set(true);
        if timer.event.get().is_some() && !self.rt.is_closed() {
            self.rt.push(Change::Disarm(timer.clone()));
        }
    }
}

/// Ticks at a fixed period: [`Runtime::interval`]. A [`Stream`](futures_core::Stream) of the
/// instants the ticks were due, and [`tick`](Self::tick) for one.
///
/// The first tick is due one period after the interval was made. Never early: each tick
/// completes at or after its due instant. Ticks that are missed because the loop was busy
/// past a whole period are skipped, not delivered late in a burst: the next tick is due at
/// the first multiple of the period after now (tokio's `MissedTickBehavior::Skip`).
#[must_use = "streams do nothing unless polled"]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
}

impl std::fmt::Debug for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.sleep.deadline())
            .finish()
    }
}

impl Interval {
    /// Wait for the next tick; returns the instant it was due.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Poll for the next tick.
    pub fn poll_tick(&mut self, cx: &mut TaskContext<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let due = self.sleep.deadline();
        let mut next = due + self.period;
        let now = Instant::now();
        if next <= now {
            // Skip the missed ticks: the first multiple of the period after now.
            let behind = (now - due).as_nanos() / self.period.as_nanos().max(1);
            let periods = u32::try_from(behind + 1).unwrap_or(u32::MAX);
            next = due + self.period.saturating_mul(periods);
        }
        self.sleep.reset(next);
        Poll::Ready(due)
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

/// The error of a [`Timeout`] whose time ran out; converts into an `io::Error` of kind
/// `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(Duration);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// A future with a time limit: [`Runtime::timeout`]. Completes with the future's output, or
/// [`Elapsed`] if the limit passes first (the future is then dropped with the `Timeout`).
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
    limit: Duration,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self` (no method
        // hands it out by value or by `&mut`, and `Timeout` has no `Drop` that could move
        // it); `sleep` and `limit` are not pinned (`Sleep` is `Unpin`).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.future` stays where it is until `self` is dropped.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(out) = future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(this.limit))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Runtime {
    /// A future that completes `duration` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let start = Instant::now();
    /// rt.block_on(&mut base, &mut (), rt.sleep(Duration::from_millis(3)))?;
    /// assert!(start.elapsed() >= Duration::from_millis(3));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(Instant::now() + duration)
    }

    /// A future that completes at `deadline` (at once if it has passed).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            rt: self.clone(),
            timer: TimerShared::new(deadline),
        }
    }

    /// Ticks every `period`, the first one `period` from now (see [`Interval`] for missed
    /// ticks). A zero period is taken as one nanosecond.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let mut interval = rt.interval(Duration::from_millis(1));
    /// let ticks = rt.block_on(&mut base, &mut (), async {
    ///     let a = interval.tick().await;
    ///     let b = interval.tick().await;
    ///     b - a
    /// })?;
    /// assert!(ticks >= Duration::from_millis(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn interval(&self, period: Duration) -> Interval {
        let period = period.max(Duration::from_nanos(1));
        Interval {
            sleep: self.sleep(period),
            period,
        }
    }

    /// Run `future` with a time limit of `limit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let slow = rt.sleep(Duration::from_secs(60));
    /// let out = rt.block_on(&mut base, &mut (), rt.timeout(Duration::from_millis(1), slow))?;
    /// assert!(out.is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout<F: Future>(&self, limit: Duration, future: F) -> Timeout<F> {
        Timeout {
            future,
            sleep: self.sleep(limit),
            limit,
        }
    }
}
