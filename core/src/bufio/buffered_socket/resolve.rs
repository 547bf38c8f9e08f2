//! Connecting by host name (libevent's `bufferevent_socket_connect_hostname`, libuv's
//! `uv_getaddrinfo`): the name is resolved off the loop thread (a helper thread calling the
//! system's `getaddrinfo`, through std's `ToSocketAddrs`), its result comes back through a
//! user event activated by a [`Handle`](crate::Handle), and each address is tried in turn
//! until one connects. Until an fd exists the socket is like a pair's half: its write event
//! is a timer that keeps the loop running, and fires as a connect timeout (the write
//! timeout, or an hour) if the name never resolves.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{BevEvent, BevOptions, BufferedSocket, EventFlags, Fired, Registry, Shared};
use super::{State, WeakShared};
use crate::backend::os_error;
use crate::fd::{AsRawFd, OwnedFd, NO_FD};

/// How long a name may take to resolve without a write timeout.
const RESOLVE_LIMIT: Duration = Duration::from_secs(3600);

/// A connect by name under way.
pub(super) struct Resolving {
    host: String,
    port: u16,
    /// Addresses not tried yet, once resolved.
    addrs: VecDeque<SocketAddr>,
    tried: usize,
    options: crate::bufio::SocketOptions,
    /// The user event that hears the helper thread; freed once it ran.
    wake: Option<crate::event::EventId>,
    /// The address being tried, and the error of the last one that failed.
    current: Option<SocketAddr>,
    last_error: Option<io::Error>,
    /// The connect on `current` failed: try the next address (set without `ops` at hand).
    failed: bool,
}

type Answer = Arc<Mutex<Option<io::Result<Vec<SocketAddr>>>>>;

impl Resolving {
    /// Every address failed, the last with `e`: say which host, how many were tried.
    fn exhausted(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "connect to {}:{} ({} address{} tried, the last {}): {e}",
                self.host,
                self.port,
                self.tried,
                if self.tried == 1 { "" } else { "es" },
                self.current.map_or("none".to_string(), |a| a.to_string()),
            ),
        )
    }
}

impl<D: 'static> BufferedSocket<D> {
    /// Connect to `host` (a name, or an address written out) on `port`: the name is resolved
    /// off the loop thread, then each address is tried in turn, in the order the system
    /// gives them (libevent's `bufferevent_socket_connect_hostname`). The event callback
    /// hears CONNECTED once one connects, or one ERROR naming the host — it does not
    /// resolve, or every address refused (the last error) — or TIMEOUT|WRITING after the
    /// write timeout, if set, while resolving or connecting. Until then writes wait in the
    /// output, as for [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an empty host or one with a NUL; the base cannot create the
    /// socket's events or a [`Handle`](crate::Handle); the helper thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{BevEvent, BevOptions, BufferedSocket};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let mut base: evloop::Base<Option<BevEvent>> = evloop::new_base()?;
    /// let bev = BufferedSocket::connect_host(&mut base, "localhost", port, BevOptions::default())?;
    /// bev.on(&mut base).set_event_callback(|bev, what| {
    ///     *what = Some(bev.fired());
    ///     bev.free();
    /// });
    /// let mut what = None;
    /// base.run(&mut what)?;
    /// // "localhost" may name ::1 first, where nothing listens: the next address connects.
    /// assert_eq!(what, Some(BevEvent::CONNECTED));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_host(
        ops: &mut Registry<D>,
        host: &str,
        port: u16,
        options: BevOptions,
    ) -> io::Result<Self> {
        if host.is_empty() || host.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("connect to host {host:?}: not a host name"),
            ));
        }
        let bev = Self::unconnected(ops, host, port, &[], options)?;
        let answer: Answer = Arc::new(Mutex::new(None));
        let weak = Rc::downgrade(&bev.state);
        let heard = answer.clone();
        let started = ops
            .new_user_event(move |ctx, _| resolved(&weak, ctx, &heard))
            .and_then(|wake| {
                let handle = ops.handle()?;
                let (name, answer) = (host.to_string(), answer.clone());
                std::thread::Builder::new()
                    .name("evloop-resolve".into())
                    .spawn(move || {
                        let found = (name.as_str(), port)
                            .to_socket_addrs()
                            .map(|addrs| addrs.collect());
                        *answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(found);
                        let _ = handle.activate(wake, Fired::empty(), 1);
                    })
                    .map(|_| wake)
            });
        let mut st = bev.state.borrow_mut();
        match started {
            Ok(wake) => st.resolving.as_mut().expect("unconnected").wake = Some(wake),
            Err(e) => {
                st.teardown(ops);
                return Err(e);
            }
        }
        // The write event, a timer until there is an fd, keeps the loop running meanwhile.
        let limit = st.timeouts.write.unwrap_or(RESOLVE_LIMIT);
        st.writing.add(ops, Some(limit))?;
        drop(st);
        Ok(bev)
    }
}

impl<D: 'static> BufferedSocket<D> {
    /// Connect to the first of `addrs` that accepts, trying each in turn (what
    /// [`connect_host`](Self::connect_host) does once the name resolved); `name` is what
    /// errors call the peer. The event callback hears CONNECTED, or one ERROR naming `name`
    /// with the last address's error.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for no addresses; as [`connect`](Self::connect) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, TcpListener};
    /// use evloop::{BevEvent, BevOptions, BufferedSocket};
    ///
    /// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // dropped: refuses
    /// let open = TcpListener::bind("127.0.0.1:0")?;
    /// let mut base: evloop::Base<Option<BevEvent>> = evloop::new_base()?;
    /// let addrs = [closed, open.local_addr()?];
    /// let bev = BufferedSocket::connect_any(&mut base, "the service", &addrs, BevOptions::default())?;
    /// bev.on(&mut base).set_event_callback(|bev, what| {
    ///     *what = Some(bev.fired());
    ///     bev.free();
    /// });
    /// let mut what = None;
    /// base.run(&mut what)?;
    /// assert_eq!(what, Some(BevEvent::CONNECTED)); // the second address
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_any(
        ops: &mut Registry<D>,
        name: &str,
        addrs: &[SocketAddr],
        options: BevOptions,
    ) -> io::Result<Self> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("connect to {name}: no addresses to try"),
            ));
        }
        let bev = Self::unconnected(ops, name, addrs[0].port(), addrs, options)?;
        bev.state.borrow_mut().try_next_address(ops, &bev.state);
        Ok(bev)
    }

    /// A socket without an fd yet, connecting to `name` at `addrs` (none yet while the name
    /// resolves).
    fn unconnected(
        ops: &mut Registry<D>,
        name: &str,
        port: u16,
        addrs: &[SocketAddr],
        options: BevOptions,
    ) -> io::Result<Self> {
        options.socket.validate()?;
        let bev = Self::build_connecting(ops, None, options)?;
        {
            let mut st = bev.state.borrow_mut();
            st.resolving = Some(Box::new(Resolving {
                host: name.to_string(),
                port,
                addrs: addrs.iter().copied().collect(),
                tried: 0,
                options: options.socket,
                wake: None,
                current: None,
                last_error: None,
                failed: false,
            }));
        }
        Ok(bev)
    }
}

/// The helper thread answered: start on the first address, or report why not.
fn resolved<D: 'static>(weak: &WeakShared<D>, ops: &mut Registry<D>, answer: &Answer) {
    let Some(rc) = weak.upgrade() else {
        return;
    };
    let Ok(mut st) = rc.try_borrow_mut() else {
        return;
    };
    let found = answer.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(resolving) = st.resolving.as_mut() else {
        return;
    };
    if let Some(wake) = resolving.wake.take() {
        let _ = ops.free(wake);
    }
    if st.freed {
        return;
    }
    // The write timeout ran out (or writing was disabled) while the name resolved: the
    // connect is over, TIMEOUT was reported.
    if !st.enabled.contains(EventFlags::WRITE) {
        st.resolving = None;
        return;
    }
    let resolving = st.resolving.as_mut().expect("checked above");
    match found {
        Some(Ok(addrs)) if !addrs.is_empty() => {
            resolving.addrs = addrs.into();
            st.try_next_address(ops, &rc);
        }
        Some(Ok(_)) => {
            let e = io::Error::new(
                io::ErrorKind::NotFound,
                format!("resolve {}: no addresses", resolving.host),
            );
            st.resolve_failed(ops, e);
        }
        Some(Err(e)) => {
            let e = io::Error::new(e.kind(), format!("resolve {}: {e}", resolving.host));
            st.resolve_failed(ops, e);
        }
        None => {}
    }
}

impl<D: 'static> State<D> {
    /// Whether the socket is still looking for an address to connect to (no fd yet).
    pub(super) fn resolving_host(&self) -> bool {
        self.resolving.is_some() && self.fd == NO_FD
    }

    /// One ERROR, naming the host; the keep-alive timer goes.
    fn resolve_failed(&mut self, ops: &mut Registry<D>, e: io::Error) {
        self.resolving = None;
        self.connect.pending = false;
        self.enabled = EventFlags::empty();
        self.pending.events |= BevEvent::ERROR | BevEvent::WRITING;
        self.pending.error = Some(e);
        let _ = self.writing.arm(ops, false, None);
        self.schedule(ops);
    }

    /// A connect on the current address failed (`finish_connect`): note it; `dispatch`
    /// tries the next one. Returns whether there is one.
    pub(super) fn connect_failed(&mut self, e: &io::Error) -> bool {
        let Some(r) = self.resolving.as_mut() else {
            return false;
        };
        if r.addrs.is_empty() {
            return false;
        }
        r.last_error = Some(io::Error::new(e.kind(), e.to_string()));
        r.failed = true;
        true
    }

    /// The write timeout changed while resolving: the timer that bounds it follows.
    pub(super) fn resolve_timeout(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        let limit = self.timeouts.write.unwrap_or(RESOLVE_LIMIT);
        self.writing.add(ops, Some(limit))
    }

    /// The last connect failed with `e`: say which host, how many addresses were tried.
    pub(super) fn name_connect_error(&mut self, e: io::Error) -> io::Error {
        match self.resolving.take() {
            Some(r) => r.exhausted(e),
            None => e,
        }
    }

    /// The socket is freed: the helper thread's wake-up event goes too.
    pub(super) fn resolve_teardown(&mut self, ops: &mut Registry<D>) {
        if let Some(wake) = self.resolving.take().and_then(|r| r.wake) {
            let _ = ops.free(wake);
        }
    }

    /// `dispatch`'s part: after a failed address, move on.
    pub(super) fn resolve_step(&mut self, ops: &mut Registry<D>, rc: &Shared<D>) {
        if self.resolving.as_ref().is_some_and(|r| r.failed) {
            self.try_next_address(ops, rc);
        }
    }

    /// Put the socket on a new fd connecting to the next address, or report the end.
    fn try_next_address(&mut self, ops: &mut Registry<D>, rc: &Shared<D>) {
        // The events of the last fd (or the timers of none) go first, then that fd.
        for ev in [self.reading.take(), self.writing.take()]
            .into_iter()
            .flatten()
        {
            let _ = ops.free(ev);
        }
        drop(self.owned.take());
        self.fd = NO_FD;
        let r = self.resolving.as_mut().expect("resolving");
        r.failed = false;
        while let Some(addr) = r.addrs.pop_front() {
            r.tried += 1;
            r.current = Some(addr);
            match start_connect(addr, &r.options) {
                Ok((fd, immediate)) => {
                    let attached = attach(self, ops, rc, fd);
                    self.connect.pending = true;
                    self.connect.error = immediate;
                    if let Err(e) = attached.and_then(|()| self.sync(ops)) {
                        let host = self
                            .resolving
                            .as_ref()
                            .map_or(String::new(), |r| r.host.clone());
                        return self
                            .resolve_failed(ops, os_error(&format!("connect to {host}"), e));
                    }
                    return;
                }
                Err(e) => r.last_error = Some(e),
            }
        }
        let e = r
            .last_error
            .take()
            .unwrap_or_else(|| io::Error::other("no address"));
        let e = r.exhausted(e);
        self.resolve_failed(ops, e);
    }
}

/// A non-blocking socket for `addr` with `options`, and its connect started; the error of a
/// connect refused at once comes back to be reported as the connect's outcome.
pub(super) fn start_connect(
    addr: SocketAddr,
    options: &crate::bufio::SocketOptions,
) -> io::Result<(OwnedFd, Option<io::Error>)> {
    let domain = if addr.is_ipv4() {
        rustix::net::AddressFamily::INET
    } else {
        rustix::net::AddressFamily::INET6
    };
    let fd = crate::bufio::nonblocking_socket(domain)?;
    // Before the connect: a receive buffer shapes the window scale the SYN offers.
    options.apply(&fd)?;
    let immediate = match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::INTR) => None,
        // Winsock's way of saying "in progress".
        #[cfg(windows)]
        Err(rustix::io::Errno::WOULDBLOCK) => None,
        Err(e) => Some(os_error(&format!("connect to {addr}"), e)),
    };
    Ok((fd, immediate))
}

/// Give the socket `fd` and events watching it.
fn attach<D: 'static>(
    st: &mut State<D>,
    ops: &mut Registry<D>,
    rc: &Shared<D>,
    fd: OwnedFd,
) -> io::Result<()> {
    super::no_sigpipe(&fd);
    st.fd = fd.as_raw_fd();
    st.owned = Some(fd);
    st.is_socket = true;
    st.make_io_events(ops, rc)
}
