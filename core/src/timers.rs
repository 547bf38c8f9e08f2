//! The base's timers: a heap for deadlines of any length, and *common timeouts* — one FIFO
//! queue per timeout length that many timers share (libevent's common timeouts).
//!
//! A server arms the same few timeouts over and over: a read timeout re-armed on every read, a
//! keep-alive timer, a periodic tick. Timers of one length expire in the order they were
//! armed, so they need no heap among themselves: a queue per length, kept in arming order,
//! with only each queue's first timer in a second, small heap (`heads`). Arming or re-arming
//! such a timer is an unlink and an append, O(1) whatever the number of timers; the heap of
//! all other timers never sees them.
//!
//! Which timers go to a queue: those with a persistent timeout (their length is their period,
//! and buffered sockets' read and write timeouts are such), and any timer whose length was
//! declared with [`Timers::declare`] (`Registry::declare_common_timeout`). At most
//! [`MAX_QUEUES`] lengths get a queue; beyond that, timers go to the heap as before.
//!
//! The guarantees are those of the heap alone:
//! - *Never early*: a queue keeps deadlines in order by giving an appended timer at least the
//!   deadline of the one before it (it can only be later, never earlier, than asked).
//! - *Equal deadlines in arming order*, across the heap and the queues: every arming takes a
//!   sequence number from one counter, and `(deadline, seq)` orders both.
//! - *Lazy heads*: unlinking a queue's first timer (a delete, a re-arm) leaves its entry in
//!   `heads` as it was. That entry can only be earlier than the queue's real first timer, so
//!   the loop at worst wakes early, finds the entry stale and moves it to the real one
//!   (libev's "be smart about timeouts", applied to the queue heads).

use crate::timer_heap::{Key, TimerHeap};

/// The most timeout lengths with a queue of their own; libevent allows 256. Finding a
/// length's queue is a scan of this many numbers at most.
pub const MAX_QUEUES: usize = 32;

const NONE: u32 = u32::MAX;
const NO_QUEUE: u16 = u16::MAX;

/// A queued timer's place: its neighbours in the queue and its key.
#[derive(Copy, Clone, Debug)]
struct Link {
    prev: u32,
    next: u32,
    deadline: u64,
    seq: u32,
    queue: u16,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NONE,
            next: NONE,
            deadline: 0,
            seq: 0,
            queue: NO_QUEUE,
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

/// Every timer of a base; ids are the events' slots.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Timers not in a queue.
    heap: TimerHeap,
    /// Each non-empty queue's first timer (lazily: see the module note); ids are queues.
    heads: TimerHeap,
    queues: Vec<Queue>,
    /// The timeout length of each queue, `lens[q]` for `queues[q]`, side by side for the scan.
    lens: Vec<u64>,
    /// Queue membership by event slot.
    links: Vec<Link>,
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

    /// Schedule `id` at `deadline` in the heap, replacing whatever it had.
    #[inline]
    pub fn schedule(&mut self, id: u32, deadline: u64) {
        if !self.queues.is_empty() {
            self.unlink(id);
        }
        let seq = self.take_seq();
        self.heap.schedule_key(id, Key { deadline, seq });
    }

    /// Schedule `id` at `deadline`, `len_ns` from now: in the queue of that length if it has
    /// one (or gets one: `make`), else in the heap.
    #[inline]
    pub fn schedule_len(&mut self, id: u32, deadline: u64, len_ns: u64, make: bool) {
        match self.queue_for(len_ns, make) {
            Some(q) => self.append(id, deadline, q),
            None => self.schedule(id, deadline),
        }
    }

    /// Put `id` at the end of queue `q`, no earlier than the timer before it.
    #[inline]
    fn append(&mut self, id: u32, deadline: u64, q: u16) {
        self.heap.remove(id);
        self.unlink(id);
        let seq = self.take_seq();
        let idx = id as usize;
        if idx >= self.links.len() {
            self.links.resize(idx + 1, Link::default());
        }
        let queue = &mut self.queues[q as usize];
        let tail = queue.tail;
        let deadline = match tail {
            NONE => deadline,
            t => deadline.max(self.links[t as usize].deadline),
        };
        self.links[idx] = Link {
            prev: tail,
            next: NONE,
            deadline,
            seq,
            queue: q,
        };
        if tail == NONE {
            queue.head = id;
            // A stale entry for this queue may still be in `heads`; it is moved to this key.
            self.heads.schedule_key(u32::from(q), Key { deadline, seq });
        } else {
            self.links[tail as usize].next = id;
        }
        queue.tail = id;
        queue.count += 1;
        self.queued += 1;
    }

    /// Take `id` out of its queue, if it is in one; its queue's entry in `heads` stays (lazy).
    #[inline]
    fn unlink(&mut self, id: u32) -> bool {
        let Some(link) = self.links.get_mut(id as usize) else {
            return false;
        };
        if link.queue == NO_QUEUE {
            return false;
        }
        let Link {
            prev, next, queue, ..
        } = *link;
        link.queue = NO_QUEUE;
        let q = &mut self.queues[queue as usize];
        match prev {
            NONE => q.head = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NONE => q.tail = prev,
            n => self.links[n as usize].prev = prev,
        }
        q.count -= 1;
        self.queued -= 1;
        true
    }

    /// Unschedule `id`; returns whether it was scheduled.
    pub fn remove(&mut self, id: u32) -> bool {
        self.unlink(id) || self.heap.remove(id)
    }

    /// The deadline of `id`, if scheduled.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        match self.links.get(id as usize) {
            Some(l) if l.queue != NO_QUEUE => Some(l.deadline),
            _ => self.heap.deadline(id),
        }
    }

    /// The length of the queue `id` waits in, if it is queued.
    #[inline]
    pub fn queued_len(&self, id: u32) -> Option<u64> {
        match self.links.get(id as usize) {
            Some(l) if l.queue != NO_QUEUE => Some(self.lens[l.queue as usize]),
            _ => None,
        }
    }

    /// Whether `id` is scheduled.
    pub fn contains(&self, id: u32) -> bool {
        self.deadline(id).is_some()
    }

    /// How many timers are scheduled.
    pub fn len(&self) -> usize {
        self.heap.len() + self.queued
    }

    /// The earliest deadline, or an earlier one (a stale queue head): the loop waits until
    /// then at most.
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.heap.peek_key(), self.heads.peek_key()) {
            (Some((a, _)), Some((b, _))) => Some(a.deadline.min(b.deadline)),
            (Some((a, _)), None) | (None, Some((a, _))) => Some(a.deadline),
            (None, None) => None,
        }
    }

    /// Remove and return the earliest timer as `(id, deadline)` if it is due at `now`.
    #[inline]
    pub fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        if self.queued == 0 && self.heads.is_empty() {
            return self.heap.pop_expired(now);
        }
        self.pop_expired_mixed(now)
    }

    #[inline(never)]
    fn pop_expired_mixed(&mut self, now: u64) -> Option<(u32, u64)> {
        loop {
            let from_heap = match (self.heap.peek_key(), self.heads.peek_key()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if from_heap {
                return self.heap.pop_expired(now);
            }
            let (key, q) = self.heads.peek_key()?;
            if key.deadline > now {
                return None;
            }
            let head = self.queues[q as usize].head;
            if head == NONE {
                self.heads.remove(q);
                continue;
            }
            let link = self.links[head as usize];
            if (link.deadline, link.seq) != (key.deadline, key.seq) {
                // Stale: the first timer was unlinked since. Move the entry to the real one.
                let real = Key {
                    deadline: link.deadline,
                    seq: link.seq,
                };
                self.heads.schedule_key(q, real);
                continue;
            }
            self.unlink(head);
            match self.queues[q as usize].head {
                NONE => {
                    self.heads.remove(q);
                }
                next => {
                    let l = self.links[next as usize];
                    let key = Key {
                        deadline: l.deadline,
                        seq: l.seq,
                    };
                    self.heads.schedule_key(q, key);
                }
            }
            return Some((head, link.deadline));
        }
    }

    /// Renumber every sequence number by rank when the counter runs out: the relative order
    /// of all keys, and so the heap and the queues, stays as it was.
    #[cold]
    #[inline(never)]
    fn renumber(&mut self) {
        let mut keys: Vec<(u64, u32)> = self.heap.keys().map(|k| (k.deadline, k.seq)).collect();
        for q in &self.queues {
            let mut at = q.head;
            while at != NONE {
                let l = &self.links[at as usize];
                keys.push((l.deadline, l.seq));
                at = l.next;
            }
        }
        keys.sort_unstable();
        let rank = |k: (u64, u32)| keys.binary_search(&k).map_or(0, |r| r as u32);
        self.heap.map_seqs(|k| rank((k.deadline, k.seq)));
        for q in 0..self.queues.len() {
            let mut at = self.queues[q].head;
            while at != NONE {
                let l = &mut self.links[at as usize];
                l.seq = rank((l.deadline, l.seq));
                at = l.next;
            }
        }
        // The heads are rebuilt from the queues (stale entries go).
        self.heads = TimerHeap::new();
        for (q, queue) in self.queues.iter().enumerate() {
            if queue.head != NONE {
                let l = self.links[queue.head as usize];
                self.heads.schedule_key(
                    q as u32,
                    Key {
                        deadline: l.deadline,
                        seq: l.seq,
                    },
                );
            }
        }
        self.next_seq = keys.len() as u32;
    }

    /// Check the invariants: the heaps', and each queue's — linked both ways, deadlines in
    /// order, counts right, and its entry in `heads` no later than its first timer.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self) -> Result<(), String> {
        self.heap.check()?;
        self.heads.check()?;
        let mut total = 0;
        for (qi, q) in self.queues.iter().enumerate() {
            let (mut at, mut prev, mut n) = (q.head, NONE, 0usize);
            let mut last = (0u64, 0u32);
            while at != NONE {
                let l = &self.links[at as usize];
                if l.queue as usize != qi || l.prev != prev {
                    return Err(format!("timer queue {qi}: timer {at} is badly linked"));
                }
                if (l.deadline, l.seq) < last {
                    return Err(format!("timer queue {qi}: timer {at} is out of order"));
                }
                if self.heap.contains(at) {
                    return Err(format!("timer {at} is both queued and in the heap"));
                }
                last = (l.deadline, l.seq);
                prev = at;
                at = l.next;
                n += 1;
            }
            if prev != q.tail || n != q.count {
                return Err(format!("timer queue {qi}: tail or count is wrong"));
            }
            if q.head != NONE {
                let head = &self.links[q.head as usize];
                match self.heads.key(qi as u32) {
                    Some(k) if (k.deadline, k.seq) <= (head.deadline, head.seq) => {}
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
        t.schedule_len(1, 100, 50, true); // queue of 50
        t.schedule(2, 100); // heap, same deadline: after 1
        t.schedule_len(3, 100, 50, true); // queue, same deadline: after 2
        t.schedule(4, 90);
        t.schedule_len(5, 120, 50, true);
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
            t.schedule_len(id, 100 + u64::from(id), 1000, true);
        }
        t.schedule_len(0, 500, 1000, true); // re-armed: now last
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
    fn an_appended_deadline_is_never_before_the_tails() {
        let mut t = Timers::default();
        t.schedule_len(1, 200, 100, true);
        t.schedule_len(2, 150, 100, true); // an older clock reading: kept in order, later
        assert_eq!(t.deadline(2), Some(200));
        assert_eq!(drain(&mut t, 200), [1, 2]);
    }

    #[test]
    fn lengths_beyond_the_queues_go_to_the_heap() {
        let mut t = Timers::default();
        for len in 0..MAX_QUEUES as u64 + 5 {
            t.schedule_len(len as u32, 1000 + len, len + 1, true);
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
            t.schedule_len(id, 10, 7, id % 2 == 0);
        }
        t.next_seq = u32::MAX - 2;
        for id in 6..12 {
            t.schedule_len(id, 10, 7, id % 2 == 0);
        }
        assert!(t.next_seq < 20, "renumbered by rank");
        t.check().unwrap();
        assert_eq!(drain(&mut t, 10), (0..12).collect::<Vec<_>>());
    }

    /// Random operations against a model: a map from `(deadline, arming number)` to id.
    #[test]
    fn matches_a_sorted_model() {
        let mut rng = Rng(0x7157);
        let mut t = Timers::default();
        let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
        let mut at: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut armed = 0u64;
        let mut now = 0u64;
        let lens = [100u64, 250, 1000];
        for step in 0..20_000 {
            let id = rng.below(300) as u32;
            match rng.below(10) {
                0..=3 => {
                    if let Some(k) = at.remove(&id) {
                        model.remove(&k);
                    }
                    let len = lens[rng.below(3)];
                    // Queued deadlines never go before the queue's last: the model asks for
                    // the same, with `now` only moving forward.
                    let mut deadline = now + len;
                    if rng.below(2) == 0 {
                        t.schedule_len(id, deadline, len, true);
                        deadline = t.deadline(id).unwrap();
                    } else {
                        deadline = now + rng.below(2000) as u64;
                        t.schedule(id, deadline);
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
                    now += rng.below(300) as u64;
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
            if step % 97 == 0 {
                t.check().unwrap();
            }
        }
    }
}
