//! async/await on the loop: a single-threaded executor whose tasks run beside the loop's
//! callbacks, I/O readiness as futures ([`Async`]), timer futures on the loop's own timers
//! ([`Runtime::sleep`], [`Interval`], [`Runtime::timeout`]), and signals as streams.
//!
//! # How it fits in the loop
//!
//! [`Runtime::new`] attaches a runtime to a base: it starts a prepare watcher (see
//! [`Registry::new_prepare`]) that, before every wait, runs the tasks woken since the last
//! one and then applies what they asked of the registry: watch this fd, arm that timer, free
//! that event. A future cannot reach the registry while it is polled (the loop holds it), so
//! it queues the request; the queue is applied before the loop next waits, in order, which
//! is all a future needs: nothing can become ready before the wait anyway.
//!
//! A readiness or timer callback wakes its task: on the loop thread that is a push on the
//! run queue and nothing else (no syscall); from another thread the wake also goes through
//! the base's cross-thread wake-up ([`Handle::wake`](crate::Handle::wake)), so any number of
//! wakes before the loop runs cost one write. [`Runtime::block_on`] runs the loop until its
//! future completes; everything else registered on the base runs meanwhile.
//!
//! An fd is watched level-triggered while a task waits on it and not otherwise: its event is
//! added when a future finds the fd not ready and deleted when it fires. The registry defers
//! a delete to the next wait and cancels it if the event is added again before that, so a
//! task that reads, writes and waits again costs no `epoll_ctl` in steady state.
//!
//! # Callbacks and tasks
//!
//! Both run on the loop thread and mix freely: a callback may [`spawn`](Runtime::spawn) a
//! task (the `Runtime` is a cheap `Rc` clone, so capture one), and a task may create callback
//! events through [`Handle::run_in_loop`](crate::Handle::run_in_loop), or, simpler, through
//! the runtime's own futures. Use callbacks where the work is a reaction to one event (a
//! buffered socket's read callback, a timer); use tasks where the work is a sequence of
//! waits (a protocol exchange, a retry loop), or to reach a library written for async/await.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use evloop::rt::Runtime;
//!
//! let mut base: evloop::Base = evloop::new_base()?;
//! let rt = Runtime::new(&mut base)?;
//! let ticks = rt.spawn({
//!     let rt = rt.clone();
//!     async move {
//!         let mut n = 0;
//!         for _ in 0..3 {
//!             rt.sleep(Duration::from_millis(1)).await;
//!             n += 1;
//!         }
//!         n
//!     }
//! });
//! // Callbacks keep running while the loop drives the future.
//! base.after(Duration::from_millis(1), |_, _| println!("a callback"))?;
//! assert_eq!(rt.block_on(&mut base, &mut (), ticks)?, 3);
//! # Ok::<(), std::io::Error>(())
//! ```

mod io;
mod signal;
mod time;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io as stdio;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use async_task::Runnable;

use crate::base::Base;
use crate::flags::LoopFlags;
use crate::registry::{Context, Registry};

pub use async_task::Task;
pub use io::{Async, Readable, Writable};
pub use signal::{CtrlC, Signal};
pub use time::{Elapsed, Interval, Sleep, Timeout};

use io::Source;
use signal::SignalShared;
use time::TimerShared;

/// An executor and reactor attached to one base: spawns tasks, makes I/O, timer and signal
/// futures, and drives a future to completion with [`block_on`](Self::block_on).
///
/// A `Runtime` is a cheap handle (`Rc`): clone it into tasks and callbacks. It is not `Send`;
/// the loop it belongs to runs on one thread. Wakers made by its futures are `Send + Sync`.
///
/// When the base is dropped, the runtime closes: queued tasks are dropped (cancelled), new
/// tasks are dropped at once, I/O futures answer `NotConnected`, and timer and signal futures
/// never complete.
#[derive(Clone)]
pub struct Runtime {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("base", &self.inner.base)
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

/// The loop-thread state of a runtime.
pub(crate) struct Inner {
    /// The id of the base it is attached to.
    base: u32,
    shared: Arc<Shared>,
    /// What futures asked of the registry since it was last applied.
    changes: RefCell<Vec<Change>>,
    /// The other of the two change buffers (swapped, so neither gives up its capacity).
    applying: RefCell<Vec<Change>>,
    /// The other of the two run queues (swapped with the shared one under its lock).
    running: RefCell<VecDeque<Runnable>>,
    closed: Cell<bool>,
    /// `block_on` is running.
    blocking: Cell<bool>,
    /// The registry's count of work that keeps the loop alive: one per task not completed
    /// or dropped, and one while `changes` is not empty.
    work: Rc<Cell<usize>>,
    /// `block_on`'s main future woke itself: the next pass must not stop at the prepare
    /// watcher, so that the loop polls I/O between two polls of the main future.
    no_break: Cell<bool>,
}

/// The part of a runtime that wakers reach from any thread.
struct Shared {
    /// Woken tasks, in wake order. A mutex rather than a lock-free queue: it is taken once
    /// per wake and once per task run, never contended on the loop thread, and a `VecDeque`
    /// keeps its capacity, so a wake allocates nothing in steady state.
    queue: Mutex<VecDeque<Runnable>>,
    /// Identifies the loop thread (see [`thread_token`]).
    loop_thread: usize,
    /// Wakes the loop from another thread (the base's coalesced cross-thread wake-up).
    notify: Box<dyn Fn() + Send + Sync>,
    /// `block_on`'s main future was woken.
    main_woken: AtomicBool,
    closed: AtomicBool,
}

/// A number unique to the calling thread among live threads: the address of a thread-local.
/// Cheaper than `thread::current().id()`, which clones an `Arc`.
fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

impl Shared {
    fn schedule(&self, runnable: Runnable) {
        let on_loop = thread_token() == self.loop_thread;
        if self.closed.load(Ordering::Acquire) {
            if on_loop {
                drop(runnable); // cancels the task
            } else {
                // A local task's future must not be dropped on another thread (async-task
                // would panic); the loop is gone, so the task can only be leaked.
                std::mem::forget(runnable);
            }
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(runnable);
        if !on_loop {
            (self.notify)();
        }
    }

    fn pop(&self) -> Option<Runnable> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Exchange the queue with `other` (empty): takes every woken task at once.
    fn swap_queue(&self, other: &mut VecDeque<Runnable>) {
        std::mem::swap(
            &mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()),
            other,
        );
    }

    fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The waker of `block_on`'s main future.
struct MainWaker(Arc<Shared>);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.main_woken.store(true, Ordering::Release);
        if thread_token() != self.0.loop_thread {
            (self.0.notify)();
        }
    }
}

/// A request of a future to the registry, applied before the loop next waits.
pub(crate) enum Change {
    /// Watch the source's fd for one direction (0 read, 1 write).
    Watch(Rc<Source>, usize),
    /// Free the source's events, then drop the I/O object (closing its fd).
    Release(Rc<Source>, Option<Box<dyn Any>>),
    /// Arm (or re-arm) a timer at its deadline.
    Arm(Rc<TimerShared>),
    /// Free a timer's event.
    Disarm(Rc<TimerShared>),
    /// Start a signal event.
    Listen(Rc<SignalShared>),
    /// Free a signal event.
    Unlisten(Rc<SignalShared>),
}

impl Runtime {
    /// Attach a runtime to the base of `registry` (pass `&mut base`): a prepare watcher that
    /// runs woken tasks before every wait, and the base's cross-thread wake-up.
    ///
    /// # Errors
    ///
    /// Creating the wake-up (an eventfd or a pipe) or the watcher failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// assert_eq!(rt.block_on(&mut base, &mut (), async { 1 + 1 })?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new<D: 'static>(registry: &mut Registry<D>) -> stdio::Result<Runtime> {
        let handle = registry.handle()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            loop_thread: thread_token(),
            notify: Box::new(move || {
                let _ = handle.wake();
            }),
            main_woken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let inner = Rc::new(Inner {
            base: registry.id,
            shared,
            work: registry.internal.async_work.clone(),
            changes: RefCell::new(Vec::new()),
            applying: RefCell::new(Vec::new()),
            running: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            blocking: Cell::new(false),
            no_break: Cell::new(false),
        });
        let driver = Driver(inner.clone());
        let prepare = registry.new_prepare(move |ctx, _| driver.tick(ctx))?;
        registry.add(prepare, None)?;
        Ok(Runtime { inner })
    }

    /// Spawn `future` as a task on the loop thread (`spawn_local`: it need not be `Send`).
    /// It first runs before the loop's next wait. The [`Task`] is a future of its output;
    /// dropping it cancels the task, [`Task::detach`] lets it run to completion unobserved.
    /// A panic in the task is caught and raised again where its `Task` is awaited (a detached
    /// task's panic is dropped); the loop is not affected.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let a = rt.spawn(async { 20 });
    /// let b = rt.spawn(async { 22 });
    /// assert_eq!(rt.block_on(&mut base, &mut (), async { a.await + b.await })?, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let shared = self.inner.shared.clone();
        let alive = TaskAlive::new(&self.inner.work);
        let future = async move {
            let _alive = alive;
            future.await
        };
        let (runnable, task) = async_task::Builder::new()
            .propagate_panic(true)
            .spawn_local(move |()| future, move |r| shared.schedule(r));
        runnable.schedule();
        task
    }

    /// Run the loop of `base` until `future` completes, and return its output. The base's
    /// events and callbacks, and the runtime's tasks, run meanwhile; `data` is what the
    /// callbacks get, as with [`Base::run`]. A `loop_exit` or `loop_break` from a callback
    /// ends one pass of the loop, not `block_on`. A panic in `future` leaves `block_on` with
    /// the loop stopped and intact.
    ///
    /// `block_on` cannot be called from inside a callback or a task of the same base: it
    /// needs the `&mut Base` that the running loop holds, so such a call does not compile.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `base` is not the base the runtime is attached to; `Other` if the
    /// runtime's `block_on` is already running (re-entered through another base's loop);
    /// the loop's error (see [`Base::run_with`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let rt = evloop::rt::Runtime::new(&mut base)?;
    /// let start = Instant::now();
    /// rt.block_on(&mut base, &mut (), rt.sleep(Duration::from_millis(5)))?;
    /// assert!(start.elapsed() >= Duration::from_millis(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<D: 'static, F: Future>(
        &self,
        base: &mut Base<D>,
        data: &mut D,
        future: F,
    ) -> stdio::Result<F::Output> {
        let inner = &*self.inner;
        if base.id != inner.base {
            return Err(stdio::Error::new(
                stdio::ErrorKind::InvalidInput,
                format!(
                    "block_on: this runtime belongs to base {}, not base {}",
                    inner.base, base.id
                ),
            ));
        }
        if inner.blocking.replace(true) {
            return Err(stdio::Error::other(
                "block_on: this runtime's block_on is already running",
            ));
        }
        struct Unblock<'a>(&'a Inner);
        impl Drop for Unblock<'_> {
            fn drop(&mut self) {
                self.0.blocking.set(false);
                self.0.no_break.set(false);
                self.0.shared.main_woken.store(false, Ordering::Relaxed);
            }
        }
        let _unblock = Unblock(inner);
        let waker = Waker::from(Arc::new(MainWaker(inner.shared.clone())));
        let mut cx = TaskContext::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            inner.shared.main_woken.store(false, Ordering::Release);
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return Ok(out);
            }
            inner.apply_changes(base);
            if inner.shared.main_woken.load(Ordering::Acquire) {
                // Woken while it ran (a yield): one pass without waiting, so that I/O and
                // timers are looked at before it runs again.
                inner.no_break.set(true);
                let outcome = base.run_with(LoopFlags::NONBLOCK, data);
                inner.no_break.set(false);
                outcome?;
            } else {
                // The prepare watcher breaks this run once the main future is woken.
                base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, data)?;
            }
        }
    }

    /// Whether the base this runtime belongs to was dropped.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    pub(crate) fn push(&self, change: Change) {
        let inner = &*self.inner;
        let mut changes = inner.changes.borrow_mut();
        if changes.is_empty() {
            // Requests waiting keep the loop alive until a prepare pass applies them.
            inner.work.set(inner.work.get() + 1);
        }
        changes.push(change);
    }

    pub(crate) fn closed_error(&self) -> stdio::Error {
        stdio::Error::new(
            stdio::ErrorKind::NotConnected,
            "the base this runtime belongs to was dropped",
        )
    }
}

impl Inner {
    /// Apply the queued changes, including those made while applying (freeing an event
    /// drops its callback, which may drop a task, whose futures queue changes of their own).
    fn apply_changes<D: 'static>(&self, registry: &mut Registry<D>) {
        while !self.changes.borrow().is_empty() {
            // Swap the buffers, apply outside any borrow, then hand the emptied buffer back.
            let mut batch = self.applying.take();
            std::mem::swap(&mut batch, &mut *self.changes.borrow_mut());
            self.work.set(self.work.get() - 1);
            for change in batch.drain(..) {
                self.apply(registry, change);
            }
            *self.applying.borrow_mut() = batch;
        }
    }

    fn apply<D: 'static>(&self, registry: &mut Registry<D>, change: Change) {
        match change {
            Change::Watch(source, dir) => source.watch(registry, dir),
            Change::Release(source, io) => {
                source.release(registry);
                drop(io);
            }
            Change::Arm(timer) => timer.arm(registry),
            Change::Disarm(timer) => timer.disarm(registry),
            Change::Listen(signal) => signal.listen(registry),
            Change::Unlisten(signal) => signal.unlisten(registry),
        }
    }

    /// Run the tasks woken so far (not those they wake: those run next time, after the loop
    /// looked at I/O), then apply what they asked.
    fn run_tasks<D: 'static>(&self, ctx: &mut Context<'_, D>) {
        self.apply_changes(ctx);
        // Take the woken tasks in one go; those they wake go to the emptied shared queue and
        // run next time, after the loop has looked at I/O.
        let mut batch = self.running.take();
        self.shared.swap_queue(&mut batch);
        while let Some(runnable) = batch.pop_front() {
            runnable.run();
        }
        *self.running.borrow_mut() = batch;
        self.apply_changes(ctx);
        if self.shared.queued() > 0 {
            ctx.limit_next_wait(Duration::ZERO);
        }
        if self.blocking.get()
            && !self.no_break.get()
            && self.shared.main_woken.load(Ordering::Acquire)
        {
            ctx.loop_break();
        }
    }
}

/// Counts a task in the registry's `tasks` from its spawn until its future completes or is
/// dropped (async-task drops a future as soon as it completes).
struct TaskAlive(Rc<Cell<usize>>);

impl TaskAlive {
    fn new(tasks: &Rc<Cell<usize>>) -> Self {
        tasks.set(tasks.get() + 1);
        TaskAlive(tasks.clone())
    }
}

impl Drop for TaskAlive {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The prepare watcher's state: the runtime, closed when the base drops the watcher.
struct Driver(Rc<Inner>);

impl Driver {
    fn tick<D: 'static>(&self, ctx: &mut Context<'_, D>) {
        self.0.run_tasks(ctx);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let inner = &*self.0;
        inner.closed.set(true);
        inner.shared.closed.store(true, Ordering::Release);
        // Cancel the queued tasks, one at a time outside the lock (a task's drop may wake
        // others), then drop what their futures queued for the registry.
        while let Some(runnable) = inner.shared.pop() {
            drop(runnable);
        }
        drop(inner.running.take());
        loop {
            let batch = std::mem::take(&mut *inner.changes.borrow_mut());
            if batch.is_empty() {
                break;
            }
            inner.work.set(inner.work.get() - 1);
            drop(batch);
        }
    }
}

/// Let the loop run once before continuing: the task is woken at once and runs again after
/// the loop has looked at I/O and timers without waiting.
///
/// # Examples
///
/// ```
/// let mut base: evloop::Base = evloop::new_base()?;
/// let rt = evloop::rt::Runtime::new(&mut base)?;
/// let n = rt.block_on(&mut base, &mut (), async {
///     evloop::rt::yield_now().await;
///     7
/// })?;
/// assert_eq!(n, 7);
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
