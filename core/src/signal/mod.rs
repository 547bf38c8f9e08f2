//! Signal events: how a signal reaches the loop.
//!
//! A signal handler may do almost nothing (no allocation, no locks), so the callback never
//! runs in the handler. Three mechanisms carry a delivery to the loop:
//!
//! * **self-pipe** (default, libevent's evsig): one process-wide handler, installed with
//!   `sigaction` (`SA_RESTART`, every signal masked while it runs), adds one to a per-signal
//!   atomic counter and writes one byte to the owning base's non-blocking pipe as a wake-up.
//!   The loop watches the pipe's read end with an internal event that does not keep the loop
//!   alive; it drains the pipe, takes each counter (swapping in zero) and activates the signal
//!   events with that count. The counter, not the bytes, carries the count: a pipe that fills
//!   up under a storm loses wake-up bytes, never deliveries.
//! * **signalfd** (Linux, [`BaseOptions::signalfd`](crate::BaseOptions::signalfd)): one
//!   signalfd per base. It only sees signals that are blocked, in every thread: block them
//!   (`pthread_sigmask`) before spawning threads. Adding a signal that is not blocked in the
//!   calling thread is refused with an error that says so.
//! * **the backend** (kqueue's `EVFILT_SIGNAL`): when [`Backend::add_signal`] returns `Some`,
//!   the backend reports deliveries through [`ReadyList::push_signal`].
//!
//! One base owns a signal at a time: adding a signal another base watches is refused
//! (libevent silently moves it, and the first base stops hearing it). The disposition in
//! force before the first add is saved and restored on the last delete and when the base is
//! dropped.
//!
//! [`Backend::add_signal`]: crate::Backend::add_signal
//! [`ReadyList::push_signal`]: crate::backend::ReadyList::push_signal

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use crate::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(unix)]
pub use unix::{ignore_signal, restore_disposition};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;
#[cfg(windows)]
pub use windows::{SIGBREAK, SIGHUP, SIGINT};

#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(unused_imports))]
pub(crate) use sys::wake_pair;
pub use sys::NSIG;

/// The signals that ask a program to stop: SIGINT and SIGTERM on Unix; on Windows SIGINT
/// (Ctrl-C) and SIGBREAK (Ctrl-Break).
///
/// # Examples
///
/// ```
/// let mut base: evloop::Base = evloop::new_base()?;
/// for &signo in evloop::signal::STOP_SIGNALS {
///     let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
///     base.add(ev, None)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(unix)]
pub const STOP_SIGNALS: &[i32] = &[libc::SIGINT, libc::SIGTERM];
/// The signals that ask a program to stop: SIGINT and SIGTERM on Unix; on Windows SIGINT
/// (Ctrl-C) and SIGBREAK (Ctrl-Break).
#[cfg(windows)]
pub const STOP_SIGNALS: &[i32] = &[SIGINT, SIGBREAK];

/// The signal number a signal event keeps in its slot's fd.
#[allow(clippy::unnecessary_cast)] // RawFd is i32 on Unix, a u64 socket on Windows
pub(crate) fn signo_of(fd: RawFd) -> i32 {
    fd as i32
}

/// A signal number as a signal event keeps it, in its slot's fd.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn fd_of(signo: i32) -> RawFd {
    signo as RawFd
}

const N: usize = NSIG as usize;

#[allow(clippy::declare_interior_mutable_const)]
const NO_OWNER: AtomicU32 = AtomicU32::new(0);
/// No wake-up fd in `WAKE_FD`.
const NO_WAKE: i64 = -1;
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI64 = AtomicI64::new(NO_WAKE);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);

/// The base that owns each signal (0: none).
static OWNER: [AtomicU32; N] = [NO_OWNER; N];
/// The write end of the owning base's pipe, for the handler, as an i64 (a Unix fd or a
/// Windows socket; -1: none).
static WAKE_FD: [AtomicI64; N] = [NO_FD; N];

/// A wake-up fd as `WAKE_FD` stores it.
fn wake_value(fd: Option<&OwnedFd>) -> i64 {
    fd.map_or(NO_WAKE, |fd| fd.as_raw_fd() as i64)
}

/// What a handler does on a delivery of `signo`, on any system: count it, and poke the owning
/// base's wake-up fd with `poke` (async-signal-safe: atomics and one write).
fn deliver(signo: i32, poke: impl FnOnce(RawFd)) {
    if (1..NSIG).contains(&signo) {
        COUNTS[signo as usize].fetch_add(1, Ordering::Relaxed);
        let fd = WAKE_FD[signo as usize].load(Ordering::Acquire);
        if fd != NO_WAKE {
            poke(fd as RawFd);
        }
    }
}
/// Deliveries not yet taken by the loop.
static COUNTS: [AtomicU32; N] = [ZERO; N];
/// The name of a signal (`"SIGINT"`), or `"signal N"` for one without a common name.
///
/// # Examples
///
/// ```
/// assert_eq!(evloop::signal_name(2), "SIGINT");
/// ```
pub fn signal_name(signo: i32) -> String {
    match sys::NAMES.iter().find(|(n, _)| *n == signo) {
        Some((_, name)) => name.to_string(),
        None => format!("signal {signo}"),
    }
}

/// Check that `signo` can be watched: in range, and not SIGKILL or SIGSTOP.
pub(crate) fn validate(signo: i32) -> io::Result<()> {
    if !(1..NSIG).contains(&signo) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal number {signo} is out of range (1 to {})", NSIG - 1),
        ));
    }
    sys::check_catchable(signo)
}

/// Which mechanism a base uses for its signals.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    SelfPipe,
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    Signalfd,
    Backend,
}

/// A base's signals: which events watch each number, and the mechanism's fds.
pub(crate) struct Signals {
    pub mechanism: Mechanism,
    base: u32,
    /// Event slots watching each signal, in add order.
    pub watchers: Vec<Vec<u32>>,
    /// The fd the internal event reads (pipe read end or signalfd), once created.
    pub source: Option<OwnedFd>,
    wake: Option<OwnedFd>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mask: Option<libc::sigset_t>,
}

fn os_error(what: String) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Signals {
    pub fn new(mechanism: Mechanism, base: u32) -> Self {
        Signals {
            mechanism,
            base,
            watchers: vec![Vec::new(); N],
            source: None,
            wake: None,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            mask: None,
        }
    }

    /// The mechanism's name, for `signal_method()` and `EVENT_SHOW_METHOD`.
    pub fn method(&self, backend: &'static str) -> &'static str {
        match self.mechanism {
            Mechanism::SelfPipe => "self-pipe",
            Mechanism::Signalfd => "signalfd",
            Mechanism::Backend => backend,
        }
    }

    /// Create the fd the loop watches, if the mechanism needs one and it does not exist yet.
    /// Returns it when it was just created, so the base can register its internal event.
    pub fn ensure_source(&mut self) -> io::Result<Option<RawFd>> {
        if self.source.is_some() || self.mechanism == Mechanism::Backend {
            return Ok(None);
        }
        match self.mechanism {
            Mechanism::SelfPipe => {
                let (read, write) = sys::wake_pair()
                    .map_err(|e| io::Error::new(e.kind(), format!("signal pipe: {e}")))?;
                self.wake = Some(write);
                self.source = Some(read);
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mechanism::Signalfd => {
                // SAFETY: sigemptyset initialises the set it is given.
                let mask = unsafe {
                    let mut set = std::mem::zeroed::<libc::sigset_t>();
                    libc::sigemptyset(&mut set);
                    set
                };
                // SAFETY: creates a new signalfd from a valid set; the fd is owned at once.
                let fd =
                    unsafe { libc::signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
                if fd < 0 {
                    return Err(os_error("signalfd".to_string()));
                }
                // SAFETY: signalfd returned a new fd that nothing else owns.
                self.source = Some(unsafe { crate::fd::FromRawFd::from_raw_fd(fd) });
                self.mask = Some(mask);
            }
            _ => {}
        }
        Ok(self.source.as_ref().map(|fd| fd.as_raw_fd()))
    }

    /// Take ownership of `signo` and start receiving it (first watcher on this base).
    pub fn install(&mut self, signo: i32) -> io::Result<()> {
        let owner = &OWNER[signo as usize];
        if let Err(other) =
            owner.compare_exchange(0, self.base, Ordering::AcqRel, Ordering::Acquire)
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is already watched by another base (base {other}); one base per signal: delete its events there first",
                    signal_name(signo)
                ),
            ));
        }
        let result = match self.mechanism {
            Mechanism::SelfPipe => self.install_handler(signo),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mechanism::Signalfd => self.update_mask(signo, true),
            _ => Ok(()),
        };
        if result.is_err() {
            owner.store(0, Ordering::Release);
        }
        result
    }

    /// Stop receiving `signo` (last watcher gone) and give it up.
    pub fn uninstall(&mut self, signo: i32) {
        match self.mechanism {
            Mechanism::SelfPipe => {
                sys::restore_handler(signo);
                // Only after the handler is gone: a handler still running elsewhere may have
                // loaded the fd just before; that race is as in libevent (one stray byte).
                WAKE_FD[signo as usize].store(NO_WAKE, Ordering::Release);
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mechanism::Signalfd => {
                let _ = self.update_mask(signo, false);
            }
            _ => {}
        }
        OWNER[signo as usize].store(0, Ordering::Release);
    }

    fn install_handler(&mut self, signo: i32) -> io::Result<()> {
        COUNTS[signo as usize].store(0, Ordering::Relaxed);
        WAKE_FD[signo as usize].store(wake_value(self.wake.as_ref()), Ordering::Release);
        let result = sys::install_handler(signo);
        if result.is_err() {
            WAKE_FD[signo as usize].store(NO_WAKE, Ordering::Release);
        }
        result
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn update_mask(&mut self, signo: i32, on: bool) -> io::Result<()> {
        let (Some(mask), Some(fd)) = (self.mask.as_mut(), self.source.as_ref()) else {
            return Ok(());
        };
        if on {
            // SAFETY: queries the calling thread's mask into a local set.
            let blocked = unsafe {
                let mut current = std::mem::zeroed::<libc::sigset_t>();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
                libc::sigismember(&current, signo) == 1
            };
            if !blocked {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is not blocked in this thread: signalfd only sees signals blocked in every thread; block it with pthread_sigmask before spawning threads, or use the default self-pipe",
                        signal_name(signo)
                    ),
                ));
            }
        }
        // SAFETY: `mask` is an initialised set; the fd is our signalfd.
        let rc = unsafe {
            if on {
                libc::sigaddset(mask, signo);
            } else {
                libc::sigdelset(mask, signo);
            }
            libc::signalfd(fd.as_raw_fd(), mask, 0)
        };
        if rc < 0 {
            return Err(os_error(format!("signalfd({})", signal_name(signo))));
        }
        Ok(())
    }

    /// After fork: new fds for this process (the old ones are shared with the parent), the
    /// handler's wake-up pointed at the new pipe, the signalfd's mask carried over.
    pub fn renew(&mut self) -> io::Result<()> {
        if self.source.is_none() {
            return Ok(());
        }
        self.source = None;
        self.wake = None;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let mask = self.mask.take();
        self.ensure_source()?;
        match self.mechanism {
            Mechanism::SelfPipe => {
                let wake = wake_value(self.wake.as_ref());
                for signo in 1..NSIG {
                    if !self.watchers[signo as usize].is_empty()
                        && OWNER[signo as usize].load(Ordering::Acquire) == self.base
                    {
                        WAKE_FD[signo as usize].store(wake, Ordering::Release);
                    }
                }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mechanism::Signalfd => {
                if let (Some(mask), Some(fd)) = (mask, self.source.as_ref()) {
                    // SAFETY: `mask` is the initialised set the old signalfd used.
                    if unsafe { libc::signalfd(fd.as_raw_fd(), &mask, 0) } < 0 {
                        return Err(os_error("signalfd after fork".to_string()));
                    }
                    self.mask = Some(mask);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Empty the source fd and collect `(signo, count)` of every delivery since last time.
    pub fn drain(&mut self, out: &mut Vec<(i32, u32)>) {
        let Some(source) = self.source.as_ref() else {
            return;
        };
        match self.mechanism {
            Mechanism::SelfPipe => {
                let mut buf = [0u8; 256];
                while let Ok(n) = crate::fd::read(source.as_fd(), &mut buf) {
                    if n < buf.len() {
                        break;
                    }
                }
                for signo in 1..NSIG {
                    if !self.watchers[signo as usize].is_empty() {
                        let n = COUNTS[signo as usize].swap(0, Ordering::Relaxed);
                        if n > 0 {
                            out.push((signo, n));
                        }
                    }
                }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mechanism::Signalfd => {
                const INFO: usize = std::mem::size_of::<libc::signalfd_siginfo>();
                let mut buf = [0u8; INFO * 16];
                let mut counts = [0u32; N];
                while let Ok(n) = rustix::io::read(source, &mut buf) {
                    for chunk in buf[..n].chunks_exact(INFO) {
                        // ssi_signo is the struct's first field, a u32 in native order.
                        let signo = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        if let Some(c) = counts.get_mut(signo as usize) {
                            *c += 1;
                        }
                    }
                    if n < buf.len() {
                        break;
                    }
                }
                for (signo, &n) in counts.iter().enumerate() {
                    if n > 0 {
                        out.push((signo as i32, n));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for signo in 1..NSIG {
            if !self.watchers[signo as usize].is_empty()
                && OWNER[signo as usize].load(Ordering::Acquire) == self.base
            {
                self.uninstall(signo);
            }
        }
    }
}
