//! evloop's adapter backend over the `polling` crate: every mechanism polling has and evloop
//! has no crate of its own for. That is IOCP with AFD polling on Windows and event ports on
//! illumos and Solaris, where this adapter is compiled by default; with the `everywhere`
//! feature it also runs over polling's epoll and kqueue (how the conformance suite checks it
//! on Linux) and over poll(2) on other Unixes.
//!
//! It implements the contract written down in `evloop_core::backend`, in polling's terms:
//! * **Level-triggered** registrations (`PollMode::Level`, never polling's default oneshot),
//!   **edge-triggered** ones (`PollMode::Edge`) where `Poller::supports_edge` says so (not
//!   on IOCP, not on event ports); the mode is chosen per fd from `ET` at every change.
//! * The kernel's view and ours can differ (an fd closed and reused, a `dup`'d fd): an add
//!   refused because the fd is registered is retried as a modify, a modify refused because it
//!   is not as an add, and a delete refused because the fd is gone is ignored.
//! * Readiness: polling's `readable` and `writable` (which already include hang-ups and
//!   errors on epoll); a hang-up or error reported alone gives READ|WRITE, as the contract asks.
//!   polling cannot watch for a peer's half-close (`EPOLLRDHUP`), so CLOSED is left to the
//!   core's emulation and `Features::EARLY_CLOSE` is not advertised.
//! * Wake-ups through `Poller::notify`. polling reports a notification as a wait with no
//!   event, so the waker also sets a flag that the next dispatch turns into
//!   `ReadyList::push_wake`.
//! * Timeouts are clamped to `evloop_core::backend::MAX_WAIT`; polling keeps the
//!   rest (a timerfd on Linux, so never early there) and retries waits cut short by `EINTR`.
//!
//! What the adapter costs over the native epoll backend is measured by the `pipes` benchmark
//! (`pipes --backend polling`) and stated in the README: polling arms a timerfd and
//! re-registers it before every wait that has a timeout.
//!
//! References: the polling crate's documentation; epoll_ctl(2), kevent(2), port_associate(3C).

#[cfg(polling_adapter)]
mod adapter;
#[cfg(polling_adapter)]
pub use adapter::*;
