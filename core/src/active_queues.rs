//! Prioritized FIFO queues of active events, as intrusive doubly linked lists.
//!
//! Links live in a side table indexed by event slot (`links[id]`), so pushing, removing an
//! event from the middle (an active event deleted by another callback) and popping are O(1)
//! and never allocate once the table has grown to the number of slots. Priority 0 is the
//! most urgent.

const NONE: u32 = u32::MAX;

#[derive(Copy, Clone, Debug)]
struct Link {
    prev: u32,
    next: u32,
    prio: u16,
    queued: bool,
}

const UNLINKED: Link = Link {
    prev: NONE,
    next: NONE,
    prio: 0,
    queued: false,
};

#[derive(Copy, Clone, Debug)]
struct Queue {
    head: u32,
    tail: u32,
    len: u32,
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
    queues: Vec<Queue>,
    links: Vec<Link>,
    len: usize,
}

impl ActiveQueues {
    /// `priorities` empty queues (at least one).
    pub fn new(priorities: u16) -> Self {
        let n = priorities.max(1) as usize;
        Self {
            queues: vec![
                Queue {
                    head: NONE,
                    tail: NONE,
                    len: 0
                };
                n
            ],
            links: Vec::new(),
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
        self.links.get(id as usize).is_some_and(|l| l.queued)
    }

    /// The most urgent priority with a queued event.
    pub fn best(&self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        self.queues.iter().position(|q| q.len > 0).map(|p| p as u16)
    }

    /// Append `id` to the queue of `prio`. `id` must not be queued and `prio` must be below
    /// [`priorities`](Self::priorities); the base checks both.
    pub fn push(&mut self, id: u32, prio: u16) {
        let idx = id as usize;
        if idx >= self.links.len() {
            self.links.resize(idx + 1, UNLINKED);
        }
        debug_assert!(!self.links[idx].queued);
        let q = &mut self.queues[prio as usize];
        let tail = q.tail;
        self.links[idx] = Link {
            prev: tail,
            next: NONE,
            prio,
            queued: true,
        };
        if tail == NONE {
            q.head = id;
        } else {
            self.links[tail as usize].next = id;
        }
        q.tail = id;
        q.len += 1;
        self.len += 1;
    }

    /// Take `id` out of its queue; returns whether it was queued.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(link) = self.links.get(id as usize).copied().filter(|l| l.queued) else {
            return false;
        };
        let q = &mut self.queues[link.prio as usize];
        if link.prev == NONE {
            q.head = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NONE {
            q.tail = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        q.len -= 1;
        self.len -= 1;
        self.links[id as usize] = UNLINKED;
        true
    }

    /// Remove and return the first event of `prio`'s queue.
    pub fn pop(&mut self, prio: u16) -> Option<u32> {
        let head = self.queues.get(prio as usize)?.head;
        if head == NONE {
            return None;
        }
        self.remove(head);
        Some(head)
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
        for _ in 0..20_000 {
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
