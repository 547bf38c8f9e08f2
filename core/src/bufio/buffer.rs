//! [`Buffer`]: a byte queue of chained chunks (libevent's evbuffer).
//!
//! The bytes live in a deque of chunks. A chunk is either *owned* — a zero-filled boxed slice
//! whose bytes `start..end` are data and `end..` is spare room that appends and reads from an
//! fd fill without another copy — or *foreign*: bytes the caller handed over (a `Vec`, an
//! `Arc<[u8]>`, a `&'static [u8]` with a release callback) that are never copied, and are
//! released when the last of them is drained. Moving a whole buffer into another moves its
//! chunks. Zero-filling a chunk once when it is allocated is what lets [`Buffer::reserve`]
//! hand out `&mut [u8]` safely; large chunks come zeroed from the allocator for free.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::io;

use super::file_segment::FileSegment;

/// Default size of a new owned chunk.
const CHUNK: usize = 4096;
/// Largest chunk allocated for one append; bigger appends use several.
const MAX_CHUNK: usize = 256 * 1024;
/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// A file segment goes into a buffer as chunks of at most this many bytes, so that a look at
/// some of its bytes reads (and keeps in memory) at most this much of the file at a time.
const FILE_PIECE: usize = 1 << 20;

enum Storage {
    Owned(Box<[u8]>),
    Foreign(Box<dyn AsRef<[u8]>>),
    File(FilePiece),
}

/// Push a chunk that is not an owned one being filled, dropping an emptied chunk kept at the
/// back for its room: the writers expect no empty chunk ahead of data.
fn push_chunk(chunks: &mut VecDeque<Chunk>, chunk: Chunk) {
    if chunks.back().is_some_and(|c| c.len() == 0) {
        chunks.pop_back();
    }
    chunks.push_back(chunk);
}

/// Part of a file segment, read only when something looks at its bytes or the fd it is
/// written to has no `sendfile`.
struct FilePiece {
    segment: FileSegment,
    /// Where this piece starts within the segment; the chunk's `start..end` count from here.
    at: u64,
    /// Once read: the chunk position the bytes start at, and the bytes up to the chunk's end
    /// (a file chunk's `start` only grows and its `end` never moves).
    cache: OnceCell<(usize, Box<[u8]>)>,
    /// Why reading failed (the bytes then read as zeros); the next write of them reports it
    /// instead of sending them.
    failure: OnceCell<(io::ErrorKind, String)>,
}

impl FilePiece {
    fn new(segment: FileSegment, at: u64) -> Self {
        FilePiece {
            segment,
            at,
            cache: OnceCell::new(),
            failure: OnceCell::new(),
        }
    }

    /// The offset in the file of chunk position `pos`.
    fn file_offset(&self, pos: usize) -> u64 {
        self.segment.offset() + self.at + pos as u64
    }

    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        let (from, bytes) = self.cache.get_or_init(|| {
            let mut bytes = vec![0; end - start].into_boxed_slice();
            if let Err(e) = self
                .segment
                .read_exact_at(self.at + start as u64, &mut bytes)
            {
                let _ = self.failure.set((e.kind(), e.to_string()));
            }
            (start, bytes)
        });
        &bytes[start - from..end - from]
    }
}

struct Chunk {
    storage: Storage,
    start: usize,
    end: usize,
}

impl Chunk {
    fn owned(capacity: usize) -> Self {
        Chunk {
            storage: Storage::Owned(vec![0; capacity].into_boxed_slice()),
            start: 0,
            end: 0,
        }
    }

    /// The data; a file piece not read yet is read first (see [`FilePiece`]).
    #[inline]
    fn data(&self) -> &[u8] {
        match &self.storage {
            Storage::Owned(b) => &b[self.start..self.end],
            Storage::Foreign(f) => &(**f).as_ref()[self.start..self.end],
            Storage::File(p) => p.bytes(self.start, self.end),
        }
    }

    /// The room after the data of an owned chunk.
    fn capacity_left(&self) -> usize {
        match &self.storage {
            Storage::Owned(b) => b.len() - self.end,
            _ => 0,
        }
    }

    /// The data of an owned or foreign chunk; `None` for a file piece.
    #[inline(always)]
    fn in_memory(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Owned(b) => Some(&b[self.start..self.end]),
            Storage::Foreign(f) => Some(&(**f).as_ref()[self.start..self.end]),
            Storage::File(_) => None,
        }
    }

    /// A file piece whose bytes are not in memory.
    fn unread_file(&self) -> Option<&FilePiece> {
        match &self.storage {
            Storage::File(p) if p.cache.get().is_none() => Some(p),
            _ => None,
        }
    }

    /// Why this chunk's bytes could not be read from its file, if they could not.
    fn failure(&self) -> Option<io::Error> {
        match &self.storage {
            Storage::File(p) => p
                .failure
                .get()
                .map(|(kind, msg)| io::Error::new(*kind, msg.clone())),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn spare(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Owned(b) => &mut b[self.end..],
            Storage::Foreign(_) | Storage::File(_) => &mut [],
        }
    }
}

/// How [`Buffer::read_line`] recognises the end of a line (libevent's `evbuffer_eol_style`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Eol {
    /// Any run of CR and LF characters.
    Any,
    /// LF, optionally preceded by CR.
    Crlf,
    /// Exactly CR LF.
    CrlfStrict,
    /// LF alone.
    Lf,
    /// A NUL byte.
    Nul,
}

/// What a read or write between a [`Buffer`] and an fd did. Would-block, interruption and
/// end of file are outcomes, not errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IoOutcome {
    /// This many bytes moved (more than zero).
    Done(usize),
    /// The fd is not ready (`EAGAIN`).
    WouldBlock,
    /// A signal interrupted the call (`EINTR`); try again.
    Interrupted,
    /// The peer closed: a read returned zero bytes.
    Eof,
}

/// What changed in a buffer, as told to its change callbacks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BufferChange {
    /// The length before the change.
    pub orig_len: usize,
    /// Bytes added.
    pub added: usize,
    /// Bytes removed.
    pub removed: usize,
}

/// A change callback.
type ChangeCallback = Box<dyn FnMut(&BufferChange)>;

/// Names a change callback, to remove it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CallbackId(u64);

/// Foreign bytes with a release callback run when they are dropped.
struct Released<F: FnOnce()> {
    data: &'static [u8],
    release: Option<F>,
}
impl<F: FnOnce()> AsRef<[u8]> for Released<F> {
    fn as_ref(&self) -> &[u8] {
        self.data
    }
}
impl<F: FnOnce()> Drop for Released<F> {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f();
        }
    }
}

fn frozen(which: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("the buffer's {which} is frozen"),
    )
}

/// A byte queue of chained chunks.
///
/// # Examples
///
/// ```
/// use evloop::{Buffer, Eol};
/// let mut buf = Buffer::new();
/// buf.append(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
/// assert_eq!(buf.read_line(Eol::Crlf).as_deref(), Some(&b"GET / HTTP/1.1"[..]));
/// assert_eq!(buf.search(b"\r\n\r\n", 0), Some(7));
/// buf.append_owned(vec![1, 2, 3])?; // moved in, not copied
/// assert_eq!(buf.len(), 14);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct Buffer {
    chunks: VecDeque<Chunk>,
    len: usize,
    frozen_start: bool,
    frozen_end: bool,
    callbacks: Vec<(CallbackId, ChangeCallback)>,
    next_callback: u64,
    max_read: Option<usize>,
    /// `sendfile` refused this buffer's fd (`EINVAL`: an fd opened for appending, say):
    /// file pieces are read and written from memory.
    no_sendfile: bool,
}

/// Appending through `std::io::Write`, so `write!(buf, "{n} bytes\r\n")` formats straight
/// into the buffer (libevent's `evbuffer_add_printf`). A frozen end refuses with
/// `PermissionDenied`, as [`Buffer::append`] does.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// let mut buf = evloop::Buffer::new();
/// write!(buf, "HTTP/1.1 {} {}\r\n", 200, "OK")?;
/// assert_eq!(buf.read_line(evloop::Eol::CrlfStrict).unwrap(), b"HTTP/1.1 200 OK");
/// # Ok::<(), std::io::Error>(())
/// ```
impl io::Write for Buffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.append(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.append(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Buffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn notify(&mut self, orig_len: usize, added: usize, removed: usize) {
        if (added | removed) != 0 {
            let change = BufferChange {
                orig_len,
                added,
                removed,
            };
            for (_, cb) in &mut self.callbacks {
                cb(&change);
            }
        }
    }

    fn check_end(&self) -> io::Result<()> {
        if self.frozen_end {
            Err(frozen("end"))
        } else {
            Ok(())
        }
    }

    fn check_start(&self) -> io::Result<()> {
        if self.frozen_start {
            Err(frozen("start"))
        } else {
            Ok(())
        }
    }

    /// Append a copy of `data`.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the end is frozen.
    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check_end()?;
        let orig = self.len;
        while !data.is_empty() {
            let room = self.chunks.back_mut().map_or(0, |c| c.spare().len());
            if room == 0 {
                self.chunks
                    .push_back(Chunk::owned(data.len().clamp(CHUNK, MAX_CHUNK)));
                continue;
            }
            let last = self.chunks.back_mut().expect("room > 0");
            let n = room.min(data.len());
            last.spare()[..n].copy_from_slice(&data[..n]);
            last.end += n;
            self.len += n;
            data = &data[n..];
        }
        self.notify(orig, self.len - orig, 0);
        Ok(())
    }

    /// Append bytes the buffer takes ownership of, without copying them; they are dropped
    /// once drained.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the end is frozen.
    pub fn append_owned<T: AsRef<[u8]> + 'static>(&mut self, bytes: T) -> io::Result<()> {
        self.check_end()?;
        let n = bytes.as_ref().len();
        if n > 0 {
            let orig = self.len;
            push_chunk(
                &mut self.chunks,
                Chunk {
                    storage: Storage::Foreign(Box::new(bytes)),
                    start: 0,
                    end: n,
                },
            );
            self.len += n;
            self.notify(orig, n, 0);
        }
        Ok(())
    }

    /// Append a range of a file without reading it (libevent's `evbuffer_add_file_segment`):
    /// a [`BufferedSocket`](crate::BufferedSocket) writes it with `sendfile` where the OS
    /// has one (see [`FileSegment`]), and reads it a piece at a time where it does not.
    /// Anything that looks at the bytes — [`chunks`](Self::chunks), [`search`](Self::search),
    /// [`copy_out`](Self::copy_out), [`pullup`](Self::pullup), a filter or TLS — reads them
    /// then, up to 1 MiB of the file at a time, and keeps them in memory until drained. If
    /// that read fails (the file shrank after the segment was made) the bytes read as zeros
    /// for the look, and the next write of them fails with the read's error: a peer is never
    /// sent the zeros.
    ///
    /// # Examples
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("evloop-doc-append-{}", std::process::id()));
    /// # std::fs::write(&path, b"file body")?;
    /// let mut buf = evloop::Buffer::new();
    /// buf.append(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")?;
    /// buf.append_file(&evloop::FileSegment::open(&path)?)?;
    /// assert_eq!(buf.len(), 47);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the end is frozen; `InvalidInput` naming the length if the
    /// buffer cannot count that many more bytes (a segment over 4 GiB on a 32-bit target).
    pub fn append_file(&mut self, segment: &FileSegment) -> io::Result<()> {
        self.check_end()?;
        let total = usize::try_from(segment.len())
            .ok()
            .filter(|&n| self.len.checked_add(n).is_some())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a file segment of {} bytes does not fit in a buffer holding {} bytes \
                         on this target",
                        segment.len(),
                        self.len
                    ),
                )
            })?;
        let orig = self.len;
        let mut at = 0;
        while at < segment.len() {
            let n = (segment.len() - at).min(FILE_PIECE as u64) as usize;
            push_chunk(
                &mut self.chunks,
                Chunk {
                    storage: Storage::File(FilePiece::new(segment.clone(), at)),
                    start: 0,
                    end: n,
                },
            );
            at += n as u64;
        }
        self.len += total;
        self.notify(orig, total, 0);
        Ok(())
    }

    /// The first chunk's bytes, read from its file if it is a file piece not read yet.
    ///
    /// # Errors
    ///
    /// The file read's error.
    pub(crate) fn front_bytes(&self) -> io::Result<Option<&[u8]>> {
        let Some(first) = self.chunks.front() else {
            return Ok(None);
        };
        let data = first.data();
        match first.failure() {
            Some(e) => Err(e),
            None => Ok(Some(data)),
        }
    }

    /// Append a reference to `data` without copying; `release` runs once the bytes are
    /// drained or the buffer is dropped (libevent's `evbuffer_add_reference`).
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the end is frozen (then `release` runs at once).
    pub fn append_reference(
        &mut self,
        data: &'static [u8],
        release: impl FnOnce() + 'static,
    ) -> io::Result<()> {
        self.append_owned(Released {
            data,
            release: Some(release),
        })
    }

    /// Move every byte of `other` to the end of this buffer, chunk by chunk, without copying.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if this buffer's end or `other`'s start is frozen.
    pub fn append_buffer(&mut self, other: &mut Buffer) -> io::Result<()> {
        self.check_end()?;
        other.check_start()?;
        let n = other.len;
        if n == 0 {
            return Ok(());
        }
        let (orig, other_orig) = (self.len, other.len);
        if self.chunks.back().is_some_and(|c| c.len() == 0) {
            self.chunks.pop_back(); // an emptied chunk kept for its room
        }
        self.chunks.append(&mut other.chunks);
        other.len = 0;
        self.len += n;
        other.notify(other_orig, 0, n);
        self.notify(orig, n, 0);
        Ok(())
    }

    /// Insert a copy of `data` at the front.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the start is frozen.
    pub fn prepend(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_start()?;
        if data.is_empty() {
            return Ok(());
        }
        let orig = self.len;
        // Use the room before the data of an owned first chunk when it fits.
        if let Some(first) = self.chunks.front_mut() {
            if matches!(first.storage, Storage::Owned(_)) && first.start >= data.len() {
                let at = first.start - data.len();
                if let Storage::Owned(b) = &mut first.storage {
                    b[at..first.start].copy_from_slice(data);
                }
                first.start = at;
                self.len += data.len();
                self.notify(orig, data.len(), 0);
                return Ok(());
            }
        }
        let mut chunk = Chunk::owned(data.len().max(CHUNK));
        // Right-align, so later prepends can use the room before it.
        let cap = chunk.spare().len();
        chunk.start = cap - data.len();
        chunk.end = cap;
        if let Storage::Owned(b) = &mut chunk.storage {
            b[chunk.start..].copy_from_slice(data);
        }
        self.chunks.push_front(chunk);
        self.len += data.len();
        self.notify(orig, data.len(), 0);
        Ok(())
    }

    fn drain_silently(&mut self, mut n: usize) -> usize {
        n = n.min(self.len);
        let total = n;
        while n > 0 {
            let first = self.chunks.front_mut().expect("len > 0 implies a chunk");
            let take = first.len().min(n);
            first.start += take;
            n -= take;
            if first.start == first.end {
                // Keep an emptied owned chunk that is also the last one: its room is reused.
                let owned = matches!(first.storage, Storage::Owned(_));
                if self.chunks.len() == 1 && owned {
                    let first = &mut self.chunks[0];
                    first.start = 0;
                    first.end = 0;
                } else {
                    self.chunks.pop_front();
                }
            }
        }
        self.len -= total;
        total
    }

    /// Remove the first `n` bytes (or all, if fewer); returns how many went.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the start is frozen.
    pub fn drain(&mut self, n: usize) -> io::Result<usize> {
        self.check_start()?;
        let orig = self.len;
        let n = self.drain_silently(n);
        self.notify(orig, 0, n);
        Ok(n)
    }

    /// Copy up to `dst.len()` bytes from position `pos` into `dst` without removing them;
    /// returns how many were copied.
    pub fn copy_out_at(&self, pos: usize, dst: &mut [u8]) -> usize {
        let mut copied = 0;
        let mut skip = pos;
        for chunk in &self.chunks {
            if copied == dst.len() {
                break;
            }
            let data = chunk.data();
            if skip >= data.len() {
                skip -= data.len();
                continue;
            }
            let data = &data[skip..];
            skip = 0;
            let n = data.len().min(dst.len() - copied);
            dst[copied..copied + n].copy_from_slice(&data[..n]);
            copied += n;
        }
        copied
    }

    /// Copy the first bytes into `dst` without removing them.
    pub fn copy_out(&self, dst: &mut [u8]) -> usize {
        self.copy_out_at(0, dst)
    }

    /// Move the first bytes into `dst`; returns how many.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the start is frozen.
    pub fn remove(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        self.check_start()?;
        let n = self.copy_out(dst);
        self.drain(n)
    }

    /// Move the first `n` bytes (or all) to the end of `dst`: whole chunks move, the one
    /// straddling the boundary is split by copying its part.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if this buffer's start or `dst`'s end is frozen.
    pub fn remove_into(&mut self, dst: &mut Buffer, n: usize) -> io::Result<usize> {
        self.check_start()?;
        dst.check_end()?;
        let n = n.min(self.len);
        let (orig, dst_orig) = (self.len, dst.len);
        let mut left = n;
        while left > 0 {
            let first_len = self.chunks.front().expect("left > 0").len();
            if first_len <= left {
                let chunk = self.chunks.pop_front().expect("checked");
                self.len -= first_len;
                dst.len += first_len;
                push_chunk(&mut dst.chunks, chunk);
                left -= first_len;
            } else {
                let first = self.chunks.front_mut().expect("checked");
                if let Some(piece) = first.unread_file() {
                    // Split a file piece without reading it: the front part moves.
                    let part = Chunk {
                        storage: Storage::File(FilePiece::new(piece.segment.clone(), piece.at)),
                        start: first.start,
                        end: first.start + left,
                    };
                    first.start += left;
                    self.len -= left;
                    dst.len += left;
                    push_chunk(&mut dst.chunks, part);
                } else {
                    let part = first.data()[..left].to_vec();
                    self.drain_silently(left);
                    dst.append_silently(&part);
                }
                left = 0;
            }
        }
        self.notify(orig, 0, n);
        dst.notify(dst_orig, n, 0);
        Ok(n)
    }

    fn append_silently(&mut self, data: &[u8]) {
        let callbacks = std::mem::take(&mut self.callbacks);
        let _ = self.append(data);
        self.callbacks = callbacks;
    }

    /// The data as a sequence of slices, front to back. File pieces are read as the
    /// iterator reaches them (see [`append_file`](Self::append_file)).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks
            .iter()
            .map(Chunk::data)
            .filter(|d| !d.is_empty())
    }

    /// Make the first `n` bytes (or all) contiguous and return them (libevent's
    /// `evbuffer_pullup`).
    pub fn pullup(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.len);
        let first_len = self.chunks.front().map_or(0, Chunk::len);
        if first_len < n {
            let mut chunk = Chunk::owned(n.max(CHUNK));
            let copied = self.copy_out(&mut chunk.spare()[..n]);
            chunk.end = copied;
            self.drain_silently(n);
            self.len += n;
            self.chunks.push_front(chunk);
        }
        match self.chunks.front() {
            Some(c) => &c.data()[..n],
            None => &[],
        }
    }

    /// Spare room of at least `n` bytes at the end, to fill and then [`commit`](Self::commit)
    /// — e.g. by reading into it — without an extra copy.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the end is frozen; `InvalidInput` if `n` is beyond what one
    /// allocation may hold.
    pub fn reserve(&mut self, n: usize) -> io::Result<&mut [u8]> {
        self.check_end()?;
        if n > isize::MAX as usize / 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot reserve {n} bytes (the limit is {})",
                    isize::MAX as usize / 2
                ),
            ));
        }
        if self.chunks.back_mut().map_or(0, |c| c.spare().len()) < n.max(1) {
            // Allocate fallibly: a huge request must be an error, not an abort.
            let mut v = Vec::new();
            v.try_reserve_exact(n.max(CHUNK)).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("cannot reserve {n} bytes: {e}"),
                )
            })?;
            v.resize(n.max(CHUNK), 0);
            self.chunks.push_back(Chunk {
                storage: Storage::Owned(v.into_boxed_slice()),
                start: 0,
                end: 0,
            });
        }
        Ok(self.chunks.back_mut().expect("pushed").spare())
    }

    /// Make the first `n` bytes of the room given by [`reserve`](Self::reserve) part of the
    /// data.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `n` exceeds the room; `PermissionDenied` if the end is frozen.
    pub fn commit(&mut self, n: usize) -> io::Result<()> {
        self.check_end()?;
        let room = self.chunks.back_mut().map_or(0, |c| c.spare().len());
        if n > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot commit {n} bytes: only {room} were reserved"),
            ));
        }
        if n > 0 {
            let orig = self.len;
            self.chunks.back_mut().expect("room > 0").end += n;
            self.len += n;
            self.notify(orig, n, 0);
        }
        Ok(())
    }

    /// The position of the first `pattern` at or after `from`.
    pub fn search(&self, pattern: &[u8], from: usize) -> Option<usize> {
        self.search_range(pattern, from, self.len)
    }

    /// The position of the first `pattern` that starts at or after `from` and ends at or
    /// before `to`. One pass over the chunks: candidates are found with a byte scan inside a
    /// chunk and confirmed by walking forward from that chunk, never from the front.
    pub fn search_range(&self, pattern: &[u8], from: usize, to: usize) -> Option<usize> {
        let to = to.min(self.len);
        if pattern.is_empty() {
            return (from <= to).then_some(from);
        }
        if from + pattern.len() > to {
            return None;
        }
        let last_start = to - pattern.len();
        let mut base = 0;
        for (ci, chunk) in self.chunks.iter().enumerate() {
            let data = chunk.data();
            let (lo, hi) = (from.max(base), (last_start + 1).min(base + data.len()));
            let mut i = lo;
            while i < hi {
                let Some(k) = find_byte(&data[i - base..hi - base], pattern[0]) else {
                    break;
                };
                let at = i + k;
                // Within the chunk, compare in place; across chunks, walk them.
                let matched = match data.get(at - base..at - base + pattern.len()) {
                    Some(candidate) => candidate == pattern,
                    None => self.matches_at(ci, at - base, pattern),
                };
                if matched {
                    return Some(at);
                }
                i = at + 1;
            }
            base += data.len();
            if base > last_start {
                break;
            }
        }
        None
    }

    /// Whether `pattern` starts at offset `off` of chunk `ci`.
    fn matches_at(&self, mut ci: usize, mut off: usize, mut pattern: &[u8]) -> bool {
        while !pattern.is_empty() {
            let Some(chunk) = self.chunks.get(ci) else {
                return false;
            };
            let data = &chunk.data()[off..];
            let n = data.len().min(pattern.len());
            if data[..n] != pattern[..n] {
                return false;
            }
            pattern = &pattern[n..];
            ci += 1;
            off = 0;
        }
        true
    }

    fn byte_at(&self, pos: usize) -> Option<u8> {
        let mut b = [0u8];
        (self.copy_out_at(pos, &mut b) == 1).then_some(b[0])
    }

    /// Where the first line ending of `style` at or after `from` starts, and its length.
    pub fn search_eol(&self, from: usize, style: Eol) -> Option<(usize, usize)> {
        match style {
            Eol::Lf => self.search(b"\n", from).map(|p| (p, 1)),
            Eol::Nul => self.search(b"\0", from).map(|p| (p, 1)),
            Eol::CrlfStrict => self.search(b"\r\n", from).map(|p| (p, 2)),
            Eol::Crlf => {
                let p = self.search(b"\n", from)?;
                if p > from && self.byte_at(p - 1) == Some(b'\r') {
                    Some((p - 1, 2))
                } else {
                    Some((p, 1))
                }
            }
            Eol::Any => {
                let cr = self.search(b"\r", from);
                let lf = self.search(b"\n", from);
                let start = match (cr, lf) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b)?,
                };
                let mut end = start;
                while matches!(self.byte_at(end), Some(b'\r' | b'\n')) {
                    end += 1;
                }
                Some((start, end - start))
            }
        }
    }

    /// Remove and return the first line, without its ending (libevent's
    /// `evbuffer_readln`); `None` if no complete line is buffered.
    pub fn read_line(&mut self, style: Eol) -> Option<Vec<u8>> {
        if self.frozen_start {
            return None;
        }
        let (pos, eol) = self.search_eol(0, style)?;
        let mut line = vec![0; pos];
        self.copy_out(&mut line);
        let _ = self.drain(pos + eol);
        Some(line)
    }

    /// Refuse (`true`) or allow changes at the start (drain, remove, prepend) or, with
    /// `start = false`, at the end (append, reserve, commit, reads).
    pub fn freeze(&mut self, start: bool, frozen: bool) {
        if start {
            self.frozen_start = frozen;
        } else {
            self.frozen_end = frozen;
        }
    }

    /// Call `callback` after every change, with the bytes added and removed.
    pub fn add_callback(&mut self, callback: impl FnMut(&BufferChange) + 'static) -> CallbackId {
        let id = CallbackId(self.next_callback);
        self.next_callback += 1;
        self.callbacks.push((id, Box::new(callback)));
        id
    }

    /// Stop calling a change callback; returns whether it was there.
    pub fn remove_callback(&mut self, id: CallbackId) -> bool {
        let before = self.callbacks.len();
        self.callbacks.retain(|(i, _)| *i != id);
        self.callbacks.len() != before
    }

    /// The most [`read_from`](Self::read_from) reads in one call when given no limit
    /// (default 64 KiB).
    pub fn set_max_read(&mut self, max: usize) {
        self.max_read = Some(max.max(1));
    }
}

/// The index of the first `byte` in `hay`, eight bytes at a time: in `w = word ^ byte×8` a
/// matching byte is zero, and `(w - 0x01…) & !w & 0x80…` flags zero bytes. A borrow can only
/// flag bytes *after* a real zero, so the lowest flag (little-endian: the first byte) is a
/// true match. The tail goes byte by byte.
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(byte);
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let bytes: [u8; 8] = word.try_into().unwrap_or_default();
        let w = u64::from_le_bytes(bytes) ^ pattern;
        let zeros = w.wrapping_sub(LO) & !w & HI;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

mod fd_io;
#[cfg(feature = "tls")]
pub(crate) use fd_io::{send_nosignal, send_one_nosignal};

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    #[test]
    fn find_byte_matches_position_everywhere() {
        let mut rng = Rng(0x5eed);
        for len in 0..40 {
            for _ in 0..50 {
                // A small alphabet, so that matches, near-matches (byte ± 1, 0x80) and misses
                // all occur.
                let hay: Vec<u8> = (0..len)
                    .map(|_| [0x0d, 0x0c, 0x0e, 0x80, 0x8d, 0x00, b'a'][rng.below(7)])
                    .collect();
                for byte in [0x0d, 0x80, 0x00, b'a', 0xff] {
                    let expected = hay.iter().position(|&b| b == byte);
                    assert_eq!(find_byte(&hay, byte), expected, "{hay:?} {byte:#x}");
                }
            }
        }
    }

    use crate::test_rng::Rng;

    /// `n` bytes of a small alphabet with line endings, so searches and lines find something.
    fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
        (0..n).map(|_| b"ab\r\n\0x"[rng.below(6)]).collect()
    }

    fn contents(b: &Buffer) -> Vec<u8> {
        b.chunks().flatten().copied().collect()
    }

    fn model_eol(m: &[u8], style: Eol) -> Option<(usize, usize)> {
        match style {
            Eol::Lf => m.iter().position(|&b| b == b'\n').map(|p| (p, 1)),
            Eol::Nul => m.iter().position(|&b| b == 0).map(|p| (p, 1)),
            Eol::CrlfStrict => m.windows(2).position(|w| w == b"\r\n").map(|p| (p, 2)),
            Eol::Crlf => {
                let p = m.iter().position(|&b| b == b'\n')?;
                Some(if p > 0 && m[p - 1] == b'\r' {
                    (p - 1, 2)
                } else {
                    (p, 1)
                })
            }
            Eol::Any => {
                let s = m.iter().position(|&b| b == b'\r' || b == b'\n')?;
                let e = m[s..]
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .map_or(m.len(), |i| s + i);
                Some((s, e - s))
            }
        }
    }

    /// Every operation against a `VecDeque<u8>` model, with random chunking.
    #[test]
    fn matches_a_vecdeque_model() {
        let (seeds, steps): (u64, usize) = if cfg!(miri) { (3, 40) } else { (40, 300) };
        for seed in 1..seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut buf = Buffer::new();
            let mut model: VecDeque<u8> = VecDeque::new();
            let seen = Rc::new(RefCell::new((0usize, 0usize)));
            let s = seen.clone();
            buf.add_callback(move |c| {
                let mut s = s.borrow_mut();
                s.0 += c.added;
                s.1 += c.removed;
            });
            let (mut added, mut removed) = (0usize, 0usize);
            for step in 0..steps {
                let n = rng.below(6000);
                if model.len() > 100_000 {
                    // Keep the buffer small enough for a debug build to compare often.
                    let cut = model.len() / 2;
                    assert_eq!(buf.drain(cut).unwrap(), cut);
                    model.drain(..cut);
                    removed += cut;
                }
                match rng.below(12) {
                    0 | 1 => {
                        let data = bytes(&mut rng, n);
                        buf.append(&data).unwrap();
                        model.extend(&data);
                        added += n;
                    }
                    2 => {
                        let data = bytes(&mut rng, n % 300);
                        buf.append_owned(data.clone()).unwrap();
                        model.extend(&data);
                        added += data.len();
                    }
                    3 => {
                        let data = bytes(&mut rng, n % 700);
                        buf.prepend(&data).unwrap();
                        for &b in data.iter().rev() {
                            model.push_front(b);
                        }
                        added += data.len();
                    }
                    4 => {
                        let got = buf.drain(n).unwrap();
                        assert_eq!(got, n.min(model.len()));
                        model.drain(..got);
                        removed += got;
                    }
                    5 => {
                        let mut dst = vec![0; n % 5000];
                        let got = buf.remove(&mut dst).unwrap();
                        let expect: Vec<u8> = model.drain(..got).collect();
                        assert_eq!(&dst[..got], &expect[..]);
                        removed += got;
                    }
                    6 => {
                        let want = n % (model.len() + 1);
                        let got = buf.pullup(want).to_vec();
                        let expect: Vec<u8> = model.iter().take(want).copied().collect();
                        assert_eq!(got, expect);
                    }
                    7 => {
                        let pos = n % (model.len() + 1);
                        let mut dst = vec![0; 100];
                        let got = buf.copy_out_at(pos, &mut dst);
                        let expect: Vec<u8> = model.iter().skip(pos).take(100).copied().collect();
                        assert_eq!(&dst[..got], &expect[..]);
                    }
                    8 => {
                        let m: Vec<u8> = model.iter().copied().collect();
                        let len = 1 + rng.below(3);
                        let pat = bytes(&mut rng, len);
                        let from = n % (m.len() + 1);
                        let expect = m
                            .windows(pat.len())
                            .enumerate()
                            .skip(from)
                            .find(|(_, w)| *w == &pat[..])
                            .map(|(i, _)| i);
                        assert_eq!(
                            buf.search(&pat, from),
                            expect,
                            "pattern {pat:?} from {from}"
                        );
                    }
                    9 => {
                        let style =
                            [Eol::Any, Eol::Crlf, Eol::CrlfStrict, Eol::Lf, Eol::Nul][rng.below(5)];
                        let m: Vec<u8> = model.iter().copied().collect();
                        let expect = model_eol(&m, style);
                        let line = buf.read_line(style);
                        match expect {
                            Some((p, l)) => {
                                assert_eq!(line.as_deref(), Some(&m[..p]), "{style:?}");
                                model.drain(..p + l);
                                removed += p + l;
                            }
                            None => assert_eq!(line, None, "{style:?}"),
                        }
                    }
                    10 => {
                        let want = n % 5000;
                        let room = buf.reserve(want).unwrap();
                        assert!(room.len() >= want.max(1));
                        let data = bytes(&mut rng, want.min(room.len()));
                        room[..data.len()].copy_from_slice(&data);
                        buf.commit(data.len()).unwrap();
                        model.extend(&data);
                        added += data.len();
                    }
                    _ => {
                        let mut other = Buffer::new();
                        let got = buf.remove_into(&mut other, n).unwrap();
                        assert_eq!(other.len(), got);
                        buf.prepend(&contents(&other)).unwrap();
                        // net: nothing changed, but the callback saw both sides
                        added += got;
                        removed += got;
                    }
                }
                assert_eq!(buf.len(), model.len());
                if step % 8 == 0 {
                    assert_eq!(contents(&buf), model.iter().copied().collect::<Vec<_>>());
                }
            }
            assert_eq!(contents(&buf), model.iter().copied().collect::<Vec<_>>());
            assert_eq!(*seen.borrow(), (added, removed));
        }
    }

    #[test]
    fn eol_edge_cases_across_chunks() {
        // CR at the end of one chunk, LF at the start of the next.
        let mut b = Buffer::new();
        b.append_owned(b"line\r").unwrap();
        b.append_owned(b"\nnext").unwrap();
        assert_eq!(b.search_eol(0, Eol::CrlfStrict), Some((4, 2)));
        assert_eq!(b.read_line(Eol::Crlf).as_deref(), Some(&b"line"[..]));
        assert_eq!(b.read_line(Eol::Lf), None);
        // A lone CR is no line end for CRLF_STRICT or LF, but is for ANY.
        let mut b = Buffer::new();
        b.append(b"a\rb").unwrap();
        assert_eq!(b.search_eol(0, Eol::CrlfStrict), None);
        assert_eq!(b.search_eol(0, Eol::Lf), None);
        assert_eq!(b.read_line(Eol::Any).as_deref(), Some(&b"a"[..]));
        // ANY eats a whole run of CR/LF.
        let mut b = Buffer::new();
        b.append(b"x\r\n\r\n\ny").unwrap();
        assert_eq!(b.read_line(Eol::Any).as_deref(), Some(&b"x"[..]));
        assert_eq!(contents(&b), b"y");
        // Empty buffers have no line in any style.
        let mut empty = Buffer::new();
        for style in [Eol::Any, Eol::Crlf, Eol::CrlfStrict, Eol::Lf, Eol::Nul] {
            assert_eq!(empty.read_line(style), None);
        }
        // An empty line.
        let mut b = Buffer::new();
        b.append(b"\0rest").unwrap();
        assert_eq!(b.read_line(Eol::Nul).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn freezing_refuses_and_reference_release_runs() {
        let released = Rc::new(RefCell::new(false));
        let r = released.clone();
        let mut b = Buffer::new();
        b.append_reference(b"static bytes", move || *r.borrow_mut() = true)
            .unwrap();
        b.freeze(true, true);
        assert_eq!(
            b.drain(1).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(b.append(b"x").is_ok());
        b.freeze(false, true);
        assert!(b.append(b"x").is_err());
        b.freeze(true, false);
        b.drain(12).unwrap();
        assert!(*released.borrow(), "released once drained");
    }

    #[test]
    fn huge_reserve_is_an_error_not_an_abort() {
        let mut b = Buffer::new();
        let err = b.reserve(usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("reserve"));
        assert!(b.reserve(16).is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes syscalls through inline assembly")]
    fn fd_round_trip_with_outcomes() {
        #[cfg(unix)]
        let (r, w) = rustix::pipe::pipe().unwrap();
        #[cfg(windows)]
        let (r, w) = crate::fd::socket_pair().unwrap();
        rustix::io::ioctl_fionbio(&r, true).unwrap();
        let mut out = Buffer::new();
        let mut inp = Buffer::new();
        assert_eq!(inp.read_from(&r, None).unwrap(), IoOutcome::WouldBlock);
        out.append(&vec![7u8; 10_000]).unwrap();
        out.append_owned(vec![8u8; 100]).unwrap();
        // One gathered write on Unix; Windows sends a chunk per call (no vectored send here).
        #[cfg(unix)]
        assert_eq!(out.write_to(&w, None).unwrap(), IoOutcome::Done(10_100));
        #[cfg(windows)]
        while !out.is_empty() {
            assert!(matches!(
                out.write_to(&w, None).unwrap(),
                IoOutcome::Done(_)
            ));
        }
        assert!(out.is_empty());
        let mut total = 0;
        while let IoOutcome::Done(n) = inp.read_from(&r, Some(3000)).unwrap() {
            assert!(n <= 3000);
            total += n;
        }
        assert_eq!(total, 10_100);
        drop(w);
        assert_eq!(inp.read_from(&r, None).unwrap(), IoOutcome::Eof);
        assert_eq!(contents(&inp)[10_000..], [8u8; 100]);
    }

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("evloop-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Send `buf` through a loopback TCP pair with `send_to` (sendfile on Linux for its file
    /// pieces) and return what the peer read.
    fn send_through_tcp(buf: &mut Buffer) -> Vec<u8> {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        let ours = std::net::TcpStream::connect(addr).unwrap(); // blocking: no WouldBlock
        while !buf.is_empty() {
            match buf.send_to(&ours, None).unwrap() {
                IoOutcome::Done(n) => assert!(n > 0),
                other => panic!("{other:?} on a blocking socket"),
            }
        }
        drop(ours);
        reader.join().unwrap()
    }

    #[test]
    fn file_segments_read_as_their_bytes_and_send_byte_exact() {
        let file: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
        let path = temp_file("segments", &file);
        let seg = FileSegment::open(&path).unwrap();
        for sendfile in [true, false] {
            let seg = if sendfile {
                seg.clone()
            } else {
                seg.clone().without_sendfile()
            };
            let mut buf = Buffer::new();
            let mut model = Vec::new();
            buf.append(b"head").unwrap();
            model.extend_from_slice(b"head");
            let part = seg.slice(100, 2_600_000).unwrap();
            buf.append_file(&part).unwrap();
            model.extend_from_slice(&file[100..2_600_100]);
            buf.append(b"tail").unwrap();
            model.extend_from_slice(b"tail");
            buf.append_file(&seg.slice(5, 10).unwrap()).unwrap();
            model.extend_from_slice(&file[5..15]);
            assert_eq!(buf.len(), model.len());
            // Splitting an unread piece moves its front part, still unread.
            let mut moved = Buffer::new();
            assert_eq!(buf.remove_into(&mut moved, 1_000_000).unwrap(), 1_000_000);
            assert!(moved.chunks.iter().any(|c| c.unread_file().is_some()));
            assert!(moved.pullup(moved.len()) == &model[..1_000_000]);
            model.drain(..1_000_000);
            // A look across a piece boundary reads the pieces it crosses, not the rest.
            let at = (1 << 20) + 4 - 1_000_000 - 3;
            let mut look = [0u8; 9];
            assert_eq!(buf.copy_out_at(at, &mut look), 9);
            assert_eq!(look, model[at..at + 9]);
            assert_eq!(buf.search(b"tail", 0), Some(model.len() - 14));
            assert!(buf.chunks.iter().any(|c| c.unread_file().is_some()));
            let got = send_through_tcp(&mut buf);
            assert!(
                got == model,
                "sendfile {sendfile}: {} of {} bytes",
                got.len(),
                model.len()
            );
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_shrank_fails_the_write_and_sends_no_zeros() {
        let path = temp_file("shrinking", &[9u8; 50_000]);
        let seg = FileSegment::open(&path).unwrap();
        let mut looked = Buffer::new();
        looked.append_file(&seg).unwrap();
        let mut sent = Buffer::new();
        sent.append(b"head").unwrap();
        sent.append_file(&seg).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10_000)
            .unwrap();
        // A look reads zeros past the new end; writing them is the read's error instead.
        assert_eq!(looked.search(&[0, 0], 0), Some(10_000));
        #[cfg(unix)]
        let (r, w) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::empty(),
            None,
        )
        .unwrap();
        #[cfg(windows)]
        let (r, w) = crate::fd::socket_pair().unwrap();
        let e = looked.send_to(&w, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("byte 10000"), "{e}");
        assert_eq!(looked.len(), 50_000, "nothing is drained");
        // Sent without a look: the head goes, then the file's end is the error (sendfile
        // reports it as zero bytes, the read fallback as a short read).
        let mut result = sent.send_to(&w, None);
        let mut went = 0;
        while let Ok(IoOutcome::Done(n)) = result {
            went += n;
            result = sent.send_to(&w, None);
        }
        let e = result.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!((4..=4 + 10_000).contains(&went), "{went}");
        drop(r);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_segment_too_big_to_count_is_an_error_and_empty_ones_add_nothing() {
        let path = temp_file("empty", b"");
        let seg = FileSegment::open(&path).unwrap();
        let mut buf = Buffer::new();
        buf.append_file(&seg).unwrap();
        assert!(buf.is_empty() && buf.chunks.is_empty());
        buf.freeze(false, true);
        assert_eq!(
            buf.append_file(&seg).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        std::fs::remove_file(&path).unwrap();
    }
}
