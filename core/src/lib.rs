//! The core of evloop: the event base and its loop, the backend trait, the per-fd interest
//! map, the timer heap and the prioritized active queues.
//!
//! Most users depend on the `evloop` facade, which picks a backend; this crate is what a
//! backend implements ([`Backend`]) and what the facade re-exports. Each concept is a module
//! small enough to read at once:
//!
//! | module | what it holds |
//! |---|---|
//! | [`backend`] | the contract with an OS mechanism (libevent's `eventop`) |
//! | `base` | [`Base`], the loop, [`BaseOptions`] |
//! | `event` | [`EventId`], [`Context`], [`Pending`] |
//! | `io_map` | events per fd, combined interest, the change list |
//! | `timer_heap` | [`TimerHeap`] |
//! | `buffer` | [`Buffer`], the chained byte queue |
//! | `buffered_socket` | [`BufferedSocket`]: an fd with input and output buffers |
//! | `listener` | [`Listener`]: accepting connections |
//! | `remote` | [`Handle`]: other threads' way in |
//! | `active_queues` | [`ActiveQueues`] |
//! | `flags` | [`EventFlags`], [`LoopFlags`], [`Features`] |
//! | [`signal`] | how signals reach the loop: self-pipe, signalfd, or the backend |

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod active_queues;
pub mod backend;
mod base;
mod buffer;
mod buffered_socket;
mod event;
mod flags;
mod io_map;
mod listener;
mod remote;
pub mod signal;
mod timer_heap;

pub use active_queues::ActiveQueues;
pub use backend::{fd_error, fd_is_open, os_error, Backend, ReadyList, Waker};
pub use base::{Base, BaseOptions, EventOps, RunOutcome};
pub use buffer::{Buffer, BufferChange, CallbackId, Eol, IoOutcome};
pub use buffered_socket::{BevCallback, BevContext, BevOptions, BufferedSocket};
pub use event::{Callback, Context, EventId, Pending};
pub use flags::{BevEvent, EventFlags, Features, LoopFlags};
pub use io_map::IoMap;
pub use listener::{AcceptCallback, Listener, ListenerErrorCallback, ListenerOptions, PeerAddr};
pub use remote::{Handle, RemoteFn};
pub use signal::signal_name;
pub use timer_heap::TimerHeap;

/// A backend for documentation examples: it watches no fd and sleeps through its waits.
#[doc(hidden)]
pub fn doc_backend() -> Box<dyn Backend> {
    struct Sleeper;
    impl Backend for Sleeper {
        fn name(&self) -> &'static str {
            "sleeper"
        }
        fn features(&self) -> Features {
            Features::O1
        }
        fn change(
            &mut self,
            fd: std::os::fd::RawFd,
            _: EventFlags,
            _: EventFlags,
        ) -> std::io::Result<()> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("sleeper cannot watch fd {fd}"),
            ))
        }
        fn dispatch(
            &mut self,
            timeout: Option<std::time::Duration>,
            _: &mut ReadyList,
        ) -> std::io::Result<()> {
            std::thread::sleep(timeout.unwrap_or(std::time::Duration::from_millis(1)));
            Ok(())
        }
    }
    Box::new(Sleeper)
}
