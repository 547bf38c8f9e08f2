//! A [`Buffer`]'s I/O on an fd: one `readv` into spare room (`read_from`), one gathered
//! `writev`/`send` of the front chunks (`write_to`, `send_to`), file segments by `sendfile`
//! where the platform has it, and the `MSG_NOSIGNAL` sends the TLS layer shares.

use crate::fd::AsFd;
use std::io::{self, IoSlice, IoSliceMut};

use rustix::io::Errno;

use super::{Buffer, Chunk, IoOutcome, CHUNK, MAX_CHUNK, MAX_IOVECS};
use crate::bufio::file_segment;

impl Buffer {
    /// Read up to `max` bytes (default: the max-read setting) from `fd` with one `readv`
    /// into spare room.
    ///
    /// # Errors
    ///
    /// The OS error (`ECONNRESET`, `EBADF`, …); would-block, `EINTR` and end of file are
    /// [`IoOutcome`]s. `PermissionDenied` if the end is frozen.
    pub fn read_from(&mut self, fd: impl AsFd, max: Option<usize>) -> io::Result<IoOutcome> {
        self.check_end()?;
        let max = max.unwrap_or(self.max_read.unwrap_or(65536)).max(1);
        let mut room = self.chunks.back_mut().map_or(0, |c| c.spare().len());
        // Fill the last chunk's room first; a second, new chunk takes the rest.
        let mut extra = if room < max {
            self.room_for_read(max, &mut room)
        } else {
            None
        };
        let use_room = room.min(max);
        let result = match (use_room > 0, extra.as_mut()) {
            // One destination, the steady state of a connection: a plain read.
            (true, None) => {
                let spare = self.chunks.back_mut().expect("room > 0").spare();
                crate::fd::read(fd.as_fd(), &mut spare[..use_room])
            }
            (false, Some(chunk)) => {
                let want = max.min(chunk.spare().len());
                crate::fd::read(fd.as_fd(), &mut chunk.spare()[..want])
            }
            (true, Some(chunk)) => {
                let want = (max - use_room).min(chunk.spare().len());
                let spare = self.chunks.back_mut().expect("room > 0").spare();
                crate::fd::readv(
                    fd.as_fd(),
                    &mut [
                        IoSliceMut::new(&mut spare[..use_room]),
                        IoSliceMut::new(&mut chunk.spare()[..want]),
                    ],
                )
            }
            // Cannot happen (`max` is at least 1, so one of them has room); reporting "nothing
            // yet" is the one answer that cannot mislead a caller.
            (false, None) => Err(Errno::AGAIN),
        };
        let got = match result {
            Ok(0) => return Ok(IoOutcome::Eof),
            Ok(got) => got,
            Err(Errno::AGAIN) => return Ok(IoOutcome::WouldBlock),
            Err(Errno::INTR) => return Ok(IoOutcome::Interrupted),
            Err(e) => return Err(e.into()),
        };
        let orig = self.len;
        let in_room = got.min(use_room);
        if in_room > 0 {
            self.chunks.back_mut().expect("room > 0").end += in_room;
        }
        if let Some(mut chunk) = extra.take().filter(|_| got > in_room) {
            chunk.end = got - in_room;
            self.chunks.push_back(chunk);
        }
        self.len += got;
        self.notify(orig, got, 0);
        Ok(IoOutcome::Done(got))
    }

    /// The chunk that takes what a read of `max` bytes finds beyond the last chunk's `room`,
    /// or none when an emptied last chunk kept for its room is replaced by one of the read's
    /// size (kept in turn: a steady stream then reads into one reused chunk, instead of
    /// allocating and zeroing a second chunk per read).
    #[cold]
    #[inline(never)]
    fn room_for_read(&mut self, max: usize, room: &mut usize) -> Option<Chunk> {
        if self.chunks.back().is_some_and(|c| c.len() == 0) {
            self.chunks.pop_back();
            let chunk = Chunk::owned(max.clamp(CHUNK, MAX_CHUNK));
            *room = chunk.capacity_left();
            self.chunks.push_back(chunk);
            return (*room < max).then(|| Chunk::owned((max - *room).clamp(CHUNK, MAX_CHUNK)));
        }
        Some(Chunk::owned((max - *room).clamp(CHUNK, MAX_CHUNK)))
    }

    /// Write as much as one `writev` takes (up to 64 chunks, at most `max` bytes) to `fd`
    /// and drain what was written.
    ///
    /// # Errors
    ///
    /// The OS error (`EPIPE`, `ECONNRESET`, …); would-block and `EINTR` are outcomes.
    /// `PermissionDenied` if the start is frozen.
    pub fn write_to(&mut self, fd: impl AsFd, max: Option<usize>) -> io::Result<IoOutcome> {
        self.write_with(fd.as_fd(), max, false)
    }

    /// [`write_to`](Self::write_to) for a socket: `send` (one chunk) or `sendmsg` with
    /// `MSG_NOSIGNAL`, so a peer that reset the connection gives `EPIPE` instead of killing
    /// the process with SIGPIPE (where the OS has the flag; elsewhere `write`/`writev`, and a
    /// [`BufferedSocket`](crate::BufferedSocket) sets `SO_NOSIGPIPE` on its socket).
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to); `ENOTSOCK` if `fd` is no socket.
    pub fn send_to(&mut self, fd: impl AsFd, max: Option<usize>) -> io::Result<IoOutcome> {
        self.write_with(fd.as_fd(), max, true)
    }

    fn write_with(
        &mut self,
        fd: crate::fd::BorrowedFd<'_>,
        max: Option<usize>,
        socket: bool,
    ) -> io::Result<IoOutcome> {
        self.check_start()?;
        if self.len == 0 {
            return Ok(IoOutcome::Done(0));
        }
        let budget = max.unwrap_or(usize::MAX);
        // One chunk in memory, the usual case: a plain send or write, no iovec to build.
        if self.chunks.len() == 1 {
            if let Some(data) = self.chunks[0].in_memory() {
                let data = &data[..data.len().min(budget)];
                let result = if socket {
                    send_one_nosignal(fd, data)
                } else {
                    crate::fd::write(fd, data)
                };
                return match result {
                    Ok(n) => {
                        self.drain(n)?;
                        Ok(IoOutcome::Done(n))
                    }
                    Err(Errno::AGAIN) => Ok(IoOutcome::WouldBlock),
                    Err(Errno::INTR) => Ok(IoOutcome::Interrupted),
                    Err(e) => Err(e.into()),
                };
            }
        }
        self.write_chunks(fd, budget, socket)
    }

    /// Write several chunks, or file pieces. Bytes in memory go with one send or writev that
    /// stops before a file piece not read yet; a file piece at the front goes with sendfile.
    /// When the bytes before a file (a response's head) all went, the file follows in the
    /// same call.
    #[inline(never)]
    fn write_chunks(
        &mut self,
        fd: crate::fd::BorrowedFd<'_>,
        budget: usize,
        socket: bool,
    ) -> io::Result<IoOutcome> {
        let mut written = 0;
        loop {
            let result = if self.chunks[0].unread_file().is_some() {
                self.write_file(fd, budget - written, socket)
            } else {
                self.write_memory(fd, budget - written, socket)
            };
            match result {
                Ok((n, all)) => {
                    self.drain(n)?;
                    written += n;
                    let file_next = self
                        .chunks
                        .front()
                        .is_some_and(|c| c.unread_file().is_some());
                    if !(all && n > 0 && written < budget && file_next) {
                        break;
                    }
                }
                // What went out is reported; the fd says the same again on the next call.
                Err(_) if written > 0 => break,
                Err(e) => {
                    return match Errno::from_io_error(&e) {
                        Some(Errno::AGAIN) => Ok(IoOutcome::WouldBlock),
                        Some(Errno::INTR) => Ok(IoOutcome::Interrupted),
                        _ => Err(e),
                    }
                }
            }
        }
        Ok(IoOutcome::Done(written))
    }

    /// One send or writev of the chunks in memory at the front, at most `budget` bytes;
    /// returns what went and whether that was all that was offered.
    fn write_memory(
        &self,
        fd: crate::fd::BorrowedFd<'_>,
        budget: usize,
        socket: bool,
    ) -> io::Result<(usize, bool)> {
        let first = &self.chunks[0];
        // One chunk, the usual case: a plain send or write, no iovec to build.
        if self.chunks.len() == 1 || self.chunks[1].unread_file().is_some() {
            let data = first.data();
            if let Some(e) = first.failure() {
                return Err(e);
            }
            let data = &data[..data.len().min(budget)];
            let n = if socket {
                send_one_nosignal(fd, data)?
            } else {
                crate::fd::write(fd, data)?
            };
            return Ok((n, n == data.len()));
        }
        // Gathered: a small iovec array for a few chunks, the full one beyond.
        if self.chunks.len() <= 8 {
            self.write_gathered::<8>(fd, budget, socket)
        } else {
            self.write_gathered::<MAX_IOVECS>(fd, budget, socket)
        }
    }

    /// Write the file piece at the front: `sendfile` where the OS has one for this fd (with
    /// the pieces of the same file that follow it, in one call), else read the piece and
    /// write it from memory.
    fn write_file(
        &mut self,
        fd: crate::fd::BorrowedFd<'_>,
        budget: usize,
        socket: bool,
    ) -> io::Result<(usize, bool)> {
        let first = &self.chunks[0];
        let piece = first.unread_file().expect("a file piece at the front");
        if piece.segment.uses_sendfile()
            && !self.no_sendfile
            && file_segment::sendfile_supported(socket)
        {
            let at = piece.file_offset(first.start);
            let mut count = first.len();
            for chunk in self.chunks.iter().skip(1) {
                match chunk.unread_file() {
                    Some(p)
                        if count < budget
                            && p.segment.same_file(&piece.segment)
                            && p.file_offset(chunk.start) == at + count as u64 =>
                    {
                        count += chunk.len()
                    }
                    _ => break,
                }
            }
            let count = count.min(budget).min(file_segment::SENDFILE_MAX);
            match file_segment::sendfile(fd, piece.segment.file(), at, count) {
                // The file ended inside the range: it shrank after the segment was made.
                Ok(0) => return Err(file_segment::shrank(at)),
                Ok(n) => return Ok((n, n == count)),
                // This fd or file system has no sendfile after all: read from now on.
                Err(e) if file_segment::sendfile_refused(e) => self.no_sendfile = true,
                Err(e) => return Err(e.into()),
            }
        }
        // Read the piece (once; it stays in memory until drained), then write it.
        self.front_bytes()?;
        self.write_memory(fd, budget, socket)
    }
}

impl Buffer {
    /// One `sendmsg`/`writev` of the first `N` chunks in memory, at most `budget` bytes;
    /// returns what went and whether that was all that was offered.
    fn write_gathered<const N: usize>(
        &self,
        fd: crate::fd::BorrowedFd<'_>,
        mut budget: usize,
        socket: bool,
    ) -> io::Result<(usize, bool)> {
        let mut slices = [IoSlice::new(&[]); N];
        let mut n = 0;
        let mut offered = 0;
        for chunk in &self.chunks {
            if n == N || budget == 0 || chunk.unread_file().is_some() {
                break;
            }
            let data = chunk.data();
            if let Some(e) = chunk.failure() {
                if n == 0 {
                    return Err(e);
                }
                break;
            }
            let take = data.len().min(budget);
            slices[n] = IoSlice::new(&data[..take]);
            budget -= take;
            offered += take;
            n += 1;
        }
        let written = if socket {
            send_nosignal(fd, &slices[..n])?
        } else {
            crate::fd::writev(fd, &slices[..n])?
        };
        Ok((written, written == offered))
    }
}

/// `send` with `MSG_NOSIGNAL`: a peer that reset the connection gives `EPIPE`, not SIGPIPE.
#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
pub(crate) fn send_one_nosignal(
    fd: crate::fd::BorrowedFd<'_>,
    data: &[u8],
) -> rustix::io::Result<usize> {
    rustix::net::send(fd, data, rustix::net::SendFlags::NOSIGNAL)
}

/// macOS has no `MSG_NOSIGNAL`: a buffered socket sets `SO_NOSIGPIPE` on its fd instead.
/// Windows has no SIGPIPE at all.
#[cfg(any(target_os = "macos", target_os = "ios", windows))]
pub(crate) fn send_one_nosignal(
    fd: crate::fd::BorrowedFd<'_>,
    data: &[u8],
) -> rustix::io::Result<usize> {
    crate::fd::write(fd, data)
}

#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
pub(crate) fn send_nosignal(
    fd: crate::fd::BorrowedFd<'_>,
    slices: &[IoSlice<'_>],
) -> rustix::io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendFlags};
    sendmsg(
        fd,
        slices,
        &mut SendAncillaryBuffer::default(),
        SendFlags::NOSIGNAL,
    )
}

#[cfg(any(target_os = "macos", target_os = "ios", windows))]
pub(crate) fn send_nosignal(
    fd: crate::fd::BorrowedFd<'_>,
    slices: &[IoSlice<'_>],
) -> rustix::io::Result<usize> {
    crate::fd::writev(fd, slices)
}
