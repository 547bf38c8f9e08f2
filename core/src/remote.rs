//! The wake-up channel behind [`Handle`](crate::Handle): a command queue other threads push
//! onto, and the one fd (or backend waker) that wakes the loop. Generic over the command type,
//! so it knows nothing of the registry the commands act on.
//!
//! A base is single-threaded (`!Send`); other threads get a `Handle`, which is `Send`,
//! `Sync` and `Clone`. A handle pushes a command onto a lock-free queue (crossbeam's `SegQueue`: it never
//! fails and never blocks) and wakes the loop through one fd: an eventfd on Linux, a pipe
//! elsewhere — or through the backend itself where it offers a [`Waker`] (kqueue's
//! `EVFILT_USER`). A *pending* flag coalesces wake-ups: only the request that turns it on writes to
//! the fd, so a burst of a million requests costs a handful of writes.
//!
//! On the loop thread an internal event (level-triggered, priority 0, not keeping the loop
//! alive) watches the fd. Its callback empties the fd, then clears the flag, then drains the
//! queue: a request that finds the flag still set pushed its command before the flag was
//! cleared, so this drain sees it; one that finds it cleared writes again and wakes the next
//! iteration. The fd is always
//! drained, on every backend (libevent master registers its eventfd edge-triggered without
//! draining it, and its poll and select backends spin at 100% CPU after one remote wake-up).
//!
//! Activations are not queued one per call: they merge per event in a small table (flags
//! or'd, `ncalls` added), as libevent merges `event_active` on an active event and libuv
//! merges `uv_async_send`, so a thread activating one event in a tight loop costs memory for
//! one entry, and the loop one callback per wake-up, however many calls it made. Other
//! commands (closures, exit, break) are queued without bound — each costs its box until the
//! loop runs it — and one drain takes only what was queued when it began, so a sender that
//! outpaces the loop cannot keep it in one drain: timers and I/O get their turn between
//! batches.
//!
//! Commands run on the loop thread between callbacks, in the order each sender pushed them.
//! There is no blocking `del` as in libevent (whose cross-thread `event_del` waits for a
//! running callback and deadlocks under a lock the callback takes, issues #512 and #1311): a
//! closure sent with [`Handle::run_in_loop`] that deletes an event runs after the callback that is
//! running returns.

use crate::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::collections::hash_map::{Entry, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;
use rustix::io::Errno;

use crate::backend::Waker;
use crate::event::EventId;
use crate::flags::EventFlags;

/// One event's merged activations: its id, the flags or'd together, the calls added up.
pub(crate) type Activation = (EventId, EventFlags, u32);

/// Activations waiting for the loop, one entry per event, in the order of each event's first.
#[derive(Default)]
struct Activations {
    order: Vec<Activation>,
    index: HashMap<EventId, usize>,
}

impl Activations {
    fn add(&mut self, id: EventId, flags: EventFlags, ncalls: u32) {
        match self.index.entry(id) {
            Entry::Occupied(at) => {
                let merged = &mut self.order[*at.get()];
                merged.1 |= flags;
                merged.2 = merged.2.saturating_add(ncalls);
            }
            Entry::Vacant(at) => {
                at.insert(self.order.len());
                self.order.push((id, flags, ncalls));
            }
        }
    }
}

/// What the loop and every handle share: commands of type `C`, and how to wake the loop.
pub(crate) struct Shared<C> {
    activations: Mutex<Activations>,
    queue: SegQueue<C>,
    pending: AtomicBool,
    alive: AtomicBool,
    /// What handles poke: an fd to write to (the eventfd itself, or a pipe's write end), or
    /// the backend's own waker.
    wake: Mutex<Option<WakeTarget>>,
}

enum WakeTarget {
    Fd(OwnedFd),
    Backend(Arc<dyn Waker>),
}

/// The loop side: the shared state and the fd its internal event reads (none when the
/// backend wakes itself).
pub(crate) struct Remote<C> {
    pub shared: Arc<Shared<C>>,
    pub read: Option<OwnedFd>,
}

/// The wake-up target and the fd the loop reads, for a backend waker or a channel of ours.
fn wake_target(waker: Option<Arc<dyn Waker>>) -> io::Result<(WakeTarget, Option<OwnedFd>)> {
    Ok(match waker {
        Some(w) => (WakeTarget::Backend(w), None),
        None => {
            let (read, write) = wake_channel()?;
            (WakeTarget::Fd(write), Some(read))
        }
    })
}

/// A wake-up channel: `(read end, write end)`; for an eventfd both are the same object.
fn wake_channel() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::event::{eventfd, EventfdFlags};
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
            .map_err(|e| crate::backend::os_error("eventfd", e))?;
        let write = fd.try_clone()?;
        Ok((fd, write))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        crate::signal::wake_pair()
    }
}

impl<C> Remote<C> {
    pub fn new(waker: Option<Arc<dyn Waker>>) -> io::Result<Self> {
        let (target, read) = wake_target(waker)?;
        let shared = Arc::new(Shared {
            activations: Mutex::new(Activations::default()),
            queue: SegQueue::new(),
            pending: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            wake: Mutex::new(Some(target)),
        });
        Ok(Remote { shared, read })
    }

    /// After fork: a new channel (or the new backend's waker), so the child's wake-ups stay
    /// in the child.
    pub fn renew(&mut self, waker: Option<Arc<dyn Waker>>) -> io::Result<()> {
        let (target, read) = wake_target(waker)?;
        self.read = read;
        *self.shared.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
        self.shared.pending.store(false, Ordering::SeqCst);
        if !self.shared.queue.is_empty() || !self.shared.lock_activations().order.is_empty() {
            self.shared.wake();
        }
        Ok(())
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.read.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Empty the fd, clear the flag, then take the merged activations and the commands queued
    /// by then — in that order. Clearing the flag before emptying the fd would lose wake-ups:
    /// a sender could set the flag and write just before the drain, the drain would eat its
    /// byte, and with the flag still set no later sender would write again. Commands pushed
    /// while this drain runs are left for the next one: their senders found the flag clear
    /// and woke the loop again.
    pub fn take_commands(&self, activations: &mut Vec<Activation>, out: &mut Vec<C>) {
        let mut buf = [0u8; 64];
        while let Some(read) = self.read.as_ref() {
            match crate::fd::read(read.as_fd(), &mut buf) {
                Ok(n) if n == buf.len() => continue,
                Ok(_) | Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
        }
        // A sender that still sees the flag set pushed its command before this store, so
        // the loop below sees the command; one that sees it cleared writes and wakes us again.
        self.shared.pending.store(false, Ordering::SeqCst);
        {
            let mut waiting = self.shared.lock_activations();
            activations.append(&mut waiting.order);
            waiting.index.clear();
        }
        for _ in 0..self.shared.queue.len() {
            match self.shared.queue.pop() {
                Some(cmd) => out.push(cmd),
                None => break,
            }
        }
    }
}

impl<C> Drop for Remote<C> {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::SeqCst);
    }
}

impl<C> Shared<C> {
    /// Queue `cmd` and wake the loop.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn send(&self, cmd: C) -> io::Result<()> {
        self.check_alive()?;
        self.queue.push(cmd);
        self.wake();
        Ok(())
    }

    /// Merge an activation of `id` into those waiting, and wake the loop.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn activate(&self, id: EventId, flags: EventFlags, ncalls: u32) -> io::Result<()> {
        self.check_alive()?;
        self.lock_activations().add(id, flags, ncalls);
        self.wake();
        Ok(())
    }

    fn lock_activations(&self) -> std::sync::MutexGuard<'_, Activations> {
        // Nothing panics while holding the lock; a poisoned one still holds whole entries.
        self.activations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the base still exists.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// `NotConnected` once the base is dropped.
    pub fn check_alive(&self) -> io::Result<()> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the base this handle belongs to was dropped",
            ))
        }
    }

    /// Wake the loop, unless a wake-up is pending already.
    pub fn wake(&self) {
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            // eventfd counts in 8-byte units; a pipe takes any bytes. A full pipe (EAGAIN)
            // means the loop is awake already.
            Some(WakeTarget::Fd(fd)) => {
                let _ = crate::fd::write(fd.as_fd(), &1u64.to_ne_bytes());
            }
            Some(WakeTarget::Backend(waker)) => waker.wake(),
            None => {}
        }
    }
}
