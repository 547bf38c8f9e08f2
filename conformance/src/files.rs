//! File segments on buffered sockets: a file range goes out byte-exact between the bytes
//! around it (by `sendfile` where the OS has one, by reading where it has not, and always by
//! reading when asked to), moves through a pair and a filter, and a file that shrinks is one
//! error for its socket while the base goes on.

use std::io::{Read, Write};
use std::path::PathBuf;

use evloop_core::{BevEvent, BevOptions, BufferedSocket, FileSegment, Interest};

use crate::util::{run_until, tcp_pair};
use crate::Harness;

/// A file of `len` pattern bytes in the temp directory, removed when dropped.
struct TempFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TempFile {
    fn new(what: &str, h: &Harness, len: usize) -> Self {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
        let path = std::env::temp_dir().join(format!(
            "evloop-conformance-{what}-{}-{}",
            h.name(),
            std::process::id()
        ));
        std::fs::write(&path, &bytes).expect("write a temp file");
        TempFile { path, bytes }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A head, 2.5 MB of a file from offset 1000 (three pieces of the buffer), a middle, the
/// same file's first 10 bytes written by reading, and a tail, to a slow reader: the peer
/// gets exactly those bytes in order, then EOF from `free_after_flush`.
pub fn file_segments_arrive_byte_exact_between_other_bytes(h: &Harness) {
    let file = TempFile::new("exact", h, 3_000_000);
    let whole = FileSegment::open(&file.path).unwrap();
    let (ours, mut peer) = tcp_pair();
    let mut base = h.base::<()>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let mut expected = Vec::new();
    bev.on(&mut base).write(b"head\r\n").unwrap();
    expected.extend_from_slice(b"head\r\n");
    bev.with_output(&mut base, |out| {
        out.append_file(&whole.slice(1000, 2_500_000)?)?;
        out.append(b"middle")?;
        out.append_file(&whole.slice(0, 10)?.without_sendfile())
    })
    .unwrap()
    .unwrap();
    expected.extend_from_slice(&file.bytes[1000..2_501_000]);
    expected.extend_from_slice(b"middle");
    expected.extend_from_slice(&file.bytes[..10]);
    bev.on(&mut base).write(b"tail").unwrap();
    expected.extend_from_slice(b"tail");
    bev.on(&mut base).free_after_flush().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut piece = [0u8; 8192];
        loop {
            match peer.read(&mut piece) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&piece[..n]),
                Err(e) => return Err(e),
            }
            std::thread::sleep(std::time::Duration::from_micros(50)); // a slow reader
        }
    });
    base.run(&mut ()).unwrap();
    let got = reader.join().unwrap().expect("to EOF");
    assert!(
        got == expected,
        "{} of {} bytes arrived, or changed",
        got.len(),
        expected.len()
    );
    assert!(bev.is_freed());
}

/// A file segment in a pair's output moves to the other side's input and is read there; the
/// same through a pass-through filter, whose moves leave it to the socket under it.
pub fn file_segments_through_a_pair_and_a_filter(h: &Harness) {
    struct PassThrough;
    impl evloop_core::Filter for PassThrough {}

    let file = TempFile::new("pair", h, 1_500_000);
    let seg = FileSegment::open(&file.path).unwrap();
    let mut base = h.base::<Vec<u8>>();
    let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_read_callback(|bev, got: &mut Vec<u8>| {
        let (input, _) = bev.buffers();
        for chunk in input.chunks() {
            got.extend_from_slice(chunk);
        }
        let n = input.len();
        input.drain(n).unwrap();
    });
    control.enable(Interest::READ).unwrap();
    a.with_output(&mut base, |out| out.append_file(&seg))
        .unwrap()
        .unwrap();
    a.on(&mut base).enable(Interest::WRITE).unwrap();
    let mut got = Vec::new();
    run_until(&mut base, &mut got, "the file through the pair", |g| {
        g.len() >= file.bytes.len()
    });
    assert!(got == file.bytes, "{} bytes, or changed", got.len());

    let (ours, mut peer) = tcp_pair();
    let under = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let filtered =
        BufferedSocket::filtered(&mut base, under, PassThrough, BevOptions::default()).unwrap();
    filtered
        .with_output(&mut base, |out| {
            out.append(b"<")?;
            out.append_file(&seg)?;
            out.append(b">")
        })
        .unwrap()
        .unwrap();
    filtered.on(&mut base).free_after_flush().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).map(|_| got)
    });
    base.run(&mut Vec::new()).unwrap();
    let got = reader.join().unwrap().expect("to EOF");
    let mut expected = b"<".to_vec();
    expected.extend_from_slice(&file.bytes);
    expected.push(b'>');
    assert!(got == expected, "{} of {} bytes", got.len(), expected.len());
}

/// A range past the end of the file is an error naming it, before anything is queued; a
/// file that shrinks after its segment was queued is one ERROR while writing, naming the
/// byte where it ended, the peer gets no zeros, and the base goes on serving another socket.
pub fn a_file_range_past_the_end_or_a_shrunk_file_is_one_clear_error(h: &Harness) {
    let file = TempFile::new("shrinks", h, 400_000);
    let e = FileSegment::new(
        std::fs::File::open(&file.path).unwrap(),
        399_000,
        Some(2000),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(
        e.to_string().contains("2000 bytes at offset 399000")
            && e.to_string().contains("400000 bytes"),
        "{e}"
    );
    let seg = FileSegment::open(&file.path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file.path)
        .unwrap()
        .set_len(100_000)
        .unwrap();

    #[derive(Default)]
    struct Seen {
        events: Vec<BevEvent>,
        errors: Vec<String>,
    }
    let mut base = h.base::<Seen>();
    let (ours, mut peer) = tcp_pair();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    bev.on(&mut base)
        .set_event_callback(|bev, seen: &mut Seen| {
            seen.events.push(bev.fired());
            if let Some(e) = bev.error() {
                seen.errors.push(format!("{e} ({:?})", e.kind()));
            }
            bev.free();
        });
    bev.with_output(&mut base, |out| out.append_file(&seg))
        .unwrap()
        .unwrap();
    bev.on(&mut base).enable(Interest::WRITE).unwrap();
    let mut seen = Seen::default();
    run_until(&mut base, &mut seen, "an error for the shrunk file", |s| {
        !s.events.is_empty()
    });
    assert_eq!(seen.events, [BevEvent::ERROR | BevEvent::WRITING]);
    assert!(
        seen.errors[0].contains("byte 100000") && seen.errors[0].contains("UnexpectedEof"),
        "{:?}",
        seen.errors
    );
    let mut got = Vec::new();
    peer.read_to_end(&mut got).expect("EOF after the error");
    assert!(got.len() <= 100_000, "{} bytes", got.len());
    assert!(
        got[..] == file.bytes[..got.len()],
        "what arrived is the file's bytes, no zeros"
    );

    // The base goes on.
    let (ours, mut peer) = tcp_pair();
    let other = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let mut other = other.on(&mut base);
    other.write(b"still here").unwrap();
    other.free_after_flush().unwrap();
    base.run(&mut seen).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"still here");
    peer.flush().unwrap();
}
