//! The internal events: how other threads' commands reach the loop, and what fork renews.
//! Each is an ordinary event of the registry marked `INTERNAL` (priority 0, never keeping the
//! loop alive):
//! * the remote event runs the commands handles sent (see `remote` and `handle`): a READ event
//!   on the wake-up fd, or, when the backend wakes itself, one activated when it says so;
//! * after `fork`, it and the signal event are re-created on fds of the child's own.
//!
//! The signal event itself (reading the self-pipe or signalfd and activating the watchers of
//! each delivered signal) belongs to the registry, whose `add` and `del` of a signal event
//! start and stop it: this module only calls down into the registry, never the other way.

use crate::fd::{AsRawFd, RawFd, NO_FD};
use std::io;

use crate::event::{state, EventId};
use crate::flags::{EventFlags, Fired};
use crate::handle::Handle;
use crate::registry::{signal_callback, Callback, Command, Context, Registry};
use crate::remote::Remote;
use crate::signal::{self, Mechanism};

impl<D> Registry<D> {
    /// The internal event that runs remote commands: a READ event on our wake-up fd, or,
    /// when the backend wakes itself, one the core activates when the backend says so.
    fn add_remote_event(&mut self, fd: Option<RawFd>) -> io::Result<EventId> {
        let run: Callback<D> = Box::new(|ctx, data| run_remote_commands(ctx, data));
        match fd {
            Some(fd) => self.add_internal(fd, run),
            None => {
                let id = self.alloc(NO_FD, EventFlags::empty(), run)?;
                let slot = &mut self.events.slots[id.index as usize];
                slot.set(state::INTERNAL);
                slot.prio = 0;
                Ok(id)
            }
        }
    }

    /// A handle through which other threads reach this base (created on first use, with an
    /// eventfd or pipe the loop watches, or the backend's own waker). See [`Handle`].
    ///
    /// # Errors
    ///
    /// Creating the wake-up fd failed (the fd limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{Base, EventFlags};
    /// let mut base: Base = evloop::new_base()?;
    /// let handle = base.handle()?;
    /// std::thread::spawn(move || handle.loop_exit(None).unwrap()).join().unwrap();
    /// base.run_with(evloop::LoopFlags::NO_EXIT_ON_EMPTY, &mut ())?;
    /// assert!(base.got_exit());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&mut self) -> io::Result<Handle<D>> {
        let shared = match &self.internal.remote {
            Some(remote) => remote.shared.clone(),
            None => {
                let waker = self.backend.waker().transpose()?;
                let remote = Remote::new(waker)?;
                let event = self.add_remote_event(remote.fd())?;
                let shared = remote.shared.clone();
                self.internal.remote = Some(remote);
                self.internal.remote_event = Some(event);
                shared
            }
        };
        Ok(Handle::new(shared))
    }

    /// After fork (`Base::reinit`): re-create the backend's kernel object where it has one,
    /// replace the fds shared with the parent (signal pipe or signalfd, wake-up channel) and
    /// their internal events, and register every fd afresh.
    pub(crate) fn reinit(&mut self) -> io::Result<()> {
        let recreate = self.backend.need_reinit();
        if recreate {
            self.backend.reinit()?;
        }
        self.renew_internal_fds()?;
        if recreate {
            let events = &mut self.events;
            self.io
                .reregister_all(&mut *self.backend, |id| events.settle_detached(id));
            // A backend that delivers signals lost them with its old kernel object.
            if self.internal.signals.mechanism == Mechanism::Backend {
                for signo in 1..signal::NSIG {
                    if !self.internal.signals.watchers[signo as usize].is_empty() {
                        self.backend.add_signal(signo)?;
                    }
                }
            }
        }
        self.report_failed();
        Ok(())
    }

    fn renew_internal_fds(&mut self) -> io::Result<()> {
        if let Some(old) = self.internal.signal_event.take() {
            let _ = self.free(old);
            self.internal.signals.renew()?;
            if let Some(fd) = self.internal.signals.source.as_ref().map(|f| f.as_raw_fd()) {
                self.internal.signal_event = Some(self.add_internal(fd, signal_callback())?);
            }
        }
        if let Some(old) = self.internal.remote_event.take() {
            let _ = self.free(old);
        }
        if let Some(mut remote) = self.internal.remote.take() {
            let waker = self.backend.waker().transpose();
            let renewed = waker.and_then(|w| remote.renew(w));
            let fd = remote.fd();
            self.internal.remote = Some(remote);
            renewed?;
            self.internal.remote_event = Some(self.add_remote_event(fd)?);
        }
        Ok(())
    }
}

/// The remote event's callback: run what other threads sent, in order.
fn run_remote_commands<D>(ctx: &mut Context<'_, D>, data: &mut D) {
    let mut commands = std::mem::take(&mut ctx.internal.remote_buf);
    let mut activations = std::mem::take(&mut ctx.internal.remote_activations);
    if let Some(remote) = ctx.internal.remote.as_ref() {
        remote.take_commands(&mut activations, &mut commands);
    }
    for (id, flags, ncalls) in activations.drain(..) {
        let _ = ctx.activate(id, Fired::of(flags), ncalls); // freed by now: ignored
    }
    ctx.internal.remote_activations = activations;
    for command in commands.drain(..) {
        match command {
            Command::Run(f) => f(ctx, data),
            Command::Exit(after) => {
                ctx.loop_exit(after);
            }
            Command::Break => ctx.loop_break(),
        }
    }
    ctx.internal.remote_buf = commands;
}
