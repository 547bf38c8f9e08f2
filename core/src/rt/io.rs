//! [`Async<T>`]: an fd (a socket on Windows) watched by the loop, with readiness futures,
//! `read_with`/`write_with`, and `futures_io` traits for streams.
//!
//! Where the backend has edge-triggered events (epoll, kqueue), a source has one event for
//! both directions, added the first time a task waits and kept until the `Async` is dropped;
//! elsewhere each direction has its own level-triggered event, added while a task waits and
//! deleted when it fires. Events watch the fd by number, so the fd must outlive them:
//! dropping an `Async` hands the I/O object to the runtime, which frees the events and only
//! then drops the object.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};

use crate::event::EventId;
use crate::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use crate::flags::{Features, Fired, Interest};
use crate::registry::Registry;

use super::{Change, Runtime};

const READ: usize = 0;
const WRITE: usize = 1;
const FLAGS: [Interest; 2] = [Interest::READ, Interest::WRITE];
/// What each direction's readiness is reported as.
const FIRED: [Fired; 2] = [Fired::READ, Fired::WRITE];
const NAMES: [&str; 2] = ["read", "write"];

/// One direction of a source.
#[derive(Default)]
struct Direction {
    event: Cell<Option<EventId>>,
    /// Readiness seen and not consumed yet.
    ready: Cell<bool>,
    /// Watching, or a request to watch is queued.
    watching: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// The registry refused to watch the fd (reported once).
    error: Cell<Option<io::Error>>,
    /// The last operation proved the fd not ready (`WouldBlock`, or a short transfer on a
    /// stream socket): the next read or write waits for a report instead of trying first.
    /// False at first, when readiness is unknown, so the first operation just tries.
    spent: Cell<bool>,
}

impl Direction {
    /// The backend reported readiness in this direction.
    fn report(&self) {
        self.ready.set(true);
        self.spent.set(false);
    }

    /// An operation showed that the readiness is used up.
    fn use_up(&self) {
        self.ready.set(false);
        self.spent.set(true);
    }
}

/// What an `Async`'s futures and its events' callbacks share.
pub(crate) struct Source {
    fd: RawFd,
    dirs: [Direction; 2],
    released: Cell<bool>,
    /// The peer's close was reported: a short read no longer proves the fd drained (the end
    /// of file is still to be read, and an edge-triggered event will not report it again).
    closed: Cell<bool>,
    /// Edge-triggered without early close reports: only `WouldBlock` ends readiness.
    edges_without_close: Cell<bool>,
}

impl Source {
    /// Apply a queued request to watch direction `dir`.
    pub(crate) fn watch<D: 'static>(self: &Rc<Self>, registry: &mut Registry<D>, dir: usize) {
        let d = &self.dirs[dir];
        if self.released.get() || !d.watching.get() {
            return;
        }
        if let Some(id) = d.event.get() {
            // Level-triggered, deleted when it last fired: add it again (free if the delete
            // is still deferred).
            if let Err(e) = registry.add(id, None) {
                self.fail(dir, e);
            }
            return;
        }
        if registry.features().contains(Features::EDGE_TRIGGERED) {
            self.watch_edges(registry);
        } else {
            self.watch_level(registry, dir);
        }
    }

    /// Where the backend has edge-triggered events: one event for both directions, added
    /// once and kept until the `Async` is dropped. Each edge sets readiness, which stays set
    /// until an operation fails with `WouldBlock` (tokio's and mio's model): no change per
    /// wait at all.
    fn watch_edges<D: 'static>(self: &Rc<Self>, registry: &mut Registry<D>) {
        let source = self.clone();
        let callback = move |ctx: &mut crate::Context<'_, D>, _: &mut D| {
            let fired = Fired::of(ctx.fired);
            if fired.contains(Fired::CLOSED) {
                source.closed.set(true);
            }
            for (dir, d) in source.dirs.iter().enumerate() {
                // An error or hang-up is reported as both READ and WRITE.
                if fired.intersects(FIRED[dir] | Fired::CLOSED) {
                    d.report();
                    if let Some(waker) = d.waker.take() {
                        waker.wake();
                    }
                }
            }
        };
        let mut flags = Interest::READ | Interest::WRITE | Interest::PERSIST | Interest::ET;
        // The peer's close as its own report, so that a short read just before it does not
        // hide the end of file (see `Async::poll_transfer`).
        if registry.features().contains(Features::EARLY_CLOSE) {
            flags |= Interest::CLOSED;
        } else {
            self.edges_without_close.set(true);
        }
        // SAFETY: as in `watch_level`: the runtime frees the event before the fd is closed.
        let made = unsafe { registry.new_event(self.fd, flags, callback) };
        let result = made.and_then(|id| {
            registry.make_internal(id);
            self.dirs[READ].event.set(Some(id));
            registry.add(id, None)
        });
        match result {
            Ok(()) => {
                for d in &self.dirs {
                    d.watching.set(true);
                }
            }
            Err(e) => {
                self.fail(READ, io::Error::new(e.kind(), e.to_string()));
                self.fail(WRITE, e);
            }
        }
    }

    /// Elsewhere: an event per direction, added while a task waits and deleted when it fires.
    fn watch_level<D: 'static>(self: &Rc<Self>, registry: &mut Registry<D>, dir: usize) {
        let source = self.clone();
        let callback = move |ctx: &mut crate::Context<'_, D>, _: &mut D| {
            let d = &source.dirs[dir];
            d.report();
            d.watching.set(false);
            // Level-triggered: stop watching until a task waits again. The registry
            // defers the delete, so waiting again before the next wait is free.
            let me = ctx.id();
            let _ = ctx.del(me);
            if let Some(waker) = d.waker.take() {
                waker.wake();
            }
        };
        // SAFETY: the fd belongs to the `Async` that made this source, which hands its I/O
        // object to the runtime when dropped; the runtime frees this event (`release`)
        // before it drops the object, so the fd outlives the event.
        let made = unsafe { registry.new_event(self.fd, FLAGS[dir] | Interest::PERSIST, callback) };
        let result = made.and_then(|id| {
            registry.make_internal(id);
            self.dirs[dir].event.set(Some(id));
            registry.add(id, None)
        });
        if let Err(e) = result {
            self.fail(dir, e);
        }
    }

    fn fail(&self, dir: usize, e: io::Error) {
        let d = &self.dirs[dir];
        d.watching.set(false);
        d.error.set(Some(io::Error::new(
            e.kind(),
            format!("cannot watch fd {} for {}: {e}", self.fd, NAMES[dir]),
        )));
        if let Some(waker) = d.waker.take() {
            waker.wake();
        }
    }

    /// Free the events (the `Async` is gone).
    pub(crate) fn release<D>(&self, registry: &mut Registry<D>) {
        for d in &self.dirs {
            if let Some(id) = d.event.take() {
                let _ = registry.free(id);
            }
            d.watching.set(false);
            drop(d.waker.take());
        }
    }
}

/// An I/O object registered with a runtime: its futures wait for the loop to report the fd
/// readable or writable (async-io's `Async`, calloop's `Async`).
///
/// `T` is anything that owns an fd (`AsFd`; a socket on Windows): `TcpStream`,
/// `TcpListener`, `UnixStream`, `UdpSocket`, a pipe. [`new`](Self::new) makes it
/// non-blocking. `Async<TcpStream>` and `Async<UnixStream>` (and their `&Async`) implement
/// [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`], so the `futures` and
/// `futures-lite` I/O helpers work on them.
///
/// One task at a time should wait in each direction: a second waiter replaces the first,
/// which is then not woken (as with tokio's `poll_read_ready`).
///
/// Dropping an `Async` while a future waits on it is clean: the runtime frees its events
/// before the loop next waits and closes the fd after that, so no wake-up is stale and no
/// closed fd is reported.
///
/// # Examples
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use evloop::rt::{Async, Runtime};
///
/// let mut base: evloop::Base = evloop::new_base()?;
/// let rt = Runtime::new(&mut base)?;
/// let listener = Async::<TcpListener>::bind(&rt, ([127, 0, 0, 1], 0))?;
/// let addr = listener.get_ref().local_addr()?;
/// let server = rt.spawn(async move {
///     let (mut stream, _) = listener.accept().await?;
///     let mut buf = [0u8; 5];
///     stream.read_exact(&mut buf).await?;
///     stream.write_all(&buf).await?;
///     std::io::Result::Ok(())
/// });
/// let reply = rt.block_on(&mut base, &mut (), {
///     let rt = rt.clone();
///     async move {
///         let mut stream = Async::<TcpStream>::connect(&rt, addr).await?;
///         stream.write_all(b"hello").await?;
///         let mut buf = Vec::new();
///         stream.read_to_end(&mut buf).await?;
///         server.await?;
///         std::io::Result::Ok(buf)
///     }
/// })??;
/// assert_eq!(reply, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Async<T: 'static> {
    rt: Runtime,
    source: Rc<Source>,
    io: Option<T>,
}

impl<T: 'static> std::fmt::Debug for Async<T>
where
    T: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

impl<T: AsFd + 'static> Async<T> {
    /// Register `io` with the runtime and make it non-blocking. Nothing is watched until a
    /// future waits.
    ///
    /// # Errors
    ///
    /// Making the fd non-blocking failed; `NotConnected` if the runtime's base was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::net::UnixStream;
    /// use evloop::rt::{Async, Runtime};
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = Runtime::new(&mut base)?;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(&rt, a)?;
    /// drop(b);
    /// // The peer is gone: readable at once, and the read sees end of file.
    /// let n = rt.block_on(&mut base, &mut (), a.read_with(|s| std::io::Read::read(&mut &*s, &mut [0u8; 8])))??;
    /// assert_eq!(n, 0);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(rt: &Runtime, io: T) -> io::Result<Async<T>> {
        if rt.is_closed() {
            return Err(rt.closed_error());
        }
        let fd = io.as_fd();
        rustix::io::ioctl_fionbio(fd, true).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot make fd {} non-blocking: {e}", fd.as_raw_fd()),
            )
        })?;
        let source = Rc::new(Source {
            fd: fd.as_raw_fd(),
            dirs: Default::default(),
            released: Cell::new(false),
            closed: Cell::new(false),
            edges_without_close: Cell::new(false),
        });
        Ok(Async {
            rt: rt.clone(),
            source,
            io: Some(io),
        })
    }
}

impl<T: 'static> Async<T> {
    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        self.io
            .as_ref()
            .expect("an Async holds its I/O object until dropped")
    }

    /// The I/O object, mutably.
    ///
    /// # Safety
    ///
    /// The fd must not be replaced or closed through the reference (for instance by
    /// `mem::replace` of the object): the loop watches it by number.
    pub unsafe fn get_mut(&mut self) -> &mut T {
        self.io
            .as_mut()
            .expect("an Async holds its I/O object until dropped")
    }

    /// Deregister and hand the I/O object back (still non-blocking). The loop forgets the
    /// fd before it next waits; close the object only after that (keep it until the loop
    /// has run once), or a new fd with the same number registered meanwhile on the same base
    /// may see one spurious wake-up.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for backends that must undo a registration
    /// synchronously.
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self
            .io
            .take()
            .expect("an Async holds its I/O object until dropped");
        self.source.released.set(true);
        self.rt.push(Change::Release(self.source.clone(), None));
        Ok(io)
    }

    /// Wait until the fd is reported readable (or closed, or in error).
    ///
    /// Readiness is known from the report until an operation through this `Async` fails
    /// with `WouldBlock` ([`read_with`](Self::read_with), `AsyncRead`): until then this
    /// completes at once (tokio's model). So after `readable()`, read through `read_with`,
    /// not through [`get_ref`](Self::get_ref) alone, or a read that would block leaves the
    /// readiness known and the next `readable()` does not wait.
    ///
    /// # Errors
    ///
    /// The loop could not watch the fd (a regular file on epoll, say), naming the fd;
    /// `NotConnected` if the runtime's base was dropped.
    pub fn readable(&self) -> Readable<'_, T> {
        Readable(self)
    }

    /// Wait until the fd is reported writable (or in error). As with
    /// [`readable`](Self::readable), readiness stays known until an operation through this
    /// `Async` ([`write_with`](Self::write_with), `AsyncWrite`) fails with `WouldBlock`.
    ///
    /// # Errors
    ///
    /// As [`readable`](Self::readable).
    pub fn writable(&self) -> Writable<'_, T> {
        Writable(self)
    }

    fn poll_ready(&self, dir: usize, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        poll_source(&self.source, &self.rt, dir, cx)
    }

    /// Run `op` until it does not fail with `WouldBlock`, waiting for readability after each
    /// such failure.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`, or what [`readable`](Self::readable)
    /// returns.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            // The readiness that let `op` run is used up: wait for the next report.
            self.source.dirs[READ].use_up();
            self.readable().await?;
        }
    }

    /// Run `op` until it does not fail with `WouldBlock`, waiting for writability after each
    /// such failure.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`, or what [`writable`](Self::writable)
    /// returns.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            // The readiness that let `op` run is used up: wait for the next report.
            self.source.dirs[WRITE].use_up();
            self.writable().await?;
        }
    }

    /// [`poll_op`](Self::poll_op) for a read or write of `want` bytes. On a stream socket a
    /// short transfer means the kernel's buffer was empty (read) or full (write) just then,
    /// so readiness is used up without the extra call that would fail with `WouldBlock`
    /// (tokio does the same): one syscall fewer per request in a request-response server.
    /// Data or room arriving after the call is a new edge, or still there for a
    /// level-triggered event, so nothing is missed; a close already reported (an edge that
    /// will not come again) keeps the rule off, and so does an edge-triggered backend that
    /// cannot report closes apart. Other fd types (a tty, a seqpacket socket)
    /// may return short with more pending, so for them only `WouldBlock` ends readiness.
    fn poll_transfer(
        &self,
        dir: usize,
        want: usize,
        cx: &mut TaskContext<'_>,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let result = self.poll_op(dir, cx, op);
        if let Poll::Ready(Ok(n)) = result {
            let src = &self.source;
            if n > 0
                && n < want
                && is_stream_socket::<T>()
                && !src.closed.get()
                && !src.edges_without_close.get()
            {
                self.source.dirs[dir].use_up();
            }
        }
        result
    }

    /// `op` once it may succeed, or `Pending` with the task registered for readiness in
    /// `dir`. Where the last operation proved the fd not ready, `op` waits for a report
    /// first rather than spend a syscall on a certain `WouldBlock`.
    fn poll_op<R>(
        &self,
        dir: usize,
        cx: &mut TaskContext<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let d = &self.source.dirs[dir];
        loop {
            if d.spent.get() {
                if let Err(e) = std::task::ready!(self.poll_ready(dir, cx)) {
                    return Poll::Ready(Err(e));
                }
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => d.use_up(),
                result => return Poll::Ready(result),
            }
        }
    }
}

/// Whether `T` is a stream socket, whose short reads and writes end readiness
/// ([`Async::poll_transfer`]). Decided by type, at no cost per call.
fn is_stream_socket<T: 'static>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    #[cfg(unix)]
    if t == TypeId::of::<std::os::unix::net::UnixStream>() {
        return true;
    }
    t == TypeId::of::<TcpStream>()
}

fn poll_source(
    source: &Rc<Source>,
    rt: &Runtime,
    dir: usize,
    cx: &mut TaskContext<'_>,
) -> Poll<io::Result<()>> {
    let d = &source.dirs[dir];
    if rt.is_closed() {
        return Poll::Ready(Err(rt.closed_error()));
    }
    if d.ready.get() {
        return Poll::Ready(Ok(()));
    }
    if let Some(e) = d.error.take() {
        return Poll::Ready(Err(e));
    }
    // Keep the stored waker if it wakes the same task: no clone, no drop.
    match d.waker.take() {
        Some(w) if w.will_wake(cx.waker()) => d.waker.set(Some(w)),
        _ => d.waker.set(Some(cx.waker().clone())),
    }
    if !d.watching.replace(true) {
        rt.push(Change::Watch(source.clone(), dir));
    }
    Poll::Pending
}

impl<T: 'static> Drop for Async<T> {
    fn drop(&mut self) {
        let Some(io) = self.io.take() else {
            return; // into_inner released it
        };
        self.source.released.set(true);
        let registered = self
            .source
            .dirs
            .iter()
            .any(|d| d.watching.get() || d.event.get().is_some());
        if registered && !self.rt.is_closed() {
            self.rt
                .push(Change::Release(self.source.clone(), Some(Box::new(io))));
        }
        // Otherwise the loop never saw the fd, or is gone: close it now.
    }
}

/// The future of [`Async::readable`].
#[must_use = "futures do nothing unless polled"]
pub struct Readable<'a, T: 'static>(&'a Async<T>);

impl<T: 'static> Future for Readable<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.0.poll_ready(READ, cx)
    }
}

/// The future of [`Async::writable`].
#[must_use = "futures do nothing unless polled"]
pub struct Writable<'a, T: 'static>(&'a Async<T>);

impl<T: 'static> Future for Writable<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.0.poll_ready(WRITE, cx)
    }
}

impl Async<TcpListener> {
    /// Bind a listener to `addr` (`SO_REUSEADDR` on Unix, as std does) and register it.
    ///
    /// # Errors
    ///
    /// Binding failed (the address in use, say), as `TcpListener::bind` reports it.
    pub fn bind(rt: &Runtime, addr: impl Into<SocketAddr>) -> io::Result<Async<TcpListener>> {
        let addr = addr.into();
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Async::new(rt, listener)
    }

    /// Accept a connection, registered with the same runtime.
    ///
    /// # Errors
    ///
    /// `accept` failed (out of fds, say), or see [`readable`](Self::readable).
    pub async fn accept(&self) -> io::Result<(Async<TcpStream>, SocketAddr)> {
        let (stream, peer) = self.read_with(|l| l.accept()).await?;
        Ok((Async::new(&self.rt, stream)?, peer))
    }
}

impl Async<TcpStream> {
    /// Connect to `addr` without blocking the loop: the connect runs in the background and
    /// the future completes when it is established or failed.
    ///
    /// # Errors
    ///
    /// The connection failed (refused, unreachable), naming the address.
    pub async fn connect(
        rt: &Runtime,
        addr: impl Into<SocketAddr>,
    ) -> io::Result<Async<TcpStream>> {
        let addr = addr.into();
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}"));
        let domain = match addr {
            SocketAddr::V4(_) => rustix::net::AddressFamily::INET,
            SocketAddr::V6(_) => rustix::net::AddressFamily::INET6,
        };
        let fd: OwnedFd = crate::bufio::nonblocking_socket(domain).map_err(named)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::INPROGRESS || e == rustix::io::Errno::WOULDBLOCK => {}
            Err(e) => return Err(named(e.into())),
        }
        let stream = Async::new(rt, TcpStream::from(fd))?;
        stream.writable().await.map_err(named)?;
        match stream.get_ref().take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Err(named(e)),
        }
        // Writable also after some failures that `SO_ERROR` no longer shows: ask the peer.
        stream.get_ref().peer_addr().map_err(named)?;
        Ok(stream)
    }
}

// `AsyncRead`/`AsyncWrite` for an `Async` of anything whose shared reference reads and
// writes (`TcpStream`, `UnixStream`), and for a shared reference to one, so that one task can
// read while another writes.

impl<T: 'static> AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_transfer(READ, buf.len(), cx, |mut io| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let want = bufs.iter().map(|b| b.len()).sum();
        self.poll_transfer(READ, want, cx, |mut io| io.read_vectored(bufs))
    }
}

impl<T: 'static> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_transfer(READ, buf.len(), cx, |mut io| io.read(buf))
    }
}

/// `close` flushes; it does not shut the stream down (call `get_ref().shutdown(..)` for a
/// half-close, or drop the `Async`).
impl<T: 'static> AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_transfer(WRITE, buf.len(), cx, |mut io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let want = bufs.iter().map(|b| b.len()).sum();
        self.poll_transfer(WRITE, want, cx, |mut io| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.poll_op(WRITE, cx, |mut io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: 'static> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_transfer(WRITE, buf.len(), cx, |mut io| io.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.poll_op(WRITE, cx, |mut io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
