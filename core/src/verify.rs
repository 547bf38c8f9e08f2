//! The invariant checker (libev's `ev_verify`, libevent's `event_base_assert_ok_`): every
//! count and cross-reference of the registry, checked against the slots, so a broken count
//! fails where it breaks rather than as a hang or a lost event much later. The loop calls it
//! at the top of every iteration in debug builds; the `base_ops` fuzz target after every
//! operation. It is O(events + fds + timers): a diagnostic, not something to call per event.

use crate::event::state;
use crate::events::NO_SLOT;
use crate::hooks::HookKind;
use crate::registry::Registry;

impl<D> Registry<D> {
    /// Check every invariant of the registry and panic, naming the first that is broken:
    /// the live count matches the slots; every active event holds a valid ticket in its
    /// priority's queue; every timer is in the heap, the ring or a queue, where its place is
    /// recorded; every event on an fd is in the io map, whose combined interest per fd is the
    /// union of its events'; every signal event is among its signal's watchers; the free list
    /// holds exactly the free slots. Called at each loop iteration in debug builds.
    ///
    /// # Panics
    ///
    /// When an invariant is broken: a bug in evloop (or in a backend that corrupted it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{Base, TimerKind};
    /// let mut base: Base = evloop::new_base()?;
    /// let t = base.new_timer(TimerKind::OneShot, |_, _| {})?;
    /// base.add(t, Some(Duration::from_secs(1)))?;
    /// base.verify();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn verify(&self) {
        if let Err(broken) = self.check_invariants() {
            panic!("evloop: invariant broken: {broken}");
        }
    }

    fn check_invariants(&self) -> Result<(), String> {
        let (mut counted, mut active, mut timers, mut hooked) = (0usize, 0usize, 0usize, 0usize);
        for (idx, slot) in self.events.slots.iter().enumerate() {
            let id = idx as u32;
            if !slot.live() {
                if slot.state != 0 || self.timers.contains(id) {
                    return Err(format!("slot {idx} is free but still in use"));
                }
                continue;
            }
            if slot.is(state::COUNTED) != slot.should_count() {
                return Err(format!(
                    "slot {idx}: COUNTED is {} in state {:#x}",
                    slot.is(state::COUNTED),
                    slot.state
                ));
            }
            counted += usize::from(slot.is(state::COUNTED));
            if slot.is(state::ACTIVE) {
                active += 1;
                if !self.active.holds(id, slot.prio, slot.ticket) {
                    return Err(format!(
                        "slot {idx} is active without a valid ticket at priority {}",
                        slot.prio
                    ));
                }
            }
            if slot.is(state::TIMER) != self.timers.contains(id) {
                return Err(format!(
                    "slot {idx}: TIMER is {} but the timers say {}",
                    slot.is(state::TIMER),
                    self.timers.contains(id)
                ));
            }
            timers += usize::from(slot.is(state::TIMER));
            if slot.is(state::INTERVAL) && self.events.intervals.len() <= idx {
                return Err(format!("slot {idx} is periodic without an interval"));
            }
            // `add_timer` skips recording the interval of a persistent timeout that waits in
            // the queue of its length: the two must agree.
            let queued_len = self.timers.queued_len(id);
            if let Some(len) = queued_len.filter(|_| slot.is(state::INTERVAL)) {
                if len != self.events.intervals[idx] {
                    return Err(format!(
                        "slot {idx}: queued with length {len} but its interval is {}",
                        self.events.intervals[idx]
                    ));
                }
            }
            let on_fd = slot.is(state::PENDING_IO | state::DETACHED);
            if slot.is(state::PENDING_IO) && slot.is(state::DETACHED) {
                return Err(format!("slot {idx} is both pending and detached"));
            }
            if on_fd != self.io.events(slot.fd).contains(&id)
                && slot.flags.intersects(crate::EventFlags::IO)
            {
                return Err(format!(
                    "slot {idx}: watching fd {} is {on_fd}, the io map disagrees",
                    slot.fd
                ));
            }
            if slot.is(state::DETACHED) && !(slot.is(state::LAZY_QUEUED) && self.io.is_deferred(id))
            {
                return Err(format!(
                    "slot {idx} is detached but not among the io map's deferred deletes"
                ));
            }
            match HookKind::of(slot.flags) {
                Some(kind) => {
                    if slot.is(state::HOOKED) != self.hooks.holds(kind, id) {
                        return Err(format!(
                            "slot {idx} ({1}): HOOKED is {0} but its list disagrees",
                            slot.is(state::HOOKED),
                            kind.name()
                        ));
                    }
                    // Prepare and check watchers never keep the loop alive, nor wait for
                    // anything but their turn.
                    if kind != HookKind::Idle && !slot.is(state::INTERNAL) {
                        return Err(format!("slot {idx}: {} that counts", kind.name()));
                    }
                    if slot
                        .is(state::PENDING_IO | state::PENDING_SIG | state::TIMER | state::ACTIVE)
                    {
                        return Err(format!(
                            "slot {idx}: {} with I/O, a timer or an activation",
                            kind.name()
                        ));
                    }
                    hooked += usize::from(slot.is(state::HOOKED));
                }
                None if slot.is(state::HOOKED) => {
                    return Err(format!("slot {idx} is started as a hook but is none"));
                }
                None => {}
            }
            if slot.is(state::PENDING_SIG)
                && !self.internal.signals.watchers[slot.fd as usize].contains(&id)
            {
                return Err(format!(
                    "slot {idx} is not among signal {}'s watchers",
                    slot.fd
                ));
            }
        }
        if counted != self.events.live {
            return Err(format!(
                "live count {} but {counted} slots counted",
                self.events.live
            ));
        }
        if active != self.active.len() {
            return Err(format!(
                "{active} active slots, {} queued",
                self.active.len()
            ));
        }
        if hooked != self.hooks.len() {
            return Err(format!(
                "{hooked} started hook slots, {} in the hooks' lists",
                self.hooks.len()
            ));
        }
        if timers != self.timers.len() {
            return Err(format!(
                "{timers} timer slots, {} in the timers",
                self.timers.len()
            ));
        }
        self.active.check()?;
        self.timers.check()?;
        self.io.check(|id| {
            self.events
                .slots
                .get(id as usize)
                .filter(|s| s.live())
                .map(|s| (s.fd, s.flags))
        })?;
        let mut free = 0usize;
        let mut next = self.events.free_head;
        while next != NO_SLOT {
            let slot = self
                .events
                .slots
                .get(next as usize)
                .ok_or("free list leaves the slab")?;
            if slot.live() {
                return Err(format!("free list holds live slot {next}"));
            }
            free += 1;
            if free > self.events.slots.len() {
                return Err("free list loops".to_string());
            }
            next = slot.ncalls;
        }
        let live = self.events.slots.iter().filter(|s| s.live()).count();
        if free + live != self.events.slots.len() {
            return Err(format!(
                "{free} free and {live} live slots, {} in all",
                self.events.slots.len()
            ));
        }
        Ok(())
    }
}
