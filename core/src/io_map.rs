//! The per-fd interest map (libevent's evmap) and the change list.
//!
//! Several events may watch one fd. For each fd the map keeps the events (in the order they
//! were added, which is the order their callbacks are activated in) and how many of them want
//! READ, WRITE and CLOSED. The backend sees only the *combined* interest — a bit is set while
//! its count is above zero — so two readers on one fd cost one kernel registration, and
//! deleting one leaves the other working.
//!
//! `committed` is what the backend was last told. A change to an fd the backend already holds
//! is not applied at once: the fd is marked dirty and [`IoMap::flush`] applies the net change
//! just before the next wait, so deleting and re-adding an fd in one iteration costs nothing
//! (libev's behaviour). A *new* registration is applied at once, because that is where the
//! kernel refuses bad fds and the caller of `add` deserves the error; so is the removal of an
//! fd whose last event is freed ([`IoMap::release`]), because the fd is about to be closed.
//!
//! Deletes are coalesced here too, and only here. The registry's `del` of an event that only
//! watches its fd marks the event detached and hands its number to [`IoMap::defer_remove`]:
//! the event stays listed, and counted, so adding it back before the next wait is two flag
//! flips and never reaches this map. The map *settles* its deferred deletes — drops the events
//! still detached, asking the caller's `detached(id)` — first thing in every method whose
//! result depends on an fd's other events (`add`, `revalidate`, `release`, `flush`,
//! `reregister_all`; `remove` takes out one named event). So whatever the order of calls, the
//! ET check, the fd-reuse rule below and a release see the events really there, and the
//! flush sends the backend the net change of deletes and adds alike. [`IoMap::events`] alone
//! lists detached events; dispatch skips them by their state. (A per-fd version, with the
//! dirty fd list as the only list, was measured at +7 % instructions on the pipes round: it
//! visits the fd's entry on every delete and add, where this list visits only the event.)
//!
//! Closing an fd and reusing its number between a delete and an add is the one trap of
//! coalescing: the kernel dropped the old registration, our `committed` still claims it. An
//! event that was never registered before, added to an fd whose events are all gone but whose
//! registration is still committed, is therefore applied at once with `old = empty`, which
//! makes the backend register the fd afresh.
//!
//! On Unix an fd's entry is at its number in the table: fds are small, dense numbers. Windows
//! sockets are sparse handle values, so there a map from socket to entry stands in front of
//! the table, and an entry is given back once its socket has no event and no registration.

use crate::fd::RawFd;
use std::io;

use crate::backend::Backend;
use crate::flags::EventFlags;

#[derive(Debug, Default)]
struct FdEntry {
    /// The fd this entry is for (its index in the table on Unix).
    fd: RawFd,
    events: Vec<u32>,
    nread: u16,
    nwrite: u16,
    nclose: u16,
    edge: bool,
    committed: EventFlags,
    dirty: bool,
}

/// Events per fd, their combined interest, and the pending interest changes.
#[derive(Debug)]
pub struct IoMap {
    fds: Vec<FdEntry>,
    /// Windows: where each socket's entry is in `fds`, and the entries free for reuse.
    #[cfg(windows)]
    index: std::collections::HashMap<RawFd, usize>,
    #[cfg(windows)]
    free: Vec<usize>,
    /// fds whose interest changed since the last flush.
    dirty: Vec<RawFd>,
    /// Events deleted but left listed (`defer_remove`), to be dropped when the map settles
    /// unless added back meanwhile. An event is here at most once per delete of a listed event.
    deferred: Vec<u32>,
    /// fds the backend refused while flushing changes (or reported closed), for the registry
    /// to report to their events: what `flush` and `reregister_all` leave behind.
    pub failed: Vec<RawFd>,
    emulate_closed: bool,
    immediate: bool,
}

fn count_error(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("fd {fd}: more than 65535 events of one kind watch it (the per-fd limit)"),
    )
}

impl IoMap {
    /// An empty map. `emulate_closed`: the backend has no CLOSED, so watch READ instead.
    /// `immediate`: apply every change at once instead of coalescing.
    pub fn new(emulate_closed: bool, immediate: bool) -> Self {
        Self {
            fds: Vec::new(),
            #[cfg(windows)]
            index: std::collections::HashMap::new(),
            #[cfg(windows)]
            free: Vec::new(),
            dirty: Vec::new(),
            deferred: Vec::new(),
            failed: Vec::new(),
            emulate_closed,
            immediate,
        }
    }

    /// Where `fd`'s entry is, if it has one.
    #[inline]
    fn slot(&self, fd: RawFd) -> Option<usize> {
        #[cfg(unix)]
        {
            // A negative fd becomes a huge index, beyond the table.
            let idx = fd as usize;
            (idx < self.fds.len()).then_some(idx)
        }
        #[cfg(windows)]
        {
            self.index.get(&fd).copied()
        }
    }

    /// `fd`'s entry, made if it has none.
    #[inline]
    fn slot_or_insert(&mut self, fd: RawFd) -> usize {
        #[cfg(unix)]
        {
            let idx = fd as usize;
            if idx >= self.fds.len() {
                let from = self.fds.len();
                self.fds.resize_with(idx + 1, FdEntry::default);
                for (i, e) in self.fds.iter_mut().enumerate().skip(from) {
                    e.fd = i as RawFd;
                }
            }
            idx
        }
        #[cfg(windows)]
        {
            if let Some(&idx) = self.index.get(&fd) {
                return idx;
            }
            let entry = FdEntry {
                fd,
                ..FdEntry::default()
            };
            let idx = match self.free.pop() {
                Some(idx) => {
                    self.fds[idx] = entry;
                    idx
                }
                None => {
                    self.fds.push(entry);
                    self.fds.len() - 1
                }
            };
            self.index.insert(fd, idx);
            idx
        }
    }

    /// Windows: give `fd`'s entry back once nothing watches it and nothing is registered or
    /// queued for it (socket values are recycled, but nothing should grow with every socket).
    #[cfg_attr(unix, allow(unused_variables))]
    #[inline]
    fn forget_if_unused(&mut self, idx: usize) {
        #[cfg(windows)]
        {
            let e = &self.fds[idx];
            if e.events.is_empty() && e.committed.is_empty() && !e.dirty {
                self.index.remove(&e.fd);
                self.free.push(idx);
            }
        }
    }

    /// `fd`'s entry, if it has one.
    #[inline]
    fn entry(&self, fd: RawFd) -> Option<&FdEntry> {
        #[cfg(unix)]
        {
            self.fds.get(fd as usize)
        }
        #[cfg(windows)]
        {
            self.slot(fd).map(|idx| &self.fds[idx])
        }
    }

    /// The events listed on `fd`, in the order they were added: those watching it and those
    /// deleted since the map last settled (see the module note).
    #[inline]
    pub fn events(&self, fd: RawFd) -> &[u32] {
        match self.entry(fd) {
            Some(e) => &e.events,
            None => &[],
        }
    }

    /// Whether `fd` already has an entry (adding an fd without one grows the table to it on
    /// Unix; the base checks such an fd is open first).
    pub fn covers(&self, fd: RawFd) -> bool {
        self.slot(fd).is_some()
    }

    /// Whether some event on `fd` watches CLOSED while the backend cannot report it.
    #[inline]
    pub fn emulates_closed(&self, fd: RawFd) -> bool {
        self.emulate_closed && self.entry(fd).is_some_and(|e| e.nclose > 0)
    }

    fn wanted(&self, e: &FdEntry) -> EventFlags {
        let mut w = EventFlags::empty();
        if e.nread > 0 || (self.emulate_closed && e.nclose > 0) {
            w |= EventFlags::READ;
        }
        if e.nwrite > 0 {
            w |= EventFlags::WRITE;
        }
        if e.nclose > 0 && !self.emulate_closed {
            w |= EventFlags::CLOSED;
        }
        if e.edge && !w.is_empty() {
            w |= EventFlags::ET;
        }
        w
    }

    /// Whether the map holds changes back for the next flush; where it does, the registry's
    /// `del` defers instead of removing (see the module note).
    #[inline]
    pub fn defers_changes(&self) -> bool {
        !self.immediate
    }

    /// Event `id` was deleted but left listed (its state says detached, and that it is queued
    /// here): it is dropped when the map next settles, unless it is added back first.
    #[inline]
    pub fn defer_remove(&mut self, id: u32) {
        debug_assert!(!self.immediate, "deferred delete on an immediate map");
        self.deferred.push(id);
    }

    /// Whether event `id` waits in the deferred deletes (for `verify`).
    pub fn is_deferred(&self, id: u32) -> bool {
        self.deferred.contains(&id)
    }

    /// Drop every deferred delete's event that was not added back: `detached(id)` takes
    /// event `id` off the deferred list and, if it is still detached, finishes its delete and
    /// gives its fd and flags. Inline where nothing is deferred.
    #[inline]
    fn settle(
        &mut self,
        backend: &mut dyn Backend,
        detached: &mut impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) {
        if !self.deferred.is_empty() {
            self.settle_deferred(backend, detached);
        }
    }

    fn settle_deferred(
        &mut self,
        backend: &mut dyn Backend,
        detached: &mut impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) {
        let mut deferred = std::mem::take(&mut self.deferred);
        for &id in &deferred {
            // Usually added back since (a delete-then-add): nothing to drop. A drop only
            // queues the fd's change: only a map that queues changes defers deletes.
            if let Some((fd, flags)) = detached(id) {
                let _ = self.remove(backend, fd, id, flags);
            }
        }
        deferred.clear();
        self.deferred = deferred;
    }

    /// Add event `id` with `flags` (its READ/WRITE/CLOSED/ET bits count) to `fd`, once the
    /// deferred deletes are settled (`detached`: see [`settle`](Self::settle)). `fresh`:
    /// the event was never registered before (see the module note on fd reuse).
    ///
    /// # Errors
    ///
    /// A negative fd, mixing edge- and level-triggered events on one fd, more than 65535
    /// events of a kind on one fd, or the backend's refusal; the map is unchanged then.
    pub fn add(
        &mut self,
        backend: &mut dyn Backend,
        fd: RawFd,
        id: u32,
        flags: EventFlags,
        fresh: bool,
        mut detached: impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) -> io::Result<()> {
        self.settle(backend, &mut detached);
        if !crate::fd::is_valid(fd) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is not valid: an I/O event needs an open fd"),
            ));
        }
        let idx = self.slot_or_insert(fd);
        let e = &mut self.fds[idx];
        let et = flags.contains(EventFlags::ET);
        if !e.events.is_empty() && e.edge != et {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd}: cannot mix edge-triggered (ET) and level-triggered events"),
            ));
        }
        let bump = |n: u16, on: bool| if on { n.checked_add(1) } else { Some(n) };
        let nread =
            bump(e.nread, flags.contains(EventFlags::READ)).ok_or_else(|| count_error(fd))?;
        let nwrite =
            bump(e.nwrite, flags.contains(EventFlags::WRITE)).ok_or_else(|| count_error(fd))?;
        let nclose =
            bump(e.nclose, flags.contains(EventFlags::CLOSED)).ok_or_else(|| count_error(fd))?;
        let stale = fresh && e.events.is_empty() && !e.committed.is_empty();
        let saved = (e.nread, e.nwrite, e.nclose, e.edge);
        e.nread = nread;
        e.nwrite = nwrite;
        e.nclose = nclose;
        if e.events.is_empty() {
            e.edge = et;
        }
        e.events.push(id);

        let e = &self.fds[idx];
        let wanted = self.wanted(e);
        let apply_now = self.immediate || e.committed.is_empty() || stale;
        if apply_now && (wanted != e.committed || stale) {
            let old = if stale {
                EventFlags::empty()
            } else {
                e.committed
            };
            if let Err(err) = backend.change(fd, old, wanted) {
                let e = &mut self.fds[idx];
                e.events.pop();
                (e.nread, e.nwrite, e.nclose, e.edge) = saved;
                self.forget_if_unused(idx);
                return Err(err);
            }
            self.fds[idx].committed = wanted;
        } else if wanted != e.committed {
            self.mark_dirty(fd);
        }
        Ok(())
    }

    /// Check that the backend still holds `fd`'s registration, if it has one and events watch
    /// it: `change(fd, old, old)`, which fails with `NotFound` where the kernel dropped it
    /// (see the backend contract). The registration is considered gone after an error.
    ///
    /// # Errors
    ///
    /// The backend's refusal.
    pub fn revalidate(
        &mut self,
        backend: &mut dyn Backend,
        fd: RawFd,
        mut detached: impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) -> io::Result<()> {
        self.settle(backend, &mut detached);
        let Some(idx) = self.slot(fd) else {
            return Ok(());
        };
        let e = &mut self.fds[idx];
        if e.events.is_empty() || e.committed.is_empty() {
            return Ok(());
        }
        let result = backend.change(fd, e.committed, e.committed);
        if result.is_err() {
            e.committed = EventFlags::empty();
        }
        result
    }

    /// Remove event `id` with `flags` from `fd` now; a no-op if it is not there.
    ///
    /// # Errors
    ///
    /// Only with an immediate-changes backend: the backend's refusal of the change.
    pub fn remove(
        &mut self,
        backend: &mut dyn Backend,
        fd: RawFd,
        id: u32,
        flags: EventFlags,
    ) -> io::Result<()> {
        let Some(idx) = self.slot(fd) else {
            return Ok(());
        };
        let e = &mut self.fds[idx];
        let Some(pos) = e.events.iter().position(|&x| x == id) else {
            return Ok(());
        };
        e.events.remove(pos);
        e.nread -= u16::from(flags.contains(EventFlags::READ));
        e.nwrite -= u16::from(flags.contains(EventFlags::WRITE));
        e.nclose -= u16::from(flags.contains(EventFlags::CLOSED));
        if e.events.is_empty() {
            e.edge = false;
        }
        let e = &self.fds[idx];
        let wanted = self.wanted(e);
        if wanted == e.committed {
            return Ok(());
        }
        if self.immediate {
            let old = e.committed;
            self.fds[idx].committed = wanted;
            let result = backend.change(fd, old, wanted);
            self.forget_if_unused(idx);
            return result;
        }
        self.mark_dirty(fd);
        Ok(())
    }

    /// Tell the backend now, not at the next flush, that `fd` has no event left. An fd's last
    /// event is freed just before the fd is closed, and the kernel has to hear of it while
    /// the fd is still open: epoll keeps a closed fd's registration for as long as a duplicate
    /// of the fd lives, and would report it under the number of whatever fd comes next. A
    /// refusal means the registration is gone already (the fd was closed first). Events
    /// deleted on the fd before (`detached`) do not hold it.
    pub fn release(
        &mut self,
        backend: &mut dyn Backend,
        fd: RawFd,
        mut detached: impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) {
        self.settle(backend, &mut detached);
        let Some(idx) = self.slot(fd) else {
            return;
        };
        let e = &mut self.fds[idx];
        if e.events.is_empty() && !e.committed.is_empty() {
            let _ = backend.change(fd, e.committed, EventFlags::empty());
            e.committed = EventFlags::empty();
        }
        self.forget_if_unused(idx);
    }

    #[inline]
    fn mark_dirty(&mut self, fd: RawFd) {
        let Some(idx) = self.slot(fd) else {
            return;
        };
        let e = &mut self.fds[idx];
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(fd);
        }
    }

    /// Whether `flush` has anything to do: deferred deletes or changed fds.
    #[inline]
    pub fn has_changes(&self) -> bool {
        !(self.dirty.is_empty() && self.deferred.is_empty())
    }

    /// Settle the deferred deletes (`detached`: see [`settle`](Self::settle)), then apply
    /// every pending net change. An fd whose change the backend refused while events still
    /// watch it is pushed onto `failed` (the base reports it to those events); the
    /// registration is then considered gone, so the next change registers it afresh.
    pub fn flush(
        &mut self,
        backend: &mut dyn Backend,
        mut detached: impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) {
        self.settle(backend, &mut detached);
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for &fd in &dirty {
            let Some(idx) = self.slot(fd) else {
                continue;
            };
            let e = &self.fds[idx];
            let wanted = self.wanted(e);
            let old = e.committed;
            let ok = wanted == old || backend.change(fd, old, wanted).is_ok();
            let e = &mut self.fds[idx];
            e.dirty = false;
            if ok {
                e.committed = wanted;
            } else {
                e.committed = EventFlags::empty();
                if !wanted.is_empty() {
                    self.failed.push(fd);
                }
            }
            self.forget_if_unused(idx);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// After the backend was re-created (fork): settle the deferred deletes (`detached`) and
    /// register every watched fd afresh. fds the new backend refuses are pushed onto `failed`.
    pub fn reregister_all(
        &mut self,
        backend: &mut dyn Backend,
        mut detached: impl FnMut(u32) -> Option<(RawFd, EventFlags)>,
    ) {
        self.settle(backend, &mut detached);
        self.dirty.clear();
        for idx in 0..self.fds.len() {
            let wanted = self.wanted(&self.fds[idx]);
            let e = &mut self.fds[idx];
            e.dirty = false;
            e.committed = EventFlags::empty();
            if !wanted.is_empty() {
                let fd = e.fd;
                match backend.change(fd, EventFlags::empty(), wanted) {
                    Ok(()) => self.fds[idx].committed = wanted,
                    Err(_) => self.failed.push(fd),
                }
            }
        }
    }

    /// Check the map's invariants, with `event(id)` the fd and flags of event `id` (`None`
    /// for a free slot): every event listed is live and on that fd, no event is
    /// listed twice on an fd; each fd's counts, and so its combined interest, are those of its
    /// events; an fd whose committed interest differs from the combined one is queued for the
    /// next flush (or has no registration left: a refused change, a release); the dirty list
    /// holds exactly the fds marked dirty. Called by the registry's `verify`.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self, event: impl Fn(u32) -> Option<(RawFd, EventFlags)>) -> Result<(), String> {
        for e in &self.fds {
            let fd = e.fd;
            #[cfg(windows)]
            if self
                .index
                .get(&fd)
                .is_none_or(|&i| !std::ptr::eq(&self.fds[i], e))
            {
                continue; // a free entry
            }
            let (mut nread, mut nwrite, mut nclose, mut edge) = (0u16, 0u16, 0u16, false);
            for (i, &id) in e.events.iter().enumerate() {
                if e.events[..i].contains(&id) {
                    return Err(format!("io map: event {id} listed twice on fd {fd}"));
                }
                let f = match event(id) {
                    Some((owner, f)) if owner == fd => f,
                    Some((owner, _)) => {
                        return Err(format!(
                            "io map: event {id} of fd {owner} listed on fd {fd}"
                        ))
                    }
                    None => return Err(format!("io map: fd {fd} lists event {id}, which is free")),
                };
                nread += u16::from(f.contains(EventFlags::READ));
                nwrite += u16::from(f.contains(EventFlags::WRITE));
                nclose += u16::from(f.contains(EventFlags::CLOSED));
                edge |= f.contains(EventFlags::ET);
            }
            if (nread, nwrite, nclose, edge) != (e.nread, e.nwrite, e.nclose, e.edge) {
                return Err(format!(
                    "io map: fd {fd} counts (read {}, write {}, closed {}, edge {}) but its events have ({nread}, {nwrite}, {nclose}, {edge})",
                    e.nread, e.nwrite, e.nclose, e.edge
                ));
            }
            let wanted = self.wanted(e);
            if wanted != e.committed && !e.dirty && !e.committed.is_empty() {
                return Err(format!(
                    "io map: fd {fd} committed {:?}, wants {wanted:?}, and is not queued",
                    e.committed
                ));
            }
            if e.dirty != self.dirty.contains(&fd) {
                return Err(format!(
                    "io map: fd {fd}'s dirty mark and the dirty list differ"
                ));
            }
        }
        if self.dirty.len() != self.fds.iter().filter(|e| e.dirty).count() {
            return Err("io map: the dirty list holds an fd twice".to_string());
        }
        Ok(())
    }

    /// The number of syscall-worthy changes waiting for the next flush.
    #[cfg(test)]
    pub fn pending_changes(&self) -> usize {
        self.dirty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ReadyList;
    use crate::flags::Features;
    use std::time::Duration;

    /// Records every change it is told about.
    #[derive(Default)]
    struct Recorder {
        log: Vec<(RawFd, EventFlags, EventFlags)>,
        refuse: Option<RawFd>,
    }
    impl Backend for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn features(&self) -> Features {
            Features::EDGE_TRIGGERED | Features::EARLY_CLOSE
        }
        fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
            if self.refuse == Some(fd) {
                return Err(io::Error::other("refused"));
            }
            self.log.push((fd, old, new));
            Ok(())
        }
        fn dispatch(&mut self, _: Option<Duration>, _: &mut ReadyList) -> io::Result<()> {
            Ok(())
        }
    }

    const R: EventFlags = EventFlags::READ;
    const W: EventFlags = EventFlags::WRITE;
    const E: EventFlags = EventFlags::empty();

    /// No event is still deleted.
    fn kept(_: u32) -> Option<(RawFd, EventFlags)> {
        None
    }

    #[test]
    fn two_readers_one_registration_and_delete_keeps_the_other() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 3, 0, R, true, kept).unwrap();
        m.add(&mut b, 3, 1, R, true, kept).unwrap();
        m.remove(&mut b, 3, 0, R).unwrap();
        m.flush(&mut b, kept);
        assert!(m.failed.is_empty());
        assert_eq!(b.log, [(3, E, R)]);
        assert_eq!(m.events(3), [1]);
    }

    #[test]
    fn delete_then_readd_costs_nothing() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 4, 0, R, true, kept).unwrap();
        m.remove(&mut b, 4, 0, R).unwrap();
        m.add(&mut b, 4, 0, R, false, kept).unwrap();
        m.flush(&mut b, kept);
        assert_eq!(b.log, [(4, E, R)]);
        // A modification is coalesced into one net change.
        m.add(&mut b, 4, 1, W, true, kept).unwrap();
        m.remove(&mut b, 4, 1, W).unwrap();
        m.add(&mut b, 4, 2, W, true, kept).unwrap();
        assert_eq!(m.pending_changes(), 1);
        m.flush(&mut b, kept);
        assert_eq!(b.log, [(4, E, R), (4, R, R | W)]);
    }

    #[test]
    fn fresh_event_on_a_stale_registration_registers_afresh() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 5, 0, R, true, kept).unwrap();
        m.remove(&mut b, 5, 0, R).unwrap();
        // (the fd is closed and its number reused here)
        m.add(&mut b, 5, 1, R, true, kept).unwrap();
        assert_eq!(b.log, [(5, E, R), (5, E, R)]);
    }

    #[test]
    fn refused_registration_leaves_the_map_unchanged() {
        let mut b = Recorder {
            refuse: Some(6),
            ..Default::default()
        };
        let mut m = IoMap::new(false, false);
        assert!(m.add(&mut b, 6, 0, R, true, kept).is_err());
        assert!(m.events(6).is_empty());
        b.refuse = None;
        m.add(&mut b, 6, 0, R, true, kept).unwrap();
        assert_eq!(b.log, [(6, E, R)]);
    }

    #[test]
    fn et_mixing_and_negative_fds_are_refused() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 7, 0, R | EventFlags::ET, true, kept).unwrap();
        let err = m.add(&mut b, 7, 1, W, true, kept).unwrap_err();
        assert!(err.to_string().contains("fd 7:"), "{err}");
        let err = m
            .add(&mut b, crate::fd::NO_FD, 2, R, true, kept)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn emulated_closed_watches_read() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(true, false);
        m.add(&mut b, 8, 0, EventFlags::CLOSED, true, kept).unwrap();
        assert_eq!(b.log, [(8, E, R)]);
        assert!(m.emulates_closed(8));
    }

    #[test]
    fn a_deferred_delete_is_settled_before_the_map_changes_otherwise() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        // Event 0 reads fd 9, then is deleted lazily: still listed and counted.
        m.add(&mut b, 9, 0, R, true, kept).unwrap();
        m.defer_remove(0);
        assert_eq!(m.events(9), [0]);
        assert!(m.has_changes());
        // An edge-triggered event added now sees fd 9 without event 0 (no ET mix error),
        // and, being fresh on a registration left with no event, registers afresh.
        let gone = |id: u32| (id == 0).then_some((9, R));
        m.add(&mut b, 9, 1, W | EventFlags::ET, true, gone).unwrap();
        assert_eq!(m.events(9), [1]);
        assert!(!m.is_deferred(0));
        assert_eq!(b.log, [(9, E, R), (9, E, W | EventFlags::ET)]);
        m.check(|id| (id == 1).then_some((9, W | EventFlags::ET)))
            .unwrap();
    }

    #[test]
    fn delete_and_add_back_never_reach_the_backend() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 11, 0, R, true, kept).unwrap();
        m.defer_remove(0);
        // Added back before the flush: the settle finds it no longer detached.
        m.flush(&mut b, kept);
        assert_eq!(m.events(11), [0]);
        assert!(!m.has_changes());
        assert_eq!(b.log, [(11, E, R)]);
        // Deleted for good: the flush drops it and tells the backend.
        m.defer_remove(0);
        m.flush(&mut b, |id| (id == 0).then_some((11, R)));
        assert!(m.events(11).is_empty());
        assert_eq!(b.log, [(11, E, R), (11, R, E)]);
    }

    #[test]
    fn release_does_not_wait_for_a_deferred_delete() {
        let mut b = Recorder::default();
        let mut m = IoMap::new(false, false);
        m.add(&mut b, 10, 0, R, true, kept).unwrap();
        m.add(&mut b, 10, 1, W, true, kept).unwrap();
        m.flush(&mut b, kept);
        // Event 1 is deleted lazily, event 0 removed for good (freed): the release drops
        // the registration now, though event 1 was still listed.
        m.defer_remove(1);
        m.remove(&mut b, 10, 0, R).unwrap();
        m.release(&mut b, 10, |id| (id == 1).then_some((10, W)));
        assert!(m.events(10).is_empty());
        assert_eq!(b.log.last(), Some(&(10, R | W, E)));
        let before = b.log.len();
        m.flush(&mut b, kept);
        assert_eq!(b.log.len(), before);
    }
}
