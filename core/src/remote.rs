//! Cross-thread access to a base: [`Handle`].
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
//! Commands run on the loop thread between callbacks, in the order each sender pushed them.
//! There is no blocking `del` as in libevent (whose cross-thread `event_del` waits for a
//! running callback and deadlocks under a lock the callback takes, issues #512 and #1311): a
//! closure sent with [`Handle::run`] that deletes an event runs after the callback that is
//! running returns.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use rustix::io::Errno;

use crate::backend::Waker;
use crate::event::{Context, EventId};
use crate::flags::EventFlags;

/// A closure sent to the loop thread.
pub type RemoteFn<D> = Box<dyn FnOnce(&mut Context<'_, D>, &mut D) + Send>;

pub(crate) enum Command<D> {
    Activate(EventId, EventFlags, u32),
    Run(RemoteFn<D>),
    Exit(Option<Duration>),
    Break,
}

pub(crate) struct Shared<D> {
    queue: SegQueue<Command<D>>,
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
pub(crate) struct Remote<D> {
    pub shared: Arc<Shared<D>>,
    pub read: Option<OwnedFd>,
    pub event: Option<EventId>,
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
        crate::signal::nonblocking_pipe()
    }
}

impl<D> Remote<D> {
    pub fn new(waker: Option<Arc<dyn Waker>>) -> io::Result<Self> {
        let (target, read) = wake_target(waker)?;
        let shared = Arc::new(Shared {
            queue: SegQueue::new(),
            pending: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            wake: Mutex::new(Some(target)),
        });
        Ok(Remote {
            shared,
            read,
            event: None,
        })
    }

    /// After fork: a new channel (or the new backend's waker), so the child's wake-ups stay
    /// in the child.
    pub fn renew(&mut self, waker: Option<Arc<dyn Waker>>) -> io::Result<()> {
        let (target, read) = wake_target(waker)?;
        self.read = read;
        *self.shared.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
        self.shared.pending.store(false, Ordering::SeqCst);
        if !self.shared.queue.is_empty() {
            self.shared.wake();
        }
        Ok(())
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.read.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Empty the fd, clear the flag, and take every queued command — in that order. Clearing
    /// the flag before emptying the fd would lose wake-ups: a sender could set the flag and
    /// write just before the drain, the drain would eat its byte, and with the flag still set
    /// no later sender would write again.
    pub fn take_commands(&self, out: &mut Vec<Command<D>>) {
        let mut buf = [0u8; 64];
        while let Some(read) = self.read.as_ref() {
            match rustix::io::read(read, &mut buf) {
                Ok(n) if n == buf.len() => continue,
                Ok(_) | Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
        }
        // A sender that still sees the flag set pushed its command before this store, so
        // the loop below sees the command; one that sees it cleared writes and wakes us again.
        self.shared.pending.store(false, Ordering::SeqCst);
        while let Some(cmd) = self.shared.queue.pop() {
            out.push(cmd);
        }
    }
}

impl<D> Drop for Remote<D> {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::SeqCst);
    }
}

impl<D> Shared<D> {
    fn wake(&self) {
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            // eventfd counts in 8-byte units; a pipe takes any bytes. A full pipe (EAGAIN)
            // means the loop is awake already.
            Some(WakeTarget::Fd(fd)) => {
                let _ = rustix::io::write(fd.as_fd(), &1u64.to_ne_bytes());
            }
            Some(WakeTarget::Backend(waker)) => waker.wake(),
            None => {}
        }
    }
}

/// Reaches a base from other threads: activate its events, run closures on its thread, stop
/// its loop, wake it.
///
/// # Examples
///
/// ```
/// use evloop_core::{Base, EventFlags, LoopFlags};
/// # fn backend() -> Box<dyn evloop_core::Backend> { Box::new(evloop_poll::PollBackend::new()) }
///
/// let mut base: Base<Vec<u32>> = Base::with_backend(backend(), Default::default())?;
/// let handle = base.handle()?;
/// std::thread::spawn(move || {
///     for i in 0..3 {
///         handle.run(move |_, seen: &mut Vec<u32>| seen.push(i)).unwrap();
///     }
///     handle.loop_exit(None).unwrap();
/// });
/// let mut seen = Vec::new();
/// base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut seen)?;
/// assert_eq!(seen, [0, 1, 2]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Handle<D> {
    shared: Arc<Shared<D>>,
}

impl<D> Clone for Handle<D> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<D> std::fmt::Debug for Handle<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("alive", &self.shared.alive.load(Ordering::Relaxed))
            .finish()
    }
}

impl<D> Handle<D> {
    pub(crate) fn new(shared: Arc<Shared<D>>) -> Self {
        Self { shared }
    }

    fn send(&self, cmd: Command<D>) -> io::Result<()> {
        if !self.shared.alive.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the base this handle belongs to was dropped",
            ));
        }
        self.shared.queue.push(cmd);
        self.shared.wake();
        Ok(())
    }

    /// Activate event `id` with `flags` and `ncalls` on the loop thread (libevent's
    /// cross-thread `event_active`). An id that is freed by then is ignored.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn activate(&self, id: EventId, flags: EventFlags, ncalls: u32) -> io::Result<()> {
        self.send(Command::Activate(id, flags, ncalls))
    }

    /// Run `f` on the loop thread, between callbacks, with the loop's context and user data.
    /// Closures from one sender run in the order they were sent.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn run(
        &self,
        f: impl FnOnce(&mut Context<'_, D>, &mut D) + Send + 'static,
    ) -> io::Result<()> {
        self.send(Command::Run(Box::new(f)))
    }

    /// Ask the loop to exit after `after` (see [`Base::loop_exit`](crate::Base::loop_exit)).
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn loop_exit(&self, after: Option<Duration>) -> io::Result<()> {
        self.send(Command::Exit(after))
    }

    /// Ask the loop to stop after the callback running now.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn loop_break(&self) -> io::Result<()> {
        self.send(Command::Break)
    }

    /// Wake the loop from its wait (it goes around once).
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn wake(&self) -> io::Result<()> {
        if !self.shared.alive.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the base this handle belongs to was dropped",
            ));
        }
        self.shared.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::RawFd;

    /// A handle crosses threads whatever the user data is: `D` itself never leaves the loop
    /// thread; only `Send` closures over it travel.
    /// A backend that wakes itself, as kqueue does with EVFILT_USER: its waker writes to a
    /// pipe only the backend reads, and a wait it interrupts reports `push_wake`.
    struct SelfWaking {
        read: OwnedFd,
        write: Arc<OwnedFd>,
        wakes_reported: Arc<std::sync::atomic::AtomicUsize>,
    }
    struct PipeWaker(Arc<OwnedFd>);
    impl Waker for PipeWaker {
        fn wake(&self) {
            let _ = rustix::io::write(&*self.0, b"w");
        }
    }
    impl crate::Backend for SelfWaking {
        fn name(&self) -> &'static str {
            "self-waking"
        }
        fn features(&self) -> crate::Features {
            crate::Features::O1
        }
        fn change(&mut self, fd: RawFd, _: EventFlags, _: EventFlags) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no fds here ({fd})"),
            ))
        }
        fn dispatch(
            &mut self,
            timeout: Option<Duration>,
            ready: &mut crate::ReadyList,
        ) -> io::Result<()> {
            let mut fds = [rustix::event::PollFd::new(
                &self.read,
                rustix::event::PollFlags::IN,
            )];
            let t = crate::backend::wait_timeout(timeout);
            if rustix::event::poll(&mut fds, t.as_ref()).unwrap_or(0) > 0 {
                let mut buf = [0u8; 64];
                let _ = rustix::io::read(&self.read, &mut buf);
                self.wakes_reported.fetch_add(1, Ordering::SeqCst);
                ready.push_wake();
            }
            Ok(())
        }
        fn waker(&mut self) -> Option<io::Result<Arc<dyn Waker>>> {
            Some(Ok(Arc::new(PipeWaker(self.write.clone()))))
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes syscalls through inline assembly")]
    fn a_backend_waker_carries_remote_commands() {
        let (read, write) = crate::signal::nonblocking_pipe().unwrap();
        let reported = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backend = SelfWaking {
            read,
            write: Arc::new(write),
            wakes_reported: reported.clone(),
        };
        let mut base: crate::Base<Vec<u32>> =
            crate::Base::with_backend(Box::new(backend), Default::default()).unwrap();
        let handle = base.handle().unwrap();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                handle
                    .run(move |_, seen: &mut Vec<u32>| seen.push(i))
                    .unwrap();
            }
            handle.loop_exit(None).unwrap();
        });
        let mut seen = Vec::new();
        base.run_with(crate::LoopFlags::NO_EXIT_ON_EMPTY, &mut seen)
            .unwrap();
        sender.join().unwrap();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(
            reported.load(Ordering::SeqCst) >= 1,
            "the backend's waker was not used"
        );
    }

    #[test]
    fn handle_is_send_sync_clone_for_any_user_data() {
        fn send_sync_clone<T: Send + Sync + Clone>() {}
        send_sync_clone::<Handle<std::rc::Rc<std::cell::RefCell<()>>>>();
        send_sync_clone::<Handle<()>>();
    }
}
