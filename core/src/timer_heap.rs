//! A 4-ary min-heap of deadlines with stored positions (libev's timer heap).
//!
//! Each entry is 16 bytes, `(deadline, seq, id)`: `deadline` in nanoseconds on the base's
//! monotonic clock, `seq` the arming number `Timers` took for it from the counter it shares
//! with the ring and the queues, and `id` the event's slot (or, in `Timers`' `heads`, a
//! queue's number). Ordering by `(deadline, seq)` — one 128-bit comparison — makes timers
//! with equal deadlines fire in the order they were armed, which libevent does not promise
//! and we do. When the counter runs out (after 4 billion armings) `Timers` renumbers every
//! key by rank, which keeps every comparison, and so the heap, unchanged. `pos[id]` is the entry's
//! index in `heap`, so removing or rescheduling an event is O(log n) without a search.
//!
//! A 4-ary heap is shallower than a binary one, and four children are 64 contiguous bytes:
//! the entries are stored three places along in an array of 64-byte-aligned lines (libev's
//! `HEAP0` offset), so the children of entry `k` are exactly line `k + 1` — one cache line
//! per level on the way down, never two.
//! Taking the earliest timer moves the hole left at the root down to a leaf, always choosing
//! the earliest child, and only then sifts the last entry up from there (Floyd's method): the
//! last entry usually belongs near the bottom, so this costs about one comparison per level
//! instead of two.

use crate::clock::TimerKey as Key;
use crate::event::cover;

const NONE: u32 = u32::MAX;
const ARITY: usize = 4;

#[derive(Copy, Clone, Debug)]
#[repr(C)]
struct Entry {
    /// `seq << 32 | id`: the low half of the key, and the id.
    seq_id: u64,
    deadline: u64,
}

impl Entry {
    #[inline(always)]
    fn new(deadline: u64, seq: u32, id: u32) -> Self {
        Entry {
            seq_id: (u64::from(seq) << 32) | u64::from(id),
            deadline,
        }
    }

    /// `(deadline, seq)` as one number (the id in the low bits never decides: seqs differ).
    #[inline(always)]
    fn key(&self) -> u128 {
        (u128::from(self.deadline) << 64) | u128::from(self.seq_id)
    }

    #[inline(always)]
    fn id(&self) -> u32 {
        self.seq_id as u32
    }

    #[inline(always)]
    fn with_seq(self, seq: u32) -> Self {
        Entry::new(self.deadline, seq, self.id())
    }

    #[inline(always)]
    fn to_key(self) -> Key {
        Key {
            deadline: self.deadline,
            seq: (self.seq_id >> 32) as u32,
        }
    }
}

/// Four entries on one cache line.
#[derive(Copy, Clone, Debug)]
#[repr(C, align(64))]
struct Line([Entry; ARITY]);

// The unchecked accessors treat the lines as one array of entries.
const _: () = assert!(std::mem::size_of::<Line>() == ARITY * std::mem::size_of::<Entry>());

/// Where entry 0 sits in the flat array of lines: the children of entry `k` (entries
/// `4k + 1 ..= 4k + 4`) are then at flat `4(k + 1) ..`, the whole of line `k + 1`.
const OFFSET: usize = ARITY - 1;

const FILLER: Entry = Entry {
    seq_id: 0,
    deadline: u64::MAX,
};

/// The heap's entries by position, stored along aligned lines (see the module note).
#[derive(Debug, Default)]
struct Entries {
    lines: Vec<Line>,
    len: usize,
}

impl Entries {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn first(&self) -> Option<&Entry> {
        (self.len > 0).then(|| &self.lines[0].0[OFFSET])
    }

    #[inline]
    fn push(&mut self, e: Entry) {
        let flat = self.len + OFFSET;
        if flat / ARITY == self.lines.len() {
            self.lines.push(Line([FILLER; ARITY]));
        }
        self.lines[flat / ARITY].0[flat % ARITY] = e;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        Some(self[self.len])
    }

    /// The children of entry `at` (up to four), and the position of the first.
    #[inline(always)]
    fn children(&self, at: usize) -> (&[Entry], usize) {
        let first = at * ARITY + 1;
        if first >= self.len {
            return (&[], first);
        }
        // SAFETY: entry `first` is below `len`, and it is the first of line `at + 1`
        // (flat `first + OFFSET = 4 (at + 1)`), which `push` made.
        let line = unsafe { &self.lines.get_unchecked(at + 1).0 };
        let n = (self.len - first).min(ARITY);
        (&line[..n], first)
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        (0..self.len).map(move |k| &self[k])
    }

    /// Entry `k` without a bounds check.
    ///
    /// # Safety
    ///
    /// `k < self.len()` (then line `(k + OFFSET) / ARITY` exists: `push` made it).
    #[inline(always)]
    unsafe fn get_unchecked(&self, k: usize) -> Entry {
        debug_assert!(k < self.len);
        // SAFETY: the caller's promise; the lines are one contiguous run of entries (`Line`
        // is `repr(C)`, 64 bytes of four 16-byte entries, no padding), covering every entry
        // below `len`.
        unsafe { *self.lines.as_ptr().cast::<Entry>().add(k + OFFSET) }
    }

    /// Overwrite entry `k` without a bounds check.
    ///
    /// # Safety
    ///
    /// `k < self.len()`.
    #[inline(always)]
    unsafe fn set_unchecked(&mut self, k: usize, e: Entry) {
        debug_assert!(k < self.len);
        // SAFETY: as in `get_unchecked`.
        unsafe { *self.lines.as_mut_ptr().cast::<Entry>().add(k + OFFSET) = e }
    }
}

impl std::ops::Index<usize> for Entries {
    type Output = Entry;

    #[inline(always)]
    fn index(&self, k: usize) -> &Entry {
        let flat = k + OFFSET;
        &self.lines[flat / ARITY].0[flat % ARITY]
    }
}

impl std::ops::IndexMut<usize> for Entries {
    #[inline(always)]
    fn index_mut(&mut self, k: usize) -> &mut Entry {
        let flat = k + OFFSET;
        &mut self.lines[flat / ARITY].0[flat % ARITY]
    }
}

/// The index of the earliest of four siblings, compared as a tournament without a loop.
#[inline(always)]
fn earliest4(k: &[Entry; 4]) -> usize {
    let (i, ki) = if k[1].key() < k[0].key() {
        (1, k[1].key())
    } else {
        (0, k[0].key())
    };
    let (j, kj) = if k[3].key() < k[2].key() {
        (3, k[3].key())
    } else {
        (2, k[2].key())
    };
    if kj < ki {
        j
    } else {
        i
    }
}

/// The index of the earliest entry among `kids` (one to three siblings: the heap's last
/// parent).
#[inline(never)]
fn earliest(kids: &[Entry]) -> usize {
    let mut best = 0;
    for (i, k) in kids.iter().enumerate().skip(1) {
        if k.key() < kids[best].key() {
            best = i;
        }
    }
    best
}

/// The earliest child of `at`, if it has children.
#[inline(always)]
fn earliest_child(heap: &Entries, at: usize) -> Option<usize> {
    let first = at * ARITY + 1;
    if first + ARITY <= heap.len {
        // SAFETY: entry `first` is below `len`, and it is the first of line `at + 1` (flat
        // `first + OFFSET = 4 (at + 1)`), which `push` made.
        let line = unsafe { &heap.lines.get_unchecked(at + 1).0 };
        Some(first + earliest4(line))
    } else if first < heap.len {
        let (kids, first) = heap.children(at);
        Some(first + earliest(kids))
    } else {
        None
    }
}

/// Deadlines of events, earliest first, equal deadlines in scheduling order.
#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: Entries,
    pos: Vec<u32>,
    /// The heap's own arming numbers, for its tests; the base's come from `timers`.
    #[cfg(test)]
    next_seq: u32,
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
    #[cfg(test)]
    pub fn peek(&self) -> Option<(u32, u64)> {
        self.heap.first().map(|e| (e.id(), e.deadline))
    }

    /// The earliest timer's key and id.
    #[inline]
    pub(crate) fn peek_key(&self) -> Option<(Key, u32)> {
        self.heap.first().map(|e| (e.to_key(), e.id()))
    }

    /// The key of `id`, if scheduled.
    pub(crate) fn key(&self, id: u32) -> Option<Key> {
        match self.pos.get(id as usize) {
            Some(&p) if p != NONE => Some(self.heap[p as usize].to_key()),
            _ => None,
        }
    }

    /// Every scheduled key, in no order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.heap.iter().map(|e| e.to_key())
    }

    /// Give every entry the arming number `f(key)`; `f` must keep the keys' order.
    pub(crate) fn map_seqs(&mut self, f: impl Fn(Key) -> u32) {
        for k in 0..self.heap.len() {
            let e = self.heap[k];
            self.heap[k] = e.with_seq(f(e.to_key()));
        }
    }

    /// Check the heap's invariants: every entry sorts after its parent, and `pos` points
    /// each scheduled id at its entry and nothing else. Called by the registry's `verify`.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self) -> Result<(), String> {
        for (i, e) in self.heap.iter().enumerate().skip(1) {
            let parent = &self.heap[(i - 1) / ARITY];
            if parent.key() > e.key() {
                return Err(format!("timer heap: entry {i} sorts before its parent"));
            }
        }
        for (i, e) in self.heap.iter().enumerate() {
            if self.pos.get(e.id() as usize) != Some(&(i as u32)) {
                return Err(format!("timer heap: pos of timer {} is not {i}", e.id()));
            }
        }
        let positioned = self.pos.iter().filter(|&&p| p != NONE).count();
        if positioned != self.heap.len() {
            return Err(format!(
                "timer heap: {positioned} positions for {} entries",
                self.heap.len()
            ));
        }
        Ok(())
    }

    /// Schedule `id` at `deadline`, replacing its previous deadline if it had one. It then
    /// sorts after every timer already scheduled at the same deadline.
    #[cfg(test)]
    pub fn schedule(&mut self, id: u32, deadline: u64) {
        if self.next_seq == u32::MAX {
            self.renumber();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.schedule_key(id, Key { deadline, seq });
    }

    /// Schedule `id` with `key`, replacing its previous key if it had one.
    #[inline]
    pub(crate) fn schedule_key(&mut self, id: u32, key: Key) {
        let Key { deadline, seq } = key;
        let idx = id as usize;
        if idx >= self.pos.len() {
            cover(&mut self.pos, idx, NONE);
        }
        let p = self.pos[idx];
        let entry = Entry::new(deadline, seq, id);
        if p == NONE {
            self.heap.push(entry);
            self.sift_up(self.heap.len() - 1, entry);
        } else {
            let at = p as usize;
            // A later key (the usual re-arm) can only move down, an earlier one only up.
            if entry.key() < self.heap[at].key() {
                self.sift_up(at, entry);
            } else {
                self.sift_down(at, entry);
            }
        }
    }

    /// Schedule `id`, which is not scheduled, with `key`.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32, key: Key) {
        let idx = id as usize;
        if idx >= self.pos.len() {
            cover(&mut self.pos, idx, NONE);
        }
        debug_assert_eq!(self.pos[idx], NONE);
        let entry = Entry::new(key.deadline, key.seq, id);
        self.heap.push(entry);
        self.sift_up(self.heap.len() - 1, entry);
    }

    /// Unschedule `id`; returns whether it was scheduled.
    pub fn remove(&mut self, id: u32) -> bool {
        let p = match self.pos.get(id as usize) {
            Some(&p) if p != NONE => p as usize,
            _ => return false,
        };
        self.pos[id as usize] = NONE;
        let Some(last) = self.heap.pop() else {
            return false; // unreachable: a stored position implies an entry
        };
        if p < self.heap.len() {
            // Move the last entry into the hole, then restore order in whichever direction
            // it is out of place.
            if p > 0 && last.key() < self.heap[(p - 1) / ARITY].key() {
                self.sift_up(p, last);
            } else {
                self.sift_down(p, last);
            }
        }
        true
    }

    /// Remove and return the earliest timer if its deadline is at or before `now`.
    #[inline]
    pub fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        let first = *self.heap.first()?;
        if first.deadline > now {
            return None;
        }
        self.pos[first.id() as usize] = NONE;
        let last = self.heap.pop().unwrap_or(first);
        if !self.heap.is_empty() {
            // Floyd: walk the hole down to a leaf along the earliest children, then let the
            // last entry rise from there.
            let mut hole = 0;
            while let Some(child) = earliest_child(&self.heap, hole) {
                // SAFETY: `earliest_child` returns a position below `len`.
                let moved = unsafe { self.heap.get_unchecked(child) };
                // SAFETY: `hole` is `child`'s parent, so below `len` too.
                unsafe { self.place(hole, moved) };
                hole = child;
            }
            self.sift_up(hole, last);
        }
        Some((first.id(), first.deadline))
    }

    /// Put `e` at position `at` and record it in `pos`. The hot loops' one write; unchecked,
    /// as every position they compute is below `len` and every id in the heap has a place in
    /// `pos` (`schedule_key` grows `pos` before an id enters).
    ///
    /// # Safety
    ///
    /// `at < self.heap.len()`, and `e` is an entry of this heap (so `e.id() < pos.len()`).
    #[inline(always)]
    unsafe fn place(&mut self, at: usize, e: Entry) {
        debug_assert!((e.id() as usize) < self.pos.len());
        // SAFETY: the caller's promise.
        unsafe {
            self.heap.set_unchecked(at, e);
            *self.pos.get_unchecked_mut(e.id() as usize) = at as u32;
        }
    }

    /// Put `entry` (an entry of this heap) at `at` or above it, moving later parents down.
    fn sift_up(&mut self, mut at: usize, entry: Entry) {
        assert!(at < self.heap.len() && (entry.id() as usize) < self.pos.len());
        let key = entry.key();
        while at > 0 {
            let parent = (at - 1) / ARITY;
            // SAFETY: `parent < at < len`.
            let p = unsafe { self.heap.get_unchecked(parent) };
            if p.key() <= key {
                break;
            }
            // SAFETY: `at < len`; `p` is an entry of the heap.
            unsafe { self.place(at, p) };
            at = parent;
        }
        // SAFETY: `at` only decreased from a position below `len`; asserted above.
        unsafe { self.place(at, entry) };
    }

    /// Put `entry` (an entry of this heap) at `at` or below it, moving earlier children up.
    fn sift_down(&mut self, mut at: usize, entry: Entry) {
        assert!(at < self.heap.len() && (entry.id() as usize) < self.pos.len());
        let key = entry.key();
        while let Some(child) = earliest_child(&self.heap, at) {
            // SAFETY: `earliest_child` returns a position below `len`.
            let c = unsafe { self.heap.get_unchecked(child) };
            if key <= c.key() {
                break;
            }
            // SAFETY: `at` is `child`'s parent; `c` is an entry of the heap.
            unsafe { self.place(at, c) };
            at = child;
        }
        // SAFETY: `at` is below `len` (it only became children below `len`); asserted above.
        unsafe { self.place(at, entry) };
    }

    /// Renumber `seq` by rank when the counter runs out: relative order, and so the heap,
    /// stays as it was.
    #[cfg(test)]
    fn renumber(&mut self) {
        let mut order: Vec<u32> = (0..self.heap.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.heap[i as usize].key());
        for (rank, &i) in order.iter().enumerate() {
            self.heap[i as usize] = self.heap[i as usize].with_seq(rank as u32);
        }
        self.next_seq = self.heap.len() as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::test_rng::Rng;

    #[test]
    fn the_documented_example() {
        let mut heap = TimerHeap::new();
        heap.schedule(7, 100);
        heap.schedule(3, 50);
        heap.schedule(9, 100);
        assert_eq!(heap.pop_expired(100), Some((3, 50)));
        assert_eq!(heap.pop_expired(100), Some((7, 100)));
        heap.remove(9);
        assert!(heap.is_empty());
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
    fn running_out_of_sequence_numbers_keeps_the_order() {
        let mut h = TimerHeap::new();
        for id in 0..6 {
            h.schedule(id, 10 + u64::from(id % 2));
        }
        h.next_seq = u32::MAX - 2; // as if 4 billion schedules had happened
        for id in 6..12 {
            h.schedule(id, 10 + u64::from(id % 2));
        }
        assert!(h.next_seq < 20, "renumbered by rank");
        let order: Vec<u32> = std::iter::from_fn(|| h.pop_expired(11).map(|e| e.0)).collect();
        assert_eq!(order, [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]);
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
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
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
