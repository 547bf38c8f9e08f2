//! Winsock's `select` with caller-sized sets (see the crate documentation).
//!
//! A Winsock `fd_set` is `{ u32 fd_count; SOCKET fd_array[fd_count]; }`, the array as long as
//! the caller made it. The sets are `Vec<u64>`: element 0 holds the count (the `u32` and its
//! padding), the sockets follow. They are rebuilt from the interest list before each wait,
//! as select overwrites them with what is ready.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use evloop_core::backend::MAX_WAIT;
use evloop_core::backend::{fd_error, fd_is_open, ReadyList};
use evloop_core::fd::RawFd;
use evloop_core::{Backend, EventFlags, Features};

/// Winsock's `struct timeval`.
#[repr(C)]
struct TimeVal {
    tv_sec: i32,
    tv_usec: i32,
}

#[link(name = "ws2_32")]
extern "system" {
    // int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
    //            const timeval *timeout);
    fn select(
        nfds: i32,
        readfds: *mut u64,
        writefds: *mut u64,
        exceptfds: *mut u64,
        timeout: *const TimeVal,
    ) -> i32;
}

const SOCKET_ERROR: i32 = -1;
const WSAENOTSOCK: i32 = 10038;
const WSAEINTR: i32 = 10004;

/// One socket set, count first.
#[derive(Debug, Default)]
struct SocketSet(Vec<u64>);

impl SocketSet {
    fn clear(&mut self) {
        self.0.clear();
        self.0.push(0);
    }

    fn push(&mut self, socket: RawFd) {
        self.0.push(socket);
        self.0[0] += 1;
    }

    fn sockets(&self) -> &[u64] {
        let n = self.0.first().map_or(0, |&n| n as u32 as usize);
        &self.0[1..1 + n]
    }

    fn as_ptr(&mut self) -> *mut u64 {
        self.0.as_mut_ptr()
    }
}

/// The select backend (Winsock).
///
/// # Examples
///
/// ```
/// use evloop_core::Base;
/// let base: Base = Base::with_backend(Box::new(evloop_select::SelectBackend::new()), Default::default()).unwrap();
/// assert_eq!(base.method(), "select");
/// ```
#[derive(Debug, Default)]
pub struct SelectBackend {
    /// Every watched socket with its interest, and where each is in that list.
    interest: Vec<(RawFd, EventFlags)>,
    index: HashMap<RawFd, usize>,
    read: SocketSet,
    write: SocketSet,
    except: SocketSet,
    /// Sockets found closed: reported and left out of the next waits until deleted.
    bad: Vec<RawFd>,
}

impl SelectBackend {
    /// An empty backend; select needs no kernel object.
    pub fn new() -> Self {
        Self::default()
    }

    /// One select over the interest, leaving out the sockets in `self.bad`.
    fn select_once(&mut self, timeout: Option<Duration>) -> Result<i32, i32> {
        self.read.clear();
        self.write.clear();
        self.except.clear();
        for &(socket, interest) in &self.interest {
            if self.bad.contains(&socket) {
                continue;
            }
            if interest.contains(EventFlags::READ) {
                self.read.push(socket);
            }
            if interest.contains(EventFlags::WRITE) {
                // A failed connect is reported as an exception, not as writable.
                self.write.push(socket);
                self.except.push(socket);
            }
        }
        if self.read.sockets().is_empty() && self.write.sockets().is_empty() {
            // Winsock refuses a wait on no socket (WSAEINVAL): sleep through it instead.
            std::thread::sleep(timeout.unwrap_or(MAX_WAIT).min(MAX_WAIT));
            return Ok(0);
        }
        // Rounded up to microseconds, so a wait never ends before the timer it waits for.
        let tv = timeout.map(|t| {
            let t = t.min(MAX_WAIT);
            let micros = t.subsec_nanos().div_ceil(1000);
            TimeVal {
                tv_sec: t.as_secs() as i32 + (micros / 1_000_000) as i32,
                tv_usec: (micros % 1_000_000) as i32,
            }
        });
        let tv_ptr = tv
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const TimeVal);
        // SAFETY: each set is a count followed by that many sockets, as Winsock reads it, in
        // a live Vec; select writes back at most as many as it was given. `nfds` is ignored.
        let n = unsafe {
            select(
                0,
                self.read.as_ptr(),
                self.write.as_ptr(),
                self.except.as_ptr(),
                tv_ptr,
            )
        };
        if n == SOCKET_ERROR {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(n)
        }
    }
}

impl Backend for SelectBackend {
    fn name(&self) -> &'static str {
        "select"
    }

    fn features(&self) -> Features {
        // Sockets only: Winsock's select knows nothing else. A closed socket fails the wait
        // (WSAENOTSOCK), which is handled.
        Features::CLOSE_TOLERANT
    }

    fn change(&mut self, fd: RawFd, old: EventFlags, new: EventFlags) -> io::Result<()> {
        if old.is_empty() && !new.is_empty() {
            fd_is_open(fd).map_err(|e| fd_error("select", "add", fd, e))?;
        }
        let new = new & (EventFlags::READ | EventFlags::WRITE);
        match (self.index.get(&fd).copied(), new.is_empty()) {
            (Some(at), false) => self.interest[at].1 = new,
            (Some(at), true) => {
                self.index.remove(&fd);
                self.interest.swap_remove(at);
                if let Some(&(moved, _)) = self.interest.get(at) {
                    self.index.insert(moved, at);
                }
                self.bad.retain(|&b| b != fd);
            }
            (None, false) => {
                self.index.insert(fd, self.interest.len());
                self.interest.push((fd, new));
            }
            (None, true) => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut ReadyList) -> io::Result<()> {
        self.bad.clear();
        let mut result = self.select_once(timeout);
        if result == Err(WSAENOTSOCK) {
            // Find the closed sockets, report them, and wait again without them (not
            // blocking: their events must run).
            self.bad = self
                .interest
                .iter()
                .map(|&(s, _)| s)
                .filter(|&s| fd_is_open(s).is_err())
                .collect();
            for &socket in &self.bad {
                ready.push_closed(socket);
            }
            result = self.select_once(Some(Duration::ZERO));
        }
        match result {
            Ok(0) | Err(WSAEINTR) => return Ok(()),
            Ok(_) => {}
            Err(code) => {
                return Err(evloop_core::backend::os_error(
                    "select",
                    io::Error::from_raw_os_error(code),
                ))
            }
        }
        // A socket ready several ways is pushed once per way; the core merges the reports.
        for &socket in self.read.sockets() {
            ready.push(socket, EventFlags::READ);
        }
        for &socket in self.write.sockets() {
            ready.push(socket, EventFlags::WRITE);
        }
        for &socket in self.except.sockets() {
            ready.push(socket, EventFlags::READ | EventFlags::WRITE);
        }
        Ok(())
    }
}
