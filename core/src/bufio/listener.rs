//! [`Listener`]: accepts connections on a listening socket (libevent's evconnlistener).
//!
//! When the socket is readable the listener accepts in a loop (`accept4`, non-blocking and
//! close-on-exec) until `EAGAIN`, at most 256 per wake-up so other events get their turn,
//! and hands each new fd and peer address to the accept callback.
//!
//! Running out of fds (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) is libevent's well-known
//! trap: the pending connection keeps the socket readable, so a listener that merely logs and
//! returns spins at 100% CPU. Ours reports the error to the error callback, stops watching the
//! socket and retries after a back-off (10 ms, doubling to 1 s, reset by the next accept), so
//! it recovers by itself once fds are free again.

use crate::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd, NO_FD};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrAny, SocketType};

use crate::backend::os_error;
use crate::event::EventId;
use crate::flags::EventFlags;
use crate::registry::Registry;
use crate::registry::{Callback, Context};

const MAX_ACCEPTS_PER_WAKEUP: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a listener is set up (libevent's `LEV_OPT_*` and backlog).
#[derive(Copy, Clone, Debug)]
pub struct ListenerOptions {
    /// `SO_REUSEADDR` (default on): rebind a port with connections in TIME_WAIT.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`: several sockets (one loop per core) share the port.
    pub reuseport: bool,
    /// Close the socket when the listener is freed (default on); otherwise `free` returns it.
    pub close_on_free: bool,
    /// Start disabled; call [`Listener::enable`].
    pub disabled: bool,
    /// The `listen` backlog.
    pub backlog: i32,
    /// Options set on every accepted connection before the accept callback gets it (one the
    /// system refuses is told to the error callback, and the connection is still handed
    /// over).
    pub socket: super::SocketOptions,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            reuseaddr: true,
            reuseport: false,
            close_on_free: true,
            disabled: false,
            backlog: 511,
            socket: super::SocketOptions::default(),
        }
    }
}

/// Where an accepted connection comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 or IPv6 peer.
    Inet(SocketAddr),
    /// A Unix-domain peer, with its path if it is bound to one.
    Unix(Option<PathBuf>),
    /// Anything else, or not reported.
    Unknown,
}

/// `127.0.0.1:4242`, `[::1]:4242`, `unix:/run/app.sock`, `unix:(unnamed)` or `unknown`.
///
/// # Examples
///
/// ```
/// let peer = evloop::PeerAddr::Inet("127.0.0.1:4242".parse().unwrap());
/// assert_eq!(peer.to_string(), "127.0.0.1:4242");
/// assert_eq!(evloop::PeerAddr::Unix(None).to_string(), "unix:(unnamed)");
/// ```
impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
            PeerAddr::Unknown => f.write_str("unknown"),
        }
    }
}

impl PeerAddr {
    fn from_any(addr: Option<SocketAddrAny>) -> Self {
        let Some(addr) = addr else {
            return PeerAddr::Unknown;
        };
        if let Ok(inet) = SocketAddr::try_from(addr.clone()) {
            return PeerAddr::Inet(inet);
        }
        #[cfg(unix)]
        if let Ok(unix) = rustix::net::SocketAddrUnix::try_from(addr) {
            return PeerAddr::Unix(
                unix.path()
                    .map(|p| PathBuf::from(p.to_string_lossy().into_owned())),
            );
        }
        PeerAddr::Unknown
    }
}

/// The accept callback: the loop's context, the new connection's fd, its peer, user data.
pub type AcceptCallback<D> = Box<dyn FnMut(&mut Context<'_, D>, OwnedFd, PeerAddr, &mut D)>;
/// The error callback: the loop's context, what failed, user data.
pub type ListenerErrorCallback<D> = Box<dyn FnMut(&mut Context<'_, D>, &io::Error, &mut D)>;

struct State<D> {
    fd: Option<OwnedFd>,
    raw: RawFd,
    accept_ev: Option<EventId>,
    retry_ev: Option<EventId>,
    enabled: bool,
    backing_off: bool,
    backoff: Duration,
    on_accept: Option<AcceptCallback<D>>,
    on_error: Option<ListenerErrorCallback<D>>,
    close_on_free: bool,
    freed: bool,
    socket: super::SocketOptions,
    /// The base was dropped while a handle held the listener: the socket is closed.
    base_gone: bool,
}

impl<D> State<D> {
    fn sync(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        let Some(ev) = self.accept_ev else {
            return Ok(());
        };
        if self.enabled && !self.backing_off {
            ops.add(ev, None)
        } else {
            ops.del(ev)
        }
    }

    fn teardown(&mut self, ops: &mut Registry<D>) -> Option<OwnedFd> {
        self.freed = true;
        for ev in [self.accept_ev.take(), self.retry_ev.take()]
            .into_iter()
            .flatten()
        {
            let _ = ops.free(ev);
        }
        let fd = self.fd.take();
        if self.close_on_free {
            None
        } else {
            fd
        }
    }
}

/// Accepts connections and hands them to a callback.
///
/// Dropping the handle does not stop it: the base holds the listener, which accepts until
/// [`free`](Self::free) — a server binds and forgets its listener, as with libevent's
/// `evconnlistener`. Dropping the base closes the listening socket, and a handle kept past
/// that answers `NotConnected`.
///
/// # Examples
///
/// ```
/// use std::net::{SocketAddr, TcpStream};
/// use evloop::{Base, Listener, ListenerOptions};
///
/// let mut base: Base<usize> = evloop::new_base()?;
/// let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
/// let listener = Listener::bind(&mut base, addr, ListenerOptions::default(), |ctx, _fd, _peer, n: &mut usize| {
///     *n += 1;
///     ctx.loop_break();
/// })?;
/// let _client = TcpStream::connect(listener.local_addr()?)?;
/// let mut accepted = 0;
/// base.run(&mut accepted)?;
/// assert_eq!(accepted, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Listener<D> {
    state: Rc<RefCell<State<D>>>,
}

impl<D> Clone for Listener<D> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<D> std::fmt::Debug for Listener<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fd = self.state.try_borrow().map_or(NO_FD, |s| s.raw);
        f.debug_struct("Listener").field("fd", &fd).finish()
    }
}

/// A non-blocking, close-on-exec stream socket (macOS sets the flags after creation; Windows
/// sockets are not inherited unless asked for).
pub(crate) fn nonblocking_socket(domain: AddressFamily) -> io::Result<OwnedFd> {
    #[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
    {
        use rustix::net::SocketFlags;
        Ok(rustix::net::socket_with(
            domain,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let fd = rustix::net::socket(domain, SocketType::STREAM, None)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        Ok(fd)
    }
    #[cfg(windows)]
    {
        crate::fd::start_sockets();
        let fd = rustix::net::socket(domain, SocketType::STREAM, None)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(fd)
    }
}

fn accept_one(listener: BorrowedFd<'_>) -> rustix::io::Result<(OwnedFd, Option<SocketAddrAny>)> {
    #[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
    {
        use rustix::net::SocketFlags;
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let (fd, addr) = rustix::net::acceptfrom(listener)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        Ok((fd, addr))
    }
    #[cfg(windows)]
    {
        let (fd, addr) = rustix::net::acceptfrom(listener)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok((fd, addr))
    }
}

/// Held by the listener's accept event: dropped when the event is freed — by `teardown`,
/// with the state borrowed, when this does nothing — or with the base while a handle keeps
/// the listener alive: then the listening socket is closed, so connects are refused instead
/// of piling up in a backlog nobody accepts.
struct CloseWithBase<D>(Rc<RefCell<State<D>>>);

impl<D> Drop for CloseWithBase<D> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.try_borrow_mut() {
            if !st.freed {
                st.freed = true;
                st.base_gone = true;
                (st.accept_ev, st.retry_ev) = (None, None);
                st.on_accept = None;
                st.on_error = None;
                drop(st.fd.take());
            }
        }
    }
}

fn accept_handler<D: 'static>(rc: Rc<RefCell<State<D>>>) -> Callback<D> {
    let guard = CloseWithBase(rc);
    Box::new(move |ctx, data| {
        let rc = &guard.0;
        for _ in 0..MAX_ACCEPTS_PER_WAKEUP {
            let (raw, freed) = match rc.try_borrow() {
                Ok(st) => (st.raw, st.freed),
                Err(_) => return,
            };
            if freed {
                return;
            }
            // SAFETY: the listener owns the fd (or its adopter keeps it open until free).
            let result = accept_one(unsafe { BorrowedFd::borrow_raw(raw) });
            match result {
                Ok((fd, peer)) => {
                    let (cb, socket) = {
                        let mut st = rc.borrow_mut();
                        st.backoff = FIRST_BACKOFF;
                        (st.on_accept.take(), st.socket)
                    };
                    if !socket.is_empty() {
                        if let Err(e) = socket.apply(&fd) {
                            report(rc, ctx, data, e);
                        }
                    }
                    // No callback: the fd is dropped.
                    let Some(mut cb) = cb else { continue };
                    // The state is not borrowed while the callback runs: it may use the handle.
                    cb(ctx, fd, PeerAddr::from_any(peer), data);
                    let mut st = rc.borrow_mut();
                    if st.on_accept.is_none() && !st.freed {
                        st.on_accept = Some(cb);
                    }
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => {
                    report(rc, ctx, data, os_error(&format!("accept on fd {raw}"), e));
                    back_off(rc, ctx);
                    return;
                }
            }
        }
    })
}

fn report<D>(rc: &Rc<RefCell<State<D>>>, ctx: &mut Context<'_, D>, data: &mut D, err: io::Error) {
    let cb = rc.borrow_mut().on_error.take();
    if let Some(mut cb) = cb {
        cb(ctx, &err, data);
        let mut st = rc.borrow_mut();
        if st.on_error.is_none() && !st.freed {
            st.on_error = Some(cb);
        }
    }
}

fn back_off<D>(rc: &Rc<RefCell<State<D>>>, ctx: &mut Context<'_, D>) {
    let mut st = rc.borrow_mut();
    if st.freed {
        return;
    }
    st.backing_off = true;
    let _ = st.sync(ctx);
    let delay = st.backoff;
    st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
    if let Some(retry) = st.retry_ev {
        let _ = ctx.add(retry, Some(delay));
    }
}

fn retry_handler<D: 'static>(rc: Rc<RefCell<State<D>>>) -> Callback<D> {
    Box::new(move |ctx, _| {
        let Ok(mut st) = rc.try_borrow_mut() else {
            return;
        };
        if !st.freed {
            st.backing_off = false;
            let _ = st.sync(ctx);
        }
    })
}

impl<D: 'static> Listener<D> {
    /// Listen on a TCP address (port 0 picks a free one: see [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    ///
    /// Creating, configuring, binding or listening on the socket failed; the message names
    /// the address. `InvalidInput` for socket options out of range (see
    /// [`SocketOptions::validate`](super::SocketOptions::validate)).
    pub fn bind(
        ops: &mut Registry<D>,
        addr: SocketAddr,
        options: ListenerOptions,
        on_accept: impl FnMut(&mut Context<'_, D>, OwnedFd, PeerAddr, &mut D) + 'static,
    ) -> io::Result<Self> {
        options.socket.validate()?;
        let domain = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = nonblocking_socket(domain)?;
        // On Windows SO_REUSEADDR lets another socket take a port in use, which is not what
        // it means elsewhere (libevent's evutil_make_listen_socket_reuseable skips it there).
        if options.reuseaddr && cfg!(not(windows)) {
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true)
                .map_err(|e| os_error("SO_REUSEADDR", e))?;
        }
        if options.reuseport {
            set_reuseport(&fd)?;
        }
        rustix::net::bind(&fd, &addr).map_err(|e| os_error(&format!("bind {addr}"), e))?;
        rustix::net::listen(&fd, options.backlog)
            .map_err(|e| os_error(&format!("listen on {addr}"), e))?;
        Self::adopt(ops, fd, options, on_accept)
    }

    /// Listen on a Unix-domain socket path (which must not exist). Unix only.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    #[cfg(unix)]
    pub fn bind_unix(
        ops: &mut Registry<D>,
        path: &Path,
        options: ListenerOptions,
        on_accept: impl FnMut(&mut Context<'_, D>, OwnedFd, PeerAddr, &mut D) + 'static,
    ) -> io::Result<Self> {
        let fd = nonblocking_socket(AddressFamily::UNIX)?;
        let addr = rustix::net::SocketAddrUnix::new(path)
            .map_err(|e| os_error(&format!("{}", path.display()), e))?;
        rustix::net::bind(&fd, &addr)
            .map_err(|e| os_error(&format!("bind {}", path.display()), e))?;
        rustix::net::listen(&fd, options.backlog)
            .map_err(|e| os_error(&format!("listen on {}", path.display()), e))?;
        Self::adopt(ops, fd, options, on_accept)
    }

    /// Accept on a socket that is already listening (made non-blocking here).
    ///
    /// # Errors
    ///
    /// The fd cannot be made non-blocking, or the base cannot watch it; `InvalidInput` for
    /// socket options out of range.
    pub fn adopt(
        ops: &mut Registry<D>,
        fd: OwnedFd,
        options: ListenerOptions,
        on_accept: impl FnMut(&mut Context<'_, D>, OwnedFd, PeerAddr, &mut D) + 'static,
    ) -> io::Result<Self> {
        options.socket.validate()?;
        rustix::io::ioctl_fionbio(&fd, true).map_err(|e| os_error("FIONBIO", e))?;
        let raw = fd.as_raw_fd();
        let state = Rc::new(RefCell::new(State {
            fd: Some(fd),
            raw,
            accept_ev: None,
            retry_ev: None,
            enabled: !options.disabled,
            backing_off: false,
            backoff: FIRST_BACKOFF,
            on_accept: Some(Box::new(on_accept)),
            on_error: None,
            close_on_free: options.close_on_free,
            freed: false,
            socket: options.socket,
            base_gone: false,
        }));
        // The listener owns the fd and frees this event before closing it (`new_event`'s
        // promise).
        let accept = ops.make_event(
            raw,
            EventFlags::READ | EventFlags::PERSIST,
            accept_handler(state.clone()),
        )?;
        let retry = match ops.make_event(NO_FD, EventFlags::empty(), retry_handler(state.clone())) {
            Ok(r) => r,
            Err(e) => {
                let _ = ops.free(accept);
                return Err(e);
            }
        };
        {
            let mut st = state.borrow_mut();
            st.accept_ev = Some(accept);
            st.retry_ev = Some(retry);
            if let Err(e) = st.sync(ops) {
                st.teardown(ops);
                return Err(e);
            }
        }
        Ok(Self { state })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<D>) -> io::Result<R>) -> io::Result<R> {
        let mut st = self
            .state
            .try_borrow_mut()
            .map_err(|_| io::Error::new(io::ErrorKind::ResourceBusy, "the listener is busy"))?;
        if st.base_gone {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the base of this listener was dropped (and its socket closed with it)",
            ));
        }
        if st.freed {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "this listener was freed",
            ));
        }
        f(&mut st)
    }

    /// Called with each error (accept failures, `EMFILE` included); the listener backs off
    /// and retries by itself.
    ///
    /// # Errors
    ///
    /// The listener was freed.
    pub fn set_error_callback(
        &self,
        cb: impl FnMut(&mut Context<'_, D>, &io::Error, &mut D) + 'static,
    ) -> io::Result<()> {
        self.with(|st| {
            st.on_error = Some(Box::new(cb));
            Ok(())
        })
    }

    /// Accept again.
    ///
    /// # Errors
    ///
    /// Freed, or the backend refusing the fd.
    pub fn enable(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.with(|st| {
            st.enabled = true;
            st.sync(ops)
        })
    }

    /// Stop accepting (connections wait in the backlog).
    ///
    /// # Errors
    ///
    /// Freed.
    pub fn disable(&self, ops: &mut Registry<D>) -> io::Result<()> {
        self.with(|st| {
            st.enabled = false;
            st.sync(ops)
        })
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// Freed (`NotFound`), its base dropped (`NotConnected`), busy, or not an IP socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with(|st| {
            let raw = st.raw;
            // SAFETY: the listener keeps its fd open while not freed (checked by `with`).
            let any = rustix::net::getsockname(unsafe { BorrowedFd::borrow_raw(raw) })?;
            SocketAddr::try_from(any)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
        })
    }

    /// The listening fd (-1 once freed).
    pub fn fd(&self) -> RawFd {
        self.state
            .try_borrow()
            .map_or(NO_FD, |s| if s.freed { NO_FD } else { s.raw })
    }

    /// Stop and free the listener; the socket is closed, or returned without `close_on_free`.
    ///
    /// # Errors
    ///
    /// Freed already.
    pub fn free(self, ops: &mut Registry<D>) -> io::Result<Option<OwnedFd>> {
        self.with(|st| Ok(st.teardown(ops)))
    }
}

/// `SO_REUSEPORT`, where the system has it (rustix exposes it on Linux, macOS and the BSDs).
#[cfg(not(any(target_os = "illumos", target_os = "solaris", windows)))]
fn set_reuseport(fd: &OwnedFd) -> io::Result<()> {
    rustix::net::sockopt::set_socket_reuseport(fd, true).map_err(|e| os_error("SO_REUSEPORT", e))
}

/// illumos, Solaris and Windows: no `SO_REUSEPORT` to ask for, so say so instead of
/// listening alone.
#[cfg(any(target_os = "illumos", target_os = "solaris", windows))]
fn set_reuseport(_fd: &OwnedFd) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("SO_REUSEPORT: not available on {}", std::env::consts::OS),
    ))
}
