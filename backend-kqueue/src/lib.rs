//! evloop's kqueue backend (macOS, FreeBSD, NetBSD, OpenBSD, DragonFly): O(1) registration
//! and dispatch, edge-triggered events (`EV_CLEAR`), CLOSED through `EV_EOF` (libevent never
//! offered it on kqueue), and signals through `EVFILT_SIGNAL`.
//!
//! The crate has two layers:
//! * [`translate`]: pure functions from the core's interest changes to kevent changes, and
//!   from kevent results to readiness. They compile and are unit-tested on every system,
//!   Linux included, which has no kqueue.
//! * `KqueueBackend` (BSDs and macOS only): the syscalls. Changes to registered fds are
//!   batched into the `kevent` call of the next dispatch, with the result array sized so
//!   that every per-change error (`EV_ERROR`) fits; a new registration is applied at once
//!   with `EV_RECEIPT`, so `add` returns the kernel's refusal naming the fd and filter.
//!
//! References: kqueue(2), kevent(2).

#[cfg(unix)]
pub mod translate;

#[cfg(has_kqueue)]
mod sys;

#[cfg(has_kqueue)]
pub use sys::KqueueBackend;
