//! The core of evloop: the event base and its loop, the backend trait, the per-fd interest
//! map, the timers (a bucket ring, a heap and common-timeout queues), the prioritized active
//! queues, the buffered I/O layer and the async runtime.
//!
//! Most users depend on the `evloop` facade, which picks a backend; this crate is what a
//! backend implements ([`Backend`]) and what the facade re-exports. Each concept is a module
//! small enough to read at once:
//!
//! | module | what it holds |
//! |---|---|
//! | [`backend`] | the contract with an OS mechanism (libevent's `eventop`) |
//! | `base` | [`Base`]: creating it, the loop, fork renewal |
//! | `options` | [`BaseOptions`] |
//! | `registry` | [`Registry`]: the events and every operation on them, signal watching; [`Context`] |
//! | `constructors` | making every kind of event, giving an owned fd back |
//! | `once` | `once`, `after`, `every`, `loop_exit`: events freed after one run |
//! | `dispatch` | activating ready fds and expired timers, running callbacks |
//! | `internal` | the internal events: remote commands, fork renewal |
//! | `verify` | the invariant checker, [`Registry::verify`] |
//! | `event` | [`EventId`], [`Pending`], an event's slot |
//! | `events` | the event table: slots, free list, live count; an event's state transitions |
//! | `clock` | the monotonic clock and its cache; `TimerKey`, the order of every timer structure |
//! | `io_map` | events per fd, combined interest, the change list |
//! | `timer_ring`, `timer_heap`, `timers` | the timers in four structures: a bucket ring for those due within about a second, the common-timeout queues with a small heap of their heads, and a heap for the rest |
//! | `active_queues` | `ActiveQueues` |
//! | `hooks`, `watchers` | the started prepare, check and idle watchers; creating and running them, the wait they shape |
//! | `metrics` | [`LoopMetrics`]: iterations, callbacks, time blocked |
//! | `remote`, `handle` | [`Handle`]: other threads' way in, and the wake-up channel beneath |
//! | [`signal`] | how signals reach the loop: self-pipe, signalfd, or the backend |
//! | `flags` | [`EventFlags`], [`LoopFlags`], [`Features`] |
//! | `bufio` | [`Buffer`], [`BufferedSocket`] (TLS, [`Filter`]s, [`RateLimit`]s, [`SocketOptions`]), [`Listener`], [`BevEvent`] |
//! | [`rt`] | async/await on the loop: the executor, `Async<T>`, timer futures, signal streams |
//!
//! The modules form a graph without cycles: `flags` and `event` at the bottom, the data
//! structures above them, `registry` above those, and `dispatch`, `internal`, `verify`,
//! `handle`, `watchers`, `base` and `bufio` on top.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod active_queues;
pub mod backend;
mod base;
mod bufio;
mod clock;
mod constructors;
mod dispatch;
mod event;
mod events;
pub mod fd;
mod flags;
mod handle;
mod hooks;
mod internal;
mod io_map;
mod metrics;
mod once;
mod options;
mod registry;
mod remote;
pub mod rt;
pub mod signal;
#[cfg(test)]
mod test_rng;
mod timer_heap;
mod timer_ring;
mod timers;
mod verify;
mod watchers;

pub use backend::Backend;
pub use base::{Base, RunOutcome};
pub use bufio::{
    AcceptCallback, BevCallback, BevContext, BevControl, BevEvent, BevOptions, BevReach, Buffer,
    BufferChange, BufferedSocket, CallbackId, Eol, FileSegment, Filter, FilterResult, FlushMode,
    FromHandle, InCallback, IoOutcome, Listener, ListenerErrorCallback, ListenerOptions, PeerAddr,
    RateLimit, RateLimitGroup, SocketOptions,
};
pub use event::{EventId, Pending};
pub use flags::{EventFlags, Features, Fired, Interest, LoopFlags, TimerKind};
pub use handle::Handle;
pub use metrics::LoopMetrics;
pub use options::BaseOptions;
pub use registry::{Callback, Context, Registry, RemoteFn};
/// The rustls that TLS sockets are built on, re-exported so that a program's configurations
/// are of the same version (`evloop::rustls::ServerConfig`).
#[cfg(feature = "tls")]
pub use rustls;
pub use signal::signal_name;
