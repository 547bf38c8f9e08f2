//! Loop hooks: prepare, check and idle watchers (libev's `ev_prepare`, `ev_check`, `ev_idle`;
//! libuv's prepare, check and idle handles; libevent 2.2's `evwatch`).
//!
//! A hook is an event of the registry like any other — an id, a callback with `&mut D`,
//! `add` starts it, `del` stops it, `free` frees it — whose kind says *where in the loop* it
//! runs instead of what it waits for:
//!
//! ```text
//!   prepare watchers ─▶ wait (zero while an idle watcher is started) ─▶ check watchers
//!        ▲                                                                  │
//!        └── active callbacks ◀── idle watchers, if nothing else is active ◀┘
//! ```
//!
//! This module keeps the started watchers of each kind in start order, and runs one kind's
//! list as a snapshot: a watcher started while its kind runs waits for the next time, one
//! stopped or freed before its turn does not run. Lists are short (a program has a handful
//! of hooks), so stopping one is a search of its list.

use std::time::Duration;

use crate::flags::EventFlags;

/// The three kinds, as indexes of [`Hooks::lists`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum HookKind {
    Prepare = 0,
    Check = 1,
    Idle = 2,
}

impl HookKind {
    /// The kind a hook's flags carry (`EventFlags::PREPARE`, `CHECK` or `IDLE`).
    pub fn of(flags: EventFlags) -> Option<Self> {
        if flags.contains(EventFlags::PREPARE) {
            Some(Self::Prepare)
        } else if flags.contains(EventFlags::CHECK) {
            Some(Self::Check)
        } else if flags.contains(EventFlags::IDLE) {
            Some(Self::Idle)
        } else {
            None
        }
    }

    /// The flag of this kind.
    pub fn flag(self) -> EventFlags {
        match self {
            Self::Prepare => EventFlags::PREPARE,
            Self::Check => EventFlags::CHECK,
            Self::Idle => EventFlags::IDLE,
        }
    }

    /// Its name in messages, with its article.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prepare => "a prepare watcher",
            Self::Check => "a check watcher",
            Self::Idle => "an idle watcher",
        }
    }
}

/// The started hooks of a registry, and the limit a prepare watcher set on the coming wait.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Started watchers (slot numbers) of each kind, in the order they were started.
    lists: [Vec<u32>; 3],
    /// The snapshot being run, as (slot, generation); kept to reuse its allocation.
    pub batch: Vec<(u32, u32)>,
    /// The latest the next wait may end (the clock's nanoseconds), set through
    /// `Registry::limit_next_wait`; cleared when the wait is made.
    wait_limit: Option<u64>,
    /// Whether a watcher is started or a wait limit set: the one byte a loop without hooks
    /// tests per iteration to skip all of this.
    in_use: bool,
}

impl Hooks {
    /// The started watchers of `kind`.
    #[inline]
    pub fn list(&self, kind: HookKind) -> &[u32] {
        &self.lists[kind as usize]
    }

    /// Whether any watcher of `kind` is started: one load and compare, so that a loop without
    /// hooks pays a predictable branch per kind and iteration.
    #[inline(always)]
    pub fn any(&self, kind: HookKind) -> bool {
        !self.lists[kind as usize].is_empty()
    }

    /// Whether any watcher is started or a wait limit is set.
    #[inline(always)]
    pub fn in_use(&self) -> bool {
        self.in_use
    }

    fn update(&mut self) {
        self.in_use = self.wait_limit.is_some() || self.lists.iter().any(|l| !l.is_empty());
    }

    /// The limit set on the next wait, if any.
    pub fn wait_limit(&self) -> Option<u64> {
        self.wait_limit
    }

    /// Make the next wait end by `limit` at the latest (the earliest of all limits set).
    pub fn set_wait_limit(&mut self, limit: u64) {
        self.wait_limit = Some(self.wait_limit.map_or(limit, |l| l.min(limit)));
        self.in_use = true;
    }

    /// Forget the limit: the wait it was for is made.
    pub fn clear_wait_limit(&mut self) {
        if self.wait_limit.take().is_some() {
            self.update();
        }
    }

    /// Start watcher `idx` (not started yet).
    pub fn start(&mut self, kind: HookKind, idx: u32) {
        self.lists[kind as usize].push(idx);
        self.in_use = true;
    }

    /// Stop watcher `idx`, keeping the others' order.
    pub fn stop(&mut self, kind: HookKind, idx: u32) {
        let list = &mut self.lists[kind as usize];
        if let Some(pos) = list.iter().position(|&i| i == idx) {
            list.remove(pos);
        }
        self.update();
    }

    /// Whether slot `idx` is in the list of `kind` (for `verify`).
    pub fn holds(&self, kind: HookKind, idx: u32) -> bool {
        self.lists[kind as usize].contains(&idx)
    }

    /// How many watchers are started, of every kind (for `verify`).
    pub fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// The timeout of a wait, `timeout` as the timers and queues decide it, shortened to end
    /// by the limit a prepare watcher set (`now` is the clock's reading it counts from).
    #[cold]
    pub fn limit(&self, timeout: Option<Duration>, now: u64) -> Option<Duration> {
        let Some(limit) = self.wait_limit else {
            return timeout;
        };
        let cap = Duration::from_nanos(limit.saturating_sub(now));
        Some(timeout.map_or(cap, |t| t.min(cap)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_keeps_the_start_order() {
        let mut hooks = Hooks::default();
        for idx in [4, 1, 7] {
            hooks.start(HookKind::Check, idx);
        }
        hooks.stop(HookKind::Check, 1);
        hooks.stop(HookKind::Check, 99); // not started: nothing
        assert_eq!(hooks.list(HookKind::Check), [4, 7]);
        assert!(hooks.any(HookKind::Check) && !hooks.any(HookKind::Idle));
        assert_eq!(hooks.len(), 2);
        hooks.stop(HookKind::Check, 4);
        assert!(hooks.in_use());
        hooks.stop(HookKind::Check, 7);
        assert!(!hooks.in_use());
    }

    #[test]
    fn a_wait_limit_shortens_the_wait() {
        let mut hooks = Hooks::default();
        assert!(!hooks.in_use());
        hooks.set_wait_limit(2_000);
        hooks.set_wait_limit(1_500); // the earliest stands
        assert!(hooks.in_use());
        assert_eq!(
            hooks.limit(None, 1_000),
            Some(Duration::from_nanos(500)),
            "an unbounded wait gets the limit"
        );
        assert_eq!(
            hooks.limit(Some(Duration::from_secs(1)), 0),
            Some(Duration::from_nanos(1_500))
        );
        assert_eq!(
            hooks.limit(Some(Duration::from_nanos(5)), 0),
            Some(Duration::from_nanos(5))
        );
        hooks.clear_wait_limit();
        assert!(!hooks.in_use());
        hooks.set_wait_limit(10);
        assert_eq!(
            hooks.limit(Some(Duration::from_secs(1)), 20),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn kinds_round_trip_through_their_flags() {
        for kind in [HookKind::Prepare, HookKind::Check, HookKind::Idle] {
            assert_eq!(HookKind::of(kind.flag()), Some(kind));
            assert!(EventFlags::HOOK.contains(kind.flag()));
        }
        assert_eq!(HookKind::of(EventFlags::READ | EventFlags::PERSIST), None);
    }
}
