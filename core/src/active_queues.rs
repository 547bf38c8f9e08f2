//! Prioritized FIFO queues of active events.
//!
//! Each priority is a doubly linked list threaded through a side table indexed by event id
//! (`links[id]` holds the event's neighbours and its priority), so pushing, popping and
//! removing an event from the middle (an active event deleted by another callback) are all
//! O(1) and allocate nothing once the table has grown to the highest id. A bit per priority
//! marks the non-empty queues, so finding the most urgent one is a count of trailing zeros.
//! Priority 0 is the most urgent.

/// No neighbour. Also never a valid index into `links`, so `links.get(NIL)` is `None`.
const NIL: u32 = u32::MAX;
/// `Link::prio` of an event that is not queued.
const IDLE: u16 = u16::MAX;
/// The most priorities a base can have (see `BaseOptions::priorities`).
const MAX_PRIORITIES: usize = 256;

#[derive(Copy, Clone, Debug)]
struct Link {
    prev: u32,
    next: u32,
    prio: u16,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    prio: IDLE,
};

#[derive(Copy, Clone, Debug)]
struct Ends {
    head: u32,
    tail: u32,
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
///
/// # Examples
///
/// ```
/// use evloop_core::ActiveQueues;
/// let mut q = ActiveQueues::new(3);
/// q.push(10, 2);
/// q.push(11, 0);
/// q.push(12, 0);
/// assert_eq!(q.best(), Some(0));
/// assert_eq!(q.pop(0), Some(11));
/// q.remove(12);
/// assert_eq!(q.best(), Some(2));
/// ```
#[derive(Debug)]
pub struct ActiveQueues {
    queues: Vec<Ends>,
    links: Vec<Link>,
    /// Bit `p` is set while priority `p` has a queued event.
    occupied: [u64; MAX_PRIORITIES / 64],
    len: usize,
}

impl ActiveQueues {
    /// `priorities` empty queues (1 to 256; values outside are clamped).
    pub fn new(priorities: u16) -> Self {
        let n = (priorities as usize).clamp(1, MAX_PRIORITIES);
        Self {
            queues: vec![
                Ends {
                    head: NIL,
                    tail: NIL
                };
                n
            ],
            links: Vec::new(),
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

    /// Whether `id` is queued.
    pub fn contains(&self, id: u32) -> bool {
        self.links.get(id as usize).is_some_and(|l| l.prio != IDLE)
    }

    /// The most urgent priority with a queued event.
    #[inline]
    pub fn best(&self) -> Option<u16> {
        self.occupied
            .iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map(|(i, w)| (i * 64) as u16 + w.trailing_zeros() as u16)
    }

    /// Whether an event more urgent than `prio` is queued.
    #[inline]
    pub fn has_better_than(&self, prio: u16) -> bool {
        self.best().is_some_and(|b| b < prio)
    }

    /// Append `id` to the queue of `prio`. `id` must not be queued and `prio` must be below
    /// [`priorities`](Self::priorities); the base checks both.
    #[inline(always)]
    pub fn push(&mut self, id: u32, prio: u16) {
        let idx = id as usize;
        if idx >= self.links.len() {
            self.links.resize(idx + 1, UNLINKED);
        }
        let Self {
            queues,
            links,
            occupied,
            len,
        } = self;
        let q = &mut queues[prio as usize];
        debug_assert_eq!(links[idx].prio, IDLE, "pushed twice");
        links[idx] = Link {
            prev: q.tail,
            next: NIL,
            prio,
        };
        match links.get_mut(q.tail as usize) {
            Some(tail) => tail.next = id,
            None => {
                q.head = id;
                mark(occupied, prio, true);
            }
        }
        q.tail = id;
        *len += 1;
    }

    /// Take `id` out of its queue; returns whether it was queued.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(&link) = self.links.get(id as usize).filter(|l| l.prio != IDLE) else {
            return false;
        };
        self.links[id as usize] = UNLINKED;
        let prio = link.prio;
        if link.prev == NIL {
            self.queues[prio as usize].head = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NIL {
            self.queues[prio as usize].tail = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        if self.queues[prio as usize].head == NIL {
            mark(&mut self.occupied, prio, false);
        }
        self.len -= 1;
        true
    }

    /// Remove and return the first event of `prio`'s queue.
    #[inline]
    pub fn pop(&mut self, prio: u16) -> Option<u32> {
        let Self {
            queues,
            links,
            occupied,
            len,
        } = self;
        let q = queues.get_mut(prio as usize)?;
        let id = q.head;
        let link = std::mem::replace(links.get_mut(id as usize)?, UNLINKED);
        q.head = link.next;
        match links.get_mut(link.next as usize) {
            Some(next) => next.prev = NIL,
            None => {
                q.tail = NIL;
                mark(occupied, prio, false);
            }
        }
        *len -= 1;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn fifo_per_priority_and_removal_from_the_middle() {
        let mut q = ActiveQueues::new(2);
        for id in 0..5 {
            q.push(id, 1);
        }
        q.push(9, 0);
        assert!(q.remove(2));
        assert!(!q.remove(2));
        assert_eq!(q.len(), 5);
        let mut order = vec![];
        while let Some(p) = q.best() {
            order.push(q.pop(p).unwrap());
        }
        assert_eq!(order, [9, 0, 1, 3, 4]);
        assert!(q.is_empty());
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
        assert!(q.is_empty() && !q.contains(1));
    }

    #[test]
    fn matches_a_vecdeque_model() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut q = ActiveQueues::new(3);
        let mut model: Vec<VecDeque<u32>> = vec![VecDeque::new(); 3];
        for _ in 0..if cfg!(miri) { 2_000 } else { 20_000 } {
            let id = (rnd() % 32) as u32;
            match rnd() % 3 {
                0 => {
                    if !q.contains(id) {
                        let p = (rnd() % 3) as u16;
                        q.push(id, p);
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
                    assert_eq!(q.remove(id), was);
                }
                _ => {
                    let best = model.iter().position(|m| !m.is_empty());
                    assert_eq!(q.best(), best.map(|b| b as u16));
                    if let Some(b) = best {
                        assert_eq!(q.pop(b as u16), model[b].pop_front());
                    }
                }
            }
            assert_eq!(q.len(), model.iter().map(|m| m.len()).sum::<usize>());
        }
    }
}
