//! [`BaseOptions`]: how a base is set up. Its own module, below both `base`, which makes a
//! base from it, and `dispatch`, which reads its limits, so neither imports the other.

use std::time::Duration;

/// How a base is set up: priorities and the dispatch limits (libevent's `event_config`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::BaseOptions;
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
    /// Measure the time the loop spends blocked in the backend's wait
    /// ([`LoopMetrics::blocked_time`](crate::LoopMetrics::blocked_time)): one more clock
    /// reading per iteration. The other metrics are always kept.
    pub metrics: bool,
    /// Wait with the backend's finest timeout (libevent's `EVENT_BASE_FLAG_PRECISE_TIMER`):
    /// epoll's waits, which count milliseconds, are ended to the nanosecond by a timerfd
    /// (one more syscall per wait whose timeout is not whole milliseconds); the other
    /// backends wait to the nanosecond or microsecond already, except the `polling` adapter
    /// on Windows (milliseconds, IOCP).
    /// [`Registry::timeout_resolution`](crate::Registry::timeout_resolution) says what a base
    /// got. Timers are never early either way. A sleeping wait still gets the thread's timer
    /// slack (50 µs by default on Linux; `prctl(PR_SET_TIMERSLACK)` changes it), which the
    /// timerfd's expiry does not.
    pub precise_timers: bool,
}

impl Default for BaseOptions {
    fn default() -> Self {
        Self {
            priorities: 1,
            max_dispatch_callbacks: None,
            max_dispatch_interval: None,
            limit_callbacks_after_prio: 0,
            signalfd: false,
            metrics: false,
            precise_timers: false,
        }
    }
}
