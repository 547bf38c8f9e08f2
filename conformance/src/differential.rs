//! The differential scenario: a seeded random sequence of interest changes and I/O on a set
//! of socket pairs must yield the same readiness trace on the backend under test as on the
//! `polling` crate in level mode, the oracle.

use std::collections::BTreeSet;

use evloop_core::fd::OwnedFd;
use evloop_core::fd::RawFd;
use std::time::Duration;

use evloop_core::{EventId, Interest};
use polling::{Event, Events, PollMode, Poller};

use crate::util::{fill, raw, read_available, socketpair, turn, write_all, Rng, WatchRaw};
use crate::Harness;

const PAIRS: usize = 8;
const STEPS: usize = 400;

/// A step's readiness: (pair index, READ or WRITE) for every watched direction that is ready.
type Trace = BTreeSet<(usize, bool)>;

/// Runs [`STEPS`] random operations for three seeds and compares every step's readiness.
pub fn random_trace_matches_the_polling_oracle(h: &Harness) {
    for seed in [0x5eed_0001u64, 0xdead_beef, 0x1234_5678_9abc] {
        run_seed(h, seed);
    }
}

fn run_seed(h: &Harness, seed: u64) {
    let pairs: Vec<(OwnedFd, OwnedFd)> = (0..PAIRS).map(|_| socketpair()).collect();
    let mut base = h.base::<Trace>();
    // events[i] = (read event, write event) on the watched end `pairs[i].0`.
    let events: Vec<(EventId, EventId)> = pairs
        .iter()
        .enumerate()
        .map(|(i, (w, _))| {
            let mut mk = |flags, is_read| base_event(&mut base, raw(w), flags, i, is_read);
            (
                mk(Interest::READ | Interest::PERSIST, true),
                mk(Interest::WRITE | Interest::PERSIST, false),
            )
        })
        .collect();
    let poller = Poller::new().unwrap();
    for (i, (w, _)) in pairs.iter().enumerate() {
        // SAFETY: each fd is deleted from the poller (dropped with it) before it is closed:
        // `poller` is declared after `pairs`, so it drops first.
        unsafe {
            poller
                .add_with_mode(raw(w), Event::none(i), PollMode::Level)
                .unwrap()
        };
    }
    let mut interest = [(false, false); PAIRS];
    let mut rng = Rng(seed);
    let mut events_buf = Events::new();
    for step in 0..STEPS {
        let i = rng.below(PAIRS as u64) as usize;
        let (watched, peer) = &pairs[i];
        match rng.below(6) {
            0 => interest[i].0 = !interest[i].0,
            1 => interest[i].1 = !interest[i].1,
            2 => write_all(peer, b"data"),
            3 => drop(read_available(watched)),
            4 => drop(fill(watched)),
            _ => drop(read_available(peer)),
        }
        let (r, w) = interest[i];
        for (id, on) in [(events[i].0, r), (events[i].1, w)] {
            let pending = !base.pending(id).unwrap().flags.is_empty();
            if on && !pending {
                base.add(id, None).unwrap();
            } else if !on && pending {
                base.del(id).unwrap();
            }
        }
        let mut ev = Event::none(i);
        ev.readable = r;
        ev.writable = w;
        poller
            .modify_with_mode(watched, ev, PollMode::Level)
            .unwrap();

        let mut ours = Trace::new();
        turn(&mut base, &mut ours);
        events_buf.clear();
        poller.wait(&mut events_buf, Some(Duration::ZERO)).unwrap();
        let mut oracle = Trace::new();
        for e in events_buf.iter() {
            if e.readable && interest[e.key].0 {
                oracle.insert((e.key, true));
            }
            if e.writable && interest[e.key].1 {
                oracle.insert((e.key, false));
            }
        }
        assert_eq!(
            ours, oracle,
            "seed {seed:#x} step {step}: evloop vs polling"
        );
    }
}

fn base_event(
    base: &mut evloop_core::Base<Trace>,
    fd: RawFd,
    flags: Interest,
    i: usize,
    is_read: bool,
) -> EventId {
    base.watch(fd, flags, move |_, trace: &mut Trace| {
        trace.insert((i, is_read));
    })
    .unwrap()
}
