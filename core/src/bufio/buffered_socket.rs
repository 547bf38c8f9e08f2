//! [`BufferedSocket`]: an fd with an input and an output [`Buffer`] (libevent's bufferevent).
//!
//! The socket reads into `input` when the fd is readable and calls the read callback once at
//! least the low watermark is buffered; it stops reading while `input` holds the high
//! watermark. Bytes written go to `output` and out to the fd as soon as it is writable, one
//! `writev` per wake-up; the write callback runs when `output` drains to the write low
//! watermark. The event callback hears EOF, errors, timeouts and connects, with
//! [`BevEvent::READING`] or [`BevEvent::WRITING`] saying which direction.
//!
//! How it is built: the state sits in an `Rc<RefCell<_>>` held by the socket's internal
//! events (a persistent READ event, a persistent WRITE event, and one activated by hand to run
//! deferred callbacks). The state holds only their ids, so there is no reference cycle: freeing
//! the socket frees the events, and dropping the base drops everything. A user callback gets a
//! [`BevContext`] — the state, already borrowed, and the loop's [`Context`] — so it can use
//! its buffers, write, enable, disable and free the socket, and reach any other event. A
//! [`BufferedSocket`] handle used while its own callback runs queues what it changes, applied
//! in order when the callback returns (`buffered_socket/deferred.rs`); what only reads the
//! socket answers `ResourceBusy` there, rather than panicking.
//!
//! A [`pair`](BufferedSocket::pair) is two sockets without fds whose outputs feed each
//! other's inputs; its callbacks are always deferred to the loop.

use crate::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd, NO_FD};
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use rustix::io::Errno;

use super::buffer::{Buffer, IoOutcome};
use super::BevEvent;
use crate::event::EventId;
use crate::flags::{EventFlags, Fired, Interest};
use crate::registry::Registry;
use crate::registry::{Callback, Context};

mod deferred;
mod filter;
mod rate_limit;
mod resolve;
use deferred::{Control, SocketCell};
pub use filter::{Filter, FilterResult, FlushMode};
use rate_limit::Dir;
pub use rate_limit::{RateLimit, RateLimitGroup};

/// How a buffered socket behaves (libevent's `BEV_OPT_*`).
#[derive(Copy, Clone, Debug)]
pub struct BevOptions {
    /// Close the fd when the socket is freed (default). Otherwise `free` hands it back.
    pub close_on_free: bool,
    /// Run callbacks from the loop, as their own activation, rather than from inside the
    /// I/O handling (or another callback). Always on for pairs.
    pub defer_callbacks: bool,
    /// Socket options set on the fd when the socket is made (before the connect, for
    /// [`BufferedSocket::connect`]); a pair, having no fd, refuses any.
    pub socket: super::SocketOptions,
}

impl Default for BevOptions {
    fn default() -> Self {
        Self {
            close_on_free: true,
            defer_callbacks: false,
            socket: super::SocketOptions::default(),
        }
    }
}

/// A buffered socket's callback: its context and the loop's user data.
pub type BevCallback<D> = Box<dyn FnMut(&mut BevContext<'_, '_, D>, &mut D)>;

/// The most a write callback runs in one dispatch when each run refills an output that went
/// out at once (see `dispatch`).
const WRITE_BURST: u32 = 8;
const MIN_READ: usize = 4096;
const MAX_READ: usize = 64 * 1024;

/// A socket's watermarks (libevent's): the read callback runs once the input holds
/// `read_low` bytes, reading pauses at `read_high`; the write callback runs once the output
/// drains to `write_low`, and `write` refuses what would make more than `write_high` wait.
/// 0 is no limit (and for `read_low`, one byte).
#[derive(Copy, Clone, Debug, Default)]
struct Watermarks {
    read_low: usize,
    read_high: usize,
    write_low: usize,
    write_high: usize,
}

/// A socket's read and write timeouts (`None`: none), counted from the loop's cached time.
#[derive(Copy, Clone, Debug, Default)]
struct Timeouts {
    read: Option<Duration>,
    write: Option<Duration>,
}

/// A connect under way (`pending`) and, once it failed, why (reported to the event callback
/// with ERROR). A connect by host name is `State::resolving` first.
#[derive(Debug, Default)]
struct Connect {
    pending: bool,
    error: Option<io::Error>,
}

/// Which of a socket's three callbacks (an index into [`Callbacks`], checked by the type).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Which {
    Read = 0,
    Write = 1,
    Event = 2,
}

/// A socket's callbacks, by [`Which`]; one is out of its place while it runs (see
/// `invoking`). An array, so that finding one is an index, not a match, on every dispatch.
struct Callbacks<D>([Option<BevCallback<D>>; 3]);

impl<D> Callbacks<D> {
    fn none() -> Self {
        Callbacks([None, None, None])
    }

    fn is_set(&self, which: Which) -> bool {
        self.0[which as usize].is_some()
    }

    fn get(&mut self, which: Which) -> &mut Option<BevCallback<D>> {
        &mut self.0[which as usize]
    }
}

#[derive(Default)]
struct Pending {
    read: bool,
    write: bool,
    events: BevEvent,
    error: Option<io::Error>,
}

type Shared<D> = Rc<SocketCell<D>>;
/// A socket seen from its events' callbacks and its partner or group, without keeping it.
type WeakShared<D> = Weak<SocketCell<D>>;

/// The references to a socket's state held by its own events' callbacks (read, write,
/// deferred): any beyond these are handles a user holds.
const INTERNAL_REFS: usize = 3;

struct State<D> {
    fd: RawFd,
    owned: Option<OwnedFd>,
    input: Buffer,
    output: Buffer,
    read_ev: Option<EventId>,
    write_ev: Option<EventId>,
    defer_ev: Option<EventId>,
    enabled: EventFlags,
    read_armed: bool,
    write_armed: bool,
    /// The last write sent everything the output held: the socket had room a moment ago, so
    /// output added since is written at once even while the write event is armed.
    drained: bool,
    /// When the read and write callbacks run, and how much the buffers may hold.
    marks: Watermarks,
    /// Writes go through `send`/`sendmsg` with `MSG_NOSIGNAL` (until one says ENOTSOCK).
    is_socket: bool,
    /// Bytes asked for by the next read: 4 KiB, doubling while reads fill it (to 64 KiB),
    /// halving when they come back small, so an idle connection holds a small chunk and a
    /// bulk transfer still reads in large ones.
    read_size: usize,
    timeouts: Timeouts,
    /// A connect under way, and how it failed.
    connect: Connect,
    callbacks: Callbacks<D>,
    /// The callback running now (taken out of `callbacks`).
    invoking: Option<Which>,
    pending: Pending,
    defer: bool,
    partner: Option<WeakShared<D>>,
    close_on_free: bool,
    freed: bool,
    /// `free_after_flush` was called: reading stopped, no callbacks run, and the socket is
    /// freed once everything it holds went out (or at an error or the write timeout).
    closing: bool,
    /// The base was dropped while a handle still held the socket: its fd is closed, and
    /// every call answers `NotConnected`.
    base_gone: bool,
    /// TLS between the fd and the buffers (`tls_server`, `tls_client`).
    #[cfg(feature = "tls")]
    tls: Option<Box<super::tls::TlsLayer>>,
    /// The socket under a filtered socket, and the filter between them (`filtered`).
    filter: Option<Box<filter::FilterLayer<D>>>,
    /// Token buckets: the socket's own, its group's (`set_rate_limit`, `RateLimitGroup`).
    rate: Option<Box<rate_limit::RateState<D>>>,
    /// A connect by host name under way (`connect_host`).
    resolving: Option<Box<resolve::Resolving>>,
}

fn busy() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "this buffered socket's own callback is running: use the BevContext it was given",
    )
}

/// Add or delete `ev` so that it is armed exactly when `want`; `armed` tracks which it is.
fn set_armed<D>(
    ops: &mut Registry<D>,
    ev: EventId,
    want: bool,
    armed: &mut bool,
    timeout: Option<Duration>,
) -> io::Result<()> {
    if want != *armed {
        if want {
            ops.add(ev, timeout)?;
        } else {
            ops.del(ev)?;
        }
        *armed = want;
    }
    Ok(())
}

fn freed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "this buffered socket was freed")
}

fn base_gone_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the base of this buffered socket was dropped (and its fd closed with it)",
    )
}

impl<D: 'static> State<D> {
    fn new(fd: Option<OwnedFd>, options: BevOptions) -> Self {
        // Assumed, not asked (a `getsockopt` per connection): a pipe or tty says so with
        // ENOTSOCK on its first send, and is written with `write` from then on.
        let is_socket = fd.is_some();
        State {
            fd: fd.as_ref().map_or(NO_FD, |f| f.as_raw_fd()),
            owned: fd,
            input: Buffer::new(),
            output: Buffer::new(),
            read_ev: None,
            write_ev: None,
            defer_ev: None,
            enabled: EventFlags::WRITE,
            read_armed: false,
            write_armed: false,
            drained: false,
            marks: Watermarks::default(),
            is_socket,
            read_size: MIN_READ,
            timeouts: Timeouts::default(),
            connect: Connect::default(),
            callbacks: Callbacks::none(),
            invoking: None,
            pending: Pending::default(),
            defer: options.defer_callbacks,
            partner: None,
            close_on_free: options.close_on_free,
            freed: false,
            closing: false,
            base_gone: false,
            #[cfg(feature = "tls")]
            tls: None,
            filter: None,
            rate: None,
            resolving: None,
        }
    }

    fn borrowed_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is `owned`'s, or the socket was built over an fd the caller keeps open
        // until free (`close_on_free = false` hands it back then); a closed one only makes the
        // syscall fail.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    fn partner(&self) -> Option<Shared<D>> {
        self.partner.as_ref().and_then(Weak::upgrade)
    }

    /// Arm or disarm the fd events to match what is enabled and buffered.
    fn sync(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        if self.freed {
            return Ok(());
        }
        if self.filter.is_some() {
            return self.filter_sync(ops);
        }
        if self.resolving_host() {
            return Ok(()); // no fd yet; the write timer keeps the loop running
        }
        // A pair's "events" are timers: armed only while a timeout is set.
        let pair = self.fd == NO_FD;
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.tls_sync(ops);
        }
        if let Some(ev) = self.read_ev {
            let want = self.enabled.contains(EventFlags::READ)
                && (self.marks.read_high == 0 || self.input.len() < self.marks.read_high)
                && (!pair || self.timeouts.read.is_some())
                && self.rate_allows(ops, Dir::Read);
            set_armed(ops, ev, want, &mut self.read_armed, self.timeouts.read)?;
        }
        if let Some(ev) = self.write_ev {
            // Write at once instead of waiting for writability: a socket almost always has
            // room, and this saves arming and disarming the write event (two epoll_ctl calls
            // per response). Only what the kernel refuses waits for the write event.
            if !pair
                && (!self.write_armed || self.drained)
                && !self.connect.pending
                && self.enabled.contains(EventFlags::WRITE)
                && !self.output.is_empty()
            {
                self.write_now();
                if self.pending.write || !self.pending.events.is_empty() {
                    self.schedule(ops);
                }
            }
            // A connect in progress is watched while writing is enabled (the default), as
            // in libevent; a write timeout disables writing, so it fires once.
            let watched = !pair || self.timeouts.write.is_some();
            let want = self.enabled.contains(EventFlags::WRITE)
                && (self.connect.pending
                    || (watched && !self.output.is_empty() && self.rate_allows(ops, Dir::Write)));
            set_armed(ops, ev, want, &mut self.write_armed, self.timeouts.write)?;
        }
        if self.partner.is_some() {
            self.pair_exchange(ops);
        }
        Ok(())
    }

    /// Pairs: move our output into the partner's input and pull the partner's output into
    /// ours, as far as the receivers' high watermarks allow, scheduling their callbacks.
    fn pair_exchange(&mut self, ops: &mut Registry<D>) {
        let Some(partner) = self.partner() else {
            return;
        };
        let Ok(mut other) = partner.try_borrow_mut() else {
            return;
        };
        if other.freed {
            return;
        }
        transfer(self, &mut other, ops);
        transfer(&mut other, self, ops);
    }

    /// Whether the callback `which` is set (or running now).
    fn has_callback(&self, which: Which) -> bool {
        self.callbacks.is_set(which) || self.invoking == Some(which)
    }

    /// Whether anyone waits to hear that the output drained: a write callback, or a
    /// `free_after_flush`.
    fn wants_drained(&self) -> bool {
        self.closing || self.has_callback(Which::Write)
    }

    /// Stop reading, keep writing, and free the socket once everything it holds went out;
    /// returns whether that is already so (the caller frees it then).
    fn free_after_flush(&mut self, ops: &mut Registry<D>) -> io::Result<bool> {
        if self.freed {
            return Err(freed_error());
        }
        self.closing = true;
        self.enabled = (self.enabled | EventFlags::WRITE).without(EventFlags::READ);
        self.sync(ops)?;
        if self.unsent() == 0 {
            return Ok(true);
        }
        // The write event (or a pair's reader) moves the rest; the deferred event runs the
        // last check.
        self.schedule(ops);
        Ok(false)
    }

    fn schedule(&mut self, ops: &mut Registry<D>) {
        if let Some(ev) = self.defer_ev {
            let _ = ops.activate(ev, Fired::empty(), 1);
        }
    }

    /// Append to the output and send, without the write high watermark's check (a write
    /// queued from inside a callback was already promised).
    fn write_unbounded(&mut self, ops: &mut Registry<D>, data: &[u8]) -> io::Result<()> {
        if self.freed || self.closing {
            return Err(freed_error());
        }
        self.output.append(data)?;
        self.sync(ops)
    }

    fn write(&mut self, ops: &mut Registry<D>, data: &[u8]) -> io::Result<()> {
        if self.freed {
            return Err(freed_error());
        }
        if self.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!(
                    "fd {}: the socket is closing (free_after_flush): nothing more is written",
                    self.fd
                ),
            ));
        }
        if self.marks.write_high > 0 && self.output.len() + data.len() > self.marks.write_high {
            // The peer is not keeping up: tell the writer instead of growing without limit.
            // Nothing was queued; the caller keeps its bytes and may retry after the write
            // callback says the output drained.
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "output full: {} bytes wait, {} more would pass the limit of {}",
                    self.output.len(),
                    data.len(),
                    self.marks.write_high
                ),
            ));
        }
        self.output.append(data)?;
        self.sync(ops)
    }

    fn set_enabled(
        &mut self,
        ops: &mut Registry<D>,
        flags: EventFlags,
        on: bool,
    ) -> io::Result<()> {
        if self.freed {
            return Err(freed_error());
        }
        let flags = flags & (EventFlags::READ | EventFlags::WRITE);
        if on {
            self.enabled |= flags;
        } else {
            self.enabled = self.enabled.without(flags);
        }
        self.sync(ops)
    }

    fn set_timeouts(
        &mut self,
        ops: &mut Registry<D>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        // A filtered socket's timeouts are those of the socket under, which does the I/O.
        if let Some(layer) = &self.filter {
            let Ok(mut under) = layer.under.try_borrow_mut() else {
                return Err(busy());
            };
            return under.set_timeouts(ops, read, write);
        }
        self.timeouts.read = read;
        self.timeouts.write = write;
        if self.resolving_host() {
            return self.resolve_timeout(ops);
        }
        // Re-arm armed events so the new timeouts (or their absence) take effect.
        for (ev, armed) in [
            (self.read_ev, &mut self.read_armed),
            (self.write_ev, &mut self.write_armed),
        ] {
            if let Some(ev) = ev {
                set_armed(ops, ev, false, armed, None)?;
            }
        }
        self.sync(ops)
    }

    /// Free the internal events and give up the fd (closing it if asked to).
    fn teardown(&mut self, ops: &mut Registry<D>) -> Option<OwnedFd> {
        if self.freed
            && self.read_ev.is_none()
            && self.write_ev.is_none()
            && self.defer_ev.is_none()
        {
            return None;
        }
        self.freed = true;
        // A callback that holds a handle to its own socket would keep the state alive.
        self.callbacks = Callbacks::none();
        for ev in [
            self.read_ev.take(),
            self.write_ev.take(),
            self.defer_ev.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = ops.free(ev);
        }
        if let Some(partner) = self.partner.take().and_then(|w| w.upgrade()) {
            if let Ok(mut other) = partner.try_borrow_mut() {
                other.partner = None;
                other.pending.events |= BevEvent::EOF | BevEvent::READING;
                other.schedule(ops);
            }
        }
        #[cfg(feature = "tls")]
        if let Some(mut tls) = self.tls.take() {
            // close_notify after what the output still holds, one try: freeing a plain
            // socket also drops what the kernel would not take.
            if self.fd != NO_FD {
                let raw = self.fd;
                // SAFETY: as in `borrowed_fd`: the fd is still open here.
                tls.close(&mut self.output, unsafe { BorrowedFd::borrow_raw(raw) });
            }
        }
        self.rate_teardown(ops);
        self.resolve_teardown(ops);
        let fd = self.owned.take().or_else(|| self.filter_teardown(ops));
        if self.close_on_free {
            drop(fd);
            None
        } else {
            fd
        }
    }

    /// Whether nothing can reach the socket any more: no handle outside its own events, and
    /// none of its callbacks can run again — neither direction armed (reading stops at EOF
    /// and on errors, writing once the output is empty), no callback due, no connect under
    /// way, no partner that could write to it. Such a socket is freed by its last dispatch
    /// instead of holding its fd until the base is dropped.
    fn unreachable(&self, rc: &Shared<D>) -> bool {
        Rc::strong_count(rc) <= INTERNAL_REFS
            && !self.freed
            && !self.read_armed
            && !self.write_armed
            && !self.connect.pending
            && !self.pending.read
            && !self.pending.write
            && self.pending.events.is_empty()
            && self.partner().is_none()
            && !self.rate_suspended()
            && self.under_quiet()
    }

    /// Run (or, when deferring, schedule) the callbacks that are due.
    fn dispatch(
        &mut self,
        rc: &Shared<D>,
        ctx: &mut Context<'_, D>,
        data: &mut D,
        from_defer: bool,
    ) {
        if self.resolving.is_some() {
            self.resolve_step(ctx, rc);
        }
        if self.defer && !from_defer {
            if self.pending.read || self.pending.write || !self.pending.events.is_empty() {
                self.schedule(ctx);
            }
            let _ = self.sync(ctx);
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        if self.closing {
            // No callbacks after `free_after_flush`: free once all went out, or at once on an
            // error or a timeout (the write timeout bounds the wait).
            let fatal = BevEvent::ERROR | BevEvent::TIMEOUT | BevEvent::EOF;
            if self.unsent() == 0 || pending.events.intersects(fatal) {
                self.teardown(ctx);
            } else {
                let _ = self.sync(ctx);
            }
            return;
        }
        // Bytes that came with the end of file are read even though reading just stopped.
        if pending.read
            && (self.enabled.contains(EventFlags::READ) || pending.events.contains(BevEvent::EOF))
        {
            self.invoke(rc, ctx, data, Which::Read, BevEvent::READING, None);
        }
        if pending.write && !self.freed {
            self.invoke(rc, ctx, data, Which::Write, BevEvent::WRITING, None);
        }
        if !pending.events.is_empty() && !self.freed {
            self.invoke(rc, ctx, data, Which::Event, pending.events, pending.error);
        }
        if !self.freed {
            let _ = self.sync(ctx);
        }
        // A write callback that refilled the output, which went out at once, is due again:
        // run it here a few times (libuv's write callbacks chain the same way) instead of
        // paying an iteration — a zero-timeout poll — for each; after WRITE_BURST runs the
        // rest waits for the next iteration, so a busy writer still cannot hold the loop.
        let mut runs = 1;
        while runs < WRITE_BURST
            && pending.write
            && self.pending.write
            && !self.pending.read
            && self.pending.events.is_empty()
            && !self.freed
            && !self.closing
        {
            self.pending.write = false;
            self.invoke(rc, ctx, data, Which::Write, BevEvent::WRITING, None);
            if !self.freed {
                let _ = self.sync(ctx);
            }
            runs += 1;
        }
        if self.freed || self.unreachable(rc) {
            self.teardown(ctx);
        }
    }

    fn invoke(
        &mut self,
        rc: &Shared<D>,
        ctx: &mut Context<'_, D>,
        data: &mut D,
        which: Which,
        what: BevEvent,
        error: Option<io::Error>,
    ) {
        let Some(mut cb) = self.callbacks.get(which).take() else {
            return;
        };
        let outer = self.invoking.replace(which);
        let mut bctx = BevContext {
            ctx,
            state: self,
            rc,
            what,
            error,
        };
        cb(&mut bctx, data);
        // What handles queued while it ran, before the callback goes back in place (a queued
        // callback replaces it).
        self.settle(ctx, rc);
        self.invoking = outer;
        let slot = self.callbacks.get(which);
        if slot.is_none() && !self.freed {
            *slot = Some(cb);
        }
    }

    /// How many bytes the input may take before its high watermark (`usize::MAX`: none).
    fn input_room(&self) -> usize {
        if self.marks.read_high > 0 {
            self.marks.read_high.saturating_sub(self.input.len())
        } else {
            usize::MAX
        }
    }

    /// Whether a TLS handshake is under way (it needs reading, whatever the user enabled).
    fn handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return !tls.connected;
        }
        false
    }

    /// `flush_with`: a filtered socket runs its filters in `mode`; any other just syncs.
    fn flush_with(
        &mut self,
        ops: &mut Registry<D>,
        dirs: EventFlags,
        mode: FlushMode,
    ) -> io::Result<()> {
        if self.freed {
            return Err(freed_error());
        }
        if self.filter.is_some() {
            return self.filter_flush(ops, dirs, mode);
        }
        self.sync(ops)
    }

    /// While connecting, whichever readiness comes first decides the connect (select reports
    /// a refused socket readable before writable, and a read would consume the error): the
    /// outcome is CONNECTED, or one ERROR carrying `SO_ERROR`. Returns whether it connected.
    fn finish_connect(&mut self) -> bool {
        self.connect.pending = false;
        let error =
            self.connect.error.take().or_else(|| {
                match rustix::net::sockopt::socket_error(self.borrowed_fd()) {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) | Err(e) => Some(io::Error::from(e)),
                }
            });
        match error {
            None => {
                self.resolving = None;
                // Over TLS, CONNECTED waits for the handshake's end.
                #[cfg(feature = "tls")]
                if self.tls.is_some() {
                    return true;
                }
                self.pending.events |= BevEvent::CONNECTED;
                true
            }
            // A connect by name tries the next address first.
            Some(e) if self.connect_failed(&e) => false,
            Some(e) => {
                self.enabled = EventFlags::empty();
                self.pending.events |= BevEvent::ERROR;
                self.pending.error = Some(self.name_connect_error(e));
                false
            }
        }
    }

    fn on_readable(&mut self, fired: EventFlags) {
        if self.connect.pending && fired.intersects(EventFlags::READ) && !self.finish_connect() {
            return;
        }
        if fired.contains(EventFlags::TIMEOUT) && !fired.contains(EventFlags::READ) {
            self.enabled = self.enabled.without(EventFlags::READ);
            self.pending.events |= BevEvent::TIMEOUT | BevEvent::READING;
            return;
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.tls_readable();
        }
        let room = self.input_room();
        let cap = self.rate_cap(Dir::Read);
        if room == 0 || cap == 0 {
            return; // sync stops reading until the input drains or the bucket refills
        }
        let want = self.read_size.min(room).min(cap);
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd` (a separate borrow, so the buffer can be borrowed too).
        let result = self
            .input
            .read_from(unsafe { BorrowedFd::borrow_raw(raw) }, Some(want));
        match result {
            Ok(IoOutcome::Done(n)) => {
                self.rate_spend(Dir::Read, n);
                if n == want && want == self.read_size {
                    self.read_size = (self.read_size * 2).min(MAX_READ);
                } else if n < self.read_size / 4 {
                    self.read_size = (self.read_size / 2).max(MIN_READ);
                }
                if self.input.len() >= self.marks.read_low.max(1) {
                    self.pending.read = true;
                }
            }
            Ok(IoOutcome::WouldBlock | IoOutcome::Interrupted) => {}
            Ok(IoOutcome::Eof) => {
                self.enabled = self.enabled.without(EventFlags::READ);
                self.pending.events |= BevEvent::EOF | BevEvent::READING;
            }
            Err(e) => {
                self.enabled = self.enabled.without(EventFlags::READ);
                self.pending.events |= BevEvent::ERROR | BevEvent::READING;
                self.pending.error = Some(e);
            }
        }
    }

    fn on_writable(&mut self, fired: EventFlags) {
        // Readiness decides a connect; a timeout alone (SO_ERROR is 0 while a connect is in
        // progress) is a write timeout, reported below.
        if self.connect.pending && fired.intersects(EventFlags::WRITE) {
            self.finish_connect();
            return;
        }
        if fired.contains(EventFlags::TIMEOUT) && !fired.contains(EventFlags::WRITE) {
            self.enabled = self.enabled.without(EventFlags::WRITE);
            self.pending.events |= BevEvent::TIMEOUT | BevEvent::WRITING;
            return;
        }
        self.write_now();
    }

    /// One `writev` of the output; a drain to the low watermark makes the write callback due.
    fn write_now(&mut self) {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.tls_write_now();
        }
        let cap = self.rate_cap(Dir::Write);
        if cap == 0 {
            return; // sync waits for the bucket to refill
        }
        let max = (cap != usize::MAX).then_some(cap);
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let mut result = if self.is_socket {
            self.output.send_to(fd, max)
        } else {
            self.output.write_to(fd, max)
        };
        if self.is_socket
            && matches!(&result, Err(e) if e.raw_os_error() == Some(Errno::NOTSOCK.raw_os_error()))
        {
            // A pipe (or a tty): not a socket after all, and `write` does for it.
            self.is_socket = false;
            result = self.output.write_to(fd, max);
        }
        if let Ok(IoOutcome::Done(n)) = result {
            self.rate_spend(Dir::Write, n);
        }
        self.drained = matches!(result, Ok(IoOutcome::Done(_))) && self.output.is_empty();
        match result {
            // Only a write callback cares that the output drained (libevent runs none when
            // none is set); skipping it saves scheduling the deferred run per response.
            Ok(IoOutcome::Done(n))
                if n > 0 && self.output.len() <= self.marks.write_low && self.wants_drained() =>
            {
                self.pending.write = true
            }
            Ok(_) => {}
            Err(e) => {
                self.enabled = self.enabled.without(EventFlags::WRITE);
                self.pending.events |= BevEvent::ERROR | BevEvent::WRITING;
                self.pending.error = Some(e);
            }
        }
    }
}

/// The TLS paths of the state machine: the same events and callbacks, with rustls between
/// the fd and the buffers (see `tls.rs`).
#[cfg(feature = "tls")]
impl<D: 'static> State<D> {
    /// The fd readable: read and decrypt records, send what rustls answers (handshake
    /// messages, an alert), then move plaintext to the input.
    fn tls_readable(&mut self) {
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let (read_cap, write_cap) = (self.rate_cap(Dir::Read), self.rate_cap(Dir::Write));
        let tls = self.tls.as_mut().expect("on the TLS path");
        let received = tls.receive(fd, read_cap);
        // Whatever the records said, send what rustls queued: a handshake reply, or the
        // alert that tells the peer why we give up.
        let sent = tls.send(fd, write_cap);
        if let Ok(n) = received.as_ref() {
            self.rate_spend(Dir::Read, *n);
        }
        if let Ok(n) = sent.as_ref() {
            self.rate_spend(Dir::Write, *n);
        }
        if let Err(e) = received {
            return self.tls_fail(e, BevEvent::READING);
        }
        if let Err(e) = sent {
            return self.tls_fail(e, BevEvent::WRITING);
        }
        self.tls_progress();
    }

    /// Report the handshake's end once, and move decrypted plaintext to the input as far as
    /// the high watermark allows. Also called from `sync`, so plaintext rustls still holds
    /// reaches the input when the user drains it, without waiting for the fd (libevent#690).
    fn tls_progress(&mut self) {
        let room = self.input_room();
        let tls = self.tls.as_mut().expect("on the TLS path");
        if tls.just_connected() {
            self.pending.events |= BevEvent::CONNECTED;
        }
        if !self.enabled.contains(EventFlags::READ) || room == 0 {
            return;
        }
        match tls.pull(&mut self.input, room) {
            Ok(super::tls::Pulled::Bytes(n)) => {
                if n > 0 && self.input.len() >= self.marks.read_low.max(1) {
                    self.pending.read = true;
                }
            }
            Ok(super::tls::Pulled::CloseNotify) => {
                self.enabled = self.enabled.without(EventFlags::READ);
                self.pending.events |= BevEvent::EOF | BevEvent::READING;
            }
            Ok(super::tls::Pulled::Truncated) => {
                let message = if tls.connected {
                    format!(
                        "TLS: the peer closed fd {} without close_notify (the data may be truncated)",
                        self.fd
                    )
                } else {
                    format!(
                        "TLS: the peer closed fd {} before the handshake finished",
                        self.fd
                    )
                };
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, message);
                self.tls_fail(e, BevEvent::READING)
            }
            Err(e) => self.tls_fail(e, BevEvent::READING),
        }
    }

    /// Hand the output's plaintext to rustls and send records until the fd would block; the
    /// write callback is due once the plaintext is all sent (down to the low watermark).
    fn tls_write_now(&mut self) {
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let cap = self.rate_cap(Dir::Write);
        let tls = self.tls.as_mut().expect("on the TLS path");
        let result = tls.flush(&mut self.output, fd, cap);
        match result {
            Ok(sent) => {
                self.rate_spend(Dir::Write, sent);
                let tls = self.tls.as_mut().expect("on the TLS path");
                let drained = self.output.len() <= self.marks.write_low
                    && (self.marks.write_low > 0 || !tls.wants_write());
                // Due after plaintext was taken, or after records went out (those may be all
                // that waited: a flush-then-close waits for exactly them).
                let due = drained && (tls.take_plaintext_sent() | (sent > 0 && tls.connected));
                if due && self.wants_drained() {
                    self.pending.write = true;
                }
            }
            Err(e) => self.tls_fail(e, BevEvent::WRITING),
        }
    }

    /// A TLS or fd error: both directions stop, one ERROR event carries it.
    fn tls_fail(&mut self, e: io::Error, dir: BevEvent) {
        self.enabled = EventFlags::empty();
        self.pending.events |= BevEvent::ERROR | dir;
        if self.pending.error.is_none() {
            self.pending.error = Some(e);
        }
    }

    /// `sync` on the TLS path: arm the read event while rustls wants records (reading is
    /// enabled and the input below its high watermark), the write event while records wait.
    fn tls_sync(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        let before = (self.pending.read, self.pending.write, self.pending.events);
        if !self.connect.pending {
            self.tls_progress();
            if !self.write_armed
                && self.enabled.contains(EventFlags::WRITE)
                && (!self.output.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write()))
            {
                self.tls_write_now();
            }
        }
        if (self.pending.read, self.pending.write, self.pending.events) != before
            && (self.pending.read || self.pending.write || !self.pending.events.is_empty())
        {
            self.schedule(ops);
        }
        let tls = self.tls.as_ref().expect("on the TLS path");
        if let Some(ev) = self.read_ev {
            // A socket closing mid-handshake still reads: the handshake must end before its
            // output can go.
            let handshake = self.closing && !tls.connected;
            let want = (self.enabled.contains(EventFlags::READ) || handshake)
                && (self.marks.read_high == 0 || self.input.len() < self.marks.read_high)
                && (self.connect.pending || (tls.wants_read() && self.rate_allows(ops, Dir::Read)));
            set_armed(ops, ev, want, &mut self.read_armed, self.timeouts.read)?;
        }
        if let Some(ev) = self.write_ev {
            let tls = self.tls.as_ref().expect("on the TLS path");
            let want = self.enabled.contains(EventFlags::WRITE)
                && (self.connect.pending
                    || (tls.wants_write() && self.rate_allows(ops, Dir::Write)));
            set_armed(ops, ev, want, &mut self.write_armed, self.timeouts.write)?;
        }
        Ok(())
    }
}

/// Move bytes from `from.output` to `to.input` within `to`'s high watermark.
/// Pairs: move `from`'s output into `to`'s input, as far as `to` reads (reading enabled, below
/// its high watermark): bytes wait in the writer's output until then, as in libevent, which is
/// what makes watermarks and flow control mean something on pairs. A move restarts both
/// sides' timeouts, as activity on a socket does.
fn transfer<D: 'static>(from: &mut State<D>, to: &mut State<D>, ops: &mut Registry<D>) {
    if from.output.is_empty()
        || !from.enabled.contains(EventFlags::WRITE)
        || !to.enabled.contains(EventFlags::READ)
    {
        return;
    }
    let room = if to.marks.read_high > 0 {
        to.marks.read_high.saturating_sub(to.input.len())
    } else {
        usize::MAX
    };
    let moved = from.output.remove_into(&mut to.input, room).unwrap_or(0);
    if moved == 0 {
        return;
    }
    for (ev, armed, timeout) in [
        (to.read_ev, to.read_armed, to.timeouts.read),
        (from.write_ev, from.write_armed, from.timeouts.write),
    ] {
        if let (Some(ev), true) = (ev, armed) {
            let _ = ops.add(ev, timeout);
        }
    }
    if to.enabled.contains(EventFlags::READ) && to.input.len() >= to.marks.read_low.max(1) {
        to.pending.read = true;
        to.schedule(ops);
    }
    if from.output.len() <= from.marks.write_low {
        from.pending.write = true;
        from.schedule(ops);
    }
}

/// What a buffered socket's callback works with: the socket (buffers, writing, enabling,
/// freeing), why the callback runs, and the loop's [`Context`].
pub struct BevContext<'a, 'b, D> {
    ctx: &'a mut Context<'b, D>,
    state: &'a mut State<D>,
    rc: &'a Shared<D>,
    what: BevEvent,
    error: Option<io::Error>,
}

impl<'b, D> BevContext<'_, 'b, D> {
    /// Why the callback runs: READING or WRITING for the read and write callbacks; for the
    /// event callback what happened (EOF, ERROR, TIMEOUT, CONNECTED) and in which direction
    /// (libevent's `what`; named as [`Context::fired`] is).
    pub fn fired(&self) -> BevEvent {
        self.what
    }

    /// Which directions are enabled (READ, WRITE).
    pub fn enabled(&self) -> Interest {
        Interest::of(self.state.enabled)
    }

    /// The error behind an ERROR event.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The bytes read and not yet consumed.
    pub fn input(&mut self) -> &mut Buffer {
        &mut self.state.input
    }

    /// The bytes waiting to be written. Appending here directly is fine: they go out when
    /// the callback returns.
    pub fn output(&mut self) -> &mut Buffer {
        &mut self.state.output
    }

    /// Both buffers at once, `(input, output)`: an echo moves one into the other.
    pub fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (&mut self.state.input, &mut self.state.output)
    }

    /// The socket's fd (-1 for a pair).
    pub fn fd(&self) -> RawFd {
        self.state.fd
    }

    /// The socket's TLS connection (`None` for a plain socket): negotiated protocol version,
    /// ALPN protocol, cipher suite, peer certificates.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&rustls::Connection> {
        self.state.tls.as_ref().map(|t| &t.conn)
    }

    /// The loop: every event operation, `loop_exit`, `loop_break`.
    pub fn context(&mut self) -> &mut Context<'b, D> {
        self.ctx
    }

    /// A handle to this socket, to keep elsewhere (for use outside its own callbacks).
    pub fn handle(&self) -> BufferedSocket<D> {
        BufferedSocket {
            state: self.rc.clone(),
        }
    }
}

/// The methods that change what the socket does; they may arm a rate limit's timer, whose
/// callback holds the socket, so `D` is `'static` as for [`BufferedSocket`].
impl<D: 'static> BevContext<'_, '_, D> {
    /// Apply what handles to this socket queued while its callback runs, so that they and
    /// the context's own calls take effect in program order.
    fn settle(&mut self) {
        self.state.settle(self.ctx, self.rc);
    }

    /// Carry out `op` now, after what handles queued before it (see `deferred`).
    fn control(&mut self, op: Control<D>) -> io::Result<()> {
        self.settle();
        self.state.apply(self.ctx, self.rc, op)
    }

    /// Replace the read callback, from inside any of this socket's callbacks (libevent's
    /// `bufferevent_setcb` from a callback, as its le-proxy does): the new one is used from
    /// the next time it is due; the running one finishes first.
    pub fn set_read_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Read, Box::new(cb))); // cannot fail
    }

    /// Replace the write callback; see [`set_read_callback`](Self::set_read_callback).
    pub fn set_write_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Write, Box::new(cb))); // cannot fail
    }

    /// Replace the event callback; see [`set_read_callback`](Self::set_read_callback).
    pub fn set_event_callback(
        &mut self,
        cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static,
    ) {
        let _ = self.control(Control::Callback(Which::Event, Box::new(cb))); // cannot fail
    }

    /// Queue `data` for writing.
    ///
    /// # Errors
    ///
    /// After `free`; a frozen output.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.settle();
        self.state.write(self.ctx, data)
    }

    /// Start reading and/or writing.
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn enable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), true))
    }

    /// Stop reading and/or writing.
    ///
    /// # Errors
    ///
    /// After `free`.
    pub fn disable(&mut self, dirs: Interest) -> io::Result<()> {
        self.control(Control::Enable(dirs.into(), false))
    }

    /// Push bytes through a filtered socket's filters in `mode` (libevent's
    /// `bufferevent_flush`): `READ` runs the input side, `WRITE` the output side, which
    /// stays in `mode` until the filter has pushed everything. On any other socket, only
    /// starts writing what the output holds.
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn flush_with(&mut self, dirs: Interest, mode: FlushMode) -> io::Result<()> {
        self.control(Control::Flush(dirs.into(), Some(mode)))
    }

    /// Set (`Some`), change or remove (`None`) this socket's own rate limit; see
    /// [`BufferedSocket::set_rate_limit`].
    ///
    /// # Errors
    ///
    /// After `free`; `Unsupported` on a pair.
    pub fn set_rate_limit(&mut self, limit: Option<RateLimit>) -> io::Result<()> {
        self.control(Control::RateLimit(limit))
    }

    /// Set the read watermarks: the read callback waits for `low` bytes; reading stops while
    /// `high` (0: no limit) are buffered.
    pub fn set_read_watermark(&mut self, low: usize, high: usize) {
        // A refused re-arm also reaches the event callback as the I/O fails.
        let _ = self.control(Control::ReadWatermark(low, high));
    }

    /// Set the write watermarks: the write callback runs once the output drains to `low`;
    /// `write` refuses (`WouldBlock`) what would make more than `high` bytes wait (0: no
    /// limit), so a peer that never reads cannot make the output grow without bound.
    pub fn set_write_watermark(&mut self, low: usize, high: usize) {
        // A refused re-arm also reaches the event callback as the I/O fails.
        let _ = self.control(Control::WriteWatermark(low, high));
    }

    /// Set the read and write timeouts (`None`: no timeout), counted from the loop's cached
    /// time; see [`BufferedSocket::set_timeouts`].
    ///
    /// # Errors
    ///
    /// The backend refusing to re-arm the fd.
    pub fn set_timeouts(
        &mut self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.control(Control::Timeouts(read, write))
    }

    /// Flush, then close (the usual end of a reply): stop reading, let the output drain, then
    /// free the socket once this callback has returned and everything went out (a TLS
    /// socket's close_notify after the last record). No callback of this socket runs after
    /// this; an error, or the write timeout if one is set, frees it at once. See
    /// [`BufferedSocket::free_after_flush`].
    ///
    /// # Errors
    ///
    /// After `free`, or the backend refusing the fd.
    pub fn free_after_flush(&mut self) -> io::Result<()> {
        self.control(Control::FreeAfterFlush)
    }

    /// Free the socket once this callback returns: its events go, and its fd is closed
    /// (`close_on_free`) or returned here.
    pub fn free(&mut self) -> Option<OwnedFd> {
        let _ = self.control(Control::Free);
        if self.state.close_on_free {
            None
        } else {
            self.state.owned.take()
        }
    }
}

/// A handle to a buffered socket. Cloning it is cheap; the socket lives until
/// [`free`](Self::free) (or its context's `free`, or [`free_after_flush`](Self::free_after_flush)),
/// or until the base is dropped: then its fd is closed even if a handle is still held, and
/// every call through such a handle answers `NotConnected`.
///
/// # Examples
///
/// A pair of connected sockets in one process:
///
/// ```
/// use evloop::{Base, BevOptions, BufferedSocket, Interest};
///
/// let mut base: Base<Vec<u8>> = evloop::new_base()?;
/// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
/// b.set_read_callback(|bev, got: &mut Vec<u8>| {
///     let n = bev.input().len();
///     got.resize(n, 0);
///     bev.input().remove(got).unwrap();
///     bev.free();
/// });
/// b.enable(&mut base, Interest::READ)?;
/// a.write(&mut base, b"ping")?;
/// let mut got = Vec::new();
/// base.run(&mut got)?;
/// assert_eq!(got, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BufferedSocket<D> {
    state: Shared<D>,
}

impl<D> Clone for BufferedSocket<D> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<D> std::fmt::Debug for BufferedSocket<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("BufferedSocket")
                .field("fd", &s.fd)
                .field("input", &s.input.len())
                .field("output", &s.output.len())
                .field("freed", &s.freed)
                .finish(),
            Err(_) => f.write_str("BufferedSocket(in its callback)"),
        }
    }
}

/// The callback of the read or the write event: `on_ready` takes in what fired (a read, a
/// write, or their timeout), then the socket's callbacks run.
fn io_handler<D: 'static>(rc: Shared<D>, on_ready: fn(&mut State<D>, EventFlags)) -> Callback<D> {
    Box::new(move |ctx, data| {
        let Ok(mut st) = rc.try_borrow_mut() else {
            return;
        };
        if st.freed {
            return;
        }
        // The raw result (no ET: sockets are level-triggered), without `fired()`'s lookup.
        on_ready(&mut st, ctx.fired);
        st.dispatch(&rc, ctx, data, false);
    })
}

fn defer_handler<D: 'static>(rc: Shared<D>) -> Callback<D> {
    let guard = CloseWithBase(rc);
    Box::new(move |ctx, data| {
        let rc = &guard.0;
        let Ok(mut st) = rc.try_borrow_mut() else {
            return;
        };
        st.dispatch(rc, ctx, data, true);
    })
}

/// macOS has no MSG_NOSIGNAL: the socket itself is told not to raise SIGPIPE (an error here
/// means it is no socket, and a pipe's reader is ours to keep alive).
fn no_sigpipe(fd: &OwnedFd) {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let _ = rustix::net::sockopt::set_socket_nosigpipe(fd, true);
    let _ = fd;
}

impl<D: 'static> State<D> {
    /// Make the read and write events: on a socket they watch its fd; on a pair (no fd)
    /// they are timers for its timeouts, run through the same handlers. The state owns the
    /// fd and frees these events before it lets the fd go (`teardown`, and a connect by name
    /// moving to its next address): the promise of `new_event` is kept.
    fn make_io_events(&mut self, ops: &mut Registry<D>, rc: &Shared<D>) -> io::Result<()> {
        let (read, write) = if self.fd == NO_FD {
            (EventFlags::empty(), EventFlags::empty())
        } else {
            (EventFlags::READ, EventFlags::WRITE)
        };
        let on_read = io_handler(rc.clone(), State::on_readable);
        self.read_ev = Some(ops.make_event(self.fd, read | EventFlags::PERSIST, on_read)?);
        let on_write = io_handler(rc.clone(), State::on_writable);
        self.write_ev = Some(ops.make_event(self.fd, write | EventFlags::PERSIST, on_write)?);
        Ok(())
    }
}

/// What needs no `'static` (the guard below calls it from `Drop`).
impl<D> State<D> {
    /// The base dropped the socket's events while a handle still holds the socket: let the
    /// fd go now (a TLS socket tries its close_notify first), so the peer sees the end
    /// instead of a connection that hangs until the program exits.
    fn base_dropped(&mut self) {
        if self.freed {
            return;
        }
        self.freed = true;
        self.base_gone = true;
        // Their ids name nothing now.
        (self.read_ev, self.write_ev, self.defer_ev) = (None, None, None);
        #[cfg(feature = "tls")]
        if let (Some(mut tls), true) = (self.tls.take(), self.fd != NO_FD) {
            let raw = self.fd;
            // SAFETY: as in `borrowed_fd`: the fd is still open here.
            tls.close(&mut self.output, unsafe { BorrowedFd::borrow_raw(raw) });
        }
        // The socket under a filtered one has its own guard; rate timers went with the base.
        self.filter = None;
        self.rate = None;
        self.resolving = None;
        self.callbacks = Callbacks::none();
        drop(self.owned.take());
    }
}

/// Held by a socket's deferred event. Dropped when that event is freed — by the socket's own
/// teardown, with the state borrowed, when this does nothing — or when the base is dropped
/// with the socket alive because a handle holds it: then the socket closes its fd.
struct CloseWithBase<D>(Shared<D>);

impl<D> Drop for CloseWithBase<D> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.try_borrow_mut() {
            st.base_dropped();
        }
    }
}

impl<D: 'static> BufferedSocket<D> {
    fn build(ops: &mut Registry<D>, fd: Option<OwnedFd>, options: BevOptions) -> io::Result<Self> {
        match fd.as_ref() {
            Some(fd) if !options.socket.is_empty() => options.socket.apply(fd)?,
            None if !options.socket.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "socket options on a pair, which has no fd",
                ))
            }
            _ => {}
        }
        if let Some(fd) = fd.as_ref() {
            no_sigpipe(fd);
        }
        let state: Shared<D> = Rc::new(SocketCell::new(State::new(fd, options)));
        let defer = ops.make_event(NO_FD, EventFlags::empty(), defer_handler(state.clone()))?;
        state.borrow_mut().defer_ev = Some(defer);
        let made = state.borrow_mut().make_io_events(ops, &state);
        if let Err(e) = made {
            state.borrow_mut().teardown(ops);
            return Err(e);
        }
        Ok(Self { state })
    }

    /// A buffered socket over a connected, non-blocking socket (or pipe) fd. Writing is
    /// enabled, reading is not (as in libevent): call [`enable`](Self::enable).
    ///
    /// # Errors
    ///
    /// Only if the base cannot create the socket's events.
    pub fn new(
        ops: &mut Registry<D>,
        fd: impl Into<OwnedFd>,
        options: BevOptions,
    ) -> io::Result<Self> {
        Self::build(ops, Some(fd.into()), options)
    }

    /// Start a non-blocking connect to `addr`. The event callback hears CONNECTED, or ERROR
    /// with the reason (a refused port, say) — even when the refusal is immediate.
    ///
    /// # Errors
    ///
    /// Creating the socket failed (the fd limit, an unsupported address family).
    pub fn connect(
        ops: &mut Registry<D>,
        addr: SocketAddr,
        options: BevOptions,
    ) -> io::Result<Self> {
        let (fd, refused) = resolve::start_connect(addr, &options.socket)?;
        let bev = Self::build(
            ops,
            Some(fd),
            BevOptions {
                close_on_free: true,
                socket: super::SocketOptions::default(),
                ..options
            },
        )?;
        {
            let mut st = bev.state.borrow_mut();
            st.connect.pending = true;
            st.connect.error = refused;
            st.sync(ops)?;
        }
        Ok(bev)
    }

    /// A TLS server socket over an accepted, non-blocking socket fd (libevent's
    /// `bufferevent_openssl_socket_new` in `BUFFEREVENT_SSL_ACCEPTING` state), on rustls.
    /// The input holds plaintext and the output takes plaintext; everything else works as on
    /// a plain socket. Reading starts enabled, since the handshake needs it (disabling READ
    /// pauses the handshake too); CONNECTED arrives when the handshake ends, a failed
    /// handshake is one ERROR whose error names what TLS said. Freeing the socket sends
    /// close_notify (after the output's plaintext, as far as the fd takes it at once); the
    /// peer's close_notify is EOF, and the fd ending without one is an ERROR of kind
    /// `UnexpectedEof` (truncation). An example with both sides is at
    /// [`tls_connect`](Self::tls_connect).
    ///
    /// # Errors
    ///
    /// rustls refused the configuration, or the base cannot create the socket's events.
    #[cfg(feature = "tls")]
    pub fn tls_server(
        ops: &mut Registry<D>,
        fd: OwnedFd,
        config: std::sync::Arc<rustls::ServerConfig>,
        options: BevOptions,
    ) -> io::Result<Self> {
        let conn = rustls::ServerConnection::new(config).map_err(super::tls::tls_error)?;
        Self::build(ops, Some(fd), options)?.start_tls(ops, conn.into())
    }

    /// A TLS client socket over a connected, non-blocking socket fd, checking the server's
    /// certificate against `server_name` (a DNS name or an IP address). As
    /// [`tls_server`](Self::tls_server) otherwise; an example is at
    /// [`tls_connect`](Self::tls_connect).
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming `server_name` if it is neither a DNS name nor an address;
    /// rustls refused the configuration; the base cannot create the socket's events.
    #[cfg(feature = "tls")]
    pub fn tls_client(
        ops: &mut Registry<D>,
        fd: OwnedFd,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
        options: BevOptions,
    ) -> io::Result<Self> {
        let conn = client_connection(config, server_name)?;
        Self::build(ops, Some(fd), options)?.start_tls(ops, conn.into())
    }

    /// [`connect`](Self::connect), then a TLS handshake as [`tls_client`](Self::tls_client):
    /// CONNECTED once both are done; a refused connect or a failed handshake is one ERROR.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect) and [`tls_client`](Self::tls_client).
    ///
    /// # Examples
    ///
    /// A TLS echo server and a client on one loop, with a certificate made for the example:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    /// use evloop::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
    /// use evloop::{BevEvent, BevOptions, BufferedSocket, Interest, Listener, ListenerOptions};
    ///
    /// let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    /// #[allow(deprecated)] // ring, see the README
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let server = ServerConfig::builder_with_provider(provider.clone())
    ///     .with_safe_default_protocol_versions().unwrap()
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![made.cert.der().clone()], key).unwrap();
    /// let mut roots = RootCertStore::empty();
    /// roots.add(made.cert.der().clone()).unwrap();
    /// let client = ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions().unwrap()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    ///
    /// let mut base: evloop::Base<Vec<u8>> = evloop::new_base()?;
    /// let server = Arc::new(server);
    /// let addr = "127.0.0.1:0".parse().unwrap();
    /// let listener = Listener::bind(&mut base, addr, ListenerOptions::default(), move |ctx, fd, _, _| {
    ///     let bev = BufferedSocket::tls_server(ctx, fd, server.clone(), BevOptions::default())
    ///         .expect("a TLS socket");
    ///     bev.set_read_callback(|bev, _| {
    ///         let (input, output) = bev.buffers();
    ///         output.append_buffer(input).unwrap(); // plaintext in, plaintext out
    ///     });
    /// })?;
    /// let client = BufferedSocket::tls_connect(
    ///     &mut base, listener.local_addr()?, Arc::new(client), "localhost", BevOptions::default())?;
    /// client.set_event_callback(|bev, _| {
    ///     if bev.fired().contains(BevEvent::CONNECTED) {
    ///         bev.write(b"hello").unwrap(); // after the handshake
    ///     }
    /// });
    /// client.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     let mut chunk = vec![0; bev.input().len()];
    ///     bev.input().remove(&mut chunk).unwrap();
    ///     got.extend(chunk);
    ///     if got.len() == 5 {
    ///         bev.free(); // sends close_notify
    ///         bev.context().loop_break();
    ///     }
    /// });
    /// client.enable(&mut base, Interest::READ)?;
    /// let mut got = Vec::new();
    /// base.run(&mut got)?;
    /// assert_eq!(got, b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_connect(
        ops: &mut Registry<D>,
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
        options: BevOptions,
    ) -> io::Result<Self> {
        let conn = client_connection(config, server_name)?;
        Self::connect(ops, addr, options)?.start_tls(ops, conn.into())
    }

    /// [`connect_host`](Self::connect_host), then a TLS handshake checking the certificate
    /// against `server_name` (usually `host`): CONNECTED once both are done; a name that does
    /// not resolve, every address refused, or a failed handshake is one ERROR.
    ///
    /// # Errors
    ///
    /// As [`connect_host`](Self::connect_host) and [`tls_client`](Self::tls_client).
    #[cfg(feature = "tls")]
    pub fn tls_connect_host(
        ops: &mut Registry<D>,
        host: &str,
        port: u16,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
        options: BevOptions,
    ) -> io::Result<Self> {
        let conn = client_connection(config, server_name)?;
        Self::connect_host(ops, host, port, options)?.start_tls(ops, conn.into())
    }

    #[cfg(feature = "tls")]
    fn start_tls(self, ops: &mut Registry<D>, conn: rustls::Connection) -> io::Result<Self> {
        {
            let mut st = self.state.borrow_mut();
            st.tls = Some(Box::new(super::tls::TlsLayer::new(conn)));
            st.enabled |= EventFlags::READ;
            st.sync(ops)?;
        }
        Ok(self)
    }

    /// Run `f` with the socket's TLS connection (`None` for a plain socket): the negotiated
    /// protocol version, ALPN protocol, cipher suite and peer certificates.
    ///
    /// # Errors
    ///
    /// As the other methods: the socket's own callback is running (use
    /// [`BevContext::tls`] there), or it was freed.
    #[cfg(feature = "tls")]
    pub fn with_tls<R>(&self, f: impl FnOnce(Option<&rustls::Connection>) -> R) -> io::Result<R> {
        self.with(|st| Ok(f(st.tls.as_ref().map(|t| &t.conn))))
    }

    /// A socket stacked on `under` whose bytes pass through `filter` (libevent's
    /// `bufferevent_filter_new`): what `under` reads goes through [`Filter::input`] into this
    /// socket's input, what is written here goes through [`Filter::output`] into `under`'s
    /// output. `under` may be a plain socket, a TLS one, or one end of a pair; this socket
    /// takes over its callbacks (use only the new socket from now on). Its fd is `under`'s;
    /// its timeouts are `under`'s; its watermarks are its own, and `under` reads only while
    /// this input has room. Its callbacks are always deferred to the loop. Freeing it frees
    /// `under` too, whose options say whether the fd is closed. EOF is reported after the
    /// input filter ran once more as [`FlushMode::Finished`]; a filter's error is one ERROR
    /// event.
    ///
    /// # Errors
    ///
    /// `under` was freed or runs its own callback now; the base cannot create the socket's
    /// events.
    ///
    /// # Examples
    ///
    /// ROT13 on a pair: one end writes through the filter, the other reads plain bytes.
    ///
    /// ```
    /// use std::io;
    /// use evloop::{BevOptions, Buffer, BufferedSocket, Filter, FilterResult, FlushMode, Interest};
    ///
    /// struct Rot13;
    /// impl Filter for Rot13 {
    ///     fn output(&mut self, src: &mut Buffer, dst: &mut Buffer, limit: usize, _: FlushMode)
    ///         -> io::Result<FilterResult>
    ///     {
    ///         let mut bytes = vec![0; src.len().min(limit)];
    ///         src.remove(&mut bytes)?;
    ///         for b in &mut bytes {
    ///             match *b {
    ///                 b'a'..=b'z' => *b = (*b - b'a' + 13) % 26 + b'a',
    ///                 b'A'..=b'Z' => *b = (*b - b'A' + 13) % 26 + b'A',
    ///                 _ => {}
    ///             }
    ///         }
    ///         dst.append(&bytes)?;
    ///         Ok(FilterResult::Ok)
    ///     }
    /// }
    ///
    /// let mut base: evloop::Base<Vec<u8>> = evloop::new_base()?;
    /// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
    /// let a = BufferedSocket::filtered(&mut base, a, Rot13, BevOptions::default())?;
    /// b.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     let mut chunk = vec![0; bev.input().len()];
    ///     bev.input().remove(&mut chunk).unwrap();
    ///     got.extend(chunk);
    ///     if got.len() == 5 {
    ///         bev.context().loop_break();
    ///     }
    /// });
    /// b.enable(&mut base, Interest::READ)?;
    /// a.write(&mut base, b"Hello")?;
    /// let mut got = Vec::new();
    /// base.run(&mut got)?;
    /// assert_eq!(got, b"Uryyb");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn filtered(
        ops: &mut Registry<D>,
        under: BufferedSocket<D>,
        filter: impl Filter + 'static,
        options: BevOptions,
    ) -> io::Result<Self> {
        let under_fd = under.with(|u| Ok(u.fd))?;
        if !options.socket.is_empty() {
            under.set_socket_options(options.socket)?;
        }
        let me = Self::build(
            ops,
            None,
            BevOptions {
                defer_callbacks: true,
                socket: super::SocketOptions::default(),
                ..options
            },
        )?;
        let weak = Rc::downgrade(&me.state);
        let taken = under.with(|u| {
            for which in [Which::Read, Which::Write, Which::Event] {
                *u.callbacks.get(which) = Some(filter::under_callback(weak.clone(), which));
            }
            Ok(())
        });
        if let Err(e) = taken {
            me.state.borrow_mut().teardown(ops);
            return Err(e);
        }
        {
            let mut st = me.state.borrow_mut();
            st.fd = under_fd;
            st.filter = Some(Box::new(filter::FilterLayer::new(
                Box::new(filter),
                under.state.clone(),
            )));
            st.sync(ops)?;
        }
        Ok(me)
    }

    /// Two connected sockets without fds (libevent's `bufferevent_pair_new`): what one writes,
    /// the other reads. Freeing one tells the other EOF.
    ///
    /// # Errors
    ///
    /// Only if the base cannot create the sockets' events.
    pub fn pair(ops: &mut Registry<D>, options: BevOptions) -> io::Result<(Self, Self)> {
        let options = BevOptions {
            defer_callbacks: true,
            ..options
        };
        let a = Self::build(ops, None, options)?;
        let b = Self::build(ops, None, options)?;
        a.state.borrow_mut().partner = Some(Rc::downgrade(&b.state));
        b.state.borrow_mut().partner = Some(Rc::downgrade(&a.state));
        Ok((a, b))
    }

    /// Run `f` on the state now; a read cannot wait, so inside the socket's own callback it
    /// is `ResourceBusy`.
    fn with<R>(&self, f: impl FnOnce(&mut State<D>) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state_now()?.ok_or_else(busy)?;
        f(&mut st)
    }

    /// Run `f` on the state; while the socket's own callback runs (the state borrowed),
    /// queue `op` instead, to be applied in order when it returns (see `deferred.rs`).
    /// The state, to change now; `None` while the socket's own callback runs (its state
    /// borrowed), when a change is queued instead (see `deferred`).
    ///
    /// # Errors
    ///
    /// The socket was freed, began closing in its running callback, or lost its base.
    fn state_now(&self) -> io::Result<Option<std::cell::RefMut<'_, State<D>>>> {
        match self.state.try_borrow_mut() {
            Ok(st) if st.base_gone => Err(base_gone_error()),
            Ok(st) if st.freed => Err(freed_error()),
            Ok(st) => Ok(Some(st)),
            Err(_) if self.state.ended.get() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "this buffered socket was freed (or began closing) by its running callback",
            )),
            Err(_) => Ok(None),
        }
    }

    /// Carry out `op` now, or queue it to run in order when the socket's running callback
    /// returns. A close that completed at once is torn down here, where the state is not
    /// borrowed.
    fn control(&self, ops: &mut Registry<D>, op: Control<D>) -> io::Result<()> {
        let Some(mut st) = self.state_now()? else {
            self.state.defer(op);
            return Ok(());
        };
        let result = st.apply(ops, &self.state, op);
        if st.freed {
            st.teardown(ops);
        }
        result
    }

    fn set_callback(&self, which: Which, cb: BevCallback<D>) {
        // On a freed socket the callback could never run: nothing is lost by dropping it.
        match self.state.try_borrow_mut() {
            Ok(mut st) if !st.freed => *st.callbacks.get(which) = Some(cb),
            Ok(_) => {}
            Err(_) if self.state.ended.get() => {}
            Err(_) => self.state.defer(Control::Callback(which, cb)),
        }
    }

    /// Called when at least the read low watermark is buffered in the input. From inside
    /// one of the socket's own callbacks it replaces the callback when that one returns (as
    /// [`BevContext::set_read_callback`] does at once). On a freed socket it does nothing:
    /// the callback could never run.
    pub fn set_read_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Read, Box::new(cb))
    }

    /// Called when the output drained to the write low watermark; as
    /// [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_write_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Write, Box::new(cb))
    }

    /// Called on EOF, errors, timeouts and connects (see [`BevContext::fired`]); as
    /// [`set_read_callback`](Self::set_read_callback) otherwise.
    pub fn set_event_callback(&self, cb: impl FnMut(&mut BevContext<'_, '_, D>, &mut D) + 'static) {
        self.set_callback(Which::Event, Box::new(cb))
    }

    /// Start reading and/or writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn enable(&self, ops: &mut Registry<D>, dirs: Interest) -> io::Result<()> {
        self.control(ops, Control::Enable(dirs.into(), true))
    }

    /// Stop reading and/or writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed.
    pub fn disable(&self, ops: &mut Registry<D>, dirs: Interest) -> io::Result<()> {
        self.control(ops, Control::Enable(dirs.into(), false))
    }

    /// Queue `data` for writing.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]). A write queued so is
    /// not held to the write high watermark (it was already accepted).
    ///
    /// # Errors
    ///
    /// Freed or closing; `WouldBlock` past the write high watermark; a frozen output.
    pub fn write(&self, ops: &mut Registry<D>, data: &[u8]) -> io::Result<()> {
        match self.state_now()? {
            Some(mut st) => st.write(ops, data),
            None => {
                self.state.defer(Control::Write(data.to_vec()));
                Ok(())
            }
        }
    }

    /// Work on the input buffer.
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn with_input<R>(&self, f: impl FnOnce(&mut Buffer) -> R) -> io::Result<R> {
        self.with(|st| Ok(f(&mut st.input)))
    }

    /// Work on the output buffer; what `f` appends is then sent as [`write`](Self::write)
    /// would send it (the socket re-arms its write event, so nothing waits for a flush).
    ///
    /// # Errors
    ///
    /// Freed or busy, or the backend refusing the fd.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::{Base, BevOptions, BufferedSocket, Interest};
    /// let mut base: Base<Vec<u8>> = evloop::new_base()?;
    /// let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default())?;
    /// b.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     got.extend(bev.input().read_line(evloop::Eol::Lf).unwrap_or_default());
    ///     bev.free();
    /// });
    /// b.enable(&mut base, Interest::READ)?;
    /// a.with_output(&mut base, |out| write!(out, "{} + {} = {}\n", 1, 2, 1 + 2))??;
    /// let mut got = Vec::new();
    /// base.run(&mut got)?;
    /// assert_eq!(got, b"1 + 2 = 3");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_output<R>(
        &self,
        ops: &mut Registry<D>,
        f: impl FnOnce(&mut Buffer) -> R,
    ) -> io::Result<R> {
        self.with(|st| {
            let r = f(&mut st.output);
            st.sync(ops)?;
            Ok(r)
        })
    }

    /// How many bytes the input holds.
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn input_len(&self) -> io::Result<usize> {
        self.with(|st| Ok(st.input.len()))
    }

    /// How many bytes wait in the output. On a TLS socket, records already encrypted and not
    /// yet sent count too — as one byte, since rustls does not say how many — so that 0 means
    /// everything went out (what a flush-then-close waits for).
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn output_len(&self) -> io::Result<usize> {
        self.with(|st| Ok(st.unsent()))
    }

    /// Which directions are enabled (READ, WRITE).
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn enabled(&self) -> io::Result<Interest> {
        self.with(|st| Ok(Interest::of(st.enabled)))
    }

    /// Whether the socket was freed, by a `free` or by the loop once nothing could reach it
    /// any more (false while its own callback runs).
    pub fn is_freed(&self) -> bool {
        self.state.try_borrow().is_ok_and(|s| s.freed)
    }

    /// Re-arm after buffers were changed through `with_input`.
    ///
    /// Inside the socket's own callbacks this is queued and takes effect, in order, when the
    /// callback returns (or before the callback's next call through its [`BevContext`]).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn flush(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.control(ops, Control::Flush(EventFlags::empty(), None))
    }

    /// See [`BevContext::flush_with`]; `flush_with(ops, Interest::WRITE,
    /// FlushMode::Finished)` ends a filtered stream (a compressor's trailer).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd. Queued inside the socket's own callbacks, as
    /// [`flush`](Self::flush).
    pub fn flush_with(
        &self,
        ops: &mut Registry<D>,
        dirs: Interest,
        mode: FlushMode,
    ) -> io::Result<()> {
        self.control(ops, Control::Flush(dirs.into(), Some(mode)))
    }

    /// Limit how fast the socket reads and writes (libevent's `bufferevent_set_rate_limit`):
    /// a token bucket per direction, refilled by `limit`'s rate each tick up to its burst;
    /// each read or write moves at most what the bucket holds, and a direction whose bucket
    /// is empty waits for the next tick (a one-shot timer, armed only then). `None` removes
    /// the limit; a new limit on a live socket keeps what the bucket holds, clipped to the
    /// new bursts. The limit counts bytes on the fd: TLS records on a TLS socket; on a
    /// filtered socket it is set on the socket under it. A socket may also be in a
    /// [`RateLimitGroup`]; then both limits hold.
    ///
    /// # Errors
    ///
    /// Freed; `Unsupported` on a pair (it has no fd). Queued inside the socket's own
    /// callbacks, as [`flush`](Self::flush).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{BevOptions, BufferedSocket, RateLimit};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let bev = BufferedSocket::connect(&mut base, listener.local_addr()?, BevOptions::default())?;
    /// // 1,000 bytes a second each way, in ticks of 100 ms.
    /// bev.set_rate_limit(&mut base, Some(RateLimit::new(100, 400, 100, 400, Duration::from_millis(100))?))?;
    /// bev.set_rate_limit(&mut base, None)?; // and no limit again
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_rate_limit(
        &self,
        ops: &mut Registry<D>,
        limit: Option<RateLimit>,
    ) -> io::Result<()> {
        self.control(ops, Control::RateLimit(limit))
    }

    /// Set socket options on the live socket's fd (a filtered socket's is the one under it).
    ///
    /// # Errors
    ///
    /// Freed or busy; `Unsupported` on a pair; as [`SocketOptions::apply`](super::SocketOptions::apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{BevOptions, BufferedSocket, SocketOptions};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let bev = BufferedSocket::connect(&mut base, listener.local_addr()?, BevOptions::default())?;
    /// bev.set_socket_options(SocketOptions { nodelay: Some(true), ..SocketOptions::default() })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_socket_options(&self, options: super::SocketOptions) -> io::Result<()> {
        self.with(|st| {
            if st.fd == NO_FD {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "socket options on a pair, which has no fd",
                ));
            }
            options.apply(st.borrowed_fd())
        })
    }

    /// See [`BevContext::set_read_watermark`].
    ///
    /// # Errors
    ///
    /// Freed or busy.
    pub fn set_read_watermark(
        &self,
        ops: &mut Registry<D>,
        low: usize,
        high: usize,
    ) -> io::Result<()> {
        self.control(ops, Control::ReadWatermark(low, high))
    }

    /// See [`BevContext::set_write_watermark`]; takes `ops` as
    /// [`set_read_watermark`](Self::set_read_watermark) does.
    ///
    /// # Errors
    ///
    /// Freed. Queued inside the socket's own callbacks, as [`flush`](Self::flush).
    pub fn set_write_watermark(
        &self,
        ops: &mut Registry<D>,
        low: usize,
        high: usize,
    ) -> io::Result<()> {
        self.control(ops, Control::WriteWatermark(low, high))
    }

    /// Set the read and write timeouts: a direction that sees no progress for that long
    /// reports TIMEOUT and is disabled. Like every timeout, they count from the loop's cached
    /// time ([`Registry::now`]; [`Registry::update_cache_time`] refreshes it after a long
    /// computation in a callback).
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing to re-arm. Queued inside the socket's own callbacks,
    /// as [`flush`](Self::flush).
    pub fn set_timeouts(
        &self,
        ops: &mut Registry<D>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.control(ops, Control::Timeouts(read, write))
    }

    /// The fd (-1 for a pair, or once the socket is freed).
    pub fn fd(&self) -> RawFd {
        self.state
            .try_borrow()
            .map_or(NO_FD, |s| if s.freed { NO_FD } else { s.fd })
    }

    /// Flush, then close: stop reading, let what the socket holds go out, then free it
    /// (closing the fd; on TLS after close_notify). Where [`free`](Self::free) drops the
    /// output, this is how a server ends a reply; libevent programs write it by hand with a
    /// write callback. No callback of this socket runs after the call; an error, or the
    /// write timeout if one is set ([`set_timeouts`](Self::set_timeouts)), frees it at once,
    /// so a peer that stops reading cannot keep it forever. On a pair, it waits for the
    /// other end to read.
    ///
    /// # Errors
    ///
    /// Freed already, or the backend refusing the fd. Queued inside the socket's own
    /// callbacks, as [`flush`](Self::flush).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use evloop::{BevOptions, BufferedSocket};
    ///
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut peer = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let (ours, _) = listener.accept()?;
    /// ours.set_nonblocking(true)?;
    /// let bev = BufferedSocket::new(&mut base, ours, BevOptions::default())?;
    /// bev.write(&mut base, &[7; 100_000])?;
    /// bev.free_after_flush(&mut base)?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut all = Vec::new();
    ///     peer.read_to_end(&mut all).map(|_| all.len()) // to EOF: the socket closed
    /// });
    /// base.run(&mut ())?; // returns once the socket is gone
    /// assert_eq!(reader.join().unwrap()?, 100_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn free_after_flush(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.control(ops, Control::FreeAfterFlush)
    }

    /// Free the socket now: its events go, buffered output is dropped, and the fd is closed
    /// or (without `close_on_free`) returned. Inside the socket's own callbacks it is freed
    /// when the callback returns, as [`BevContext::free`] does.
    ///
    /// # Errors
    ///
    /// Freed already; `ResourceBusy` inside the socket's own callbacks when it was made
    /// without `close_on_free`, since the fd could not be handed back here (use
    /// [`BevContext::free`], which returns it).
    pub fn free(self, ops: &mut Registry<D>) -> io::Result<Option<OwnedFd>> {
        if self.state.try_borrow().is_err() && !self.state.close_on_free {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "this buffered socket's callback is running and it keeps its fd on free: use the BevContext's free, which returns the fd",
            ));
        }
        match self.state_now()? {
            Some(mut st) => Ok(st.teardown(ops)),
            None => {
                self.state.defer(Control::Free);
                Ok(None)
            }
        }
    }
}

/// A client connection to `server_name`, or `InvalidInput` naming it.
#[cfg(feature = "tls")]
fn client_connection(
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: &str,
) -> io::Result<rustls::ClientConnection> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TLS server name {server_name:?}: {e}"),
        )
    })?;
    rustls::ClientConnection::new(config, name).map_err(super::tls::tls_error)
}
