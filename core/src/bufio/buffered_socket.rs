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
//! the socket frees the events, and dropping the base drops everything. Everything that
//! changes a socket is a [`BevControl`] method. A user callback gets a [`BevContext`] — the
//! state, already borrowed, and the loop's [`Registry`] — which dereferences to one, so it can
//! use its buffers, write, enable, disable and free the socket, and reach any other event. A
//! [`BufferedSocket`] handle makes one with `on(ops)`; used while the socket's own callback
//! runs, it queues what it changes, applied in order when the callback returns
//! (`buffered_socket/deferred.rs`); what only reads the socket answers `ResourceBusy` there,
//! rather than panicking.
//!
//! A [`pair`](BufferedSocket::pair) is two sockets without fds whose outputs feed each
//! other's inputs; its callbacks are always deferred to the loop.
//!
//! This file holds the state machine (`State`: reading, writing, watermarks, timeouts,
//! connect, the callbacks' runs). Beside it: the handle (`handle.rs`) and its constructors
//! (`constructors.rs`), the callback's view (`context.rs`), the method set both use
//! (`control.rs`), the changes it makes and their queue (`deferred.rs`), the TLS paths (`tls_io.rs`), filters (`filter.rs`), rate limits
//! (`rate_limit.rs`) and connecting by host name (`resolve.rs`).

use crate::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd, NO_FD};
use std::io;
use std::rc::{Rc, Weak};
use std::time::Duration;

use rustix::io::Errno;

use super::buffer::{Buffer, IoOutcome};
use super::BevEvent;
use crate::event::EventId;
use crate::flags::{EventFlags, Fired};
use crate::registry::Registry;
use crate::registry::{Callback, Context};

mod constructors;
mod context;
mod control;
mod deferred;
mod filter;
mod handle;
mod rate_limit;
mod resolve;
#[cfg(feature = "tls")]
mod tls_io;
pub use context::BevContext;
pub use control::{BevControl, BevReach, FromHandle, InCallback};
use deferred::{Control, SocketCell};
pub use filter::{Filter, FilterResult, FlushMode};
pub use handle::BufferedSocket;
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
pub type BevCallback<D> = Box<dyn FnMut(&mut BevContext<'_, D>, &mut D)>;

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

/// Which of a socket's three callbacks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Which {
    Read,
    Write,
    Event,
}

/// A socket's callbacks, one named field each; one is out of its place while it runs (see
/// `invoking`).
struct Callbacks<D> {
    read: Option<BevCallback<D>>,
    write: Option<BevCallback<D>>,
    event: Option<BevCallback<D>>,
}

impl<D> Callbacks<D> {
    fn none() -> Self {
        Callbacks {
            read: None,
            write: None,
            event: None,
        }
    }

    fn is_set(&self, which: Which) -> bool {
        match which {
            Which::Read => self.read.is_some(),
            Which::Write => self.write.is_some(),
            Which::Event => self.event.is_some(),
        }
    }

    fn get(&mut self, which: Which) -> &mut Option<BevCallback<D>> {
        match which {
            Which::Read => &mut self.read,
            Which::Write => &mut self.write,
            Which::Event => &mut self.event,
        }
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
    /// The fd events (for a pair, timers) and whether each is added now.
    reading: FdEvent,
    writing: FdEvent,
    defer_ev: Option<EventId>,
    enabled: EventFlags,
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

/// One of a socket's fd events, reading or writing (for a pair, a timer), and whether it is
/// added now. No id before the events are made, and after they are freed.
#[derive(Default)]
struct FdEvent {
    id: Option<EventId>,
    armed: bool,
}

impl FdEvent {
    /// Add or delete the event so that it is armed exactly when `want`.
    fn arm<D>(
        &mut self,
        ops: &mut Registry<D>,
        want: bool,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let Some(ev) = self.id else {
            return Ok(());
        };
        if want != self.armed {
            if want {
                ops.add(ev, timeout)?;
            } else {
                ops.del(ev)?;
            }
            self.armed = want;
        }
        Ok(())
    }

    /// Add the event whether or not it is armed: a new timeout counts from now.
    fn add<D>(&mut self, ops: &mut Registry<D>, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(ev) = self.id {
            ops.add(ev, timeout)?;
            self.armed = true;
        }
        Ok(())
    }

    /// Restart an armed event's timeout: progress was made.
    fn restart<D>(&self, ops: &mut Registry<D>, timeout: Option<Duration>) -> io::Result<()> {
        match self.id {
            Some(ev) if self.armed => ops.add(ev, timeout),
            _ => Ok(()),
        }
    }

    /// The event's id, to free it; the socket forgets it.
    fn take(&mut self) -> Option<EventId> {
        self.armed = false;
        self.id.take()
    }
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
            reading: FdEvent::default(),
            writing: FdEvent::default(),
            defer_ev: None,
            enabled: EventFlags::WRITE,
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
        if self.reading.id.is_some() {
            let want = self.enabled.contains(EventFlags::READ)
                && (self.marks.read_high == 0 || self.input.len() < self.marks.read_high)
                && (!pair || self.timeouts.read.is_some())
                && self.rate_allows(ops, Dir::Read);
            self.reading.arm(ops, want, self.timeouts.read)?;
        }
        if self.writing.id.is_some() {
            // Write at once instead of waiting for writability: a socket almost always has
            // room, and this saves arming and disarming the write event (two epoll_ctl calls
            // per response). Only what the kernel refuses waits for the write event.
            if !pair
                && (!self.writing.armed || self.drained)
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
            self.writing.arm(ops, want, self.timeouts.write)?;
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
        self.reading.arm(ops, false, None)?;
        self.writing.arm(ops, false, None)?;
        self.sync(ops)
    }

    /// Free the internal events and give up the fd (closing it if asked to).
    fn teardown(&mut self, ops: &mut Registry<D>) -> Option<OwnedFd> {
        if self.freed
            && self.reading.id.is_none()
            && self.writing.id.is_none()
            && self.defer_ev.is_none()
        {
            return None;
        }
        self.freed = true;
        // A callback that holds a handle to its own socket would keep the state alive.
        self.callbacks = Callbacks::none();
        for ev in [
            self.reading.take(),
            self.writing.take(),
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
            && !self.reading.armed
            && !self.writing.armed
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
            control: BevControl {
                registry: ctx,
                rc,
                state: InCallback(self),
            },
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
    // Progress both ways: the armed timers' timeouts count from now.
    let _ = to.reading.restart(ops, to.timeouts.read);
    let _ = from.writing.restart(ops, from.timeouts.write);
    if to.enabled.contains(EventFlags::READ) && to.input.len() >= to.marks.read_low.max(1) {
        to.pending.read = true;
        to.schedule(ops);
    }
    if from.output.len() <= from.marks.write_low {
        from.pending.write = true;
        from.schedule(ops);
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
        self.reading.id = Some(ops.make_event(self.fd, read | EventFlags::PERSIST, on_read)?);
        let on_write = io_handler(rc.clone(), State::on_writable);
        self.writing.id = Some(ops.make_event(self.fd, write | EventFlags::PERSIST, on_write)?);
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
        (self.reading, self.writing) = (FdEvent::default(), FdEvent::default());
        self.defer_ev = None;
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
