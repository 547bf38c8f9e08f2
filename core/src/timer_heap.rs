//! A 4-ary min-heap of deadlines with stored positions (libev's timer heap).
//!
//! Each entry is `(deadline, seq, id)`: `deadline` in nanoseconds on the base's monotonic
//! clock, `seq` a counter taken when the entry was (re)scheduled, and `id` the event's slot.
//! Ordering by `(deadline, seq)` makes timers with equal deadlines fire in the order they were
//! scheduled, which libevent does not promise and we do. `pos[id]` is the entry's index in
//! `heap`, so removing or rescheduling an event is O(log n) without a search. A 4-ary heap is
//! shallower than a binary one and keeps the four children in one cache line pair.

const NONE: u32 = u32::MAX;
const ARITY: usize = 4;

#[derive(Copy, Clone, Debug)]
struct Entry {
    deadline: u64,
    seq: u64,
    id: u32,
}

impl Entry {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// Deadlines of events, earliest first, equal deadlines in scheduling order.
///
/// # Examples
///
/// ```
/// use evloop_core::TimerHeap;
/// let mut heap = TimerHeap::new();
/// heap.schedule(7, 100);
/// heap.schedule(3, 50);
/// heap.schedule(9, 100);
/// assert_eq!(heap.pop_expired(100), Some((3, 50)));
/// assert_eq!(heap.pop_expired(100), Some((7, 100)));
/// heap.remove(9);
/// assert!(heap.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: Vec<Entry>,
    pos: Vec<u32>,
    next_seq: u64,
}

impl TimerHeap {
    /// An empty heap.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many timers are scheduled.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The deadline of `id`, if scheduled.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        match self.pos.get(id as usize) {
            Some(&p) if p != NONE => Some(self.heap[p as usize].deadline),
            _ => None,
        }
    }

    /// Whether `id` is scheduled.
    pub fn contains(&self, id: u32) -> bool {
        self.deadline(id).is_some()
    }

    /// The earliest timer as `(id, deadline)`.
    pub fn peek(&self) -> Option<(u32, u64)> {
        self.heap.first().map(|e| (e.id, e.deadline))
    }

    /// Schedule `id` at `deadline`, replacing its previous deadline if it had one. It then
    /// sorts after every timer already scheduled at the same deadline.
    pub fn schedule(&mut self, id: u32, deadline: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let idx = id as usize;
        if idx >= self.pos.len() {
            self.pos.resize(idx + 1, NONE);
        }
        let p = self.pos[idx];
        if p == NONE {
            let at = self.heap.len();
            self.heap.push(Entry { deadline, seq, id });
            self.sift_up(at);
        } else {
            let at = p as usize;
            let old = self.heap[at].key();
            self.heap[at].deadline = deadline;
            self.heap[at].seq = seq;
            if (deadline, seq) < old {
                self.sift_up(at);
            } else {
                self.sift_down(at);
            }
        }
    }

    /// Unschedule `id`; returns whether it was scheduled.
    pub fn remove(&mut self, id: u32) -> bool {
        let p = match self.pos.get(id as usize) {
            Some(&p) if p != NONE => p as usize,
            _ => return false,
        };
        self.pos[id as usize] = NONE;
        let last = self
            .heap
            .pop()
            .expect("a stored position implies a non-empty heap");
        if p < self.heap.len() {
            // Move the last entry into the hole, then restore order in whichever direction
            // it is out of place.
            self.heap[p] = last;
            self.pos[last.id as usize] = p as u32;
            if p > 0 && last.key() < self.heap[(p - 1) / ARITY].key() {
                self.sift_up(p);
            } else {
                self.sift_down(p);
            }
        }
        true
    }

    /// Remove and return the earliest timer if its deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        let first = *self.heap.first()?;
        if first.deadline > now {
            return None;
        }
        self.remove(first.id);
        Some((first.id, first.deadline))
    }

    fn sift_up(&mut self, mut at: usize) {
        let entry = self.heap[at];
        while at > 0 {
            let parent = (at - 1) / ARITY;
            if self.heap[parent].key() <= entry.key() {
                break;
            }
            self.heap[at] = self.heap[parent];
            self.pos[self.heap[at].id as usize] = at as u32;
            at = parent;
        }
        self.heap[at] = entry;
        self.pos[entry.id as usize] = at as u32;
    }

    fn sift_down(&mut self, mut at: usize) {
        let entry = self.heap[at];
        let len = self.heap.len();
        loop {
            let first_child = at * ARITY + 1;
            if first_child >= len {
                break;
            }
            let last_child = (first_child + ARITY).min(len);
            let mut best = first_child;
            for c in first_child + 1..last_child {
                if self.heap[c].key() < self.heap[best].key() {
                    best = c;
                }
            }
            if entry.key() <= self.heap[best].key() {
                break;
            }
            self.heap[at] = self.heap[best];
            self.pos[self.heap[at].id as usize] = at as u32;
            at = best;
        }
        self.heap[at] = entry;
        self.pos[entry.id as usize] = at as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A tiny deterministic generator (xorshift64*), so the model test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn equal_deadlines_fire_in_scheduling_order() {
        let mut h = TimerHeap::new();
        for id in [5, 1, 9, 3, 7] {
            h.schedule(id, 10);
        }
        h.schedule(1, 10); // rescheduling moves it behind the others
        let order: Vec<u32> = std::iter::from_fn(|| h.pop_expired(10).map(|e| e.0)).collect();
        assert_eq!(order, [5, 9, 3, 7, 1]);
    }

    #[test]
    fn not_expired_stays() {
        let mut h = TimerHeap::new();
        h.schedule(0, 20);
        assert_eq!(h.pop_expired(19), None);
        assert_eq!(h.peek(), Some((0, 20)));
        assert_eq!(h.pop_expired(20), Some((0, 20)));
        assert!(!h.remove(0));
    }

    /// Random schedule/reschedule/remove/pop against a BTreeMap keyed like the heap.
    #[test]
    fn matches_a_sorted_model() {
        // Miri runs the same test, smaller: it interprets every instruction.
        let (seeds, ops): (u64, usize) = if cfg!(miri) { (3, 300) } else { (40, 2000) };
        for seed in 1..seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut heap = TimerHeap::new();
            let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
            let mut key_of: Vec<Option<(u64, u64)>> = vec![None; 64];
            let mut seq = 0u64;
            for _ in 0..ops {
                let id = (rng.next() % 64) as u32;
                match rng.next() % 4 {
                    0 | 1 => {
                        let deadline = rng.next() % 50;
                        if let Some(k) = key_of[id as usize].take() {
                            model.remove(&k);
                        }
                        heap.schedule(id, deadline);
                        model.insert((deadline, seq), id);
                        key_of[id as usize] = Some((deadline, seq));
                        seq += 1;
                    }
                    2 => {
                        let was = key_of[id as usize].take();
                        if let Some(k) = was {
                            model.remove(&k);
                        }
                        assert_eq!(heap.remove(id), was.is_some());
                    }
                    _ => {
                        let now = rng.next() % 50;
                        let expected = model
                            .iter()
                            .next()
                            .filter(|(k, _)| k.0 <= now)
                            .map(|(k, &v)| (*k, v));
                        let got = heap.pop_expired(now);
                        assert_eq!(got, expected.map(|(k, v)| (v, k.0)));
                        if let Some((k, v)) = expected {
                            model.remove(&k);
                            key_of[v as usize] = None;
                        }
                    }
                }
                assert_eq!(heap.len(), model.len());
                for (id, k) in key_of.iter().enumerate() {
                    assert_eq!(heap.deadline(id as u32), k.map(|k| k.0));
                }
            }
        }
    }
}
