//! Windows: the console's control events as signals, as libuv and the C runtime name them:
//! Ctrl-C is SIGINT, Ctrl-Break SIGBREAK, and the console window closing SIGHUP. A console
//! control handler (`SetConsoleCtrlHandler`) runs in a thread of its own; for a watched event
//! it counts the delivery and sends one byte on the owning base's loopback socket, exactly as
//! the Unix handler writes to its pipe, and tells Windows the event is handled. An event no
//! base watches falls through to the default (the process ends). Windows ends the process
//! when the handler for a closing console returns, so that handler waits, giving the loop
//! the few seconds Windows allows to run the SIGHUP callback (libuv does the same).
//!
//! Other signal numbers are refused: nothing delivers them on Windows.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::signal_name;
use crate::fd::{BorrowedFd, OwnedFd};

/// Signal numbers run from 1 to `NSIG - 1` (the C runtime's `NSIG`).
pub const NSIG: i32 = 23;
/// The console window closing (libuv's number; the C runtime has none).
pub const SIGHUP: i32 = 1;
/// Ctrl-C.
pub const SIGINT: i32 = 2;
/// Ctrl-Break.
pub const SIGBREAK: i32 = 21;

/// Names of the C runtime's signals.
pub(super) const NAMES: &[(i32, &str)] = &[
    (SIGHUP, "SIGHUP"),
    (SIGINT, "SIGINT"),
    (4, "SIGILL"),
    (8, "SIGFPE"),
    (11, "SIGSEGV"),
    (15, "SIGTERM"),
    (SIGBREAK, "SIGBREAK"),
    (22, "SIGABRT"),
];

/// Only the console's events reach a Windows process as signals.
pub(super) fn check_catchable(signo: i32) -> io::Result<()> {
    if matches!(signo, SIGINT | SIGBREAK | SIGHUP) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{} is never delivered on Windows: evloop watches SIGINT (Ctrl-C), SIGBREAK (Ctrl-Break) and SIGHUP (the console closing)",
            signal_name(signo)
        ),
    ))
}

const CTRL_C_EVENT: u32 = 0;
const CTRL_BREAK_EVENT: u32 = 1;
const CTRL_CLOSE_EVENT: u32 = 2;

#[allow(clippy::declare_interior_mutable_const)]
const UNWATCHED: AtomicBool = AtomicBool::new(false);
/// Whether a base watches each signal.
static WATCHED: [AtomicBool; NSIG as usize] = [UNWATCHED; NSIG as usize];
/// Whether the console handler is registered (it stays for the life of the process).
static REGISTERED: Mutex<bool> = Mutex::new(false);

#[link(name = "kernel32")]
extern "system" {
    // BOOL SetConsoleCtrlHandler(PHANDLER_ROUTINE HandlerRoutine, BOOL Add);
    fn SetConsoleCtrlHandler(
        handler: Option<unsafe extern "system" fn(u32) -> i32>,
        add: i32,
    ) -> i32;
}

/// The console control handler (its own thread, not a signal context).
unsafe extern "system" fn console_handler(ctrl: u32) -> i32 {
    let signo = match ctrl {
        CTRL_C_EVENT => SIGINT,
        CTRL_BREAK_EVENT => SIGBREAK,
        CTRL_CLOSE_EVENT => SIGHUP,
        _ => return 0,
    };
    if !WATCHED[signo as usize].load(Ordering::Acquire) {
        return 0; // not handled: the default handler ends the process
    }
    super::deliver(signo, |fd| {
        // SAFETY: the socket is the owning base's wake-up socket, kept open while the signal
        // is watched; a closed one only makes send fail.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = rustix::net::send(socket, &[signo as u8], rustix::net::SendFlags::empty());
    });
    if ctrl == CTRL_CLOSE_EVENT {
        // Returning lets Windows end the process at once; it ends it anyway after ~5 s.
        std::thread::sleep(Duration::from_secs(30));
    }
    1
}

/// Start delivering `signo`: register the console handler (once) and mark the signal.
pub(super) fn install_handler(signo: i32) -> io::Result<()> {
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if !*registered {
        // SAFETY: registers a handler with the signature Windows expects.
        if unsafe { SetConsoleCtrlHandler(Some(console_handler), 1) } == 0 {
            return Err(super::os_error(format!(
                "SetConsoleCtrlHandler({})",
                signal_name(signo)
            )));
        }
        *registered = true;
    }
    WATCHED[signo as usize].store(true, Ordering::Release);
    Ok(())
}

/// Stop delivering `signo`: its console event gets the default handling again.
pub(super) fn restore_handler(signo: i32) {
    WATCHED[signo as usize].store(false, Ordering::Release);
}

/// The wake-up channel: a connected pair of non-blocking loopback sockets (Windows has no
/// pipe that select or IOCP can watch).
pub(crate) fn wake_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    crate::fd::socket_pair()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_events_are_accepted_and_the_refusal_says_which() {
        for signo in [SIGINT, SIGBREAK, SIGHUP] {
            assert!(check_catchable(signo).is_ok(), "{signo}");
        }
        let err = check_catchable(15).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(msg.starts_with("SIGTERM"), "{msg}");
        assert!(
            msg.contains("SIGINT (Ctrl-C)") && msg.contains("SIGBREAK"),
            "{msg}"
        );
    }
}
