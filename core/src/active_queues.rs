//! Prioritized FIFO queues of active events.
//!
//! Each priority is a vector of `(id, token)` read from a head index: pushing appends,
//! popping advances the head, and a drained vector is reset, so neither allocates once grown.
//! Removing an event from the middle (an active event deleted by another callback) only bumps
//! the event's token in a side table (`state[id]`): its entry goes stale and is skipped when
//! the head reaches it. A vector whose stale entries pile up (events activated and removed
//! again and again between two runs) is compacted, so its size stays bounded. Priority 0 is
//! the most urgent.

#[derive(Copy, Clone, Debug, Default)]
struct State {
    token: u32,
    prio: u16,
    queued: bool,
}

#[derive(Debug, Default)]
struct Fifo {
    items: Vec<(u32, u32)>,
    head: usize,
    live: usize,
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
    queues: Vec<Fifo>,
    state: Vec<State>,
    len: usize,
}

impl ActiveQueues {
    /// `priorities` empty queues (at least one).
    pub fn new(priorities: u16) -> Self {
        let n = priorities.max(1) as usize;
        Self {
            queues: (0..n).map(|_| Fifo::default()).collect(),
            state: Vec::new(),
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
        self.state.get(id as usize).is_some_and(|s| s.queued)
    }

    /// The most urgent priority with a queued event.
    pub fn best(&self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        self.queues
            .iter()
            .position(|q| q.live > 0)
            .map(|p| p as u16)
    }

    /// Whether an event more urgent than `prio` is queued.
    #[inline]
    pub fn has_better_than(&self, prio: u16) -> bool {
        prio > 0 && self.queues[..prio as usize].iter().any(|q| q.live > 0)
    }

    /// Append `id` to the queue of `prio`. `id` must not be queued and `prio` must be below
    /// [`priorities`](Self::priorities); the base checks both.
    #[inline]
    pub fn push(&mut self, id: u32, prio: u16) {
        let idx = id as usize;
        if idx >= self.state.len() {
            self.state.resize(idx + 1, State::default());
        }
        let st = &mut self.state[idx];
        debug_assert!(!st.queued);
        st.token = st.token.wrapping_add(1);
        st.queued = true;
        st.prio = prio;
        let token = st.token;
        let q = &mut self.queues[prio as usize];
        if q.items.len() - q.head > 2 * q.live + 64 {
            let state = &self.state;
            q.items.drain(..q.head);
            q.head = 0;
            q.items.retain(|&(i, t)| {
                state[i as usize].queued && state[i as usize].token == t && i != id
            });
        }
        q.items.push((id, token));
        q.live += 1;
        self.len += 1;
    }

    /// Take `id` out of its queue; returns whether it was queued.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(st) = self.state.get_mut(id as usize).filter(|s| s.queued) else {
            return false;
        };
        st.queued = false;
        st.token = st.token.wrapping_add(1);
        self.queues[st.prio as usize].live -= 1;
        self.len -= 1;
        true
    }

    /// Remove and return the first event of `prio`'s queue.
    #[inline]
    pub fn pop(&mut self, prio: u16) -> Option<u32> {
        let q = self.queues.get_mut(prio as usize)?;
        while let Some(&(id, token)) = q.items.get(q.head) {
            q.head += 1;
            let st = &mut self.state[id as usize];
            if st.queued && st.token == token {
                st.queued = false;
                q.live -= 1;
                self.len -= 1;
                if q.live == 0 {
                    q.items.clear();
                    q.head = 0;
                }
                return Some(id);
            }
        }
        q.items.clear();
        q.head = 0;
        None
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
