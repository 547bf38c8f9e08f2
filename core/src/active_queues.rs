//! Prioritized FIFO queues of active events.
//!
//! Each priority's queue is a ring buffer of event ids. Every push is numbered — the entry's
//! *ticket*, a wrapping count of the queue's pushes — and the caller keeps the ticket (the
//! base keeps it in the event's slot, where it fills padding). `buf[ticket & mask]` finds
//! the entry again, so removing an event from the middle (an active event deleted by another
//! callback) leaves a tombstone there in O(1), which `pop` skips; the last entry is taken off
//! instead. Each queue counts its live entries: a queue whose last live entry goes drops its
//! tombstones at once. Memory follows what is queued, not every event ever created: an
//! event costs 4 bytes for its ticket, where a linked list needs two links per event.
//! (libev's pending arrays work this way too, but run last-in first-out; libevent's queues
//! and ours run first-in first-out.)
//!
//! A bit per priority marks the non-empty queues, so finding the most urgent one is a count of
//! trailing zeros. Priority 0 is the most urgent.

/// A removed entry, skipped by `pop`. Never an event id: the base refuses that many events.
const TOMBSTONE: u32 = u32::MAX;
/// The most priorities a base can have (see `BaseOptions::priorities`).
const MAX_PRIORITIES: usize = 256;

/// One priority's queue: a ring buffer whose capacity is a power of two, addressed by ticket.
/// `head` and `tail` are the tickets of the first entry and of the next push, wrapping, so the
/// entry with ticket `t` is at `buf[t & (capacity - 1)]` and a ticket is valid while
/// `t - head < tail - head`. `live` counts the entries that are not tombstones; when it drops
/// to zero the tombstones left go at once.
#[derive(Debug, Default)]
struct Queue {
    buf: Vec<u32>,
    head: u32,
    tail: u32,
    live: u32,
}

impl Queue {
    #[inline(always)]
    fn span(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    #[inline(always)]
    fn at(&mut self, ticket: u32) -> &mut u32 {
        let mask = self.buf.len().wrapping_sub(1);
        &mut self.buf[ticket as usize & mask]
    }

    #[inline(always)]
    fn push(&mut self, id: u32) -> u32 {
        if self.span() as usize == self.buf.len() {
            self.grow();
        }
        let ticket = self.tail;
        *self.at(ticket) = id;
        self.tail = ticket.wrapping_add(1);
        self.live += 1;
        ticket
    }

    /// Double the capacity, moving each entry to where its ticket now points.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let cap = (self.buf.len() * 2).max(16);
        let mut buf = vec![TOMBSTONE; cap];
        let mut t = self.head;
        while t != self.tail {
            buf[t as usize & (cap - 1)] = *self.at(t);
            t = t.wrapping_add(1);
        }
        self.buf = buf;
    }

    /// One live entry fewer; an empty queue drops its tombstones.
    #[inline(always)]
    fn settle_one_less(&mut self) {
        self.live -= 1;
        if self.live == 0 {
            self.head = self.tail;
        }
    }
}

/// Set or clear the bit of `prio` in the set of non-empty queues.
#[inline(always)]
fn mark(occupied: &mut [u64; MAX_PRIORITIES / 64], prio: u16, non_empty: bool) {
    let (word, bit) = (prio as usize / 64, prio % 64);
    if non_empty {
        occupied[word] |= 1 << bit;
    } else {
        occupied[word] &= !(1 << bit);
    }
}

/// One FIFO queue per priority of events waiting for their callback to run.
#[derive(Debug)]
pub struct ActiveQueues {
    queues: Vec<Queue>,
    /// Bit `p` is set while priority `p` has a queued event.
    occupied: [u64; MAX_PRIORITIES / 64],
    len: usize,
}

impl ActiveQueues {
    /// `priorities` empty queues (1 to 256; values outside are clamped).
    pub fn new(priorities: u16) -> Self {
        let n = (priorities as usize).clamp(1, MAX_PRIORITIES);
        Self {
            queues: (0..n).map(|_| Queue::default()).collect(),
            occupied: [0; MAX_PRIORITIES / 64],
            len: 0,
        }
    }

    /// The number of priorities.
    pub fn priorities(&self) -> u16 {
        self.queues.len() as u16
    }

    /// How many events are queued over all priorities.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most urgent priority with a queued event.
    #[inline]
    pub fn best(&self) -> Option<u16> {
        // Most bases have fewer than 64 priorities: the first word answers.
        match self.occupied[0] {
            0 => self.best_beyond_64(),
            w => Some(w.trailing_zeros() as u16),
        }
    }

    #[inline(never)]
    fn best_beyond_64(&self) -> Option<u16> {
        self.occupied
            .iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map(|(i, w)| (i * 64) as u16 + w.trailing_zeros() as u16)
    }

    /// Whether an event more urgent than `prio` is queued.
    #[inline]
    pub fn has_better_than(&self, prio: u16) -> bool {
        if prio < 64 {
            // The bits below `prio`'s in the first word.
            self.occupied[0] & ((1u64 << prio) - 1) != 0
        } else {
            self.best().is_some_and(|b| b < prio)
        }
    }

    /// Append `id` to the queue of `prio` and return its ticket, which
    /// [`remove`](Self::remove) takes. `id` must not be queued and `prio` must be below
    /// [`priorities`](Self::priorities); the base checks both.
    #[inline(always)]
    pub fn push(&mut self, id: u32, prio: u16) -> u32 {
        debug_assert_ne!(id, TOMBSTONE);
        let q = &mut self.queues[prio as usize];
        if q.live == 0 {
            mark(&mut self.occupied, prio, true);
        }
        self.len += 1;
        q.push(id)
    }

    /// Whether `id` is queued at `prio` with `ticket`.
    pub fn holds(&self, id: u32, prio: u16, ticket: u32) -> bool {
        self.queues.get(prio as usize).is_some_and(|q| {
            let mask = q.buf.len().wrapping_sub(1);
            ticket.wrapping_sub(q.head) < q.span() && q.buf[ticket as usize & mask] == id
        })
    }

    /// Check the queues' invariants: each queue's live count matches its entries, the
    /// non-empty bits match the live counts, and `len` is their sum. Called by the
    /// registry's `verify`.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self) -> Result<(), String> {
        let mut total = 0usize;
        for (prio, q) in self.queues.iter().enumerate() {
            let mask = q.buf.len().wrapping_sub(1);
            let mut live = 0u32;
            let mut t = q.head;
            while t != q.tail {
                live += u32::from(q.buf[t as usize & mask] != TOMBSTONE);
                t = t.wrapping_add(1);
            }
            if live != q.live {
                return Err(format!(
                    "active queue {prio}: {live} live entries, counted {}",
                    q.live
                ));
            }
            let marked = self.occupied[prio / 64] & (1 << (prio % 64)) != 0;
            if marked != (live > 0) {
                return Err(format!("active queue {prio}: non-empty bit is {marked}"));
            }
            total += live as usize;
        }
        if total != self.len {
            return Err(format!("active queues: {total} entries, len {}", self.len));
        }
        Ok(())
    }

    /// Take `id`, queued at `prio` with `ticket`, out of its queue; returns whether it was
    /// there (a stale ticket finds nothing).
    pub fn remove(&mut self, id: u32, prio: u16, ticket: u32) -> bool {
        let Some(q) = self.queues.get_mut(prio as usize) else {
            return false;
        };
        if ticket.wrapping_sub(q.head) >= q.span() || *q.at(ticket) != id {
            return false;
        }
        *q.at(ticket) = TOMBSTONE;
        if ticket.wrapping_add(1) == q.tail {
            q.tail = ticket; // the last entry leaves no tombstone
        }
        q.settle_one_less();
        if q.live == 0 {
            mark(&mut self.occupied, prio, false);
        }
        self.len -= 1;
        true
    }

    /// The ticket the next push at `prio` gets: what [`pop_before`](Self::pop_before) stops
    /// at, so that a pass runs only what was queued when it began.
    #[inline]
    pub fn end_ticket(&self, prio: u16) -> u32 {
        self.queues.get(prio as usize).map_or(0, |q| q.tail)
    }

    /// Remove and return the first event of `prio`'s queue if it was queued before ticket
    /// `end` (an [`end_ticket`](Self::end_ticket) taken earlier); `None` once only later
    /// pushes are left. (A push can reuse the ticket of a last entry removed meanwhile, which
    /// puts it before `end`; it is still behind every entry older than it, and it took the
    /// place of one, so a pass never runs more than was queued when it began.)
    #[inline]
    pub fn pop_before(&mut self, prio: u16, end: u32) -> Option<u32> {
        let q = self.queues.get_mut(prio as usize)?;
        loop {
            // Tickets wrap: the head is before `end` while their distance is positive.
            if q.live == 0 || end.wrapping_sub(q.head) as i32 <= 0 {
                return None;
            }
            let id = *q.at(q.head);
            q.head = q.head.wrapping_add(1);
            if id != TOMBSTONE {
                q.settle_one_less();
                if q.live == 0 {
                    mark(&mut self.occupied, prio, false);
                }
                self.len -= 1;
                return Some(id);
            }
        }
    }

    /// Remove and return the first event of `prio`'s queue.
    #[cfg(test)]
    pub fn pop(&mut self, prio: u16) -> Option<u32> {
        self.pop_before(prio, self.end_ticket(prio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn the_documented_example() {
        let mut q = ActiveQueues::new(3);
        q.push(10, 2);
        q.push(11, 0);
        let ticket = q.push(12, 0);
        assert_eq!(q.best(), Some(0));
        assert_eq!(q.pop(0), Some(11));
        assert!(q.remove(12, 0, ticket));
        assert_eq!(q.best(), Some(2));
    }

    #[test]
    fn fifo_per_priority_and_removal_from_the_middle() {
        let mut q = ActiveQueues::new(2);
        let tickets: Vec<u32> = (0..5).map(|id| q.push(id, 1)).collect();
        q.push(9, 0);
        assert!(q.remove(2, 1, tickets[2]));
        assert!(!q.remove(2, 1, tickets[2]), "removed twice");
        assert!(!q.remove(3, 1, tickets[2]), "another event's ticket");
        assert!(!q.remove(3, 0, tickets[3]), "another priority");
        assert_eq!(q.len(), 5);
        let mut order = vec![];
        while let Some(p) = q.best() {
            order.push(q.pop(p).unwrap());
        }
        assert_eq!(order, [9, 0, 1, 3, 4]);
        assert!(q.is_empty());
        assert!(
            !q.remove(4, 1, tickets[4]),
            "a popped event's ticket is stale"
        );
    }

    #[test]
    fn a_queue_emptied_by_removals_is_empty() {
        let mut q = ActiveQueues::new(1);
        let a = q.push(1, 0);
        let b = q.push(2, 0);
        let c = q.push(3, 0);
        assert!(q.remove(2, 0, b)); // a tombstone in the middle
        assert!(q.remove(3, 0, c)); // the back goes, and the tombstone behind it
        assert!(q.remove(1, 0, a));
        assert_eq!((q.best(), q.len()), (None, 0));
        assert_eq!(q.queues[0].span(), 0, "no tombstone is left");
        // Tickets keep counting: an old one never names a new entry.
        let d = q.push(1, 0);
        assert!(!q.remove(1, 0, a));
        assert!(q.remove(1, 0, d));
    }

    #[test]
    fn best_spans_every_word_of_the_bit_set() {
        let mut q = ActiveQueues::new(256);
        for (id, p) in [(1, 255), (2, 130), (3, 64), (4, 63)] {
            q.push(id, p);
        }
        assert!(q.has_better_than(64) && !q.has_better_than(63));
        let mut order = vec![];
        while let Some(p) = q.best() {
            order.push((p, q.pop(p).unwrap()));
        }
        assert_eq!(order, [(63, 4), (64, 3), (130, 2), (255, 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn tickets_survive_the_counter_wrapping() {
        let mut q = ActiveQueues::new(1);
        q.queues[0].head = u32::MAX - 2;
        q.queues[0].tail = u32::MAX - 2;
        let tickets: Vec<u32> = (0..6).map(|id| q.push(id, 0)).collect();
        assert_eq!(tickets[3], 0);
        assert!(q.remove(4, 0, tickets[4]));
        assert_eq!(q.pop(0), Some(0));
        assert!(q.remove(2, 0, tickets[2]));
        let order: Vec<u32> = std::iter::from_fn(|| q.pop(0)).collect();
        assert_eq!(order, [1, 3, 5]);
    }

    #[test]
    fn a_pass_takes_only_what_was_queued_when_it_began() {
        let mut q = ActiveQueues::new(1);
        q.push(1, 0);
        q.push(2, 0);
        let t3 = q.push(3, 0);
        let end = q.end_ticket(0);
        assert_eq!(q.pop_before(0, end), Some(1));
        assert_eq!(q.pop_before(0, end), Some(2));
        q.push(2, 0); // activated again by its own callback: the next pass's
        assert_eq!(q.pop_before(0, end), Some(3));
        assert_eq!(q.pop_before(0, end), None);
        assert_eq!(q.len(), 1);
        // The corner: the last entry deleted, and its ticket reused by a push, which runs in
        // its place; still no more than was queued when the pass began.
        let end = q.end_ticket(0);
        assert!(q.remove(2, 0, t3 + 1)); // the pass's only entry, deleted
        q.push(6, 0); // takes its ticket
        q.push(7, 0);
        assert_eq!(q.pop_before(0, end), Some(6));
        assert_eq!(q.pop_before(0, end), None);
        assert_eq!(q.pop(0), Some(7));
        assert!(q.is_empty());
        q.check().unwrap();
        // Across the wrap of the ticket counter.
        q.queues[0].head = u32::MAX - 2;
        q.queues[0].tail = u32::MAX - 2;
        for id in 0..5 {
            q.push(id, 0);
        }
        let end = q.end_ticket(0);
        q.push(9, 0);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop_before(0, end)).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(q.pop(0), Some(9));
        q.check().unwrap();
    }

    #[test]
    fn matches_a_vecdeque_model() {
        use std::collections::hash_map::{Entry, HashMap};
        let mut rng = crate::test_rng::Rng(0x1234_5678_9abc_def1);
        let mut rnd = move || rng.next();
        let mut q = ActiveQueues::new(3);
        let mut model: Vec<VecDeque<u32>> = vec![VecDeque::new(); 3];
        // What the base keeps in each slot: the queued event's priority and ticket.
        let mut kept: HashMap<u32, (u16, u32)> = HashMap::new();
        for _ in 0..if cfg!(miri) { 2_000 } else { 20_000 } {
            let id = (rnd() % 32) as u32;
            match rnd() % 3 {
                0 => {
                    if let Entry::Vacant(slot) = kept.entry(id) {
                        let p = (rnd() % 3) as u16;
                        slot.insert((p, q.push(id, p)));
                        model[p as usize].push_back(id);
                    }
                }
                1 => {
                    let was = model.iter_mut().any(|m| {
                        m.iter()
                            .position(|&x| x == id)
                            .map(|i| m.remove(i))
                            .is_some()
                    });
                    let (p, t) = kept.remove(&id).unwrap_or((0, 0));
                    assert_eq!(q.remove(id, p, t), was);
                }
                _ => {
                    let best = model.iter().position(|m| !m.is_empty());
                    assert_eq!(q.best(), best.map(|b| b as u16));
                    if let Some(b) = best {
                        let id = q.pop(b as u16);
                        assert_eq!(id, model[b].pop_front());
                        kept.remove(&id.unwrap());
                    }
                }
            }
            assert_eq!(q.len(), model.iter().map(|m| m.len()).sum::<usize>());
            // Each queue counts its live entries, and one without any holds no tombstones.
            for (queue, m) in q.queues.iter().zip(&model) {
                assert_eq!(queue.live as usize, m.len());
                assert!(queue.live > 0 || queue.span() == 0);
            }
        }
    }
}
