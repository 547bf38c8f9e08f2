//! Filtered sockets on every backend (libevent's filter bufferevent): a transform each way a
//! line at a time, small reads under a high watermark that still reach the end, a filter's
//! error as one ERROR, `Finished` pushing out what a filter held back, and freeing.

use std::io;

use evloop_core::{
    BevContext, BevEvent, BevOptions, Buffer, BufferedSocket, Eol, Filter, FilterResult, FlushMode,
    Interest,
};

use crate::util::{read_available, read_available_or_eof, run_until, socketpair, write_all};
use crate::Harness;

/// Upper-cases whole lines on the way in and ROT13s everything on the way out; a partial
/// line waits for its newline, or for the end.
pub struct UpperInRot13Out;

fn rot13(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
        _ => b,
    }
}

impl Filter for UpperInRot13Out {
    fn input(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        _limit: usize,
        mode: FlushMode,
    ) -> io::Result<FilterResult> {
        while let Some(mut line) = src.read_line(Eol::Lf) {
            line.make_ascii_uppercase();
            line.push(b'\n');
            dst.append(&line)?;
        }
        if mode == FlushMode::Finished {
            let mut rest = vec![0; src.len()];
            src.remove(&mut rest)?;
            rest.make_ascii_uppercase();
            dst.append(&rest)?;
        }
        Ok(if src.is_empty() {
            FilterResult::Ok
        } else {
            FilterResult::NeedMore
        })
    }

    fn output(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        limit: usize,
        _mode: FlushMode,
    ) -> io::Result<FilterResult> {
        let mut bytes = vec![0; src.len().min(limit).min(16 * 1024)];
        src.remove(&mut bytes)?;
        bytes.iter_mut().for_each(|b| *b = rot13(*b));
        dst.append(&bytes)?;
        Ok(FilterResult::Ok)
    }
}

/// Everything in the input, removed.
fn take_input<D>(bev: &mut BevContext<'_, D>) -> Vec<u8> {
    let mut buf = vec![0; bev.input().len()];
    bev.input().remove(&mut buf).unwrap();
    buf
}

#[derive(Default)]
struct Seen {
    reads: Vec<Vec<u8>>,
    events: Vec<BevEvent>,
    errors: Vec<String>,
}

/// A filtered socket over a plain one on one end of a socket pair.
fn filtered_end<D: 'static>(
    base: &mut evloop_core::Base<D>,
    fd: evloop_core::fd::OwnedFd,
    filter: impl Filter + 'static,
) -> BufferedSocket<D> {
    let under = BufferedSocket::new(base, fd, BevOptions::default()).expect("socket");
    BufferedSocket::filtered(base, under, filter, BevOptions::default()).expect("filtered socket")
}

/// The input filter hands the read callback whole upper-cased lines (a partial one waits for
/// its newline); what the callback writes back leaves ROT13'd.
pub fn filter_transforms_both_ways_a_line_at_a_time(h: &Harness) {
    let (peer, ours) = socketpair();
    let mut base = h.base::<Seen>();
    let bev = filtered_end(&mut base, ours, UpperInRot13Out);
    let mut control = bev.on(&mut base);
    control.set_read_callback(|bev, seen: &mut Seen| {
        let line = take_input(bev);
        bev.write(&line).unwrap(); // echo, through the output filter
        seen.reads.push(line);
    });
    control.enable(Interest::READ).unwrap();
    let mut seen = Seen::default();
    write_all(&peer, b"hello\nwor");
    run_until(&mut base, &mut seen, "the first line", |s| {
        !s.reads.is_empty()
    });
    for _ in 0..5 {
        crate::util::turn(&mut base, &mut seen);
    }
    assert_eq!(
        seen.reads,
        [b"HELLO\n".to_vec()],
        "a partial line was passed on"
    );
    write_all(&peer, b"ld\n");
    run_until(&mut base, &mut seen, "the second line", |s| {
        s.reads.len() == 2
    });
    assert_eq!(seen.reads[1], b"WORLD\n");
    let mut echoed = Vec::new();
    run_until(&mut base, &mut seen, "the echo", |_| {
        echoed.extend(read_available(&peer));
        echoed.len() == 12
    });
    assert_eq!(echoed, b"URYYB\nJBEYQ\n");
    assert_eq!(seen.events, []);
    bev.free(&mut base).unwrap();
}

/// libevent#690 on a filter: the filtered input's high watermark is 1 KiB, so each read
/// callback sees at most 1 KiB while the socket under reads far larger chunks (what it holds
/// beyond the watermark must still come through without new bytes on the fd); 1 MiB arrives
/// whole, in order, and the input never passes the watermark.
pub fn filter_small_reads_under_a_high_watermark_reach_the_end(h: &Harness) {
    struct Passthrough;
    impl Filter for Passthrough {}
    #[derive(Default)]
    struct Got {
        bytes: Vec<u8>,
        most: usize,
        eof: bool,
    }
    const TOTAL: usize = 1 << 20;
    let sent: Vec<u8> = (0..TOTAL).map(|i| (i * 7 % 251) as u8).collect();
    let (peer, ours) = socketpair();
    let mut base = h.base::<Got>();
    let writer = BufferedSocket::new(&mut base, peer, BevOptions::default()).unwrap();
    writer.on(&mut base).write(&sent).unwrap();
    let reader = filtered_end(&mut base, ours, Passthrough);
    reader.on(&mut base).set_read_watermark(0, 1024).unwrap();
    reader
        .on(&mut base)
        .set_read_callback(|bev, got: &mut Got| {
            got.most = got.most.max(bev.input().len());
            let mut chunk = vec![0; bev.input().len()];
            bev.input().remove(&mut chunk).unwrap();
            got.bytes.extend(chunk);
            if got.bytes.len() == TOTAL {
                bev.free();
            }
        });
    reader
        .on(&mut base)
        .set_event_callback(|_, got: &mut Got| got.eof = true);
    reader.on(&mut base).enable(Interest::READ).unwrap();
    let mut got = Got::default();
    run_until(
        &mut base,
        &mut got,
        "1 MiB in reads of at most 1 KiB",
        |g| g.bytes.len() == TOTAL,
    );
    assert!(
        got.bytes == sent,
        "the bytes arrived changed or out of order"
    );
    assert!(
        got.most <= 1024,
        "the input grew to {} past 1 KiB",
        got.most
    );
    assert!(!got.eof, "no event: the writer is still open");
    writer.free(&mut base).unwrap();
}

/// A filter that fails on a byte gives one ERROR|READING carrying its error; reading stops,
/// and the loop (a timer after it) carries on.
pub fn filter_error_is_one_error_event(h: &Harness) {
    struct NoNul;
    impl Filter for NoNul {
        fn input(
            &mut self,
            src: &mut Buffer,
            dst: &mut Buffer,
            limit: usize,
            _: FlushMode,
        ) -> io::Result<FilterResult> {
            if let Some(at) = src.search(b"\0", 0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a NUL byte at offset {at}"),
                ));
            }
            src.remove_into(dst, limit)?;
            Ok(FilterResult::Ok)
        }
    }
    let (peer, ours) = socketpair();
    let mut base = h.base::<(Seen, bool)>();
    let bev = filtered_end(&mut base, ours, NoNul);
    let mut control = bev.on(&mut base);
    control.set_read_callback(|bev, (seen, _): &mut (Seen, bool)| {
        seen.reads.push(take_input(bev));
    });
    control.set_event_callback(|bev, (seen, _): &mut (Seen, bool)| {
        seen.events.push(bev.fired());
        seen.errors
            .push(bev.error().map(|e| e.to_string()).unwrap_or_default());
        assert_eq!(bev.enabled(), Interest::empty(), "both directions stop");
    });
    control.enable(Interest::READ).unwrap();
    let mut data = (Seen::default(), false);
    write_all(&peer, b"fine");
    run_until(&mut base, &mut data, "clean bytes", |(s, _)| {
        !s.reads.is_empty()
    });
    write_all(&peer, b"bad\0byte");
    run_until(&mut base, &mut data, "the filter's error", |(s, _)| {
        !s.events.is_empty()
    });
    write_all(&peer, b"more after the error");
    base.after(std::time::Duration::from_millis(20), |ctx, (_, fired)| {
        *fired = true;
        ctx.loop_break();
    })
    .unwrap();
    run_until(&mut base, &mut data, "a timer after the error", |(_, f)| *f);
    let (seen, _) = data;
    assert_eq!(seen.reads, [b"fine".to_vec()]);
    assert_eq!(seen.events, [BevEvent::ERROR | BevEvent::READING]);
    assert!(
        seen.errors[0].contains("a NUL byte at offset 3"),
        "the filter's own error: {:?}",
        seen.errors
    );
    bev.free(&mut base).unwrap();
}

/// What a filter holds back leaves with `Finished`: a partial line on the way out after
/// `flush_with(WRITE, Finished)`, and on the way in once the peer closes (then EOF, once).
pub fn filter_finished_pushes_out_what_was_held_back(h: &Harness) {
    /// Passes whole lines, both ways; the rest waits for `Finished`.
    struct Lines;
    fn lines(src: &mut Buffer, dst: &mut Buffer, mode: FlushMode) -> io::Result<FilterResult> {
        while let Some(mut line) = src.read_line(Eol::Lf) {
            line.push(b'\n');
            dst.append(&line)?;
        }
        if mode == FlushMode::Finished {
            src.remove_into(dst, usize::MAX)?;
        }
        Ok(if src.is_empty() {
            FilterResult::Ok
        } else {
            FilterResult::NeedMore
        })
    }
    impl Filter for Lines {
        fn input(
            &mut self,
            src: &mut Buffer,
            dst: &mut Buffer,
            _: usize,
            mode: FlushMode,
        ) -> io::Result<FilterResult> {
            lines(src, dst, mode)
        }
        fn output(
            &mut self,
            src: &mut Buffer,
            dst: &mut Buffer,
            _: usize,
            mode: FlushMode,
        ) -> io::Result<FilterResult> {
            lines(src, dst, mode)
        }
    }
    let (peer, ours) = socketpair();
    let mut base = h.base::<Seen>();
    let bev = filtered_end(&mut base, ours, Lines);
    let mut control = bev.on(&mut base);
    control.set_read_callback(|bev, seen: &mut Seen| seen.reads.push(take_input(bev)));
    control.set_event_callback(|bev, seen: &mut Seen| seen.events.push(bev.fired()));
    control.enable(Interest::READ).unwrap();
    let mut seen = Seen::default();
    bev.on(&mut base).write(b"one\ntw").unwrap();
    let mut out = Vec::new();
    run_until(&mut base, &mut seen, "the whole line", |_| {
        out.extend(read_available(&peer));
        !out.is_empty()
    });
    for _ in 0..5 {
        crate::util::turn(&mut base, &mut seen);
    }
    out.extend(read_available(&peer));
    assert_eq!(out, b"one\n", "the partial line left before Finished");
    assert_eq!(bev.output_len().unwrap(), 2, "\"tw\" waits in the output");
    bev.on(&mut base)
        .flush_with(Interest::WRITE, FlushMode::Finished)
        .unwrap();
    run_until(&mut base, &mut seen, "the held-back rest", |_| {
        out.extend(read_available(&peer));
        out.len() == 6
    });
    assert_eq!(out, b"one\ntw");

    write_all(&peer, b"three\nfou");
    drop(peer);
    run_until(&mut base, &mut seen, "EOF", |s| !s.events.is_empty());
    for _ in 0..5 {
        crate::util::turn(&mut base, &mut seen);
    }
    assert_eq!(
        seen.reads.concat(),
        b"three\nfou",
        "the rest came before EOF"
    );
    assert_eq!(seen.events, [BevEvent::EOF | BevEvent::READING]);
    bev.free(&mut base).unwrap();
}

/// Freeing a filtered socket frees the socket under it and closes the fd (the peer sees
/// EOF); one whose handles were all dropped is freed once the socket under it is done, after
/// its last bytes went out.
pub fn filter_free_closes_the_socket_under(h: &Harness) {
    struct Passthrough;
    impl Filter for Passthrough {}
    let (peer, ours) = socketpair();
    let mut base = h.base::<()>();
    let bev = filtered_end(&mut base, ours, Passthrough);
    bev.on(&mut base).write(b"bye").unwrap();
    run_until(&mut base, &mut (), "the bytes", |_| {
        bev.output_len().unwrap() == 0
    });
    bev.free(&mut base).unwrap();
    assert_eq!(
        read_available_or_eof(&peer),
        (b"bye".to_vec(), true),
        "the bytes, then EOF: the fd under was closed"
    );

    // Dropped handles: the socket stays while it has bytes to send, and goes (its fd
    // closed) after.
    let (peer, ours) = socketpair();
    let bev = filtered_end(&mut base, ours, Passthrough);
    bev.on(&mut base).write(&[5; 300_000]).unwrap();
    drop(bev);
    let mut got = 0;
    run_until(&mut base, &mut (), "all bytes, then EOF", |_| {
        let (now, eof) = read_available_or_eof(&peer);
        got += now.len();
        eof
    });
    assert_eq!(got, 300_000);
}
