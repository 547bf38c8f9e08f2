//! Signals as streams ([`Signal`]) and [`CtrlC`], over the loop's signal events.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use crate::event::EventId;
use crate::registry::Registry;

use super::{Change, Runtime};

/// What a signal stream and its event's callback share.
pub(crate) struct SignalShared {
    signo: i32,
    event: Cell<Option<EventId>>,
    listening: Cell<bool>,
    /// Deliveries not yet taken by the stream.
    count: Cell<u64>,
    waker: Cell<Option<Waker>>,
    error: Cell<Option<io::Error>>,
    dropped: Cell<bool>,
}

impl SignalShared {
    /// Apply a queued `Listen`: make and add the signal event.
    pub(crate) fn listen<D: 'static>(self: &Rc<Self>, registry: &mut Registry<D>) {
        if self.dropped.get() || self.event.get().is_some() {
            return;
        }
        let shared = self.clone();
        let made = registry.new_signal(self.signo, move |ctx, _| {
            shared
                .count
                .set(shared.count.get() + u64::from(ctx.ncalls()));
            if let Some(waker) = shared.waker.take() {
                waker.wake();
            }
        });
        let result = made.and_then(|id| {
            registry.make_internal(id);
            self.event.set(Some(id));
            registry.add(id, None)
        });
        if let Err(e) = result {
            self.error.set(Some(e));
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// Apply a queued `Unlisten`: free the event.
    pub(crate) fn unlisten<D>(&self, registry: &mut Registry<D>) {
        if let Some(id) = self.event.take() {
            let _ = registry.free(id);
        }
        drop(self.waker.take());
    }
}

/// The deliveries of one signal, as a [`Stream`](futures_core::Stream) of counts (several
/// deliveries before the task runs are one item, as with the loop's signal events):
/// [`Runtime::signal`]. The loop watches the signal from the first poll until the `Signal` is
/// dropped.
#[must_use = "streams do nothing unless polled"]
pub struct Signal {
    rt: Runtime,
    shared: Rc<SignalShared>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("signo", &self.shared.signo)
            .finish()
    }
}

impl Signal {
    /// Wait for the next deliveries; returns how many arrived since the last call.
    ///
    /// # Errors
    ///
    /// The loop could not watch the signal (another base of the process watches it, say).
    pub async fn recv(&mut self) -> io::Result<u64> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll for deliveries.
    pub fn poll_recv(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<u64>> {
        let s = &self.shared;
        let n = s.count.replace(0);
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if let Some(e) = s.error.take() {
            return Poll::Ready(Err(e));
        }
        if self.rt.is_closed() {
            return Poll::Ready(Err(self.rt.closed_error()));
        }
        match s.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => s.waker.set(Some(w)),
            _ => s.waker.set(Some(cx.waker().clone())),
        }
        if !s.listening.replace(true) {
            self.rt.push(Change::Listen(s.clone()));
        }
        Poll::Pending
    }
}

impl futures_core::Stream for Signal {
    type Item = io::Result<u64>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        self.shared.dropped.set(true);
        if self.shared.listening.get() && !self.rt.is_closed() {
            self.rt.push(Change::Unlisten(self.shared.clone()));
        }
    }
}

/// The future of [`Runtime::ctrl_c`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct CtrlC(Signal);

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.0.poll_recv(cx).map_ok(|_| ())
    }
}

impl Runtime {
    /// The deliveries of signal `signo` (see [`Registry::new_signal`] for what a signal
    /// event is on each system; on Windows, `SIGINT` and `SIGBREAK`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number out of range, SIGKILL or SIGSTOP.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let mut usr1 = rt.signal(libc::SIGUSR1)?;
    /// let n = rt.block_on(&mut base, &mut (), async {
    ///     // Raised once the loop watches the signal.
    ///     let raise = async {
    ///         evloop::rt::yield_now().await;
    ///         unsafe { libc::raise(libc::SIGUSR1) };
    ///         std::future::pending::<std::io::Result<u64>>().await
    ///     };
    ///     futures_lite::future::or(usr1.recv(), raise).await
    /// })??;
    /// assert_eq!(n, 1);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signal(&self, signo: i32) -> io::Result<Signal> {
        crate::signal::validate(signo)?;
        Ok(self.signal_stream(signo))
    }

    fn signal_stream(&self, signo: i32) -> Signal {
        Signal {
            rt: self.clone(),
            shared: Rc::new(SignalShared {
                signo,
                event: Cell::new(None),
                listening: Cell::new(false),
                count: Cell::new(0),
                waker: Cell::new(None),
                error: Cell::new(None),
                dropped: Cell::new(false),
            }),
        }
    }

    /// A future that completes at the next Ctrl-C (SIGINT).
    ///
    /// # Errors
    ///
    /// The loop could not watch SIGINT.
    pub fn ctrl_c(&self) -> CtrlC {
        // SIGINT is valid everywhere (`STOP_SIGNALS[0]`).
        CtrlC(self.signal_stream(crate::signal::STOP_SIGNALS[0]))
    }
}
