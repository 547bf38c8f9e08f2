//! Cross-thread access to a base: [`Handle`], `Send`, `Sync` and `Clone` whatever the user
//! data is (only `Send` closures over it travel). How a command reaches the loop — the queue,
//! the coalesced wake-up, the fd or backend waker — is the `remote` module's; what the loop
//! does with it is `internal::run_remote_commands`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::event::EventId;
use crate::flags::Fired;
use crate::registry::{Command, Context};
use crate::remote::Shared;

/// Reaches a base from other threads: activate its events, run closures on its thread, stop
/// its loop, wake it.
///
/// # Examples
///
/// ```
/// use evloop::{Base, EventFlags, LoopFlags};
///
/// let mut base: Base<Vec<u32>> = evloop::new_base()?;
/// let handle = base.handle()?;
/// std::thread::spawn(move || {
///     for i in 0..3 {
///         handle.run_in_loop(move |_, seen: &mut Vec<u32>| seen.push(i)).unwrap();
///     }
///     handle.loop_exit(None).unwrap();
/// });
/// let mut seen = Vec::new();
/// base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut seen)?;
/// assert_eq!(seen, [0, 1, 2]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Handle<D> {
    shared: Arc<Shared<Command<D>>>,
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
            .field("alive", &self.shared.is_alive())
            .finish()
    }
}

impl<D> Handle<D> {
    pub(crate) fn new(shared: Arc<Shared<Command<D>>>) -> Self {
        Self { shared }
    }

    fn send(&self, cmd: Command<D>) -> io::Result<()> {
        self.shared.send(cmd)
    }

    /// Activate event `id` with `flags` and `ncalls` on the loop thread (libevent's
    /// cross-thread `event_active`, libuv's `uv_async_send`). Activations of one event that
    /// the loop has not taken yet merge into one: their flags are or'd and their `ncalls`
    /// added (saturating), so the callback runs once for all of them and
    /// [`Context::ncalls`] says how many there were. Memory is one small entry per event
    /// activated, however many calls are made: a thread may activate in a tight loop. An id
    /// that is freed by then is ignored, and so is a prepare, check or idle watcher's, which
    /// cannot be activated (the loop-thread [`Registry::activate`](crate::Registry::activate)
    /// says so with an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{Base, Fired, LoopFlags};
    ///
    /// let mut base: Base<u32> = evloop::new_base()?;
    /// let ev = base.new_user_event(|ctx, calls: &mut u32| *calls += ctx.ncalls())?;
    /// let handle = base.handle()?;
    /// std::thread::spawn(move || {
    ///     for _ in 0..1000 {
    ///         handle.activate(ev, Fired::empty(), 1).unwrap();
    ///     }
    ///     handle.loop_exit(None).unwrap();
    /// })
    /// .join()
    /// .unwrap();
    /// let mut calls = 0;
    /// base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut calls)?;
    /// assert_eq!(calls, 1000); // in one run, or a few
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn activate(&self, id: EventId, fired: Fired, ncalls: u32) -> io::Result<()> {
        self.shared.activate(id, fired.into(), ncalls)
    }

    /// Run `f` on the loop thread, between callbacks, with the loop's context and user data.
    /// Closures from one sender run in the order they were sent.
    ///
    /// Closures are queued without bound: each costs its box and a queue slot until the loop
    /// runs it, so a thread that sends faster than the loop runs them grows memory (to notify
    /// the loop of many things, [`activate`](Self::activate) an event instead: its
    /// activations merge). The loop takes a batch — what was queued when it looked — per
    /// iteration, so timers and I/O still get their turn while a sender floods.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the base is dropped.
    pub fn run_in_loop(
        &self,
        f: impl FnOnce(&mut Context<'_, D>, &mut D) + Send + 'static,
    ) -> io::Result<()> {
        self.send(Command::Run(Box::new(f)))
    }

    /// Ask the loop to exit after `after` (see [`Registry::loop_exit`](crate::Registry::loop_exit)).
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
        self.shared.check_alive()?;
        self.shared.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Waker;
    use crate::fd::{OwnedFd, RawFd};
    use crate::flags::EventFlags;
    use std::sync::atomic::Ordering;

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
            ready: &mut crate::backend::ReadyList,
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
        let (read, write) = crate::signal::wake_pair().unwrap();
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
                    .run_in_loop(move |_, seen: &mut Vec<u32>| seen.push(i))
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
