//! The loop's clock: nanoseconds since the base was created, on the monotonic clock, with the
//! cache the loop takes after each wait (libevent's `event_base_gettimeofday_cached`, libev's
//! `ev_now`). Deadlines are `u64` nanoseconds on this clock, so the timer heap compares plain
//! integers.

use std::time::{Duration, Instant};

/// `CLOCK_MONOTONIC` in nanoseconds, through libc: rustix's own vDSO lookup crashes under
/// valgrind, which the benchmarks' instruction counts and memcheck runs rely on.
#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
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

/// A timer's place in time, the order every timer structure keeps (`timer_heap`,
/// `timer_ring` and the queues of `timers`): its deadline, then its arming number, so equal
/// deadlines run in arming order. `Timers` hands out the numbers, from one counter for all
/// three.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    pub deadline: u64,
    pub seq: u32,
}

/// A duration in nanoseconds, saturating (a timeout of `Duration::MAX` never expires). In
/// 64-bit arithmetic with an overflow check, which every `add` with a timeout pays, rather
/// than `as_nanos`' 128-bit product.
#[inline]
pub(crate) fn to_ns(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

/// The next deadline of a persistent timeout: `interval` after `from`, or after `now` if that
/// is not later than now — a timer that fell behind restarts instead of running a burst of
/// catch-up callbacks (libevent's event_persist_closure).
pub(crate) fn next_deadline(from: u64, interval: u64, now: u64) -> u64 {
    let deadline = from.saturating_add(interval);
    if deadline <= now {
        now.saturating_add(interval)
    } else {
        deadline
    }
}

/// The base's clock and the loop's cached reading.
#[derive(Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    /// `epoch` on the raw monotonic clock, read just before it.
    #[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
    epoch_ns: u64,
    /// Set by the loop after each wait, cleared when the loop returns.
    pub cache: Option<u64>,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            #[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
            epoch_ns: monotonic_ns(),
            epoch: Instant::now(),
            cache: None,
        }
    }

    /// Read the clock (no cache).
    #[inline]
    pub fn read(&self) -> u64 {
        // The raw monotonic clock in nanoseconds: one vDSO call, no `Duration` or u128
        // arithmetic (a timer re-arm is dominated by this otherwise). `Instant` is the same
        // clock on Linux and the BSDs; macOS's `Instant` is another clock, and Windows has no
        // CLOCK_MONOTONIC (its `Instant` is QueryPerformanceCounter), so `Instant` is used there.
        #[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
        {
            monotonic_ns().saturating_sub(self.epoch_ns)
        }
        #[cfg(any(target_os = "macos", target_os = "ios", windows))]
        {
            to_ns(self.epoch.elapsed())
        }
    }

    /// The cached time inside the loop, the clock outside it.
    #[inline]
    pub fn now(&self) -> u64 {
        match self.cache {
            Some(now) => now,
            None => self.read(),
        }
    }

    /// A reading as an `Instant`.
    pub fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_ns_is_exact_and_saturates() {
        assert_eq!(to_ns(Duration::new(3, 7)), 3_000_000_007);
        assert_eq!(to_ns(Duration::from_nanos(u64::MAX)), u64::MAX);
        assert_eq!(
            to_ns(Duration::new(u64::MAX / 1_000_000_000, 999_999_999)),
            u64::MAX
        );
        assert_eq!(to_ns(Duration::MAX), u64::MAX);
        assert_eq!(to_ns(Duration::ZERO), 0);
    }

    #[test]
    fn a_late_persistent_timer_restarts_from_now() {
        assert_eq!(next_deadline(100, 10, 105), 110);
        assert_eq!(next_deadline(100, 10, 150), 160);
        assert_eq!(next_deadline(u64::MAX - 1, 10, 0), u64::MAX);
    }
}
