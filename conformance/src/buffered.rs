//! Buffered sockets and the listener on every backend: both directions, watermarks,
//! timeouts, connect, EOF, freeing from callbacks, many clients, fd exhaustion, a large
//! transfer and a slow reader.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use evloop_core::{
    BevEvent, BevOptions, BufferedSocket, Interest, Listener, ListenerOptions, RunOutcome,
};

use crate::util::{fill, patience, read_available, run_until, socketpair};
use crate::Harness;

const RW: Interest = Interest::READ.union(Interest::WRITE);

/// Everything in a buffered socket's input, removed.
fn take_input<D>(bev: &mut evloop_core::BevContext<'_, D>) -> Vec<u8> {
    let mut buf = vec![0; bev.input().len()];
    bev.input().remove(&mut buf).unwrap();
    buf
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[derive(Default)]
struct Talk {
    a_got: Vec<u8>,
    b_got: Vec<u8>,
    events: Vec<(&'static str, BevEvent)>,
}

/// `a` asks, `b` answers once the whole question is in, `a` frees itself once the whole
/// answer is in, and `b` frees itself on its first event (the EOF that `a`'s free causes).
/// Returns what each side received and `b`'s events.
fn ask_and_answer(
    base: &mut evloop_core::Base<Talk>,
    a: &BufferedSocket<Talk>,
    b: &BufferedSocket<Talk>,
    question: &'static [u8],
    answer: &'static [u8],
) -> Talk {
    b.on(base).set_read_callback(move |bev, t: &mut Talk| {
        let buf = take_input(bev);
        t.b_got.extend(&buf);
        if t.b_got == question {
            bev.write(answer).unwrap();
        }
    });
    a.on(base).set_read_callback(move |bev, t: &mut Talk| {
        let buf = take_input(bev);
        t.a_got.extend(&buf);
        if t.a_got == answer {
            bev.free();
        }
    });
    b.on(base).set_event_callback(|bev, t: &mut Talk| {
        t.events.push(("b", bev.fired()));
        bev.free();
    });
    a.on(base).enable(RW).unwrap();
    b.on(base).enable(RW).unwrap();
    a.on(base).write(question).unwrap();
    let mut t = Talk::default();
    assert_eq!(base.run(&mut t).unwrap(), RunOutcome::NoEvents);
    t
}

/// Two buffered sockets over a socket pair talk both ways.
pub fn buffered_socketpair_both_ways(h: &Harness) {
    let (x, y) = socketpair();
    let mut base = h.base::<Talk>();
    let a = BufferedSocket::new(&mut base, x, BevOptions::default()).unwrap();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let t = ask_and_answer(&mut base, &a, &b, b"hello", b"world");
    assert_eq!(
        (t.a_got.as_slice(), t.b_got.as_slice()),
        (&b"world"[..], &b"hello"[..])
    );
    assert_eq!(
        t.events,
        [("b", BevEvent::EOF | BevEvent::READING)],
        "a's free closes its fd"
    );
}

/// The read callback waits for the low watermark; reading stops at the high watermark, so
/// the input never holds more, and nothing is lost.
pub fn read_watermarks(h: &Harness) {
    #[derive(Default)]
    struct W {
        runs: usize,
        max_seen: usize,
        consumed: usize,
        left: usize,
    }
    let (x, y) = socketpair();
    let mut base = h.base::<W>();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_read_watermark(10, 20).unwrap();
    control.set_read_callback(|bev, w: &mut W| {
        w.runs += 1;
        let n = bev.input().len();
        assert!(n >= 10, "read callback below the low watermark: {n}");
        w.max_seen = w.max_seen.max(n);
        w.consumed += bev.input().drain(7).unwrap();
        w.left = bev.input().len();
    });
    control.enable(Interest::READ).unwrap();
    crate::util::write_all(&x, &[1; 5]);
    let mut w = W::default();
    for _ in 0..5 {
        crate::util::turn(&mut base, &mut w);
    }
    assert_eq!(w.runs, 0, "callback with 5 of 10 bytes");
    crate::util::write_all(&x, &[2; 95]);
    // The callback drains 7 bytes per read; reading resumes below the high watermark.
    run_until(&mut base, &mut w, "watermarked reads", |w| {
        w.consumed + w.left == 100
    });
    assert!(
        w.max_seen <= 20,
        "input grew to {} past the high watermark",
        w.max_seen
    );
    assert!(w.runs >= 100 / 20, "{} callbacks", w.runs);
    b.free(&mut base).unwrap();
}

/// The write callback runs once the output drains to the write low watermark.
pub fn write_watermark(h: &Harness) {
    let (x, y) = socketpair();
    let mut base = h.base::<Vec<usize>>();
    let a = BufferedSocket::new(&mut base, x, BevOptions::default()).unwrap();
    let mut a = a.on(&mut base);
    a.set_write_watermark(0, 0).unwrap();
    a.set_write_callback(|bev, seen: &mut Vec<usize>| {
        seen.push(bev.output().len());
        bev.free();
    });
    a.write(&[7; 3000]).unwrap();
    let mut seen = Vec::new();
    base.run(&mut seen).unwrap();
    assert_eq!(seen, [0]);
    assert_eq!(read_available(&y).len(), 3000);
}

/// A read timeout with no data reports TIMEOUT|READING, no earlier than the timeout, and
/// disables reading.
pub fn read_timeout(h: &Harness) {
    let (_x, y) = socketpair();
    let mut base = h.base::<Vec<(BevEvent, Instant)>>();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_event_callback(|bev, log: &mut Vec<_>| {
        log.push((bev.fired(), Instant::now()));
        bev.free();
    });
    control
        .set_timeouts(Some(Duration::from_millis(50)), None)
        .unwrap();
    let start = Instant::now();
    b.on(&mut base).enable(Interest::READ).unwrap();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, BevEvent::TIMEOUT | BevEvent::READING);
    assert!(log[0].1 - start >= Duration::from_millis(50));
}

/// A write timeout on a peer that never reads reports TIMEOUT|WRITING.
pub fn write_timeout(h: &Harness) {
    let (x, _y) = socketpair();
    fill(&x);
    let mut base = h.base::<Vec<BevEvent>>();
    let a = BufferedSocket::new(&mut base, x, BevOptions::default()).unwrap();
    let mut a = a.on(&mut base);
    a.set_event_callback(|bev, log: &mut Vec<BevEvent>| {
        log.push(bev.fired());
        bev.free();
    });
    a.set_timeouts(None, Some(Duration::from_millis(30)))
        .unwrap();
    a.write(&[1; 1000]).unwrap();
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(log, [BevEvent::TIMEOUT | BevEvent::WRITING]);
}

/// A non-blocking connect to a listening port reports CONNECTED, and the listener sees the
/// connection.
pub fn connect_success(h: &Harness) {
    #[derive(Default)]
    struct S {
        connected: bool,
        accepted: usize,
    }
    let mut base = h.base::<S>();
    let listener = Listener::bind(
        &mut base,
        loopback(),
        ListenerOptions::default(),
        |_, _fd, _, s: &mut S| s.accepted += 1,
    )
    .unwrap();
    let bev = BufferedSocket::connect(
        &mut base,
        listener.local_addr().unwrap(),
        BevOptions::default(),
    )
    .unwrap();
    bev.on(&mut base).set_event_callback(|bev, s: &mut S| {
        assert_eq!(bev.fired(), BevEvent::CONNECTED, "{:?}", bev.error());
        s.connected = true;
        bev.free();
    });
    let mut s = S::default();
    run_until(&mut base, &mut s, "connect and accept", |s| {
        s.connected && s.accepted == 1
    });
    listener.free(&mut base).unwrap();
}

/// A connect to a closed port reports ERROR with `ConnectionRefused`.
pub fn connect_failure(h: &Harness) {
    let port = TcpListener::bind(loopback()).unwrap().local_addr().unwrap(); // closed at once
    let mut base = h.base::<Vec<(BevEvent, Option<io::ErrorKind>)>>();
    let bev = BufferedSocket::connect(&mut base, port, BevOptions::default()).unwrap();
    bev.on(&mut base)
        .set_event_callback(|bev, log: &mut Vec<_>| {
            log.push((bev.fired(), bev.error().map(|e| e.kind())));
            bev.free();
        });
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    assert_eq!(
        log,
        [(BevEvent::ERROR, Some(io::ErrorKind::ConnectionRefused))]
    );
}

/// While connecting, the connect's outcome is decided first, whatever order readiness comes
/// in (select reports a refused socket readable before writable, and a read would consume the
/// error): a refused connect is exactly one ERROR event carrying the errno, never CONNECTED,
/// also with reading enabled, deferred callbacks, and a callback that does not free the
/// socket.
pub fn refused_connect_is_one_error_whatever_the_readiness_order(h: &Harness) {
    type Log = Vec<(BevEvent, Option<io::ErrorKind>)>;
    for defer_callbacks in [false, true] {
        let port = TcpListener::bind(loopback()).unwrap().local_addr().unwrap(); // closed
        let mut base = h.base::<Log>();
        let options = BevOptions {
            defer_callbacks,
            ..BevOptions::default()
        };
        let bev = BufferedSocket::connect(&mut base, port, options).unwrap();
        let mut control = bev.on(&mut base);
        control.enable(Interest::READ | Interest::WRITE).unwrap();
        control.set_event_callback(|bev, log: &mut Log| {
            log.push((bev.fired(), bev.error().map(|e| e.kind())));
        });
        let mut log = Log::new();
        run_until(&mut base, &mut log, "the connect's outcome", |l| {
            !l.is_empty()
        });
        for _ in 0..10 {
            crate::util::turn(&mut base, &mut log);
        }
        assert_eq!(
            log,
            [(BevEvent::ERROR, Some(io::ErrorKind::ConnectionRefused))],
            "defer_callbacks {defer_callbacks}"
        );
        bev.free(&mut base).unwrap();
    }
}

/// A connect that does not complete within the write timeout is one TIMEOUT|WRITING, never
/// CONNECTED (`SO_ERROR` is 0 while a connect is in progress), and it does not repeat: the
/// timeout disables writing, as in libevent. A listener with backlog 0 whose one queue slot is
/// taken drops further SYNs, so the connect stays in progress.
#[cfg(unix)]
pub fn connect_timeout_is_one_timeout(h: &Harness) {
    use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
    let full = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&full, &loopback()).unwrap();
    listen(&full, 0).unwrap();
    let addr = SocketAddr::try_from(rustix::net::getsockname(&full).unwrap()).unwrap();
    let _queued = TcpStream::connect(addr).unwrap(); // takes the queue's one place
    let mut base = h.base::<Vec<BevEvent>>();
    let bev = BufferedSocket::connect(&mut base, addr, BevOptions::default()).unwrap();
    let mut control = bev.on(&mut base);
    control.set_event_callback(|bev, log: &mut Vec<BevEvent>| log.push(bev.fired()));
    control
        .set_timeouts(None, Some(Duration::from_millis(40)))
        .unwrap();
    let mut log = Vec::new();
    run_until(&mut base, &mut log, "the connect timeout", |l| {
        !l.is_empty()
    });
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        crate::util::turn(&mut base, &mut log);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(log, [BevEvent::TIMEOUT | BevEvent::WRITING]);
    bev.free(&mut base).unwrap();
}

/// The peer closing reports EOF|READING after the data before it was read.
pub fn eof_after_data(h: &Harness) {
    let (x, y) = socketpair();
    crate::util::write_all(&x, b"last words");
    drop(x);
    let mut base = h.base::<(Vec<u8>, Vec<BevEvent>)>();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_read_callback(|bev, (got, _): &mut (Vec<u8>, Vec<BevEvent>)| {
        let buf = take_input(bev);
        got.extend(buf);
    });
    control.set_event_callback(|bev, (_, events): &mut (Vec<u8>, Vec<BevEvent>)| {
        events.push(bev.fired());
        bev.free();
    });
    control.enable(Interest::READ).unwrap();
    let mut data = (Vec::new(), Vec::new());
    base.run(&mut data).unwrap();
    assert_eq!(data.0, b"last words");
    assert_eq!(data.1, [BevEvent::EOF | BevEvent::READING]);
}

/// Freeing a socket from its read callback: no further callbacks, its events are gone (the
/// loop ends), its fd is closed (the peer sees EOF), and the handle reports it freed.
pub fn free_inside_callbacks(h: &Harness) {
    let (x, y) = socketpair();
    let mut base = h.base::<usize>();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_read_callback(|bev, runs: &mut usize| {
        *runs += 1;
        assert!(bev.free().is_none(), "close_on_free keeps the fd");
    });
    control.set_event_callback(|_, runs: &mut usize| *runs += 100);
    control.enable(Interest::READ).unwrap();
    crate::util::write_all(&x, b"x");
    let mut runs = 0;
    assert_eq!(base.run(&mut runs).unwrap(), RunOutcome::NoEvents);
    assert_eq!(runs, 1);
    assert_eq!(base.num_events(), 0);
    let mut buf = [0u8; 4];
    assert_eq!(
        rustix::io::read(&x, &mut buf).unwrap(),
        0,
        "the peer sees EOF"
    );
    assert_eq!(
        b.on(&mut base).write(b"x").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

/// A pair: each side reads what the other writes; freeing one tells the other EOF.
pub fn pair_both_ways_and_eof_on_free(h: &Harness) {
    let mut base = h.base::<Talk>();
    let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default()).unwrap();
    let t = ask_and_answer(&mut base, &a, &b, b"ping", b"pong");
    assert_eq!(
        (t.a_got.as_slice(), t.b_got.as_slice()),
        (&b"pong"[..], &b"ping"[..])
    );
    assert_eq!(t.events, [("b", BevEvent::EOF | BevEvent::READING)]);
}

/// A pair's read and write timeouts fire as a socket's do: no data arriving within the read
/// timeout reports TIMEOUT|READING, output the partner does not take within the write
/// timeout TIMEOUT|WRITING; activity restarts them (libevent's generic timeouts on pairs).
pub fn pair_timeouts_fire(h: &Harness) {
    type Log = Vec<(&'static str, BevEvent, Instant)>;
    let mut base = h.base::<Log>();
    let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default()).unwrap();
    for (bev, name) in [(&a, "a"), (&b, "b")] {
        bev.on(&mut base)
            .set_event_callback(move |bev, log: &mut Log| {
                log.push((name, bev.fired(), Instant::now()));
            });
    }
    let start = Instant::now();
    // b reads and nothing comes: its read timeout fires.
    let mut control = b.on(&mut base);
    control
        .set_timeouts(Some(Duration::from_millis(40)), None)
        .unwrap();
    control.enable(Interest::READ).unwrap();
    // a writes, but b stops reading: a's output stays, and its write timeout fires.
    let mut log = Log::new();
    run_until(&mut base, &mut log, "b's read timeout", |l| !l.is_empty());
    assert_eq!(log[0].0, "b");
    assert_eq!(log[0].1, BevEvent::TIMEOUT | BevEvent::READING);
    assert!(log[0].2 - start >= Duration::from_millis(40), "early");
    // The timeout disabled b's reading, so what a writes now stays in a's output.
    a.on(&mut base)
        .set_timeouts(None, Some(Duration::from_millis(40)))
        .unwrap();
    let written = Instant::now();
    a.on(&mut base).write(b"waiting").unwrap();
    run_until(&mut base, &mut log, "a's write timeout", |l| l.len() >= 2);
    assert_eq!(log[1].0, "a");
    assert_eq!(log[1].1, BevEvent::TIMEOUT | BevEvent::WRITING);
    assert!(log[1].2 - written >= Duration::from_millis(40), "early");
    assert_eq!(a.output_len().unwrap(), 7, "the bytes stay with the writer");
    a.free(&mut base).unwrap();
    b.free(&mut base).unwrap();
}

/// On a pair, bytes wait in the writer's output while the partner does not read (libevent's
/// flow): nothing reaches an input whose reading is disabled, and all of it arrives, in order,
/// once reading is enabled.
pub fn pair_keeps_bytes_until_the_reader_reads(h: &Harness) {
    let mut base = h.base::<Vec<u8>>();
    let (a, b) = BufferedSocket::pair(&mut base, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_read_callback(|bev, got: &mut Vec<u8>| {
        let n = bev.input().len();
        let mut buf = vec![0; n];
        bev.input().remove(&mut buf).unwrap();
        got.extend_from_slice(&buf);
    });
    control.disable(Interest::READ).unwrap();
    let mut control = a.on(&mut base);
    control.write(b"hello ").unwrap();
    control.write(b"pair").unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        crate::util::turn(&mut base, &mut got);
    }
    assert_eq!(got, b"");
    assert_eq!(
        b.with_input(|i| i.len()).unwrap(),
        0,
        "reached a disabled reader"
    );
    assert_eq!(a.output_len().unwrap(), 10);
    b.on(&mut base).enable(Interest::READ).unwrap();
    run_until(&mut base, &mut got, "the bytes", |g| g.len() >= 10);
    assert_eq!(got, b"hello pair");
    assert_eq!(a.output_len().unwrap(), 0);
    a.free(&mut base).unwrap();
    b.free(&mut base).unwrap();
}

/// An echo server (listener + buffered sockets) serves 500 concurrent clients, each of which
/// gets its own bytes back.
pub fn listener_accepts_500_concurrent_clients(h: &Harness) {
    const CLIENTS: usize = 500;
    let mut base = h.base::<usize>();
    let listener = echo_listener(&mut base);
    let addr = listener.local_addr().unwrap();
    let clients = std::thread::spawn(move || {
        let mut streams: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.write_all(format!("client {i:04}").as_bytes()).unwrap();
        }
        for (i, s) in streams.iter_mut().enumerate() {
            s.set_read_timeout(Some(patience())).unwrap();
            let mut buf = [0u8; 11];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, format!("client {i:04}").as_bytes());
        }
    });
    let mut accepted = 0;
    run_until(&mut base, &mut accepted, "500 clients served", |_| {
        clients.is_finished()
    });
    clients.join().expect("a client saw the wrong bytes");
    assert_eq!(accepted, CLIENTS);
    listener.free(&mut base).unwrap();
}

fn echo_listener(base: &mut evloop_core::Base<usize>) -> Listener<usize> {
    crate::util::echo_listener(base, ListenerOptions::default(), |accepted: &mut usize| {
        *accepted += 1
    })
}

/// Out of fds, the listener reports the error and backs off instead of spinning, then
/// recovers once fds are free. Runs in a child process, since it lowers RLIMIT_NOFILE.
#[cfg(unix)]
pub fn listener_backs_off_on_emfile(h: &Harness) {
    const CHILD: &str = "EVLOOP_CONFORMANCE_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let name = format!("{}::listener_backs_off_on_emfile", h.name());
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--test-threads", "1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("1 passed"),
            "the child did not run the scenario:\n{text}"
        );
        return;
    }
    use crate::util::raw;
    use evloop_core::fd::OwnedFd;
    use rustix::process::{getrlimit, setrlimit, Resource};
    const CLIENTS: usize = 20;
    // (accepted, errors reported)
    let mut base = h.base::<(usize, usize)>();
    let listener = Listener::bind(
        &mut base,
        loopback(),
        ListenerOptions::default(),
        |_, fd: OwnedFd, _, d: &mut (usize, usize)| {
            d.0 += 1;
            drop(fd);
        },
    )
    .unwrap();
    listener
        .set_error_callback(|_, e, d: &mut (usize, usize)| {
            assert!(
                e.to_string()
                    .contains(&format!("os error {}", libc::EMFILE)),
                "{e}"
            );
            d.1 += 1;
        })
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // No fd left: the lowest free fd number becomes the limit.
    let probe = rustix::io::dup(&clients[0]).unwrap();
    let saved = getrlimit(Resource::Nofile);
    let mut low = saved;
    low.current = Some(raw(&probe) as u64);
    drop(probe);
    setrlimit(Resource::Nofile, low).unwrap();
    let mut d = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        base.run_with(
            evloop_core::LoopFlags::ONCE | evloop_core::LoopFlags::NONBLOCK,
            &mut d,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    setrlimit(Resource::Nofile, saved).unwrap();
    assert_eq!(d.0, 0, "accepted without a free fd?");
    // A spinning listener would report thousands of errors in 500 ms; backing off from 10 ms
    // doubling gives a handful.
    assert!((1..=12).contains(&d.1), "{} EMFILE reports in 500 ms", d.1);
    run_until(&mut base, &mut d, "accepts resume once fds are free", |d| {
        d.0 == CLIENTS
    });
    drop(clients);
    listener.free(&mut base).unwrap();
}

/// 64 MiB through an echo server come back byte-exact.
pub fn large_transfer_through_echo(h: &Harness) {
    const TOTAL: usize = 64 << 20;
    let mut base = h.base::<usize>();
    let listener = echo_listener(&mut base);
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(patience() * 3)).unwrap();
        let mut reader = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut chunk = vec![0u8; 1 << 16];
            let mut sent = 0usize;
            while sent < TOTAL {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = ((sent + i) % 251) as u8;
                }
                s.write_all(&chunk).unwrap();
                sent += chunk.len();
            }
        });
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while got < TOTAL {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0, "early EOF at {got}");
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b, ((got + i) % 251) as u8, "byte {}", got + i);
            }
            got += n;
        }
        writer.join().unwrap();
        got
    });
    let mut accepted = 0;
    run_until(&mut base, &mut accepted, "64 MiB echoed", |_| {
        client.is_finished()
    });
    assert_eq!(client.join().expect("corrupted echo"), TOTAL);
    listener.free(&mut base).unwrap();
}

/// A peer that does not read: the writer's output buffer grows past what the kernel holds,
/// and once the peer reads, every byte arrives in order.
pub fn slow_reader_grows_the_output_and_loses_nothing(h: &Harness) {
    // More than the kernel holds: TCP loopback pairs (Windows) take megabytes, AF_UNIX pairs
    // a few hundred kilobytes.
    const TOTAL: usize = if cfg!(windows) { 32 << 20 } else { 4 << 20 };
    let (x, y) = socketpair();
    let mut base = h.base::<()>();
    let a = BufferedSocket::new(&mut base, x, BevOptions::default()).unwrap();
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
    a.on(&mut base).write(&data).unwrap();
    for _ in 0..20 {
        crate::util::turn(&mut base, &mut ());
    }
    let waiting = a.output_len().unwrap();
    assert!(
        waiting > TOTAL / 2,
        "only {waiting} bytes wait in the output"
    );
    let mut got = Vec::with_capacity(TOTAL);
    let start = Instant::now();
    while got.len() < TOTAL {
        assert!(
            start.elapsed() < patience(),
            "received {} of {TOTAL}",
            got.len()
        );
        got.extend(read_available(&y));
        crate::util::turn(&mut base, &mut ());
    }
    assert!(got == data, "bytes lost or reordered");
    a.free(&mut base).unwrap();
}

/// A peer that never reads: with a write high watermark, `write` refuses (`WouldBlock`, the
/// limit named) instead of letting the output grow; everything accepted arrives once the
/// peer reads.
pub fn output_limit_tells_the_writer_and_loses_nothing(h: &Harness) {
    const LIMIT: usize = 256 * 1024;
    let (x, y) = socketpair();
    let mut base = h.base::<()>();
    let a = BufferedSocket::new(&mut base, x, BevOptions::default()).unwrap();
    a.on(&mut base).set_write_watermark(0, LIMIT).unwrap();
    let mut accepted = 0usize;
    let refusal = loop {
        let chunk: Vec<u8> = (accepted..accepted + 65536)
            .map(|i| (i % 241) as u8)
            .collect();
        match a.on(&mut base).write(&chunk) {
            Ok(()) => accepted += chunk.len(),
            Err(e) => break e,
        }
        crate::util::turn(&mut base, &mut ());
        assert!(accepted < 64 << 20, "the limit never took effect");
    };
    assert_eq!(refusal.kind(), io::ErrorKind::WouldBlock);
    assert!(
        refusal.to_string().contains(&format!("limit of {LIMIT}")),
        "{refusal}"
    );
    assert!(a.output_len().unwrap() <= LIMIT);
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < accepted {
        assert!(
            start.elapsed() < patience(),
            "received {} of {accepted}",
            got.len()
        );
        got.extend(read_available(&y));
        crate::util::turn(&mut base, &mut ());
    }
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 241) as u8),
        "bytes corrupted"
    );
    a.free(&mut base).unwrap();
}

/// The peer resets the connection while we write: the event callback reports ERROR while
/// writing (EPIPE or ECONNRESET), the process is not killed by SIGPIPE, the loop goes on.
pub fn peer_reset_mid_write_reports_an_error(h: &Harness) {
    let server = TcpListener::bind(loopback()).unwrap();
    let mut base = h.base::<Vec<(BevEvent, Option<io::ErrorKind>)>>();
    let bev = BufferedSocket::connect(
        &mut base,
        server.local_addr().unwrap(),
        BevOptions::default(),
    )
    .unwrap();
    bev.on(&mut base)
        .set_event_callback(|bev, log: &mut Vec<_>| {
            log.push((bev.fired(), bev.error().map(|e| e.kind())));
            if !bev.fired().contains(BevEvent::CONNECTED) {
                bev.free();
            }
        });
    let (peer, _) = server.accept().unwrap();
    let mut log = Vec::new();
    run_until(&mut base, &mut log, "connected", |l| !l.is_empty());
    rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
    drop(peer); // RST
    let chunk = vec![7u8; 1 << 16];
    let start = Instant::now();
    while log.len() < 2 {
        assert!(start.elapsed() < patience(), "no error reported: {log:?}");
        let _ = bev.on(&mut base).write(&chunk);
        crate::util::turn(&mut base, &mut log);
    }
    let (what, kind) = log[1];
    assert!(
        what.contains(BevEvent::ERROR) && what.contains(BevEvent::WRITING),
        "{log:?}"
    );
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
        ),
        "{log:?}"
    );
}

/// A half-closed socket: the peer shuts down its writing side; we hear EOF while reading,
/// and can still write our answer, which the peer reads.
pub fn half_closed_socket_still_writes(h: &Harness) {
    let (x, y) = socketpair();
    let mut base = h.base::<Vec<BevEvent>>();
    let b = BufferedSocket::new(&mut base, y, BevOptions::default()).unwrap();
    let mut control = b.on(&mut base);
    control.set_event_callback(|bev, log: &mut Vec<BevEvent>| {
        log.push(bev.fired());
        bev.write(b"bye").unwrap();
    });
    control.set_write_callback(|bev, _| {
        bev.free();
    });
    control.enable(RW).unwrap();
    rustix::net::shutdown(&x, rustix::net::Shutdown::Write).unwrap();
    let mut log = Vec::new();
    assert_eq!(base.run(&mut log).unwrap(), RunOutcome::NoEvents);
    assert_eq!(log, [BevEvent::EOF | BevEvent::READING]);
    let mut got = [0u8; 8];
    let n = rustix::io::read(&x, &mut got).unwrap();
    assert_eq!(&got[..n], b"bye");
}

/// A socket whose handles were all dropped is freed by the loop once none of its callbacks
/// can run again (here: EOF stopped reading and nothing is left to write), closing its fd;
/// one whose handle is kept stays until it is freed. Both see the same EOF.
pub fn unreachable_socket_is_freed_after_its_last_callback(h: &crate::Harness) {
    let mut base = h.base::<Vec<&'static str>>();
    let mut peers = Vec::new();
    let mut kept = None;
    for name in ["dropped", "kept"] {
        let (peer, fd) = socketpair();
        let bev = BufferedSocket::new(&mut base, fd, BevOptions::default()).unwrap();
        let mut control = bev.on(&mut base);
        control.set_read_callback(|bev, _| drop(take_input(bev)));
        control.set_event_callback(move |bev, log: &mut Vec<&'static str>| {
            if bev.fired().contains(BevEvent::EOF) {
                log.push(name); // and no free
            }
        });
        control.enable(Interest::READ).unwrap();
        if name == "kept" {
            kept = Some(bev);
        }
        peers.push(peer);
    }
    let kept = kept.unwrap();
    let mut log = Vec::new();
    drop(peers);
    run_until(&mut base, &mut log, "both EOFs", |l| l.len() == 2);
    log.sort_unstable();
    assert_eq!(log, ["dropped", "kept"]);
    assert!(!kept.is_freed());
    assert_eq!(
        base.run(&mut log).unwrap(),
        RunOutcome::NoEvents,
        "a socket after EOF keeps no event pending"
    );
    // Only the kept socket's three events are left in the base.
    assert_eq!(
        base.dump_events().lines().count(),
        3,
        "{}",
        base.dump_events()
    );
    assert!(kept.free(&mut base).unwrap().is_none());
    assert_eq!(base.dump_events(), "");
}

/// A buffered socket over a pipe: writing finds on its first send that the fd is not a
/// socket and writes with `write(2)` from then on, losing nothing; reading a pipe's other
/// end sees every byte, then EOF.
#[cfg(unix)]
pub fn buffered_socket_over_pipes(h: &Harness) {
    let (read_end, write_end) = rustix::pipe::pipe().expect("pipe");
    rustix::io::ioctl_fionbio(&read_end, true).unwrap();
    rustix::io::ioctl_fionbio(&write_end, true).unwrap();
    let mut base = h.base::<(Vec<u8>, Vec<BevEvent>)>();
    let writer = BufferedSocket::new(&mut base, write_end, BevOptions::default()).unwrap();
    let reader = BufferedSocket::new(&mut base, read_end, BevOptions::default()).unwrap();
    reader
        .on(&mut base)
        .set_read_callback(|bev, (got, _): &mut (Vec<u8>, Vec<BevEvent>)| {
            got.extend(take_input(bev));
        });
    reader
        .on(&mut base)
        .set_event_callback(|bev, (_, events): &mut (Vec<u8>, Vec<BevEvent>)| {
            events.push(bev.fired());
            bev.free();
        });
    reader.on(&mut base).enable(Interest::READ).unwrap();
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let mut writer = writer.on(&mut base);
    writer.write(&sent).unwrap();
    writer.free_after_flush().unwrap();
    let mut data = (Vec::new(), Vec::new());
    base.run(&mut data).unwrap();
    assert!(data.0 == sent, "{} of {} bytes", data.0.len(), sent.len());
    assert_eq!(data.1, [BevEvent::EOF | BevEvent::READING]);
}
