//! The TLS paths of a buffered socket's state machine: the same events and callbacks as a
//! plain socket's, with rustls between the fd and the buffers (see `bufio/tls.rs`).

use std::io;

use super::{BevEvent, Dir, State};
use crate::fd::BorrowedFd;
use crate::flags::EventFlags;
use crate::registry::Registry;

/// The TLS paths of the state machine: the same events and callbacks, with rustls between
/// the fd and the buffers (see `tls.rs`).
#[cfg(feature = "tls")]
impl<D: 'static> State<D> {
    /// The fd readable: read and decrypt records, send what rustls answers (handshake
    /// messages, an alert), then move plaintext to the input.
    pub(super) fn tls_readable(&mut self) {
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let (read_cap, write_cap) = (self.rate_cap(Dir::Read), self.rate_cap(Dir::Write));
        let tls = self.tls.as_mut().expect("on the TLS path");
        let received = tls.receive(fd, read_cap);
        // Whatever the records said, send what rustls queued: a handshake reply, or the
        // alert that tells the peer why we give up.
        let sent = tls.send(fd, write_cap);
        if let Ok(n) = received.as_ref() {
            self.rate_spend(Dir::Read, *n);
        }
        if let Ok(n) = sent.as_ref() {
            self.rate_spend(Dir::Write, *n);
        }
        if let Err(e) = received {
            return self.tls_fail(e, BevEvent::READING);
        }
        if let Err(e) = sent {
            return self.tls_fail(e, BevEvent::WRITING);
        }
        self.tls_progress();
    }

    /// Report the handshake's end once, and move decrypted plaintext to the input as far as
    /// the high watermark allows. Also called from `sync`, so plaintext rustls still holds
    /// reaches the input when the user drains it, without waiting for the fd (libevent#690).
    fn tls_progress(&mut self) {
        let room = self.input_room();
        let tls = self.tls.as_mut().expect("on the TLS path");
        if tls.just_connected() {
            self.pending.events |= BevEvent::CONNECTED;
        }
        if !self.enabled.contains(EventFlags::READ) || room == 0 {
            return;
        }
        match tls.pull(&mut self.input, room) {
            Ok(crate::bufio::tls::Pulled::Bytes(n)) => {
                if n > 0 && self.input.len() >= self.marks.read_low.max(1) {
                    self.pending.read = true;
                }
            }
            Ok(crate::bufio::tls::Pulled::CloseNotify) => {
                self.enabled = self.enabled.without(EventFlags::READ);
                self.pending.events |= BevEvent::EOF | BevEvent::READING;
            }
            Ok(crate::bufio::tls::Pulled::Truncated) => {
                let message = if tls.connected {
                    format!(
                        "TLS: the peer closed fd {} without close_notify (the data may be truncated)",
                        self.fd
                    )
                } else {
                    format!(
                        "TLS: the peer closed fd {} before the handshake finished",
                        self.fd
                    )
                };
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, message);
                self.tls_fail(e, BevEvent::READING)
            }
            Err(e) => self.tls_fail(e, BevEvent::READING),
        }
    }

    /// Hand the output's plaintext to rustls and send records until the fd would block; the
    /// write callback is due once the plaintext is all sent (down to the low watermark).
    pub(super) fn tls_write_now(&mut self) {
        let raw = self.fd;
        // SAFETY: as in `borrowed_fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let cap = self.rate_cap(Dir::Write);
        let tls = self.tls.as_mut().expect("on the TLS path");
        let result = tls.flush(&mut self.output, fd, cap);
        match result {
            Ok(sent) => {
                self.rate_spend(Dir::Write, sent);
                let tls = self.tls.as_mut().expect("on the TLS path");
                let drained = self.output.len() <= self.marks.write_low
                    && (self.marks.write_low > 0 || !tls.wants_write());
                // Due after plaintext was taken, or after records went out (those may be all
                // that waited: a flush-then-close waits for exactly them).
                let due = drained && (tls.take_plaintext_sent() | (sent > 0 && tls.connected));
                if due && self.wants_drained() {
                    self.pending.write = true;
                }
            }
            Err(e) => self.tls_fail(e, BevEvent::WRITING),
        }
    }

    /// A TLS or fd error: both directions stop, one ERROR event carries it.
    fn tls_fail(&mut self, e: io::Error, dir: BevEvent) {
        self.enabled = EventFlags::empty();
        self.pending.events |= BevEvent::ERROR | dir;
        if self.pending.error.is_none() {
            self.pending.error = Some(e);
        }
    }

    /// `sync` on the TLS path: arm the read event while rustls wants records (reading is
    /// enabled and the input below its high watermark), the write event while records wait.
    pub(super) fn tls_sync(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        let before = (self.pending.read, self.pending.write, self.pending.events);
        if !self.connect.pending {
            self.tls_progress();
            if !self.writing.armed
                && self.enabled.contains(EventFlags::WRITE)
                && (!self.output.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write()))
            {
                self.tls_write_now();
            }
        }
        if (self.pending.read, self.pending.write, self.pending.events) != before
            && (self.pending.read || self.pending.write || !self.pending.events.is_empty())
        {
            self.schedule(ops);
        }
        let tls = self.tls.as_ref().expect("on the TLS path");
        if self.reading.id.is_some() {
            // A socket closing mid-handshake still reads: the handshake must end before its
            // output can go.
            let handshake = self.closing && !tls.connected;
            let want = (self.enabled.contains(EventFlags::READ) || handshake)
                && (self.marks.read_high == 0 || self.input.len() < self.marks.read_high)
                && (self.connect.pending || (tls.wants_read() && self.rate_allows(ops, Dir::Read)));
            self.reading.arm(ops, want, self.timeouts.read)?;
        }
        if self.writing.id.is_some() {
            let tls = self.tls.as_ref().expect("on the TLS path");
            let want = self.enabled.contains(EventFlags::WRITE)
                && (self.connect.pending
                    || (tls.wants_write() && self.rate_allows(ops, Dir::Write)));
            self.writing.arm(ops, want, self.timeouts.write)?;
        }
        Ok(())
    }
}
