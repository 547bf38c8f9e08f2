//! Unix: signals through `sigaction`. The handler counts the delivery and writes one byte to
//! the owning base's pipe (see the module above); the disposition a signal had before evloop
//! changed it is saved once and put back when the signal is let go.

use std::io;
use std::sync::Mutex;

use super::{os_error, signal_name, validate};
use crate::fd::OwnedFd;

/// Signal numbers run from 1 to `NSIG - 1`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const NSIG: i32 = 65;
/// Signal numbers run from 1 to `NSIG - 1`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub const NSIG: i32 = 33;

/// Names of the common signals.
pub(super) const NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGSYS, "SIGSYS"),
];

/// SIGKILL and SIGSTOP cannot be caught.
pub(super) fn check_catchable(signo: i32) -> io::Result<()> {
    if signo == libc::SIGKILL || signo == libc::SIGSTOP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} cannot be caught, blocked or ignored",
                signal_name(signo)
            ),
        ));
    }
    Ok(())
}

/// Dispositions saved on first add, restored on last delete.
static SAVED: Mutex<Vec<(i32, SavedAction)>> = Mutex::new(Vec::new());

struct SavedAction(libc::sigaction);
// SAFETY: a sigaction is plain data (a handler address, flags and a mask); it is only
// handed back to sigaction(2).
unsafe impl Send for SavedAction {}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "emscripten"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno address; always valid.
    unsafe { libc::__errno_location() }
}
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: as above.
    unsafe { libc::__error() }
}
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: as above.
    unsafe { libc::__errno() }
}
#[cfg(any(target_os = "illumos", target_os = "solaris"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: as above.
    unsafe { libc::___errno() }
}

/// The handler: count, wake the owner, and leave errno as it was. Async-signal-safe: atomics
/// and write(2) only.
extern "C" fn handler(signo: libc::c_int) {
    let errno = errno_location();
    // SAFETY: errno_location is the calling thread's errno.
    let saved = unsafe { *errno };
    super::deliver(signo, |fd| {
        let byte = signo as u8;
        // SAFETY: writes one byte from a live stack variable; a full pipe (EAGAIN) is fine,
        // the loop is awake already; the count is in COUNTS.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    });
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// Install the self-pipe's handler for `signo` (`SA_RESTART`, every signal blocked while it
/// runs), saving the disposition it replaces.
pub(super) fn install_handler(signo: i32) -> io::Result<()> {
    let handler = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    set_disposition(signo, handler, libc::SA_RESTART)
}

/// Put back what `install_handler` replaced.
pub(super) fn restore_handler(signo: i32) {
    restore_disposition(signo);
}

/// The self-pipe (and handles' wake-up channel off Linux): a non-blocking, close-on-exec
/// pipe, `(read end, write end)` (macOS has no pipe2, so the flags are set after).
pub(crate) fn wake_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        use rustix::pipe::PipeFlags;
        Ok(rustix::pipe::pipe_with(
            PipeFlags::NONBLOCK | PipeFlags::CLOEXEC,
        )?)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            rustix::io::ioctl_fionbio(fd, true)?;
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok((r, w))
    }
}

/// Install `handler` (a function, `SIG_IGN` or `SIG_DFL`) for `signo` with `flags` and every
/// signal blocked while it runs, saving the disposition it replaces unless one is saved
/// already (so a second install, after fork say, never saves our own). The self-pipe installs
/// its handler this way; a backend that delivers signals itself uses [`ignore_signal`].
pub(super) fn set_disposition(
    signo: i32,
    handler: libc::sighandler_t,
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "default" value to fill in; the handler is an
    // `extern "C" fn(c_int)` or a constant, as SA_SIGINFO is not set; both pointers are live.
    let (rc, old) = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigfillset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signo, &action, &mut old), old)
    };
    if rc != 0 {
        return Err(os_error(format!("sigaction({})", signal_name(signo))));
    }
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if !saved.iter().any(|(s, _)| *s == signo) {
        saved.push((signo, SavedAction(old)));
    }
    Ok(())
}

/// For a backend that delivers signals itself (kqueue's `EVFILT_SIGNAL`, which sees a signal
/// even while it is ignored): ignore `signo`, saving its disposition until
/// [`restore_disposition`].
///
/// # Errors
///
/// `sigaction`'s error, naming the signal.
pub fn ignore_signal(signo: i32) -> io::Result<()> {
    validate(signo)?;
    set_disposition(signo, libc::SIG_IGN, 0)
}

/// Put back the disposition `signo` had before evloop changed it; nothing if it has none
/// saved.
pub fn restore_disposition(signo: i32) {
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pos) = saved.iter().position(|(s, _)| *s == signo) {
        let (_, SavedAction(old)) = saved.swap_remove(pos);
        // SAFETY: `old` is the action sigaction(2) gave us for this signal.
        unsafe { libc::sigaction(signo, &old, std::ptr::null_mut()) };
    }
}
