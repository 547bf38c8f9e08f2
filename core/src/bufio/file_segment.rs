//! [`FileSegment`]: a range of a file that a [`Buffer`](super::Buffer) holds without reading
//! it (libevent's `evbuffer_file_segment`), and the `sendfile(2)` calls that write it.
//!
//! A segment is an open file (shared, so one segment can be appended to many buffers) and a
//! range checked against the file's size when the segment is made. A buffered socket writes
//! it with `sendfile` where the OS has one for its fd (Linux: any fd; FreeBSD and macOS:
//! sockets), and elsewhere — Windows, NetBSD, OpenBSD, illumos, a segment made
//! [`without_sendfile`](FileSegment::without_sendfile), a TLS or filtered socket, which need
//! the bytes — by reading a piece at a time with positional reads (`pread`), never moving a
//! file cursor, so the same file can be in many buffers at different positions.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A range of a regular file, to append to a [`Buffer`](super::Buffer) without reading it.
///
/// Cloning is cheap (the file is shared); the file is closed when the last clone and the last
/// buffer chunk holding it are gone.
///
/// # Examples
///
/// ```
/// use evloop::{Buffer, FileSegment};
/// # let path = std::env::temp_dir().join(format!("evloop-doc-segment-{}", std::process::id()));
/// # std::fs::write(&path, b"0123456789")?;
/// let whole = FileSegment::open(&path)?;
/// let middle = whole.slice(2, 5)?; // bytes 2..7
/// let mut buf = Buffer::new();
/// buf.append(b"<")?;
/// buf.append_file(&middle)?;
/// buf.append(b">")?;
/// assert_eq!(buf.len(), 7);
/// assert_eq!(buf.pullup(7), b"<23456>"); // a look at the bytes reads them
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct FileSegment {
    file: Arc<File>,
    offset: u64,
    len: u64,
    sendfile: bool,
}

impl std::fmt::Debug for FileSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSegment")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("sendfile", &self.sendfile)
            .finish()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl FileSegment {
    /// `len` bytes of `file` from `offset` (`None`: to the end of the file).
    ///
    /// # Examples
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("evloop-doc-new-{}", std::process::id()));
    /// # std::fs::write(&path, b"0123456789")?;
    /// let file = std::fs::File::open(&path)?;
    /// let tail = evloop::FileSegment::new(file, 4, None)?;
    /// assert_eq!((tail.offset(), tail.len()), (4, 6));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the offset, length and file size if the range does not lie
    /// within the file, or if `file` is not a regular file (a pipe or a directory has no
    /// range to send); the error of `fstat` if it fails.
    pub fn new(file: File, offset: u64, len: Option<u64>) -> io::Result<Self> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(invalid(format!(
                "a file segment needs a regular file, not a {}",
                if meta.is_dir() {
                    "directory"
                } else {
                    "pipe, socket or device"
                }
            )));
        }
        let size = meta.len();
        let len = match len {
            None if offset <= size => size - offset,
            None => {
                return Err(invalid(format!(
                    "file range offset {offset} is past the end of the file ({size} bytes)"
                )))
            }
            Some(len) => match offset.checked_add(len) {
                Some(end) if end <= size => len,
                _ => {
                    return Err(invalid(format!(
                        "file range of {len} bytes at offset {offset} ends past the end of the \
                         file ({size} bytes)"
                    )))
                }
            },
        };
        Ok(FileSegment {
            file: Arc::new(file),
            offset,
            len,
            sendfile: true,
        })
    }

    /// The whole file at `path`.
    ///
    /// # Errors
    ///
    /// The error of opening it, with the path in the message; as [`new`](Self::new).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::new(file, 0, None)
    }

    /// `len` bytes of this segment from `offset` within it (an HTTP range of a file, say),
    /// sharing the file.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the values if the range does not lie within this segment.
    pub fn slice(&self, offset: u64, len: u64) -> io::Result<Self> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(FileSegment {
                file: self.file.clone(),
                offset: self.offset + offset,
                len,
                sendfile: self.sendfile,
            }),
            _ => Err(invalid(format!(
                "a slice of {len} bytes at offset {offset} ends past the end of a {}-byte file \
                 segment",
                self.len
            ))),
        }
    }

    /// The same range, always written by reading it (libevent's
    /// `EVBUF_FS_DISABLE_SENDFILE`): for a file system whose `sendfile` misbehaves, or to
    /// compare the two paths.
    pub fn without_sendfile(mut self) -> Self {
        self.sendfile = false;
        self
    }

    /// Whether a socket may write this segment with `sendfile`.
    pub fn uses_sendfile(&self) -> bool {
        self.sendfile
    }

    /// Where the range starts in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn same_file(&self, other: &FileSegment) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }

    /// Fill `buf` from position `pos` of the segment, reading at that file offset.
    ///
    /// # Errors
    ///
    /// The read's error; `UnexpectedEof` naming the offset if the file ends first (it shrank
    /// after the segment was made).
    pub(crate) fn read_exact_at(&self, pos: u64, mut buf: &mut [u8]) -> io::Result<()> {
        let mut at = self.offset + pos;
        while !buf.is_empty() {
            match read_at(&self.file, buf, at) {
                Ok(0) => return Err(shrank(at)),
                Ok(n) => {
                    buf = &mut buf[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The file ended at `at`, inside a segment's range.
pub(crate) fn shrank(at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ended at byte {at}, inside a file segment (it shrank after the segment was made)"),
    )
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

/// Windows: `seek_read` reads at an offset (it moves the cursor too, which nothing here uses).
#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, at)
}

/// The most one `sendfile` call is asked to send: Linux's largest default socket send buffer
/// (`tcp_wmem`), so that a call ends about when the socket is full on a real network, and one
/// connection cannot hold the loop for long over loopback, where a call can go on for as long
/// as the receiver keeps reading.
pub(crate) const SENDFILE_MAX: usize = 4 << 20;

/// Whether this target has a `sendfile` for a socket fd (`socket`) or for any fd.
pub(crate) fn sendfile_supported(socket: bool) -> bool {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        true
    } else {
        socket
            && cfg!(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios"
            ))
    }
}

/// What a BSD-style `sendfile` call sent: these report a partial send through an out
/// parameter even when they fail with `EAGAIN` or `EINTR` (or FreeBSD's `EBUSY`), and
/// those bytes are gone from the file range, so they count as sent; any other failure is the
/// error.
#[cfg(unix)]
#[cfg_attr(
    not(any(target_os = "freebsd", target_os = "macos", target_os = "ios", test)),
    allow(dead_code)
)]
pub(crate) fn bsd_sendfile_result(
    failed: bool,
    errno: rustix::io::Errno,
    sent: i64,
) -> rustix::io::Result<usize> {
    use rustix::io::Errno;
    let sent = usize::try_from(sent).unwrap_or(0);
    if !failed {
        return Ok(sent);
    }
    let partial_ok = errno == Errno::AGAIN || errno == Errno::INTR || errno == Errno::BUSY;
    if partial_ok && sent > 0 {
        Ok(sent)
    } else {
        Err(errno)
    }
}

/// `sendfile(2)`: up to `count` bytes of `file` from offset `at` to `out`; the file's cursor
/// does not move.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sendfile(
    out: crate::fd::BorrowedFd<'_>,
    file: &File,
    at: u64,
    count: usize,
) -> rustix::io::Result<usize> {
    let mut offset = at;
    rustix::fs::sendfile(out, file, Some(&mut offset), count.min(SENDFILE_MAX))
}

/// FreeBSD's `sendfile(2)`: `sbytes` says what went out, even on `EAGAIN`.
#[cfg(target_os = "freebsd")]
pub(crate) fn sendfile(
    out: crate::fd::BorrowedFd<'_>,
    file: &File,
    at: u64,
    count: usize,
) -> rustix::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(at).map_err(|_| rustix::io::Errno::OVERFLOW)?;
    let mut sbytes: libc::off_t = 0;
    // SAFETY: both fds are open for the call (borrowed); no header/trailer vector is passed
    // (null), and `sbytes` is a valid place for the kernel to write the count.
    let ret = unsafe {
        libc::sendfile(
            file.as_raw_fd(),
            out.as_raw_fd(),
            offset,
            count.min(SENDFILE_MAX),
            std::ptr::null_mut(),
            &mut sbytes,
            0,
        )
    };
    bsd_sendfile_done(ret, sbytes)
}

/// macOS's `sendfile(2)`: `len` goes in as the count and comes out as what went out, even
/// on `EAGAIN`.
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) fn sendfile(
    out: crate::fd::BorrowedFd<'_>,
    file: &File,
    at: u64,
    count: usize,
) -> rustix::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(at).map_err(|_| rustix::io::Errno::OVERFLOW)?;
    let mut len = libc::off_t::try_from(count.min(SENDFILE_MAX)).unwrap_or(libc::off_t::MAX);
    // SAFETY: both fds are open for the call (borrowed); no header/trailer vector is passed
    // (null), and `len` is a valid place for the kernel to read and write the count.
    let ret = unsafe {
        libc::sendfile(
            file.as_raw_fd(),
            out.as_raw_fd(),
            offset,
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    bsd_sendfile_done(ret, len)
}

/// The outcome of a BSD-style `sendfile` that returned `ret` and reported `sent` bytes: the
/// thread's errno is read only when it failed.
#[cfg(any(target_os = "freebsd", target_os = "macos", target_os = "ios"))]
fn bsd_sendfile_done(ret: libc::c_int, sent: libc::off_t) -> rustix::io::Result<usize> {
    let errno = if ret == -1 {
        rustix::io::Errno::from_io_error(&io::Error::last_os_error())
            .unwrap_or(rustix::io::Errno::IO)
    } else {
        rustix::io::Errno::IO // unused: the call succeeded
    };
    bsd_sendfile_result(ret == -1, errno, sent)
}

/// No `sendfile` here: never called, as [`sendfile_supported`] says.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios"
)))]
pub(crate) fn sendfile(
    _out: crate::fd::BorrowedFd<'_>,
    _file: &File,
    _at: u64,
    _count: usize,
) -> rustix::io::Result<usize> {
    Err(rustix::io::Errno::OPNOTSUPP)
}

/// Whether `sendfile` failing with `e` means this fd or file system has none (so reading is
/// the way), not that the connection failed.
pub(crate) fn sendfile_refused(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    #[cfg(unix)]
    if e == Errno::NOSYS {
        return true;
    }
    e == Errno::INVAL || e == Errno::OPNOTSUPP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn bsd_partial_sends_count_and_other_failures_are_errors() {
        use rustix::io::Errno;
        assert_eq!(bsd_sendfile_result(false, Errno::IO, 100), Ok(100));
        assert_eq!(bsd_sendfile_result(true, Errno::AGAIN, 4096), Ok(4096));
        assert_eq!(bsd_sendfile_result(true, Errno::INTR, 1), Ok(1));
        assert_eq!(bsd_sendfile_result(true, Errno::BUSY, 7), Ok(7));
        assert_eq!(
            bsd_sendfile_result(true, Errno::AGAIN, 0),
            Err(Errno::AGAIN)
        );
        assert_eq!(bsd_sendfile_result(true, Errno::PIPE, 10), Err(Errno::PIPE));
        assert_eq!(
            bsd_sendfile_result(true, Errno::NOTCONN, 0),
            Err(Errno::NOTCONN)
        );
    }

    #[test]
    fn sendfile_where_the_os_has_it() {
        let linux = cfg!(any(target_os = "linux", target_os = "android"));
        assert_eq!(sendfile_supported(false), linux);
        assert_eq!(
            sendfile_supported(true),
            linux || cfg!(any(target_os = "freebsd", target_os = "macos"))
        );
    }

    fn temp_file(name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("evloop-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn ranges_are_checked_and_errors_name_the_values() {
        let (path, file) = temp_file("ranges", b"0123456789");
        let e = FileSegment::new(file.try_clone().unwrap(), 11, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("offset 11") && e.to_string().contains("10 bytes"),
            "{e}"
        );
        let e = FileSegment::new(file.try_clone().unwrap(), 4, Some(7)).unwrap_err();
        assert!(e.to_string().contains("7 bytes at offset 4"), "{e}");
        let e = FileSegment::new(file.try_clone().unwrap(), u64::MAX, Some(2)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let seg = FileSegment::new(file, 10, None).unwrap();
        assert!(seg.is_empty());
        let seg = FileSegment::open(&path).unwrap();
        assert_eq!(seg.len(), 10);
        let e = seg.slice(8, 3).unwrap_err();
        assert!(e.to_string().contains("3 bytes at offset 8"), "{e}");
        let mid = seg.slice(3, 4).unwrap();
        let mut got = [0; 4];
        mid.read_exact_at(0, &mut got).unwrap();
        assert_eq!(&got, b"3456");
        assert!(!mid.clone().without_sendfile().uses_sendfile());
        let e = FileSegment::open(path.with_extension("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        // A directory (Windows opens none as a file, so there is nothing to refuse).
        if let Ok(dir) = File::open(std::env::temp_dir()) {
            let e = FileSegment::new(dir, 0, None).unwrap_err();
            assert!(e.to_string().contains("directory"), "{e}");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_shrank_is_an_error_naming_the_offset() {
        let (path, file) = temp_file("shrank", &[7; 100]);
        let seg = FileSegment::new(file, 0, None).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(40)
            .unwrap();
        let mut buf = [0; 100];
        let e = seg.read_exact_at(0, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("byte 40"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
