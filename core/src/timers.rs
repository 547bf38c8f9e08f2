//! The base's timers, in four structures, each cheap for its kind of timer:
//! - the *ring* (`timer_ring`): timers outside the queues due within about a second,
//!   appended to 16.8 ms buckets that are sorted only when they come up — most of a loop's
//!   short timers;
//! - the *queues*: one FIFO queue per timeout length that many timers share (libevent's
//!   common timeouts) — a server's read timeouts, keep-alives and ticks;
//! - *heads*: a small heap (`timer_heap`) of each queue's first timer, keyed by its place;
//! - the *heap* (`timer_heap`): every other timer — due very soon, or far ahead.
//!
//! A timer's life through them: [`Timers::schedule_new`] arms a timer that is not scheduled
//! (into its length's queue if it has one, else the ring, else the heap);
//! [`Timers::rearm`] arms one that may be, and is the one way a running timer changes — in
//! place when it waits in the queue of its length and is pushed back, else off its old place
//! and in again; [`Timers::pop_expired`] takes the earliest of the ring's sorted run, the
//! heap's top and the top of `heads`, and a queued timer that comes up but was pushed back
//! moves to its queue's tail (or the heap) instead of expiring; [`Timers::remove`] takes it
//! out from wherever it is. Every position is by [`TimerKey`](crate::clock::TimerKey).
//!
//! A server arms the same few timeouts over and over: a read timeout re-armed on every read, a
//! keep-alive timer, a periodic tick. Timers of one length expire in the order they were
//! armed, so they need no heap among themselves: a queue per length, kept in arming order,
//! with only each queue's first timer in a second, small heap (`heads`). Arming or re-arming
//! such a timer is O(1) whatever the number of timers; the heap of all other timers never
//! sees them.
//!
//! Which timers go to a queue: those with a persistent timeout (their length is their period,
//! and buffered sockets' read and write timeouts are such), and any timer whose length was
//! declared with [`Timers::declare`] (`Registry::declare_common_timeout`). At most
//! [`MAX_QUEUES`] lengths get a queue; beyond that, timers go to the ring or the heap.
//!
//! Taking the next timer takes the earliest of the three. The guarantees are those of one
//! heap:
//! - *Never early*: a queue keeps deadlines in order by giving an appended timer at least the
//!   deadline of the one before it (it can only be later, never earlier, than asked).
//! - *Equal deadlines in arming order*, across heap, ring and queues: every arming takes a
//!   sequence number from one counter, and `(deadline, seq)` orders all three.
//! - *Lazy re-arm* (libev's "be smart about timeouts", done by the library): re-arming a
//!   queued timer with its own length and a later deadline — a read timeout pushed back by a
//!   read — only writes the new deadline into its `Due`. The timer keeps its place in the
//!   queue (its `Place`, the key it was queued with); when that place comes up, the timer is
//!   found to be due later and moves: to its queue's tail if its deadline is no earlier than
//!   the tail's, else to the heap, keyed by the deadline and arming number of the re-arm. So
//!   a re-arm touches 16 bytes, and a timer re-armed a thousand times within one period
//!   moves once.
//! - *Lazy heads*: unlinking a queue's first timer (a delete, a re-arm) leaves its entry in
//!   `heads` as it was. That entry can only be earlier than the queue's real first timer, so
//!   the loop at worst wakes early, finds the entry stale and moves it to the real one.

use crate::clock::TimerKey as Key;
use crate::event::cover;
use crate::timer_heap::TimerHeap;
use crate::timer_ring::TimerRing;

/// The most timeout lengths with a queue of their own; libevent allows 256. Finding a
/// length's queue is a scan of this many numbers at most.
pub const MAX_QUEUES: usize = 32;

const NONE: u32 = u32::MAX;
const NO_QUEUE: u16 = u16::MAX;

/// When a queued timer is due, and in which queue: all that a re-arm reads and writes, 16
/// bytes, kept apart from its place (`Place`) so that re-arms touch few cache lines.
#[derive(Copy, Clone, Debug)]
struct Due {
    deadline: u64,
    seq: u32,
    /// `NO_QUEUE` when the timer is not queued.
    queue: u16,
}

impl Default for Due {
    fn default() -> Self {
        Due {
            deadline: 0,
            seq: 0,
            queue: NO_QUEUE,
        }
    }
}

/// A queued timer's place: the key it holds its place by (the queue is in order of
/// `(at, at_seq)`; its `Due` is no earlier) and its neighbours.
#[derive(Copy, Clone, Debug)]
struct Place {
    at: u64,
    at_seq: u32,
    prev: u32,
    next: u32,
}

impl Default for Place {
    fn default() -> Self {
        Place {
            at: 0,
            at_seq: 0,
            prev: NONE,
            next: NONE,
        }
    }
}

/// Timers of one length, first to expire first.
#[derive(Debug)]
struct Queue {
    head: u32,
    tail: u32,
    count: usize,
}

/// What [`Timers::rearm`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rearm {
    /// The timer waits in the queue of its length and only its deadline changed.
    InPlace,
    /// The timer was (re)scheduled: in a queue's tail, the ring or the heap.
    Moved,
}

/// Every timer of a base; ids are the events' slots.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Timers not in a queue and due within about a second (see `timer_ring`).
    ring: TimerRing,
    /// All other timers not in a queue.
    heap: TimerHeap,
    /// Each non-empty queue's first timer (lazily: see the module note); ids are queues.
    heads: TimerHeap,
    queues: Vec<Queue>,
    /// The timeout length of each queue, `lens[q]` for `queues[q]`, side by side for the scan.
    lens: Vec<u64>,
    /// Queue membership and due time by event slot.
    dues: Vec<Due>,
    /// Place in the queue by event slot (meaningful while queued).
    places: Vec<Place>,
    queued: usize,
    next_seq: u32,
}

impl Timers {
    /// The queue for timeouts of `len_ns`, made if there is room.
    #[inline(always)]
    fn queue_for(&mut self, len_ns: u64, make: bool) -> Option<u16> {
        // The lengths side by side: the scan reads a cache line or two.
        if let Some(q) = self.lens.iter().position(|&l| l == len_ns) {
            return Some(q as u16);
        }
        self.make_queue(len_ns, make)
    }

    #[cold]
    fn make_queue(&mut self, len_ns: u64, make: bool) -> Option<u16> {
        if !make || self.queues.len() >= MAX_QUEUES {
            return None;
        }
        self.lens.push(len_ns);
        self.queues.push(Queue {
            head: NONE,
            tail: NONE,
            count: 0,
        });
        Some((self.queues.len() - 1) as u16)
    }

    /// Give timeouts of `len_ns` a queue of their own, so one-shot timers of that length join
    /// it too. Returns false when [`MAX_QUEUES`] lengths have one already.
    pub fn declare(&mut self, len_ns: u64) -> bool {
        self.queue_for(len_ns, true).is_some()
    }

    #[inline(always)]
    fn take_seq(&mut self) -> u32 {
        if self.next_seq == u32::MAX {
            self.renumber();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Schedule `id` at `deadline`, `len_ns` from now, outside the queues, replacing
    /// whatever it had.
    #[inline]
    fn schedule(&mut self, id: u32, deadline: u64, len_ns: u64) {
        if !self.queues.is_empty() {
            self.unlink(id);
        }
        if !self.ring.remove(id) {
            self.heap.remove(id);
        }
        let seq = self.take_seq();
        self.insert(id, Key { deadline, seq }, deadline.saturating_sub(len_ns));
    }

    /// Put unscheduled `id` in the ring if it is due within it, else in the heap.
    #[inline(always)]
    fn insert(&mut self, id: u32, key: Key, now: u64) {
        if !self.ring.insert(id, key, now) {
            self.heap.insert(id, key);
        }
    }

    /// The one way to (re)arm a timer that may be scheduled already: `id` due at `deadline`,
    /// `len_ns` from now, in the queue of that length if it has one (or gets one: `make`),
    /// else in the ring or the heap. A timer waiting in that queue, re-armed no earlier than
    /// it was due, keeps its place and only records the new deadline (lazy re-arm: see the
    /// module note); that is the fast path, and the rest is kept out of line. Returns
    /// whether the timer was re-armed lazily (its length was its queue's already). `make` is
    /// asked only on the slow path, so the fast one reads nothing of the caller's.
    #[inline(always)]
    pub fn rearm(
        &mut self,
        id: u32,
        deadline: u64,
        len_ns: u64,
        make: impl FnOnce() -> bool,
    ) -> Rearm {
        if self.rearm_lazily(id, deadline, len_ns) {
            return Rearm::InPlace;
        }
        self.reschedule(id, deadline, len_ns, make());
        Rearm::Moved
    }

    /// [`rearm`](Self::rearm)'s slow path: off its queue place, the ring or the heap, and in
    /// again where `len_ns` and `deadline` say.
    #[inline(never)]
    fn reschedule(&mut self, id: u32, deadline: u64, len_ns: u64, make: bool) {
        match self.queue_for(len_ns, make) {
            Some(q) => self.append(id, deadline, q),
            None => self.schedule(id, deadline, len_ns),
        }
    }

    /// Schedule `id`, which is not scheduled, as [`rearm`](Self::rearm) does.
    #[inline(always)]
    pub fn schedule_new(&mut self, id: u32, deadline: u64, len_ns: u64, make: bool) {
        debug_assert!(!self.contains(id));
        if make || !self.lens.is_empty() {
            if let Some(q) = self.queue_for(len_ns, make) {
                return self.append_new(id, deadline, q);
            }
        }
        let seq = self.take_seq();
        self.insert(id, Key { deadline, seq }, deadline.saturating_sub(len_ns));
    }

    /// If `id` waits in the queue of `len_ns` and is re-armed no earlier than it was due,
    /// make it due at `deadline` where it stands (see the module note) and return true. Only
    /// `dues` is touched.
    #[inline(always)]
    fn rearm_lazily(&mut self, id: u32, deadline: u64, len_ns: u64) -> bool {
        let Some(due) = self.dues.get_mut(id as usize) else {
            return false;
        };
        // (`NO_QUEUE` is past every queue. Being due no earlier than before implies no
        // earlier than its place. A counter about to run out takes the slow path, which
        // renumbers.)
        if self.lens.get(usize::from(due.queue)) != Some(&len_ns) || deadline < due.deadline {
            return false;
        }
        if self.next_seq == u32::MAX {
            return false;
        }
        due.deadline = deadline;
        due.seq = self.next_seq;
        self.next_seq += 1;
        true
    }

    #[inline(always)]
    fn place(&self, id: u32) -> Key {
        let p = &self.places[id as usize];
        Key {
            deadline: p.at,
            seq: p.at_seq,
        }
    }

    #[inline(always)]
    fn due(&self, id: u32) -> Key {
        let d = &self.dues[id as usize];
        Key {
            deadline: d.deadline,
            seq: d.seq,
        }
    }

    /// Put `id` at the end of queue `q`, no earlier than the timer before it.
    #[inline]
    fn append(&mut self, id: u32, deadline: u64, q: u16) {
        if !self.ring.remove(id) {
            self.heap.remove(id);
        }
        self.unlink(id);
        self.append_new(id, deadline, q);
    }

    /// [`append`](Self::append) for an `id` that is not scheduled.
    #[inline]
    fn append_new(&mut self, id: u32, deadline: u64, q: u16) {
        let seq = self.take_seq();
        let idx = id as usize;
        if idx >= self.dues.len() {
            cover(&mut self.dues, idx, Due::default());
            cover(&mut self.places, idx, Place::default());
        }
        let deadline = match self.queues[q as usize].tail {
            NONE => deadline,
            t => deadline.max(self.places[t as usize].at),
        };
        self.link_at_tail(id, Key { deadline, seq }, q);
    }

    /// Link unqueued `id` after the tail of queue `q`, placed and due at `key`, which is no
    /// earlier than the tail's place.
    #[inline(always)]
    fn link_at_tail(&mut self, id: u32, key: Key, q: u16) {
        let queue = &mut self.queues[q as usize];
        let tail = queue.tail;
        self.dues[id as usize] = Due {
            deadline: key.deadline,
            seq: key.seq,
            queue: q,
        };
        self.places[id as usize] = Place {
            at: key.deadline,
            at_seq: key.seq,
            prev: tail,
            next: NONE,
        };
        if tail == NONE {
            queue.head = id;
            // A stale entry for this queue may still be in `heads`; it is moved to this key.
            self.heads.schedule_key(u32::from(q), key);
        } else {
            self.places[tail as usize].next = id;
        }
        queue.tail = id;
        queue.count += 1;
        self.queued += 1;
    }

    /// Point queue `q`'s entry in `heads` at its first timer, or drop it if it is empty.
    #[inline]
    fn refresh_head(&mut self, q: u16) {
        match self.queues[q as usize].head {
            NONE => {
                self.heads.remove(u32::from(q));
            }
            first => {
                let key = self.place(first);
                self.heads.schedule_key(u32::from(q), key);
            }
        }
    }

    /// The first timer of queue `q` has come to its place but is due later (re-armed lazily):
    /// move it to the tail if it is due no earlier than the tail's place, else to the heap.
    /// It keeps the key of its re-arm, so the order among equal deadlines stands.
    #[cold]
    #[inline(never)]
    fn relocate(&mut self, id: u32, q: u16) {
        let due = self.due(id);
        self.unlink(id);
        self.refresh_head(q);
        let fits = match self.queues[q as usize].tail {
            NONE => true,
            t => due >= self.place(t),
        };
        if fits {
            self.link_at_tail(id, due, q);
        } else {
            self.heap.schedule_key(id, due);
        }
    }

    /// Take `id` out of its queue, if it is in one; its queue's entry in `heads` stays (lazy).
    #[inline]
    fn unlink(&mut self, id: u32) -> bool {
        let Some(due) = self.dues.get_mut(id as usize) else {
            return false;
        };
        if due.queue == NO_QUEUE {
            return false;
        }
        let q = &mut self.queues[due.queue as usize];
        due.queue = NO_QUEUE;
        let Place { prev, next, .. } = self.places[id as usize];
        match prev {
            NONE => q.head = next,
            p => self.places[p as usize].next = next,
        }
        match next {
            NONE => q.tail = prev,
            n => self.places[n as usize].prev = prev,
        }
        q.count -= 1;
        self.queued -= 1;
        true
    }

    /// Unschedule `id`; returns whether it was scheduled.
    pub fn remove(&mut self, id: u32) -> bool {
        self.unlink(id) || self.ring.remove(id) || self.heap.remove(id)
    }

    /// The deadline of `id`, if scheduled.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        match self.dues.get(id as usize) {
            Some(d) if d.queue != NO_QUEUE => Some(d.deadline),
            _ => self
                .ring
                .key(id)
                .map(|k| k.deadline)
                .or_else(|| self.heap.deadline(id)),
        }
    }

    /// The length of the queue `id` waits in, if it is queued.
    #[inline]
    pub fn queued_len(&self, id: u32) -> Option<u64> {
        match self.dues.get(id as usize) {
            Some(d) if d.queue != NO_QUEUE => Some(self.lens[d.queue as usize]),
            _ => None,
        }
    }

    /// Whether `id` is scheduled.
    pub fn contains(&self, id: u32) -> bool {
        self.deadline(id).is_some()
    }

    /// How many timers are scheduled.
    pub fn len(&self) -> usize {
        self.heap.len() + self.ring.len() + self.queued
    }

    /// The earliest deadline, or an earlier one (a stale queue head): the loop waits until
    /// then at most. Inlined whole: the loop asks once per iteration (see the README's
    /// instruction counts).
    #[inline(always)]
    pub fn next_deadline(&mut self) -> Option<u64> {
        let earlier = |a: Option<u64>, b: Option<(Key, u32)>| match (a, b) {
            (Some(a), Some((b, _))) => Some(a.min(b.deadline)),
            (a, b) => a.or(b.map(|(b, _)| b.deadline)),
        };
        let ring = self.ring.first_deadline();
        earlier(earlier(ring, self.heap.peek_key()), self.heads.peek_key())
    }

    /// Remove and return the earliest timer as `(id, deadline)` if it is due at `now`.
    #[inline(always)]
    pub fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        // Only the ring has timers: the common case of short one-shot timers.
        if self.heap.is_empty() && self.queued == 0 && self.heads.is_empty() {
            return self.ring.pop_due(now);
        }
        self.pop_expired_mixed(now)
    }

    /// Take from whichever of heap, ring and queues is earliest.
    #[inline(never)]
    fn pop_expired_mixed(&mut self, now: u64) -> Option<(u32, u64)> {
        enum From {
            Heap,
            Ring,
            Queue,
        }
        loop {
            let candidates = [
                self.heap.peek_key().map(|(k, _)| (k, From::Heap)),
                self.ring.first().map(|(k, _)| (k, From::Ring)),
                self.heads.peek_key().map(|(k, _)| (k, From::Queue)),
            ];
            let (key, from) = candidates.into_iter().flatten().min_by_key(|c| c.0)?;
            if key.deadline > now {
                return None;
            }
            match from {
                From::Heap => return self.heap.pop_expired(now),
                From::Ring => return self.ring.pop().map(|(k, id)| (id, k.deadline)),
                From::Queue => {}
            }
            let (key, q) = self.heads.peek_key()?;
            let q = q as u16;
            let head = self.queues[q as usize].head;
            if head == NONE || self.place(head) != key {
                // Stale: the first timer was unlinked since. Move the entry to the real one.
                self.refresh_head(q);
                continue;
            }
            let due = self.due(head);
            if due != key {
                self.relocate(head, q);
                continue;
            }
            self.unlink(head);
            self.refresh_head(q);
            return Some((head, due.deadline));
        }
    }

    /// Renumber every sequence number by rank when the counter runs out: the relative order
    /// of all keys, and so the heap and the queues, stays as it was.
    #[cold]
    #[inline(never)]
    fn renumber(&mut self) {
        let mut keys: Vec<(u64, u32)> = self
            .heap
            .keys()
            .chain(self.ring.keys())
            .map(|k| (k.deadline, k.seq))
            .collect();
        for q in &self.queues {
            let mut at = q.head;
            while at != NONE {
                let (p, d) = (&self.places[at as usize], &self.dues[at as usize]);
                keys.push((p.at, p.at_seq));
                keys.push((d.deadline, d.seq));
                at = p.next;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let rank = |k: (u64, u32)| keys.binary_search(&k).map_or(0, |r| r as u32);
        self.heap.map_seqs(|k| rank((k.deadline, k.seq)));
        self.ring.map_seqs(|k| rank((k.deadline, k.seq)));
        for q in 0..self.queues.len() {
            let mut at = self.queues[q].head;
            while at != NONE {
                let (p, d) = (&mut self.places[at as usize], &mut self.dues[at as usize]);
                p.at_seq = rank((p.at, p.at_seq));
                d.seq = rank((d.deadline, d.seq));
                at = p.next;
            }
        }
        // The heads are rebuilt from the queues (stale entries go).
        self.heads = TimerHeap::new();
        for q in 0..self.queues.len() {
            self.refresh_head(q as u16);
        }
        self.next_seq = keys.len() as u32;
    }

    /// Check the invariants: the heaps', and each queue's — linked both ways, places in
    /// order, no timer due before its place, counts right, and its entry in `heads` no later
    /// than its first timer's place.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self) -> Result<(), String> {
        self.heap.check()?;
        self.ring.check()?;
        self.heads.check()?;
        let mut total = 0;
        for (qi, q) in self.queues.iter().enumerate() {
            let (mut at, mut prev, mut n) = (q.head, NONE, 0usize);
            let mut last = Key {
                deadline: 0,
                seq: 0,
            };
            while at != NONE {
                let (p, d) = (&self.places[at as usize], &self.dues[at as usize]);
                if d.queue as usize != qi || p.prev != prev {
                    return Err(format!("timer queue {qi}: timer {at} is badly linked"));
                }
                let place = self.place(at);
                if place < last {
                    return Err(format!("timer queue {qi}: timer {at} is out of order"));
                }
                if self.due(at) < place {
                    return Err(format!(
                        "timer queue {qi}: timer {at} is due before its place"
                    ));
                }
                if self.heap.contains(at) || self.ring.key(at).is_some() {
                    return Err(format!("timer {at} is both queued and in the heap"));
                }
                last = place;
                prev = at;
                at = p.next;
                n += 1;
            }
            if prev != q.tail || n != q.count {
                return Err(format!("timer queue {qi}: tail or count is wrong"));
            }
            if q.head != NONE {
                match self.heads.key(qi as u32) {
                    Some(k) if k <= self.place(q.head) => {}
                    _ => {
                        return Err(format!(
                            "timer queue {qi}: its head entry is missing or late"
                        ))
                    }
                }
            }
            total += n;
        }
        if total != self.queued {
            return Err(format!(
                "timer queues: {total} queued, {} counted",
                self.queued
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::test_rng::Rng;

    fn drain(t: &mut Timers, now: u64) -> Vec<u32> {
        std::iter::from_fn(|| t.pop_expired(now).map(|e| e.0)).collect()
    }

    #[test]
    fn queued_and_heap_timers_expire_in_deadline_then_arming_order() {
        let mut t = Timers::default();
        t.rearm(1, 100, 50, || true); // queue of 50
        t.schedule(2, 100, 0); // heap, same deadline: after 1
        t.rearm(3, 100, 50, || true); // queue, same deadline: after 2
        t.schedule(4, 90, 0);
        t.rearm(5, 120, 50, || true);
        t.check().unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(drain(&mut t, 100), [4, 1, 2, 3]);
        assert_eq!(t.next_deadline(), Some(120));
        assert_eq!(drain(&mut t, 200), [5]);
        t.check().unwrap();
    }

    #[test]
    fn a_rearmed_queue_head_goes_to_the_tail_and_its_stale_entry_is_skipped() {
        let mut t = Timers::default();
        for id in 0..4 {
            t.rearm(id, 100 + u64::from(id), 1000, || true);
        }
        t.rearm(0, 500, 1000, || true); // re-armed: now last
        t.check().unwrap();
        assert_eq!(
            t.next_deadline(),
            Some(100),
            "the head entry is left as it was (lazy)"
        );
        assert_eq!(drain(&mut t, 103), [1, 2, 3]);
        assert_eq!(drain(&mut t, 499), [] as [u32; 0]);
        assert_eq!(drain(&mut t, 500), [0]);
        t.check().unwrap();
    }

    #[test]
    fn a_lazily_rearmed_timer_keeps_its_place_then_moves_to_the_tail() {
        let mut t = Timers::default();
        for id in 0..3 {
            t.rearm(id, 100 + u64::from(id), 1000, || true);
        }
        assert_eq!(
            t.rearm(0, 150, 1000, || true),
            Rearm::InPlace,
            "re-armed later: keeps its place"
        );
        t.check().unwrap();
        assert_eq!(t.queues[0].head, 0, "the re-armed timer has not moved");
        assert_eq!(t.deadline(0), Some(150));
        assert_eq!(
            drain(&mut t, 120),
            [1, 2],
            "0 moved to the tail when its place came"
        );
        assert_eq!(t.queues[0].head, 0);
        assert_eq!(t.heap.len(), 0);
        t.check().unwrap();
        assert_eq!(drain(&mut t, 149), [] as [u32; 0]);
        assert_eq!(drain(&mut t, 150), [0]);
        t.check().unwrap();
    }

    #[test]
    fn a_lazily_rearmed_timer_due_before_the_tail_moves_to_the_heap_in_arming_order() {
        let mut t = Timers::default();
        t.rearm(0, 100, 1000, || true);
        t.rearm(0, 300, 1000, || true); // lazy: due at 300, armed second
        t.rearm(1, 300, 1000, || true); // same deadline, armed third
        t.rearm(2, 400, 1000, || true); // the tail
        t.check().unwrap();
        assert_eq!(drain(&mut t, 100), [] as [u32; 0]);
        assert_eq!(
            t.heap.len(),
            1,
            "0 is due before the tail's place: the heap has it"
        );
        assert_eq!(t.queues[0].head, 1);
        t.check().unwrap();
        assert_eq!(drain(&mut t, 299), [] as [u32; 0]);
        assert_eq!(
            drain(&mut t, 300),
            [0, 1],
            "equal deadlines in arming order"
        );
        assert_eq!(drain(&mut t, u64::MAX), [2]);
        t.check().unwrap();
    }

    #[test]
    fn a_rearm_before_the_place_or_in_another_length_relinks_at_once() {
        let mut t = Timers::default();
        t.rearm(0, 100, 1000, || true);
        t.rearm(1, 200, 1000, || true);
        t.rearm(0, 90, 1000, || true); // earlier than its place: to the tail (at 200)
        assert_eq!(t.queues[0].head, 1);
        assert_eq!(t.deadline(0), Some(200), "never before the tail's place");
        t.rearm(1, 300, 500, || true); // another length: another queue
        assert_eq!(t.queues[0].count, 1);
        assert_eq!(t.queued_len(1), Some(500));
        t.check().unwrap();
        assert_eq!(drain(&mut t, u64::MAX), [0, 1]);
    }

    #[test]
    fn an_appended_deadline_is_never_before_the_tails() {
        let mut t = Timers::default();
        t.rearm(1, 200, 100, || true);
        t.rearm(2, 150, 100, || true); // an older clock reading: kept in order, later
        assert_eq!(t.deadline(2), Some(200));
        assert_eq!(drain(&mut t, 200), [1, 2]);
    }

    #[test]
    fn lengths_beyond_the_queues_go_to_the_heap() {
        let mut t = Timers::default();
        for len in 0..MAX_QUEUES as u64 + 5 {
            t.rearm(len as u32, 1000 + len, len + 1, || true);
        }
        assert_eq!(t.queues.len(), MAX_QUEUES);
        assert_eq!(t.heap.len(), 5);
        assert!(!t.declare(9999));
        assert!(t.declare(1), "an existing length");
        t.check().unwrap();
        let all = drain(&mut t, u64::MAX);
        assert_eq!(all, (0..MAX_QUEUES as u32 + 5).collect::<Vec<_>>());
    }

    #[test]
    fn running_out_of_sequence_numbers_keeps_the_order_across_queues() {
        let mut t = Timers::default();
        for id in 0..6 {
            t.rearm(id, 10, 7, || id % 2 == 0);
        }
        t.next_seq = u32::MAX - 2;
        for id in 6..12 {
            t.rearm(id, 10, 7, || id % 2 == 0);
        }
        assert!(t.next_seq < 20, "renumbered by rank");
        t.check().unwrap();
        assert_eq!(drain(&mut t, 10), (0..12).collect::<Vec<_>>());
    }

    /// Random operations against a model: a map from `(deadline, arming number)` to id. The
    /// unit of time, `U`, is half a millisecond, so that timers spread over the heap, the
    /// ring's buckets and its run, and past the ring.
    #[test]
    fn matches_a_sorted_model() {
        const U: u64 = 1 << 19;
        let mut rng = Rng(0x7157);
        let mut t = Timers::default();
        let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
        let mut at: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut armed = 0u64;
        let mut now = 0u64;
        let lens = [100 * U, 250 * U, 1000 * U];
        let (mut most_in_ring, mut most_in_heap) = (0, 0);
        for step in 0..20_000 {
            let id = rng.below(300) as u32;
            match rng.below(10) {
                0..=3 => {
                    if let Some(k) = at.remove(&id) {
                        model.remove(&k);
                    }
                    let len = lens[rng.below(3)];
                    // Queued deadlines never go before the queue's last: the model reads the
                    // deadline given. A re-arm is lazy when it is no earlier than its place;
                    // an older clock reading (`- stale`) makes some go back to the tail.
                    let stale = if rng.below(8) == 0 { 60 * U } else { 0 };
                    let mut deadline = (now + len).saturating_sub(stale);
                    if rng.below(2) == 0 {
                        t.rearm(id, deadline, len, || true);
                        deadline = t.deadline(id).unwrap();
                    } else {
                        let len = rng.below(3000) as u64 * U + rng.below(1000) as u64;
                        deadline = now + len;
                        t.rearm(id, deadline, len, || false);
                        deadline = t.deadline(id).unwrap();
                    }
                    armed += 1;
                    model.insert((deadline, armed), id);
                    at.insert(id, (deadline, armed));
                }
                4..=5 => {
                    let had = at.remove(&id);
                    if let Some(k) = had {
                        model.remove(&k);
                    }
                    assert_eq!(t.remove(id), had.is_some(), "step {step}");
                }
                _ => {
                    now += rng.below(300) as u64 * U;
                    while let Some((id, deadline)) = t.pop_expired(now) {
                        let (&k, &mid) = model.iter().next().expect("the model has it");
                        assert_eq!((mid, k.0), (id, deadline), "step {step}");
                        model.remove(&k);
                        at.remove(&id);
                    }
                    if let Some((&k, _)) = model.iter().next() {
                        assert!(
                            k.0 > now,
                            "step {step}: {k:?} is due at {now} but was not popped"
                        );
                    }
                }
            }
            assert_eq!(t.len(), model.len());
            most_in_ring = most_in_ring.max(t.ring.len());
            most_in_heap = most_in_heap.max(t.heap.len());
            if step % 97 == 0 {
                t.check().unwrap();
            }
        }
        assert!(
            most_in_ring > 5 && most_in_heap > 5,
            "both were used: {most_in_ring} {most_in_heap}"
        );
    }
}
