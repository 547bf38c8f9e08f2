//! Making buffered sockets: over a connected fd (`new`), by connecting (`connect`), with TLS
//! on the server or client side (`tls_server`, `tls_client`, `tls_connect`,
//! `tls_connect_host`), over another socket through filters (`filtered`), and as a connected
//! pair without fds (`pair`). Each builds the state and its internal events through `build`.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{
    defer_handler, no_sigpipe, BevOptions, BufferedSocket, Filter, Shared, SocketCell, State, Which,
};
use crate::fd::{OwnedFd, NO_FD};
use crate::flags::EventFlags;
use crate::registry::Registry;

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
    /// enabled, reading is not (as in libevent): call [`enable`](super::BevControl::enable).
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
        let (fd, refused) = super::resolve::start_connect(addr, &options.socket)?;
        let bev = Self::build_connecting(ops, Some(fd), options)?;
        {
            let mut st = bev.state.borrow_mut();
            st.connect.error = refused;
            st.sync(ops)?;
        }
        Ok(bev)
    }

    /// A socket the base connects (to an address, or to a host name once it resolves): it
    /// owns and closes its fd, whose socket options the connect applied already, and its
    /// connect is pending.
    pub(super) fn build_connecting(
        ops: &mut Registry<D>,
        fd: Option<OwnedFd>,
        options: BevOptions,
    ) -> io::Result<Self> {
        let bev = Self::build(
            ops,
            fd,
            BevOptions {
                close_on_free: true,
                socket: crate::bufio::SocketOptions::default(),
                ..options
            },
        )?;
        bev.state.borrow_mut().connect.pending = true;
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
        let conn = rustls::ServerConnection::new(config).map_err(crate::bufio::tls::tls_error)?;
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
    ///     bev.on(ctx).set_read_callback(|bev, _| {
    ///         let (input, output) = bev.buffers();
    ///         output.append_buffer(input).unwrap(); // plaintext in, plaintext out
    ///     });
    /// })?;
    /// let client = BufferedSocket::tls_connect(
    ///     &mut base, listener.local_addr()?, Arc::new(client), "localhost", BevOptions::default())?;
    /// let mut control = client.on(&mut base);
    /// control.set_event_callback(|bev, _| {
    ///     if bev.fired().contains(BevEvent::CONNECTED) {
    ///         bev.write(b"hello").unwrap(); // after the handshake
    ///     }
    /// });
    /// control.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     let mut chunk = vec![0; bev.input().len()];
    ///     bev.input().remove(&mut chunk).unwrap();
    ///     got.extend(chunk);
    ///     if got.len() == 5 {
    ///         bev.free(); // sends close_notify
    ///         bev.context().loop_break();
    ///     }
    /// });
    /// control.enable(Interest::READ)?;
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
            st.tls = Some(Box::new(crate::bufio::tls::TlsLayer::new(conn)));
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
    /// [`BevContext::tls`](crate::BevContext::tls) there), or it was freed.
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
    /// input filter ran once more as [`FlushMode::Finished`](crate::FlushMode::Finished); a
    /// filter's error is one ERROR event.
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
    /// let mut reader = b.on(&mut base);
    /// reader.set_read_callback(|bev, got: &mut Vec<u8>| {
    ///     let mut chunk = vec![0; bev.input().len()];
    ///     bev.input().remove(&mut chunk).unwrap();
    ///     got.extend(chunk);
    ///     if got.len() == 5 {
    ///         bev.context().loop_break();
    ///     }
    /// });
    /// reader.enable(Interest::READ)?;
    /// a.on(&mut base).write(b"Hello")?;
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
                socket: crate::bufio::SocketOptions::default(),
                ..options
            },
        )?;
        let weak = Rc::downgrade(&me.state);
        let taken = under.with(|u| {
            for which in [Which::Read, Which::Write, Which::Event] {
                *u.callbacks.get(which) = Some(super::filter::under_callback(weak.clone(), which));
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
            st.filter = Some(Box::new(super::filter::FilterLayer::new(
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
    rustls::ClientConnection::new(config, name).map_err(crate::bufio::tls::tls_error)
}
