//! The kqueue syscalls behind the [`Backend`] trait.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use evloop_core::backend::wait_timeout;
use evloop_core::backend::{os_error, ReadyList};
use evloop_core::{signal, Backend, EventFlags, Features};
use rustix::event::kqueue::{self, Event, EventFilter, EventFlags as KFlags};
use rustix::io::Errno;

use crate::translate::{self, Action, Change, Filter, Outcome, Report};

/// Results taken per wait besides room for every pending change's possible error.
const EVENTS: usize = 64;

/// The ident of the `EVFILT_USER` event that handles trigger to wake the loop.
#[cfg(has_evfilt_user)]
const WAKE_IDENT: isize = 0x6576_6c70; // "evlp"

/// Wakes a kqueue from any thread by triggering its `EVFILT_USER` event. It holds its own
/// dup of the kqueue fd, so it stays valid however the backend moves.
#[cfg(has_evfilt_user)]
struct UserWaker {
    kq: OwnedFd,
}

#[cfg(has_evfilt_user)]
fn user_event(flags: KFlags, trigger: bool) -> Event {
    use rustix::event::kqueue::{UserDefinedFlags, UserFlags};
    let user = if trigger {
        UserFlags::TRIGGER
    } else {
        UserFlags::empty()
    };
    Event::new(
        EventFilter::User {
            ident: WAKE_IDENT as _,
            flags: user,
            user_flags: UserDefinedFlags::new(0),
        },
        flags,
        std::ptr::null_mut(),
    )
}

#[cfg(has_evfilt_user)]
impl evloop_core::backend::Waker for UserWaker {
    fn wake(&self) {
        let mut out: Vec<Event> = Vec::new();
        // SAFETY: a user filter names no fd.
        let _ = unsafe {
            kqueue::kevent_timespec(
                &self.kq,
                &[user_event(KFlags::empty(), true)],
                rustix::buffer::spare_capacity(&mut out),
                Some(&Default::default()),
            )
        };
    }
}

/// The kqueue backend.
///
/// # Examples
///
/// ```
/// use evloop_core::{Backend, Base};
/// let backend = evloop_kqueue::KqueueBackend::new().unwrap();
/// let base: Base = Base::with_backend(Box::new(backend), Default::default()).unwrap();
/// assert_eq!(base.method(), "kqueue");
/// ```
pub struct KqueueBackend {
    kq: OwnedFd,
    pending: Vec<Event>,
    results: Vec<Event>,
    scratch: Vec<Change>,
    /// The signals watched through `EVFILT_SIGNAL`, ignored meanwhile; the core keeps their
    /// saved dispositions (`signal::ignore_signal`) and restores them when they are let go.
    signals: Vec<i32>,
}

impl std::fmt::Debug for KqueueBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KqueueBackend")
            .field("kq", &self.kq)
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn new_kqueue() -> io::Result<OwnedFd> {
    let kq = kqueue::kqueue().map_err(|e| os_error("kqueue: kqueue()", e))?;
    rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
    Ok(kq)
}

fn kevent_for(change: &Change, receipt: bool) -> Event {
    let filter = match change.filter {
        Filter::Read => EventFilter::Read(change.fd),
        Filter::Write => EventFilter::Write(change.fd),
    };
    let mut flags = match change.action {
        Action::Add { clear: true } => KFlags::ADD | KFlags::CLEAR,
        Action::Add { clear: false } => KFlags::ADD,
        Action::Delete => KFlags::DELETE,
    };
    if receipt {
        flags |= KFlags::RECEIPT;
    }
    Event::new(filter, flags, std::ptr::null_mut())
}

fn report_of(ev: &Event) -> Option<Report> {
    let (fd, filter) = match ev.filter() {
        EventFilter::Read(fd) => (fd, Filter::Read),
        EventFilter::Write(fd) => (fd, Filter::Write),
        _ => return None,
    };
    let flags = ev.flags();
    let error = flags.contains(KFlags::ERROR).then(|| ev.data() as i32);
    Some(Report {
        fd,
        filter,
        eof: flags.contains(KFlags::EOF),
        error,
    })
}

impl KqueueBackend {
    /// A new kqueue.
    ///
    /// # Errors
    ///
    /// `kqueue()`'s error (the fd limit, say).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            kq: new_kqueue()?,
            pending: Vec::new(),
            results: Vec::with_capacity(EVENTS),
            scratch: Vec::new(),
            signals: Vec::new(),
        })
    }

    /// Apply `changes` now, with receipts, and turn the first refusal into an error.
    fn apply_now(&mut self, fd: RawFd) -> io::Result<()> {
        // Changes to this fd still waiting for the next wait go first, in order: a removal
        // queued when the fd's last event was freed must not undo this registration by being
        // applied after it. (A removal's ENOENT is ignored below; its EBADF means the fd is
        // not open, which fails this registration too.)
        let mut list: Vec<Event> = Vec::new();
        self.pending.retain(|ev| {
            let same =
                matches!(ev.filter(), EventFilter::Read(f) | EventFilter::Write(f) if f == fd);
            if same {
                list.push(*ev);
            }
            !same
        });
        list.extend(self.scratch.iter().map(|c| kevent_for(c, true)));
        let mut out: Vec<Event> = Vec::with_capacity(list.len());
        // SAFETY: the changes name fds the core watches; a closed one is reported per change.
        unsafe {
            kqueue::kevent_timespec(
                &self.kq,
                &list,
                rustix::buffer::spare_capacity(&mut out),
                Some(&Default::default()),
            )
        }
        .map_err(|e| os_error(&format!("kqueue: cannot register fd {fd}"), e))?;
        for ev in &out {
            if let Some(report) = report_of(ev) {
                match translate::outcome(&report) {
                    Outcome::Ignore | Outcome::Ready(_) => {}
                    Outcome::Closed | Outcome::Failed(_) => {
                        let errno = report.error.unwrap_or(0);
                        return Err(io::Error::new(
                            io::Error::from_raw_os_error(errno).kind(),
                            format!(
                                "kqueue: cannot add fd {fd} to {}: {}",
                                report.filter.name(),
                                io::Error::from_raw_os_error(errno)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn signal_change(&mut self, signo: i32, flags: KFlags) -> io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(signo).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("kqueue: signal {signo} has no EVFILT_SIGNAL"),
            )
        })?;
        let ev = Event::new(
            EventFilter::Signal { signal, times: 0 },
            flags,
            std::ptr::null_mut(),
        );
        let mut out: Vec<Event> = Vec::new();
        // SAFETY: a signal filter names no fd.
        unsafe {
            kqueue::kevent_timespec(
                &self.kq,
                &[ev],
                rustix::buffer::spare_capacity(&mut out),
                Some(&Default::default()),
            )
        }
        .map(drop)
        .map_err(|e| os_error(&format!("kqueue: EVFILT_SIGNAL {signo}"), e))
    }
}

impl Backend for KqueueBackend {
    fn name(&self) -> &'static str {
        "kqueue"
    }

    fn features(&self) -> Features {
        Features::EDGE_TRIGGERED
            | Features::O1
            | Features::FDS
            | Features::EARLY_CLOSE
            | Features::CLOSE_TOLERANT
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        self.scratch.clear();
        translate::changes(fd, old, new, &mut self.scratch);
        if old.is_empty() && !new.is_empty() {
            return self.apply_now(fd);
        }
        for change in &self.scratch {
            self.pending.push(kevent_for(change, false));
        }
        Ok(())
    }

    /// `kevent`'s timespec.
    fn timeout_resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        self.results.clear();
        // Room for one error per pending change, so none is dropped.
        self.results.reserve(self.pending.len() + EVENTS);
        let mut timeout = wait_timeout(timeout);
        let mut changes: &[Event] = &self.pending;
        let mut first = true;
        // A wait that fills the buffer may have left ready fds behind: grow it and take the
        // rest at once (no changes, not blocking), so no fd waits for another iteration
        // because the buffer was small; this ends once the buffer outgrows the ready fds.
        loop {
            let room = self.results.capacity() - self.results.len();
            // SAFETY: every fd in `changes` is one the core watches or just let go of; a
            // closed one comes back as an EV_ERROR result.
            let result = unsafe {
                kqueue::kevent_timespec(
                    &self.kq,
                    changes,
                    rustix::buffer::spare_capacity(&mut self.results),
                    timeout.as_ref(),
                )
            };
            changes = &[];
            match result {
                Ok(_) => {}
                // Interrupted: what earlier rounds collected is still reported below.
                Err(Errno::INTR) => break,
                Err(e) if first => {
                    self.pending.clear();
                    return Err(os_error("kqueue: kevent", e));
                }
                Err(_) => break,
            }
            if self.results.len() < self.results.capacity() || room == 0 {
                break;
            }
            self.results.reserve(self.results.capacity());
            timeout = Some(rustix::event::Timespec::default());
            first = false;
        }
        self.pending.clear();
        let mut failure = None;
        for ev in &self.results {
            match ev.filter() {
                EventFilter::Signal { signal, times } => {
                    ready.push_signal(signal.as_raw(), times.try_into().unwrap_or(u32::MAX));
                    continue;
                }
                #[cfg(has_evfilt_user)]
                EventFilter::User { .. } => {
                    ready.push_wake();
                    continue;
                }
                _ => {}
            }
            let Some(report) = report_of(ev) else {
                continue;
            };
            match translate::outcome(&report) {
                Outcome::Ready(flags) => ready.push(report.fd, flags),
                Outcome::Ignore => {}
                Outcome::Closed => ready.push_closed(report.fd),
                Outcome::Failed(errno) => {
                    failure.get_or_insert(io::Error::new(
                        io::Error::from_raw_os_error(errno).kind(),
                        format!(
                            "kqueue: change of fd {} on {} failed: {}",
                            report.fd,
                            report.filter.name(),
                            io::Error::from_raw_os_error(errno)
                        ),
                    ));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn need_reinit(&self) -> bool {
        true
    }

    /// A kqueue is not inherited across fork: make a new one. The core then re-adds every fd
    /// and signal.
    fn reinit(&mut self) -> io::Result<()> {
        self.kq = new_kqueue()?;
        self.pending.clear();
        Ok(())
    }

    fn handles_signals(&self) -> bool {
        true
    }

    /// `EVFILT_USER`, registered with `EV_CLEAR` so that a trigger is reported once and then
    /// resets (a user event left triggered would make every wait return at once: the
    /// pitfall in the polling crate's issue tracker).
    #[cfg(has_evfilt_user)]
    fn waker(&mut self) -> Option<io::Result<std::sync::Arc<dyn evloop_core::backend::Waker>>> {
        let register = || -> io::Result<std::sync::Arc<dyn evloop_core::backend::Waker>> {
            let mut out: Vec<Event> = Vec::new();
            // SAFETY: a user filter names no fd.
            unsafe {
                kqueue::kevent_timespec(
                    &self.kq,
                    &[user_event(KFlags::ADD | KFlags::CLEAR, false)],
                    rustix::buffer::spare_capacity(&mut out),
                    Some(&Default::default()),
                )
            }
            .map_err(|e| os_error("kqueue: EVFILT_USER", e))?;
            let kq = rustix::io::fcntl_dupfd_cloexec(&self.kq, 0)?;
            Ok(std::sync::Arc::new(UserWaker { kq }))
        };
        Some(register())
    }

    /// Watch `signo` with `EVFILT_SIGNAL`; its disposition is set to ignore meanwhile (the
    /// filter sees signals even when ignored), and the old one saved.
    fn add_signal(&mut self, signo: i32) -> io::Result<()> {
        if !self.signals.contains(&signo) {
            signal::ignore_signal(signo)?;
            self.signals.push(signo);
        }
        self.signal_change(signo, KFlags::ADD)
    }

    fn del_signal(&mut self, signo: i32) -> io::Result<()> {
        let result = self.signal_change(signo, KFlags::DELETE);
        if let Some(pos) = self.signals.iter().position(|&s| s == signo) {
            self.signals.swap_remove(pos);
            signal::restore_disposition(signo);
        }
        result
    }
}

impl Drop for KqueueBackend {
    fn drop(&mut self) {
        for signo in self.signals.drain(..) {
            signal::restore_disposition(signo);
        }
    }
}
