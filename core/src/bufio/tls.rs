//! TLS under a [`BufferedSocket`](super::BufferedSocket), on rustls (libevent's
//! `bufferevent_openssl`): the socket's input holds plaintext, its output takes plaintext, and
//! this layer moves records between them and the fd.
//!
//! rustls is sans-IO: it owns both directions' record buffers, and we hand it the fd to read
//! from (`read_tls`) and write to (`write_tls`). The socket asks three things of it: is there
//! something to send (arm the write event), does it want to read (arm the read event), and is
//! there plaintext it decrypted and still holds (move it to the input as the high watermark
//! allows, without waiting for the fd: libevent#690 stalls there).

use std::io::{self, Read, Write};

use rustls::Connection;

use super::buffer::Buffer;
use crate::fd::BorrowedFd;

/// One socket's TLS state.
pub(crate) struct TlsLayer {
    pub(crate) conn: Connection,
    /// CONNECTED was reported (the handshake finished).
    pub(crate) connected: bool,
    /// The fd said end of file; nothing more will be read from it.
    pub(crate) fd_eof: bool,
    /// rustls took plaintext since the write callback was last made due.
    plaintext_sent: bool,
}

/// What moving plaintext to the input gave.
pub(crate) enum Pulled {
    /// `n` bytes (maybe none) moved; more may come.
    Bytes(usize),
    /// The peer sent close_notify and every byte before it was moved: a clean end.
    CloseNotify,
    /// The fd ended without close_notify: the stream may have been cut short.
    Truncated,
}

/// The fd as rustls's `Read` and `Write`: `recv`, and `send` without SIGPIPE, moving at most
/// `budget` bytes (what a rate limit allows) and then saying `WouldBlock`.
struct FdIo<'a> {
    fd: BorrowedFd<'a>,
    budget: usize,
}

impl FdIo<'_> {
    fn spent(&mut self, n: usize) -> usize {
        self.budget -= n.min(self.budget);
        n
    }
}

fn out_of_budget() -> io::Error {
    io::Error::from(io::ErrorKind::WouldBlock)
}

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(out_of_budget());
        }
        let max = buf.len().min(self.budget);
        let n = crate::fd::read(self.fd, &mut buf[..max]).map_err(io::Error::from)?;
        Ok(self.spent(n))
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(out_of_budget());
        }
        let max = buf.len().min(self.budget);
        let n = super::buffer::send_one_nosignal(self.fd, &buf[..max]).map_err(io::Error::from)?;
        Ok(self.spent(n))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total > self.budget {
            // Under a limit: the first slice, cut to the budget (rustls writes again).
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.write(first);
        }
        let n = super::buffer::send_nosignal(self.fd, bufs).map_err(io::Error::from)?;
        Ok(self.spent(n))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A rustls error as an `io::Error` whose message names what TLS said (the alert, the
/// certificate problem); the rustls error itself is its source, for `downcast`.
pub(crate) fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError(e))
}

/// A rustls error wrapped so that its message starts with "TLS".
#[derive(Debug)]
struct TlsError(rustls::Error);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl TlsLayer {
    pub(crate) fn new(conn: Connection) -> Self {
        TlsLayer {
            conn,
            connected: false,
            fd_eof: false,
            plaintext_sent: false,
        }
    }

    /// Whether the read event should be armed: rustls wants records (it wants none while it
    /// holds plaintext not yet moved, or after close_notify) and the fd has not ended.
    pub(crate) fn wants_read(&self) -> bool {
        !self.fd_eof && self.conn.wants_read()
    }

    /// Whether records wait to be sent.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Read what the fd has (one `read_tls`, at most one buffer's worth of records and at
    /// most `budget` bytes) and process it; returns how many bytes were read.
    ///
    /// # Errors
    ///
    /// The fd's error, or what rustls said of the records (an alert, a certificate it does
    /// not trust, garbage instead of a handshake). rustls queues the alert to send then, so
    /// the caller should still [`send`](Self::send).
    pub(crate) fn receive(&mut self, fd: BorrowedFd<'_>, budget: usize) -> io::Result<usize> {
        // rustls refuses records while it holds plaintext not yet moved (its buffer would
        // overflow): a read event that fired after reading was paused waits.
        if !self.conn.wants_read() || budget == 0 {
            return Ok(0);
        }
        let n = match self.conn.read_tls(&mut FdIo { fd, budget }) {
            // The end of file is rustls's to report (close_notify or truncation, in `pull`);
            // here it only stops the reading.
            Ok(0) => {
                self.fd_eof = true;
                0
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(0)
            }
            Err(e) => return Err(e),
        };
        self.conn.process_new_packets().map_err(tls_error)?;
        Ok(n)
    }

    /// Whether the handshake finished since the last call (report CONNECTED once).
    pub(crate) fn just_connected(&mut self) -> bool {
        if !self.connected && !self.conn.is_handshaking() {
            self.connected = true;
            return true;
        }
        false
    }

    /// Move decrypted plaintext to `input`, at most `room` bytes.
    pub(crate) fn pull(&mut self, input: &mut Buffer, room: usize) -> io::Result<Pulled> {
        let mut moved = 0;
        while moved < room {
            let want = (room - moved).min(16 * 1024);
            let space = &mut input.reserve(want)?[..want];
            match self.conn.reader().read(space) {
                Ok(0) => {
                    input.commit(0)?;
                    return Ok(if moved > 0 {
                        Pulled::Bytes(moved)
                    } else {
                        Pulled::CloseNotify
                    });
                }
                Ok(n) => {
                    input.commit(n)?;
                    moved += n;
                }
                Err(e) => {
                    input.commit(0)?;
                    return match e.kind() {
                        io::ErrorKind::WouldBlock => Ok(Pulled::Bytes(moved)),
                        io::ErrorKind::UnexpectedEof if moved == 0 => Ok(Pulled::Truncated),
                        io::ErrorKind::UnexpectedEof => Ok(Pulled::Bytes(moved)),
                        _ => Err(e),
                    };
                }
            }
        }
        Ok(Pulled::Bytes(moved))
    }

    /// Hand rustls as much of `output` as it takes (it encrypts into records up to its
    /// buffer limit, and holds plaintext written before the handshake ends); returns how
    /// many bytes it took.
    pub(crate) fn push(&mut self, output: &mut Buffer) -> io::Result<usize> {
        let mut taken_all = 0;
        while !output.is_empty() {
            let taken = {
                // A file piece is read here (TLS needs the bytes), its error reported.
                let Some(chunk) = output.front_bytes()? else {
                    break;
                };
                self.conn.writer().write(chunk)?
            };
            if taken == 0 {
                break;
            }
            self.plaintext_sent = true;
            output.drain(taken)?;
            taken_all += taken;
        }
        Ok(taken_all)
    }

    /// Encrypt and send the output until the fd would block, the output is empty, rustls
    /// takes no more (its buffer is full while the handshake is under way), or `budget`
    /// bytes went out.
    ///
    /// # Errors
    ///
    /// The fd's error (`EPIPE`, `ECONNRESET`).
    /// Returns how many record bytes went out.
    pub(crate) fn flush(
        &mut self,
        output: &mut Buffer,
        fd: BorrowedFd<'_>,
        budget: usize,
    ) -> io::Result<usize> {
        let mut sent = 0;
        loop {
            let taken = self.push(output)?;
            let sent_now = self.send(fd, budget - sent)?;
            sent += sent_now;
            // Stop when the fd would block (the write event takes over), when the output is
            // all handed over, or when rustls takes nothing and nothing went out (the
            // handshake holds it back). Not merely because rustls took nothing: its buffer
            // may have been full before this round's send emptied it, and stopping then
            // would leave the output with no write event to move it (a stall, once seen
            // through two proxies under load).
            if self.conn.wants_write()
                || output.is_empty()
                || (taken == 0 && sent_now == 0)
                || sent == budget
            {
                return Ok(sent);
            }
        }
    }

    /// Whether plaintext was taken since the last call.
    pub(crate) fn take_plaintext_sent(&mut self) -> bool {
        std::mem::take(&mut self.plaintext_sent)
    }

    /// Write queued records to the fd until it would block, none are left, or `budget` bytes
    /// went out.
    ///
    /// # Errors
    ///
    /// The fd's error (`EPIPE`, `ECONNRESET`).
    pub(crate) fn send(&mut self, fd: BorrowedFd<'_>, budget: usize) -> io::Result<usize> {
        let mut sent = 0;
        while self.conn.wants_write() && sent < budget {
            let mut io = FdIo {
                fd,
                budget: budget - sent,
            };
            match self.conn.write_tls(&mut io) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Queue close_notify (after whatever plaintext `output` still holds) and try once to
    /// send it all: what the socket does when it is freed.
    pub(crate) fn close(&mut self, output: &mut Buffer, fd: BorrowedFd<'_>) {
        // One last try, past any rate limit: the socket is going.
        let _ = self.flush(output, fd, usize::MAX);
        self.conn.send_close_notify();
        let _ = self.send(fd, usize::MAX);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::os::fd::AsFd;
    use std::sync::Arc;

    /// A client and a server connection that finished their handshake in memory.
    fn connected_pair() -> (rustls::ClientConnection, rustls::ServerConnection) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
        #[allow(deprecated)] // ring, see the README
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut &wire[..]).unwrap();
            s.process_new_packets().unwrap();
            wire.clear();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            c.read_tls(&mut &wire[..]).unwrap();
            c.process_new_packets().unwrap();
        }
        (c, s)
    }

    /// The rule that keeps a TLS socket's output moving: after `flush`, either the output is
    /// all handed to rustls or rustls holds records to send, which arms the write event.
    /// The stall it guards against: a flush that began with rustls's buffer full took
    /// nothing, sent every record, and stopped, leaving plaintext with no event to move it.
    /// Here the buffer is made exactly full (a flush against a full fd refills it), the fd
    /// drained, and the next flush must go on past its first round.
    #[test]
    fn flush_never_leaves_output_without_records_to_wake_it() {
        let (client, _server) = connected_pair();
        let mut tls = TlsLayer::new(client.into());
        tls.connected = true;
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_nonblocking(true).unwrap();
        let (ours, peer) = (
            crate::fd::OwnedFd::from(ours),
            crate::fd::OwnedFd::from(peer),
        );
        let mut output = Buffer::new();
        output.append(&vec![7u8; 4 << 20]).unwrap();
        let drain = |fd: &crate::fd::OwnedFd| {
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            while let Ok(n) = crate::fd::read(fd.as_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        };
        let mut rounds = 0;
        while !output.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "the output stopped moving");
            tls.flush(&mut output, ours.as_fd(), usize::MAX).unwrap();
            assert!(
                output.is_empty() || tls.wants_write(),
                "round {rounds}: {} bytes of output and no records to wake the socket",
                output.len()
            );
            // The fd is full: this flush only refills rustls's buffer to its limit.
            tls.flush(&mut output, ours.as_fd(), usize::MAX).unwrap();
            assert!(output.is_empty() || tls.wants_write());
            drain(&peer);
        }
        while tls.wants_write() {
            tls.send(ours.as_fd(), usize::MAX).unwrap();
            drain(&peer);
        }
    }
}
