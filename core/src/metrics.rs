//! What a loop did: iterations, callbacks run, events waiting after the last wait, and time
//! spent blocked in the backend (libuv's `uv_metrics_info` and `uv_metrics_idle_time`).
//!
//! The counts are kept always: a few additions per iteration, none per event. The blocked
//! time needs a clock reading before each wait (the one after it the loop takes anyway), so
//! it is measured only when [`BaseOptions::metrics`](crate::BaseOptions::metrics) asks.

use std::time::Duration;

/// The counters of a registry; [`LoopMetrics`] is what users read.
#[derive(Default, Clone, Debug)]
pub(crate) struct Metrics {
    /// Whether `blocked_ns` is measured (`BaseOptions::metrics`).
    pub timed: bool,
    pub iterations: u64,
    pub callbacks: u64,
    pub waiting: usize,
    pub blocked_ns: u64,
}

impl Metrics {
    /// The public view.
    pub fn snapshot(&self) -> LoopMetrics {
        LoopMetrics {
            iterations: self.iterations,
            callbacks: self.callbacks,
            waiting_after_last_wait: self.waiting,
            blocked_time: self.timed.then(|| Duration::from_nanos(self.blocked_ns)),
        }
    }
}

/// What a base's loop has done since the base was created, read with
/// [`Registry::metrics`](crate::Registry::metrics) from the base or from a callback.
///
/// A loop that is saturated shows it as a `blocked_time` that stops growing while
/// `iterations` and `callbacks` do; `waiting_after_last_wait` says how much work one wait
/// found.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::{Base, BaseOptions, EventFlags};
/// let mut base: Base = Base::with_backend(
///     evloop::backend::by_name(evloop::supported_methods()[0])?,
///     BaseOptions { metrics: true, ..Default::default() },
/// )?;
/// base.after(Duration::from_millis(5), |_, _| {})?;
/// base.run(&mut ())?;
/// let m = base.metrics();
/// assert_eq!(m.callbacks, 1);
/// assert!(m.iterations >= 1);
/// assert!(m.blocked_time.unwrap() <= Duration::from_secs(5));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopMetrics {
    /// How many times the loop waited on the backend (libuv's `loop_count`).
    pub iterations: u64,
    /// How many callbacks ran: events' and prepare, check and idle watchers'; evloop's
    /// internal events (signal delivery, other threads' commands) are not counted.
    pub callbacks: u64,
    /// How many events were active — waiting for their callbacks — right after the last
    /// wait had activated the ready fds and expired timers (libuv's `events_waiting`, taken
    /// per wait rather than summed).
    pub waiting_after_last_wait: usize,
    /// Time spent blocked in the backend's wait (libuv's `idle_time`); `None` unless the base
    /// was made with [`BaseOptions::metrics`](crate::BaseOptions::metrics).
    pub blocked_time: Option<Duration>,
}
