//! Making events: the constructors of every kind of event — an fd the event owns
//! (`new_owned_event`), a second event on such an fd (`new_event_on`), a raw fd
//! (`new_event`, unsafe), a signal, a timer, an event that only runs when activated — and
//! giving an owned fd back (`free_and_take_fd`). Each checks its arguments and fills a slot
//! through the registry's `make_event`/`alloc`; none of the registry's own code calls them.

use crate::fd::{AsRawFd, OwnedFd, RawFd, NO_FD};
use std::io;
use std::rc::Rc;

use crate::event::EventId;
use crate::flags::{EventFlags, Interest, TimerKind};
use crate::registry::{invalid, Callback, Context, Registry};
use crate::signal;

impl<D> Registry<D> {
    /// Create an event that owns `fd` — an [`OwnedFd`], or anything that converts into one
    /// such as a `TcpStream` or `UnixStream` — and watches it for `interest` (READ, WRITE,
    /// CLOSED, with PERSIST and ET). It is not pending yet: [`add`](Self::add) it. The fd stays
    /// open while the event lives, is closed when the event is [freed](Self::free) (after the
    /// backend forgot it), or is handed back by [`free_and_take_fd`](Self::free_and_take_fd).
    /// In the callback, [`Context::borrow_fd`] lends it for I/O.
    ///
    /// This is the safe way to watch an fd: whatever happens, the fd cannot be closed under
    /// its event, and its number cannot be reused while the event watches it.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `interest` holds none of READ, WRITE and CLOSED. The fd is closed
    /// then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::net::{TcpListener, TcpStream};
    /// use evloop::{Base, Interest};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// server.set_nonblocking(true)?;
    /// let mut base: Base<Vec<u8>> = evloop::new_base()?;
    /// let reader = base.new_owned_event(server, Interest::READ, |ctx, got: &mut Vec<u8>| {
    ///     let mut buf = [0u8; 64];
    ///     let fd = ctx.borrow_fd().expect("an fd event");
    ///     let n = evloop::fd::read(fd, &mut buf).unwrap_or(0);
    ///     got.extend_from_slice(&buf[..n]);
    /// })?;
    /// base.add(reader, None)?;
    /// client.write_all(b"hi")?;
    /// let mut got = Vec::new();
    /// base.run(&mut got)?;
    /// assert_eq!(got, b"hi");
    /// // The socket comes back, still open.
    /// let server = TcpStream::from(base.free_and_take_fd(reader)?);
    /// assert!(server.peer_addr().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_owned_event(
        &mut self,
        fd: impl Into<OwnedFd>,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.make_owned_event(Rc::new(fd.into()), interest, Box::new(callback))
    }

    /// Create another event on the fd that `owner` owns (an event made by
    /// [`new_owned_event`](Self::new_owned_event) or by this method), watching `interest` (READ,
    /// WRITE, CLOSED, with PERSIST and ET): a separate reader and writer on one socket, say,
    /// each with its own callback and timeout. The events share the fd: it stays open while
    /// any of them lives and is closed when the last is freed, so neither can close it under
    /// the other. This is the safe form of a second [`new_event`](Self::new_event) on a raw
    /// fd.
    ///
    /// # Errors
    ///
    /// A freed or foreign `owner`; `InvalidInput` if `owner` owns no fd (a timer, a signal,
    /// or an event made by the unsafe `new_event`), or if `interest` holds none of READ, WRITE
    /// and CLOSED.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use evloop::{Base, Interest};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let _client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// server.set_nonblocking(true)?;
    /// let mut base: Base<Vec<&str>> = evloop::new_base()?;
    /// let reader = base.new_owned_event(server, Interest::READ, |_, log: &mut Vec<&str>| {
    ///     log.push("readable")
    /// })?;
    /// let writer = base.new_event_on(reader, Interest::WRITE, |ctx, log: &mut Vec<&str>| {
    ///     log.push("writable");
    ///     let me = ctx.id();
    ///     ctx.del(me).unwrap();
    /// })?;
    /// base.add(writer, None)?;
    /// base.free(reader)?; // the socket stays open: the writer shares it
    /// let mut log = Vec::new();
    /// base.run(&mut log)?;
    /// assert_eq!(log, ["writable"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_event_on(
        &mut self,
        owner: EventId,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        let owner_idx = self.check(owner)?;
        let shared = match self.events.owned_fd(owner_idx) {
            Some(fd) => Rc::clone(fd),
            None => {
                return Err(invalid(format!(
                    "{owner:?} owns no fd: new_event_on shares the fd of an event made by new_owned_event or new_event_on"
                )))
            }
        };
        self.make_owned_event(shared, interest, Box::new(callback))
    }

    /// An event owning (a share of) `fd`, watching `interest`, which must hold READ, WRITE or
    /// CLOSED.
    fn make_owned_event(
        &mut self,
        fd: Rc<OwnedFd>,
        interest: Interest,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        let raw = fd.as_raw_fd();
        if !interest.intersects(Interest::READ | Interest::WRITE | Interest::CLOSED) {
            return Err(invalid(format!(
                "an event owning fd {raw} watches READ, WRITE or CLOSED, not {interest:?}"
            )));
        }
        let id = self.make_event(raw, interest.into(), callback)?;
        self.events.share_fd(id.index as usize, fd);
        Ok(id)
    }

    /// Free an event made by [`new_owned_event`](Self::new_owned_event) and hand its fd back,
    /// open, instead of closing it.
    ///
    /// # Errors
    ///
    /// A freed or foreign id; `InvalidInput` for an event that owns no fd, or whose fd other
    /// events share (made by [`new_event_on`](Self::new_event_on): free them first). The
    /// event stays then.
    pub fn free_and_take_fd(&mut self, id: EventId) -> io::Result<OwnedFd> {
        let idx = self.check(id)?;
        let shared = match self.events.owned_fd(idx) {
            Some(fd) => Rc::strong_count(fd) - 1,
            None => {
                return Err(invalid(format!(
                    "{id:?} owns no fd (it was not made by new_owned_event)"
                )))
            }
        };
        if shared > 0 {
            return Err(invalid(format!(
                "{id:?} shares its fd with {shared} other event(s) made by new_event_on: free them first"
            )));
        }
        let fd = self.events.take_fd(idx);
        drop(self.free_idx(idx));
        fd.and_then(|fd| Rc::try_unwrap(fd).ok())
            .ok_or_else(|| invalid(format!("{id:?} lost its fd")))
    }

    /// Create an event watching the raw `fd` for `interest` (READ, WRITE, CLOSED, with PERSIST
    /// and ET), not yet pending: [`add`](Self::add) it. This is libevent's `event_new`, for
    /// code that manages its fds itself; [`new_owned_event`](Self::new_owned_event) is the safe
    /// way. (libevent's `event_new` on a signal number is [`new_signal`](Self::new_signal).)
    ///
    /// # Safety
    ///
    /// `fd` must stay open, naming the same file, until the event is [freed](Self::free):
    /// free the event first, then close the fd. (Deleting it is not enough: the registry may
    /// keep a deleted fd's registration until the next wait, and callbacks may borrow the fd
    /// through [`Context::borrow_fd`].) evloop survives a broken promise — the event is
    /// reported once, as READ/WRITE/CLOSED, when the backend learns of the close, and is then
    /// deleted; a new event on the reused number works — but I/O through a borrowed fd would
    /// then reach a closed or unrelated file.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a negative fd with READ, WRITE or CLOSED, or ET without them.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{Base, Interest};
    /// let mut base: Base = evloop::new_base()?;
    /// // An fd event needs an fd: NO_FD (-1 on Unix, INVALID_SOCKET on Windows) is refused.
    /// // SAFETY: nothing is registered (the call fails).
    /// let refused = unsafe { base.new_event(evloop::fd::NO_FD, Interest::READ, |_, _| {}) };
    /// assert!(refused.is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn new_event(
        &mut self,
        fd: RawFd,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.make_event(fd, interest.into(), Box::new(callback))
    }

    /// [`new_event`](Self::new_event) with the callback already boxed.
    ///
    /// # Safety
    ///
    /// As [`new_event`](Self::new_event).
    ///
    /// # Errors
    ///
    /// As [`new_event`](Self::new_event).
    pub unsafe fn new_event_boxed(
        &mut self,
        fd: RawFd,
        interest: Interest,
        callback: Callback<D>,
    ) -> io::Result<EventId> {
        self.make_event(fd, interest.into(), callback)
    }

    /// Create a signal event for `signo` (SIGNAL|PERSIST, libevent's `evsignal_new`). Its
    /// callback runs in the loop, once per wake-up, with [`Context::ncalls`] the number of
    /// deliveries since its last run (ten raises before the loop runs: one run, count 10).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number out of range, SIGKILL or SIGSTOP.
    pub fn new_signal(
        &mut self,
        signo: i32,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        self.make_event(
            signal::fd_of(signo),
            EventFlags::SIGNAL | EventFlags::PERSIST,
            Box::new(callback),
        )
    }

    /// Create a timer event (no fd), one-shot or periodic (`kind`); [`add`](Self::add) it
    /// with its timeout.
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{Base, TimerKind};
    /// let mut base: Base<bool> = evloop::new_base()?;
    /// let t = base.new_timer(TimerKind::OneShot, |_, fired: &mut bool| *fired = true)?;
    /// base.add(t, Some(Duration::from_millis(1)))?;
    /// let mut fired = false;
    /// base.run(&mut fired)?;
    /// assert!(fired);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_timer(
        &mut self,
        kind: TimerKind,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        // No fd and no flag but PERSIST: nothing for `make_event` to check.
        self.alloc(NO_FD, kind.flags(), Box::new(callback))
    }

    /// An event that runs only when activated (libevent's `event_new(base, -1, 0, cb)`,
    /// libev's `ev_async`): on the loop with [`activate`](Self::activate), or from another
    /// thread through a [`Handle`](crate::Handle). It needs no [`add`](Self::add).
    /// Activations before it runs merge into one run, whose [`Context::ncalls`] says how
    /// many there were and [`Context::fired`] the flags of all of them. It does not keep the
    /// loop running by itself, as an event that is not pending does not: a loop that waits
    /// only for other threads runs with [`LoopFlags::NO_EXIT_ON_EMPTY`](crate::LoopFlags).
    ///
    /// # Errors
    ///
    /// Only at the base's limit of events (`OutOfMemory`).
    ///
    /// # Examples
    ///
    /// A worker thread posts results; the loop counts them in one run per wake-up:
    ///
    /// ```
    /// use evloop::{Fired, LoopFlags};
    /// let mut base: evloop::Base<u32> = evloop::new_base()?;
    /// let done = base.new_user_event(|ctx, got: &mut u32| {
    ///     *got += ctx.ncalls();
    ///     if *got == 3 {
    ///         ctx.loop_break();
    ///     }
    /// })?;
    /// let handle = base.handle()?;
    /// let worker = std::thread::spawn(move || {
    ///     for _ in 0..3 {
    ///         handle.activate(done, Fired::empty(), 1).unwrap();
    ///     }
    /// });
    /// let mut got = 0;
    /// base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut got)?;
    /// worker.join().unwrap();
    /// assert_eq!(got, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_user_event(
        &mut self,
        callback: impl FnMut(&mut Context<'_, D>, &mut D) + 'static,
    ) -> io::Result<EventId> {
        // No fd, no flags: it is never watched, only activated.
        self.alloc(NO_FD, EventFlags::empty(), Box::new(callback))
    }
}
