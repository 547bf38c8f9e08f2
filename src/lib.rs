//! evloop: an event-notification library in the lineage of libevent.
//!
//! One loop runs callbacks when fds become ready, when timers expire, when signals arrive, or
//! when you activate events by hand; an OS backend (epoll on Linux, kqueue on macOS and the
//! BSDs, the `polling` adapter with IOCP on Windows and event ports on illumos, poll and
//! select) does the waiting, chosen at build time by cargo features and at run time by
//! [`Config`] and the environment, as libevent does. Every backend gives the same semantics,
//! which the `evloop-conformance` suite checks scenario by scenario.
//!
//! # Getting started
//!
//! A line-echo server: a [`Listener`] accepts, each connection becomes a [`BufferedSocket`]
//! (libevent's bufferevent) whose read callback answers every line. A client thread talks to
//! it, and a [`Handle`] lets that thread stop the loop.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use evloop::{Base, BevOptions, BufferedSocket, Eol, Interest, Listener, ListenerOptions};
//!
//! let mut base: Base = evloop::new_base()?;
//! let addr = SocketAddr::from(([127, 0, 0, 1], 0));
//! let listener = Listener::bind(&mut base, addr, ListenerOptions::default(), |ctx, fd, _peer, _| {
//!     // In a listener's or an event's callback, `ctx` is the loop: pass it where `&mut base`
//!     // went outside.
//!     let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else { return };
//!     // A handle changes its socket through `on(ops)`; a callback's `bev` directly.
//!     let mut bev = bev.on(ctx);
//!     bev.set_read_callback(|bev, _| {
//!         // In a socket's callback, `bev` is the socket (and `bev.context()` the loop).
//!         while let Some(line) = bev.input().read_line(Eol::Lf) {
//!             let _ = write!(bev.output(), "echo: {}\n", String::from_utf8_lossy(&line));
//!         }
//!     });
//!     // EOF or an error: free the socket, which closes its fd.
//!     bev.set_event_callback(|bev, _| { bev.free(); });
//!     let _ = bev.enable(Interest::READ);
//! })?;
//! let port = listener.local_addr()?.port();
//! let handle = base.handle()?;
//! let client = std::thread::spawn(move || -> std::io::Result<String> {
//!     let mut stream = TcpStream::connect(("127.0.0.1", port))?;
//!     stream.write_all(b"hello\n")?;
//!     let mut answer = String::new();
//!     BufReader::new(&stream).read_line(&mut answer)?;
//!     handle.loop_exit(None)?;
//!     Ok(answer)
//! });
//! base.run(&mut ())?;
//! assert_eq!(client.join().unwrap()?, "echo: hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Where the operations are
//!
//! Every event operation — create, [`add`](Registry::add), [`del`](Registry::del),
//! [`free`](Registry::free), [`activate`](Registry::activate), timers, `loop_exit` — is a
//! method of [`Registry`], reached three ways:
//!
//! | where you are | what you hold | what to pass as `ops: &mut Registry` |
//! |---|---|---|
//! | outside the loop | `base: Base<D>` | `&mut base` |
//! | an event's, timer's, signal's or listener's callback | `ctx: &mut Context<D>` | `ctx` |
//! | a buffered socket's callback | `bev: &mut BevContext<D>` | `bev.context()` |
//!
//! `D` is your data, handed to every callback as `&mut D` by [`Base::run`]: state shared by
//! callbacks lives there, with no `Rc<RefCell<…>>`.
//!
//! # The rules
//!
//! - **fds belong to their events.** [`Registry::new_owned_event`] takes an `OwnedFd` (or a
//!   `TcpStream`, `UnixStream`, …) and closes it when the event is freed, or hands it back
//!   with [`Registry::free_and_take_fd`]; buffered sockets and listeners own theirs likewise.
//!   The raw-fd [`Registry::new_event`] (libevent's `event_new`) is `unsafe`: you promise to
//!   free the event before closing the fd. An fd closed anyway is reported to its event once
//!   and the event deleted, on every backend, and a new event on the reused number works.
//! - **Ids are names, not owners.** An [`EventId`] is `Copy`; once the event is freed, every
//!   copy is refused with `NotFound`. Dropping an id frees nothing: call `free`.
//! - **One way to use a socket, inside and outside its callbacks.** What changes a socket
//!   (write, enable, disable, flush, timeouts, watermarks, callbacks, rate limit) is a
//!   [`BevControl`] method: the [`BevContext`] a callback gets dereferences to one and acts at
//!   once; a [`BufferedSocket`] handle makes one with [`on`](BufferedSocket::on)`(ops)`. A
//!   handle also works inside the socket's own callbacks: what it changes is queued and
//!   applied in order when the callback returns, or before the context's next change. What only reads the socket (`input_len`,
//!   `with_input`, …) answers `ResourceBusy` there: use the context. A socket nobody holds a handle to, which can no longer run a callback (reading
//!   stopped after EOF or an error, nothing left to write), is freed by the loop.
//! - **Timers are never early**: a timer runs at or after its deadline, equal deadlines in
//!   the order they were added; [`Registry::after`] and [`Registry::every`] are the short
//!   forms, [`Registry::new_timer`] the general one.
//! - **Other threads** reach the loop through a [`Handle`] (`Send + Sync`): activate an
//!   event, send a closure to run on the loop thread, stop the loop.
//! - **Signals** are events too ([`Registry::new_signal`]); their callbacks run in the loop,
//!   never in a signal handler.
//! - **Loop hooks** are events too: [`Registry::new_prepare`] runs before each wait,
//!   [`Registry::new_check`] after it, [`Registry::new_idle`] when a pass found nothing else
//!   to do (and keeps the loop from blocking while started); [`Registry::metrics`] says what
//!   the loop has done.
//!
//! # Choosing a backend
//!
//! [`new_base`] takes the first compiled-in backend of kqueue, epoll, polling, poll and
//! select that the environment does not exclude (`EVENT_NOEPOLL=1` and so on);
//! [`Config`] avoids backends or requires [`Features`]. The [`backend`] module holds the
//! contract for writing your own.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::io;

pub use evloop_core::*;

#[doc(hidden)]
#[path = "targets.rs"]
pub mod targets;
use targets::PREFERENCE;

/// The environment variable that excludes `backend` (libevent's `EVENT_NOEPOLL` & co.).
fn env_var_for(backend: &str) -> String {
    format!("EVENT_NO{}", backend.to_ascii_uppercase())
}

/// For backend authors and for choosing a backend by hand: the [`Backend`] contract and its
/// helpers, the compiled-in backends by name, and whether the environment is honoured.
/// Everyday code needs none of it: [`new_base`] and [`Config`] choose the backend.
pub mod backend {
    use std::io;

    pub use evloop_core::backend::*;

    use crate::supported_methods;

    /// Create the backend called `name`, if it is compiled in.
    ///
    /// # Errors
    ///
    /// `NotFound` if no backend of that name is compiled in; the backend's own error if it
    /// cannot be created (no epoll fd left, say).
    ///
    /// # Examples
    ///
    /// ```
    /// let first = evloop::supported_methods()[0]; // epoll, kqueue or polling
    /// let backend = evloop::backend::by_name(first)?;
    /// assert_eq!(backend.name(), first);
    /// assert!(evloop::backend::by_name("devpoll").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn by_name(name: &str) -> io::Result<Box<dyn Backend>> {
        match name {
            // One arm per backend, gated by the cfg that build.rs derives from src/targets.rs and
            // the features, as `supported_methods` is: the two cannot disagree.
            #[cfg(evloop_backend = "epoll")]
            "epoll" => Ok(Box::new(evloop_epoll::EpollBackend::new()?)),
            #[cfg(evloop_backend = "kqueue")]
            "kqueue" => Ok(Box::new(evloop_kqueue::KqueueBackend::new()?)),
            #[cfg(evloop_backend = "polling")]
            "polling" => Ok(Box::new(evloop_polling::PollingBackend::new()?)),
            #[cfg(evloop_backend = "poll")]
            "poll" => Ok(Box::new(evloop_poll::PollBackend::new())),
            #[cfg(evloop_backend = "select")]
            "select" => Ok(Box::new(evloop_select::SelectBackend::new())),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no backend named {name:?} is compiled in (compiled in: {})",
                    supported_methods().join(" ")
                ),
            )),
        }
    }

    /// Whether this process may trust its environment: not in a setuid or setgid program, where
    /// whoever started it controls the environment (libevent checks the same).
    pub fn environment_trusted() -> bool {
        !super::is_privileged()
    }
}

/// The backends compiled into this build, in order of preference
/// (libevent's `event_get_supported_methods`): kqueue on macOS and the BSDs, epoll on Linux
/// and Android, the `polling` adapter on illumos, Solaris and Windows (and elsewhere with the
/// `polling` feature), then poll and select on every Unix.
///
/// # Examples
///
/// ```
/// let methods = evloop::supported_methods();
/// # #[cfg(unix)]
/// assert!(methods.contains(&"poll"));
/// ```
pub fn supported_methods() -> Vec<&'static str> {
    // Computed by build.rs from src/targets.rs, with the same cfgs as `backend::by_name`.
    env!("EVLOOP_METHODS").split_whitespace().collect()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn is_privileged() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; an absent entry yields 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(has_kqueue)]
fn is_privileged() -> bool {
    // SAFETY: issetugid has no preconditions.
    unsafe { libc::issetugid() != 0 }
}

#[cfg(windows)]
fn is_privileged() -> bool {
    // Windows has no setuid: whoever starts a process gives it their own environment.
    false
}

#[cfg(all(unix, not(any(has_epoll, has_kqueue))))]
fn is_privileged() -> bool {
    // SAFETY: these calls have no preconditions.
    unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() }
}

/// How to build a base: which backends to avoid, which features to require, and the base's
/// options (libevent's `event_config`).
///
/// The backend is the first of kqueue, epoll, polling, poll and select that is compiled in,
/// not avoided, not excluded by the environment (`EVENT_NOKQUEUE`, `EVENT_NOEPOLL`,
/// `EVENT_NOPOLLING`, `EVENT_NOPOLL`, `EVENT_NOSELECT`: set to any value), and has every
/// required feature.
/// `EVENT_SHOW_METHOD` (any value) makes [`build`](Self::build) print
/// `evloop using: NAME (signals: MECHANISM)` to stderr. The environment is
/// ignored in setuid/setgid processes and after [`ignore_env`](Self::ignore_env).
///
/// # Examples
///
/// ```
/// use evloop::{Base, Config, Features};
/// // The first backend with O(1) waits: epoll on Linux, kqueue on macOS and the BSDs.
/// let base: Base = Config::new().ignore_env().require(Features::O1).build()?;
/// assert_eq!(base.method(), evloop::supported_methods()[0]);
///
/// // Nothing is left when every backend is avoided; the error says why for each.
/// let mut config = Config::new();
/// for name in evloop::supported_methods() {
///     config = config.avoid(name);
/// }
/// let err = config.build::<()>().unwrap_err();
/// assert!(err.to_string().contains("avoided by the Config"), "{err}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    avoid: Vec<String>,
    require: Features,
    ignore_env: bool,
    options: BaseOptions,
}

impl Config {
    /// The default: every compiled-in backend, the environment honoured, one priority.
    pub fn new() -> Self {
        Self::default()
    }

    /// Never use the backend called `name` (libevent's `event_config_avoid_method`).
    pub fn avoid(mut self, name: &str) -> Self {
        self.avoid.push(name.to_string());
        self
    }

    /// Use only a backend with all of `features` (libevent's `event_config_require_features`).
    pub fn require(mut self, features: Features) -> Self {
        self.require |= features;
        self
    }

    /// Ignore `EVENT_NO*` and `EVENT_SHOW_METHOD` (libevent's `EVENT_BASE_FLAG_IGNORE_ENV`).
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    /// Deliver signals through a signalfd instead of the self-pipe (Linux; the signals must
    /// be blocked in every thread, see `evloop::signal`).
    pub fn signalfd(mut self) -> Self {
        self.options.signalfd = true;
        self
    }

    /// The base's priorities and dispatch limits.
    pub fn options(mut self, options: BaseOptions) -> Self {
        self.options = options;
        self
    }

    /// The backend this configuration picks, or why none fits.
    ///
    /// # Errors
    ///
    /// `NotFound` naming every backend and why it was excluded.
    pub fn backend(&self) -> io::Result<Box<dyn Backend>> {
        self.backend_with_env(|var| std::env::var_os(var).is_some())
    }

    /// [`backend`](Self::backend) with the environment looked up by `is_set`, so tests can
    /// check the selection rules without touching the process environment.
    ///
    /// # Errors
    ///
    /// See [`backend`](Self::backend).
    pub fn backend_with_env(&self, is_set: impl Fn(&str) -> bool) -> io::Result<Box<dyn Backend>> {
        self.select(is_set, backend::environment_trusted())
    }

    /// The selection rules, with whether the environment may be trusted passed in, so the
    /// setuid/setgid rule is testable without a setuid binary.
    fn select(&self, is_set: impl Fn(&str) -> bool, trusted: bool) -> io::Result<Box<dyn Backend>> {
        let use_env = !self.ignore_env && trusted;
        let mut reasons = Vec::new();
        for name in PREFERENCE {
            let reason = if !supported_methods().contains(&name) {
                "not compiled in".to_string()
            } else if self.avoid.iter().any(|a| a == name) {
                "avoided by the Config".to_string()
            } else if use_env && is_set(&env_var_for(name)) {
                format!("excluded by {}", env_var_for(name))
            } else {
                match backend::by_name(name) {
                    Ok(b) if b.features().contains(self.require) => return Ok(b),
                    Ok(b) => format!(
                        "lacks required features {:?}",
                        self.require.without(b.features())
                    ),
                    Err(e) => format!("failed: {e}"),
                }
            };
            reasons.push(format!("{name}: {reason}"));
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no event backend is usable ({})", reasons.join("; ")),
        ))
    }

    /// Build a base on the backend this configuration picks.
    ///
    /// # Errors
    ///
    /// See [`backend`](Self::backend) and [`Base::with_backend`].
    pub fn build<D>(&self) -> io::Result<Base<D>> {
        let base = Base::with_backend(self.backend()?, self.options.clone())?;
        let use_env = !self.ignore_env && backend::environment_trusted();
        if use_env && std::env::var_os("EVENT_SHOW_METHOD").is_some() {
            eprintln!(
                "evloop using: {} (signals: {})",
                base.method(),
                base.signal_method()
            );
        }
        Ok(base)
    }
}

/// A base on the preferred backend, honouring the environment
/// (libevent's `event_base_new`).
///
/// # Errors
///
/// See [`Config::build`].
///
/// # Examples
///
/// ```
/// let base: evloop::Base = evloop::new_base()?;
/// assert!(evloop::supported_methods().contains(&base.method()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn new_base<D>() -> io::Result<Base<D>> {
    Config::new().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_excludes_in_preference_order() {
        let cfg = Config::new();
        let first = supported_methods()[0];
        let b = cfg.backend_with_env(|_| false).unwrap();
        assert_eq!(b.name(), first);
        let b = cfg.backend_with_env(|v| v == env_var_for(first)).unwrap();
        assert_ne!(b.name(), first);
        let b = cfg
            .clone()
            .ignore_env()
            .backend_with_env(|v| v == env_var_for(first))
            .unwrap();
        assert_eq!(b.name(), first);
    }

    #[test]
    fn the_environment_is_ignored_when_it_is_not_trusted() {
        // As in a setuid or setgid process (AT_SECURE): EVENT_NO* must not steer the choice.
        let first = supported_methods()[0];
        let b = Config::new()
            .select(|v| v.starts_with("EVENT_NO"), false)
            .unwrap();
        assert_eq!(b.name(), first);
        assert!(
            backend::environment_trusted(),
            "the test process itself is not setuid"
        );
    }

    #[test]
    fn nothing_left_names_every_backend() {
        let err = Config::new()
            .backend_with_env(|v| v.starts_with("EVENT_NO"))
            .unwrap_err();
        let msg = err.to_string();
        for name in supported_methods() {
            assert!(
                msg.contains(&format!("{name}: excluded by {}", env_var_for(name))),
                "{msg}"
            );
        }
        assert!(
            msg.contains("kqueue: not compiled in") || cfg!(not(target_os = "linux")),
            "{msg}"
        );
    }
}
