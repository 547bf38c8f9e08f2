//! Timers due within about a second, in buckets: beside the timer heap, for the short timers
//! outside the common-timeout queues (one-shot ones, mostly) that make most of a loop's timer
//! traffic.
//!
//! Time is cut into buckets of 2^[`SHIFT`] ns (about 16.8 ms): a deadline's bucket is
//! `deadline >> SHIFT`. The ring holds the [`BUCKETS`] buckets after the current one, `cur`,
//! in `buckets[bucket % BUCKETS]`. A timer due in one of them is *appended* to its bucket —
//! O(1), not one comparison — instead of climbing a heap. The current bucket's timers are
//! the *run*: when the run is used up, the next non-empty bucket (found in a 64-bit
//! occupancy mask) is sorted — radix passes over the low bits of the deadline, which are all
//! that differ within a bucket, then arming order among equal deadlines — and becomes the
//! run, taken front to back. Sorting a bucket costs a few passes over it, where a heap costs
//! a walk from root to leaf for every timer.
//!
//! A timer due in the current bucket or before, or after the ring, is not taken: `insert`
//! returns false and the heap has it. `Timers` always takes whichever of heap, ring and
//! queues is earliest, so the order is exactly the heap's: by deadline, then by arming
//! number.
//!
//! A bucket is a list of fixed chunks of [`CHUNK`] timers from a pool the ring shares, so a
//! bucket grows without copying and the ring holds little slack. Removing a timer from a
//! bucket swaps the bucket's last timer into its place (a bucket's order does not matter
//! until it is sorted); removing one from the run leaves a tombstone that taking skips (the
//! run must stay sorted). `loc[id]` says where a timer is: `NOWHERE`, `RUN | index` for
//! entry `index` of the run, or `s << INDEX_BITS | index` for timer `index` of `buckets[s]`.

use crate::clock::TimerKey as Key;
use crate::event::cover;

/// A bucket spans `1 << SHIFT` ns (16.8 ms).
pub const SHIFT: u32 = 24;
/// Buckets after the current one: the ring reaches 64 × 16.8 ms ≈ 1.07 s ahead.
pub const BUCKETS: u64 = 64;

/// Timers per chunk of a bucket (8 KiB); a few in tests, so that they cross chunks often.
const CHUNK: usize = if cfg!(test) { 4 } else { 512 };

const NOWHERE: u32 = u32::MAX;
const RUN: u32 = 1 << 31;
const INDEX_BITS: u32 = 25;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// The id of a timer removed from the run. No event has it: ids are below `MAX_EVENTS`.
const TOMB: u32 = u32::MAX;

/// A timer in the ring: its key and id, 16 bytes.
#[derive(Copy, Clone, Debug, Default)]
struct Item {
    deadline: u64,
    seq: u32,
    id: u32,
}

impl Item {
    #[inline(always)]
    fn key(&self) -> Key {
        Key {
            deadline: self.deadline,
            seq: self.seq,
        }
    }
}

/// One bucket: its chunks in the pool, and how many timers they hold (all chunks full but
/// the last).
#[derive(Debug, Default)]
struct Bucket {
    chunks: Vec<u32>,
    len: usize,
}

/// A chunk of a bucket: a vector made with room for `CHUNK` timers that never holds more,
/// so it never moves; its length is how many it holds (filled as it goes, nothing zeroed).
type Chunk = Vec<Item>;

/// The ring of buckets and the run (see the module note).
#[derive(Debug)]
pub(crate) struct TimerRing {
    buckets: [Bucket; BUCKETS as usize],
    /// The buckets' chunks, and those free for reuse.
    pool: Vec<Chunk>,
    free: Vec<u32>,
    /// Bit `s` is set while `buckets[s]` is not empty.
    occupied: u64,
    /// The current bucket: the run's.
    cur: u64,
    /// The current bucket's timers, sorted; taken from `run_at` on.
    run: Vec<Item>,
    run_at: usize,
    /// The radix sort's second buffer, kept for the next sort.
    scratch: Vec<Item>,
    /// Where each id is (see the module note).
    loc: Vec<u32>,
    /// Timers in the ring (tombstones not counted).
    len: usize,
}

impl Default for TimerRing {
    fn default() -> Self {
        TimerRing {
            buckets: std::array::from_fn(|_| Bucket::default()),
            pool: Vec::new(),
            free: Vec::new(),
            occupied: 0,
            cur: 0,
            run: Vec::new(),
            run_at: 0,
            scratch: Vec::new(),
            loc: Vec::new(),
            len: 0,
        }
    }
}

impl TimerRing {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Take `id`, which is not in the ring, at `key` if its bucket is one of the ring's, and
    /// return whether it did. `now` places an empty ring in time.
    #[inline(always)]
    pub fn insert(&mut self, id: u32, key: Key, now: u64) -> bool {
        if self.len == 0 {
            self.restart(now >> SHIFT);
        }
        let bucket = key.deadline >> SHIFT;
        // Buckets `cur + 1 ..= cur + BUCKETS`; anything else wraps to a large number.
        if bucket.wrapping_sub(self.cur).wrapping_sub(1) >= BUCKETS {
            return false;
        }
        let s = (bucket % BUCKETS) as usize;
        let index = self.buckets[s].len;
        if index > INDEX_MASK as usize {
            return false; // 33 million timers in one bucket: the heap takes the rest
        }
        if index % CHUNK == 0 {
            let chunk = self.take_chunk();
            self.buckets[s].chunks.push(chunk);
        }
        let idx = id as usize;
        if idx >= self.loc.len() {
            cover(&mut self.loc, idx, NOWHERE);
        }
        self.loc[idx] = ((s as u32) << INDEX_BITS) | index as u32;
        let b = &mut self.buckets[s];
        b.len += 1;
        let last = *b.chunks.last().expect("a chunk was added above if need be");
        self.pool[last as usize].push(Item {
            deadline: key.deadline,
            seq: key.seq,
            id,
        });
        self.occupied |= 1 << s;
        self.len += 1;
        true
    }

    /// A chunk for a bucket: a free one, or a new one.
    #[inline(never)]
    fn take_chunk(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.pool.push(Vec::with_capacity(CHUNK));
            (self.pool.len() - 1) as u32
        })
    }

    /// Timer `index` of bucket `s`.
    #[inline(always)]
    fn item(&self, s: usize, index: usize) -> &Item {
        &self.pool[self.buckets[s].chunks[index / CHUNK] as usize][index % CHUNK]
    }

    /// The timers of bucket `s`, chunk by chunk.
    fn bucket_items(&self, s: usize) -> impl Iterator<Item = &[Item]> + '_ {
        let b = &self.buckets[s];
        b.chunks.iter().enumerate().map(move |(k, &c)| {
            let n = (b.len - k * CHUNK).min(CHUNK);
            debug_assert_eq!(self.pool[c as usize].len(), n);
            &self.pool[c as usize][..]
        })
    }

    /// Place the empty ring at bucket `cur`.
    #[cold]
    fn restart(&mut self, cur: u64) {
        debug_assert!(self.len == 0 && self.occupied == 0);
        self.run.clear();
        self.run_at = 0;
        self.cur = cur;
    }

    /// Remove `id`; returns whether the ring had it.
    #[inline]
    pub fn remove(&mut self, id: u32) -> bool {
        let l = match self.loc.get(id as usize) {
            Some(&l) if l != NOWHERE => l,
            _ => return false,
        };
        self.loc[id as usize] = NOWHERE;
        self.len -= 1;
        if l & RUN != 0 {
            self.run[(l & !RUN) as usize].id = TOMB;
            return true;
        }
        // The bucket's last timer takes the hole.
        let (s, index) = ((l >> INDEX_BITS) as usize, (l & INDEX_MASK) as usize);
        let last = self.buckets[s].len - 1;
        let b = &mut self.buckets[s];
        let tail = *b.chunks.last().expect("a bucket with a timer has a chunk") as usize;
        let moved = self.pool[tail]
            .pop()
            .expect("a bucket's last timer is in its last chunk");
        if index != last {
            let chunk = b.chunks[index / CHUNK] as usize;
            self.pool[chunk][index % CHUNK] = moved;
            self.loc[moved.id as usize] = l;
        }
        b.len = last;
        if last % CHUNK == 0 {
            b.chunks.pop();
            self.free.push(tail as u32);
        }
        if last == 0 {
            self.occupied &= !(1 << s);
        }
        true
    }

    /// The key of `id`, if the ring has it.
    pub fn key(&self, id: u32) -> Option<Key> {
        let l = *self.loc.get(id as usize)?;
        if l == NOWHERE {
            None
        } else if l & RUN != 0 {
            Some(self.run[(l & !RUN) as usize].key())
        } else {
            Some(
                self.item((l >> INDEX_BITS) as usize, (l & INDEX_MASK) as usize)
                    .key(),
            )
        }
    }

    /// The earliest deadline, as [`first`](Self::first).
    #[inline(always)]
    pub fn first_deadline(&mut self) -> Option<u64> {
        match self.run.get(self.run_at) {
            Some(item) if item.id != TOMB => Some(item.deadline),
            None if self.occupied == 0 => None,
            _ => self.first().map(|(key, _)| key.deadline),
        }
    }

    /// The earliest timer's key and id; sorts the next bucket when the run is used up.
    #[inline]
    pub fn first(&mut self) -> Option<(Key, u32)> {
        loop {
            while let Some(item) = self.run.get(self.run_at) {
                if item.id != TOMB {
                    return Some((item.key(), item.id));
                }
                self.run_at += 1;
            }
            if self.occupied == 0 || !self.refill() {
                return None;
            }
        }
    }

    /// Remove and return the earliest timer.
    #[inline]
    pub fn pop(&mut self) -> Option<(Key, u32)> {
        let (key, id) = self.first()?;
        self.run_at += 1;
        self.loc[id as usize] = NOWHERE;
        self.len -= 1;
        Some((key, id))
    }

    /// Remove and return the earliest timer as `(id, deadline)` if it is due at `now`. The
    /// usual case, the run's next timer, is a few instructions.
    #[inline(always)]
    pub fn pop_due(&mut self, now: u64) -> Option<(u32, u64)> {
        match self.run.get(self.run_at) {
            Some(&item) if item.id != TOMB => {
                if item.deadline > now {
                    return None;
                }
                self.run_at += 1;
                self.loc[item.id as usize] = NOWHERE;
                self.len -= 1;
                Some((item.id, item.deadline))
            }
            None if self.occupied == 0 => None,
            _ => self.pop_due_slow(now),
        }
    }

    #[inline(never)]
    fn pop_due_slow(&mut self, now: u64) -> Option<(u32, u64)> {
        match self.first()? {
            (key, _) if key.deadline <= now => self.pop().map(|(k, id)| (id, k.deadline)),
            _ => None,
        }
    }

    /// Make the next non-empty bucket the run; false if there is none.
    #[inline(never)]
    fn refill(&mut self) -> bool {
        if self.occupied == 0 {
            return false;
        }
        let from = (self.cur + 1) % BUCKETS;
        let ahead = u64::from(self.occupied.rotate_right(from as u32).trailing_zeros());
        self.cur += 1 + ahead;
        let s = (self.cur % BUCKETS) as usize;
        self.occupied &= !(1 << s);
        // The bucket's timers become the run; its chunks go back to the pool.
        let mut run = std::mem::take(&mut self.run);
        run.clear();
        for items in self.bucket_items(s) {
            run.extend_from_slice(items);
        }
        let b = &mut self.buckets[s];
        b.len = 0;
        for &c in &b.chunks {
            self.pool[c as usize].clear();
        }
        self.free.append(&mut b.chunks);
        sort(&mut run, &mut self.scratch);
        self.run = run;
        for (i, item) in self.run.iter().enumerate() {
            self.loc[item.id as usize] = RUN | i as u32;
        }
        self.run_at = 0;
        true
    }

    /// Every key in the ring, in no order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.live().map(Item::key)
    }

    fn live(&self) -> impl Iterator<Item = &Item> + '_ {
        let run = self.run.get(self.run_at..).unwrap_or(&[]);
        let buckets = (0..self.buckets.len()).flat_map(|s| self.bucket_items(s).flatten());
        run.iter().chain(buckets).filter(|item| item.id != TOMB)
    }

    /// Give every timer the arming number `f(key)`; `f` must keep the keys' order (so the run
    /// stays sorted).
    pub fn map_seqs(&mut self, f: impl Fn(Key) -> u32) {
        let from = self.run_at.min(self.run.len());
        for item in &mut self.run[from..] {
            if item.id != TOMB {
                item.seq = f(item.key());
            }
        }
        for b in &self.buckets {
            for (k, &c) in b.chunks.iter().enumerate() {
                let n = (b.len - k * CHUNK).min(CHUNK);
                debug_assert_eq!(self.pool[c as usize].len(), n);
                for item in &mut self.pool[c as usize] {
                    item.seq = f(item.key());
                }
            }
        }
    }

    /// Check the invariants: each timer in the bucket its deadline names, within the ring;
    /// the occupancy mask right; the run sorted and in the current bucket; `loc` pointing at
    /// every timer and at nothing else; the count right.
    ///
    /// # Errors
    ///
    /// The first broken invariant, described.
    pub fn check(&self) -> Result<(), String> {
        let mut n = 0;
        for (s, b) in self.buckets.iter().enumerate() {
            if (b.len == 0) == (self.occupied & (1 << s) != 0) {
                return Err(format!("timer ring: bucket {s}'s occupancy bit is wrong"));
            }
            if b.chunks.len() != b.len.div_ceil(CHUNK) {
                return Err(format!(
                    "timer ring: bucket {s} has the wrong number of chunks"
                ));
            }
            for (k, &c) in b.chunks.iter().enumerate() {
                if self.pool[c as usize].len() != (b.len - k * CHUNK).min(CHUNK) {
                    return Err(format!("timer ring: bucket {s}'s chunk {k} is not filled"));
                }
            }
            for (i, item) in self.bucket_items(s).flatten().enumerate() {
                let bucket = item.deadline >> SHIFT;
                if bucket <= self.cur || bucket > self.cur + BUCKETS {
                    return Err(format!("timer ring: timer {} is outside the ring", item.id));
                }
                if (bucket % BUCKETS) as usize != s {
                    return Err(format!("timer ring: timer {} is in bucket {s}", item.id));
                }
                if self.loc.get(item.id as usize) != Some(&(((s as u32) << INDEX_BITS) | i as u32))
                {
                    return Err(format!("timer ring: loc of timer {} is wrong", item.id));
                }
                n += 1;
            }
        }
        let mut last = None;
        for (i, item) in self.run.iter().enumerate().skip(self.run_at) {
            if item.id == TOMB {
                continue;
            }
            if item.deadline >> SHIFT != self.cur {
                return Err(format!(
                    "timer ring: timer {} is not in the run's bucket",
                    item.id
                ));
            }
            if last.is_some_and(|k| k > item.key()) {
                return Err(format!("timer ring: the run is out of order at {i}"));
            }
            if self.loc.get(item.id as usize) != Some(&(RUN | i as u32)) {
                return Err(format!("timer ring: loc of timer {} is wrong", item.id));
            }
            last = Some(item.key());
            n += 1;
        }
        let chunks: usize = self.buckets.iter().map(|b| b.chunks.len()).sum();
        if chunks + self.free.len() != self.pool.len() {
            return Err("timer ring: a chunk is lost or used twice".to_string());
        }
        if self.free.iter().any(|&c| !self.pool[c as usize].is_empty()) {
            return Err("timer ring: a free chunk holds timers".to_string());
        }
        let placed = self.loc.iter().filter(|&&l| l != NOWHERE).count();
        if n != self.len || placed != self.len {
            return Err(format!(
                "timer ring: {n} timers and {placed} places for a count of {}",
                self.len
            ));
        }
        Ok(())
    }
}

/// Sort one bucket's timers by key. They share the deadline's bits from `SHIFT` up, so a
/// stable radix sort on the bits below orders them by deadline — two passes of twelve bits
/// for a large bucket, three of eight for a smaller one (where 4096 counters would cost
/// more than the passes they save); runs of equal deadlines are then put in arming order.
/// Small buckets are sorted by comparison.
#[inline(never)]
fn sort(items: &mut Vec<Item>, scratch: &mut Vec<Item>) {
    if items.len() <= 64 {
        items.sort_unstable_by_key(Item::key);
        return;
    }
    if items.len() >= 4096 {
        radix::<4096, 2>(items, scratch);
    } else {
        radix::<256, 3>(items, scratch);
    }
    // Equal deadlines in arming order: they are already unless a removal reordered the
    // bucket, so look first.
    let disordered = items
        .windows(2)
        .any(|w| w[0].deadline == w[1].deadline && w[0].seq > w[1].seq);
    if disordered {
        for run in items.chunk_by_mut(|a, b| a.deadline == b.deadline) {
            run.sort_unstable_by_key(|item| item.seq);
        }
    }
}

/// A stable LSD radix sort of `items` by the low `PASSES × log2(RADIX)` bits of their
/// deadlines (at least `SHIFT`), skipping a pass where every timer has the same digit.
fn radix<const RADIX: usize, const PASSES: usize>(items: &mut Vec<Item>, scratch: &mut Vec<Item>) {
    let bits = RADIX.trailing_zeros();
    debug_assert!(bits * PASSES as u32 >= SHIFT);
    let digit =
        |item: &Item, pass: usize| (item.deadline >> (bits * pass as u32)) as usize & (RADIX - 1);
    let n = items.len();
    let mut counts = [[0u32; RADIX]; PASSES];
    for item in items.iter() {
        for (pass, count) in counts.iter_mut().enumerate() {
            count[digit(item, pass)] += 1;
        }
    }
    // The scratch buffer only grows: it keeps the length of the largest bucket sorted.
    if scratch.len() < n {
        scratch.resize(n, Item::default());
    }
    for (pass, count) in counts.iter_mut().enumerate() {
        if count.contains(&(n as u32)) {
            continue; // every timer has the same digit here
        }
        // The counts become where each digit's timers go.
        let mut sum = 0;
        for c in count.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for item in items.iter() {
            let at = &mut count[digit(item, pass)];
            scratch[*at as usize] = *item;
            *at += 1;
        }
        std::mem::swap(items, scratch);
        items.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    const B: u64 = 1 << SHIFT;

    fn key(deadline: u64, seq: u32) -> Key {
        Key { deadline, seq }
    }

    #[test]
    fn takes_only_the_buckets_after_the_current_one() {
        let mut r = TimerRing::default();
        assert!(
            !r.insert(1, key(10 * B + 5, 1), 10 * B),
            "the current bucket: the heap's"
        );
        assert!(r.insert(2, key(11 * B, 2), 10 * B));
        assert!(
            r.insert(3, key(10 * B + BUCKETS * B, 3), 10 * B),
            "the last bucket"
        );
        assert!(
            !r.insert(4, key(11 * B + BUCKETS * B, 4), 10 * B),
            "past the ring"
        );
        assert!(!r.insert(5, key(3, 5), 10 * B), "the past");
        assert_eq!(r.len(), 2);
        r.check().unwrap();
        assert_eq!(r.pop(), Some((key(11 * B, 2), 2)));
        assert_eq!(r.pop(), Some((key(10 * B + BUCKETS * B, 3), 3)));
        assert_eq!(r.pop(), None);
        r.check().unwrap();
    }

    #[test]
    fn an_empty_ring_moves_to_now() {
        let mut r = TimerRing::default();
        assert!(r.insert(1, key(2 * B, 1), 0));
        assert_eq!(r.pop().map(|(_, id)| id), Some(1));
        assert!(
            r.insert(2, key(1000 * B, 2), 999 * B),
            "the empty ring starts again at now"
        );
        r.check().unwrap();
    }

    #[test]
    fn sorting_orders_by_deadline_then_arming_number() {
        let mut rng = Rng(0x5017);
        for n in [0usize, 1, 5, 64, 65, 300, 4095, 4096, 20_000] {
            let mut items: Vec<Item> = (0..n)
                .map(|i| Item {
                    // Many equal deadlines, and bytes that are equal throughout.
                    deadline: 7 * B + (rng.below(40) as u64) * 0x1_0001,
                    seq: rng.below(1 << 30) as u32,
                    id: i as u32,
                })
                .collect();
            let mut want = items.clone();
            want.sort_by_key(Item::key);
            sort(&mut items, &mut Vec::new());
            let got: Vec<Key> = items.iter().map(Item::key).collect();
            let want: Vec<Key> = want.iter().map(Item::key).collect();
            assert_eq!(got, want, "n = {n}");
        }
    }

    /// Random inserts, removals and pops against a sorted model.
    #[test]
    fn matches_a_sorted_model() {
        let mut rng = Rng(0x2196);
        let mut r = TimerRing::default();
        let mut model = std::collections::BTreeMap::new();
        let mut now = 0u64;
        let mut seq = 0u32;
        for step in 0..30_000 {
            let id = rng.below(500) as u32;
            match rng.below(10) {
                0..=4 => {
                    if let Some(k) = r.key(id) {
                        assert!(r.remove(id));
                        model.remove(&(k, id));
                    }
                    seq += 1;
                    let k = key(now + rng.below(80) as u64 * (B / 3), seq);
                    if r.insert(id, k, now) {
                        model.insert((k, id), ());
                    }
                }
                5..=6 => {
                    let had = r.key(id);
                    assert_eq!(r.remove(id), had.is_some(), "step {step}");
                    if let Some(k) = had {
                        model.remove(&(k, id));
                    }
                }
                _ => {
                    now += rng.below(4) as u64 * B / 2;
                    while let Some((k, _)) = r.first() {
                        if k.deadline > now {
                            break;
                        }
                        let want = *model.keys().next().expect("the model has it");
                        assert_eq!(r.pop(), Some(want), "step {step}");
                        model.remove(&want);
                    }
                }
            }
            assert_eq!(r.len(), model.len());
            if step % 101 == 0 {
                r.check().unwrap();
            }
        }
    }
}
