//! How sockets end and what a user reaches them with: a base dropped while handles are held
//! closes what it owned; `free_after_flush` sends everything, then closes (bounded by the
//! write timeout); user events; socket options on every side.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use evloop_core::{
    BevControl, BevOptions, BevReach, BufferedSocket, Fired, Interest, Listener, ListenerOptions,
    LoopFlags, SocketOptions,
};

use crate::util::{read_available_or_eof, run_until, socketpair, tcp_pair};
use crate::Harness;

/// Dropping the base while the program still holds a socket's and a listener's handles
/// closes their fds: the socket's peer reads EOF, a connect to the listener is refused,
/// and the handles answer `NotConnected` without a panic.
pub fn dropping_the_base_closes_what_it_owned(h: &Harness) {
    let (ours, mut peer) = tcp_pair();
    let mut base = h.base::<()>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let mut control = bev.on(&mut base);
    control.set_read_callback(|_, _| {});
    control.enable(Interest::READ).unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let listener =
        Listener::bind(&mut base, addr, ListenerOptions::default(), |_, _, _, _| {}).unwrap();
    let listening = listener.local_addr().unwrap();
    drop(base);

    let mut buf = [0u8; 16];
    assert_eq!(
        peer.read(&mut buf).expect("EOF, not a hang"),
        0,
        "the peer sees EOF"
    );
    assert!(
        TcpStream::connect(listening).is_err(),
        "the listening socket is closed"
    );
    let e = bev.output_len().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    assert!(e.to_string().contains("base"), "{e}");
    assert!(bev.is_freed());
    let e = listener.local_addr().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    // A new base cannot be handed a dead socket's work either.
    let mut other = h.base::<()>();
    let e = bev.on(&mut other).write(b"late").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    assert!(bev.free(&mut other).is_err());
    assert!(listener.free(&mut other).is_err());
}

/// `free_after_flush` with 1 MiB waiting for a slow reader: everything arrives, then EOF,
/// and the loop ends by itself (the socket is gone); from inside a read callback it ends a
/// reply the same way.
pub fn free_after_flush_sends_everything_then_closes(h: &Harness) {
    let (ours, mut peer) = tcp_pair();
    let mut base = h.base::<()>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let sent: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let mut control = bev.on(&mut base);
    control.write(&sent).unwrap();
    control.free_after_flush().unwrap();
    assert!(
        bev.on(&mut base).write(b"more").is_err(),
        "closing: no more writes"
    );
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).map(|_| got)
    });
    base.run(&mut ()).unwrap();
    let got = reader.join().unwrap().expect("to EOF");
    assert!(
        got == sent,
        "{} bytes of {} arrived, or changed",
        got.len(),
        sent.len()
    );
    assert!(bev.is_freed());

    // From a read callback: answer, then close.
    let (ours, mut peer) = tcp_pair();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let mut control = bev.on(&mut base);
    control.set_read_callback(|bev, _| {
        let n = bev.input().len();
        bev.input().drain(n).unwrap();
        bev.write(b"bye").unwrap();
        bev.free_after_flush().unwrap();
    });
    control.enable(Interest::READ).unwrap();
    drop(bev);
    peer.write_all(b"quit").unwrap();
    base.run(&mut ()).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
}

/// A peer that never reads cannot hold a closing socket forever: the write timeout frees it.
pub fn free_after_flush_is_bounded_by_the_write_timeout(h: &Harness) {
    let (ours, peer) = socketpair();
    // Before the base: its cached time, from which the timeout counts, is no earlier.
    let start = Instant::now();
    let mut base = h.base::<()>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let timeout = Duration::from_millis(100);
    let mut control = bev.on(&mut base);
    control.set_timeouts(None, Some(timeout)).unwrap();
    control.write(&vec![1u8; 8 << 20]).unwrap();
    control.free_after_flush().unwrap();
    base.run(&mut ()).unwrap();
    assert!(
        start.elapsed() >= timeout,
        "freed after {:?}",
        start.elapsed()
    );
    assert!(bev.is_freed());
    // The fd is closed: the peer reads what was sent, then EOF.
    let mut eof = false;
    run_until(&mut base, &mut (), "EOF after the timeout", |_| {
        eof = read_available_or_eof(&peer).1;
        eof
    });
}

/// A user event runs only when activated: several activations from the loop and from
/// another thread merge into runs whose `ncalls` add up; it does not keep the loop alive.
pub fn user_events_run_when_activated(h: &Harness) {
    let mut base = h.base::<(u32, u32)>();
    let ev = base
        .new_user_event(|ctx, (runs, calls): &mut (u32, u32)| {
            *runs += 1;
            *calls += ctx.ncalls();
            if *calls == 10 {
                ctx.loop_break();
            }
        })
        .unwrap();
    let mut seen = (0, 0);
    assert_eq!(
        base.run(&mut seen).unwrap(),
        evloop_core::RunOutcome::NoEvents,
        "a user event keeps nothing alive"
    );
    base.activate(ev, Fired::empty(), 1).unwrap();
    base.activate(ev, Fired::empty(), 1).unwrap();
    base.run_with(LoopFlags::ONCE, &mut seen).unwrap();
    assert_eq!(seen, (1, 2), "two activations, one run");
    let handle = base.handle().unwrap();
    let sender = std::thread::spawn(move || {
        for _ in 0..8 {
            handle.activate(ev, Fired::empty(), 1).unwrap();
        }
    });
    base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut seen)
        .unwrap();
    sender.join().unwrap();
    assert_eq!(seen.1, 10, "every activation counted");
    base.free(ev).unwrap();
    assert!(base.activate(ev, Fired::empty(), 1).is_err());
}

/// Socket options reach the fd on every side: a connect (set before it), an accepted
/// connection, a live socket; an option out of range is an error naming it, before any
/// socket is made.
pub fn socket_options_on_every_side(h: &Harness) {
    use rustix::net::sockopt;
    // Wine has no TCP_KEEPIDLE (Windows has since 10 1709): there, keep-alive is checked
    // apart, for a clear error at least.
    let keepalive = if cfg!(windows) {
        None
    } else {
        Some(Duration::from_secs(30))
    };
    let wanted = SocketOptions {
        nodelay: Some(true),
        keepalive,
        send_buffer: Some(64 * 1024),
        recv_buffer: Some(64 * 1024),
    };
    let check = |fd: evloop_core::fd::BorrowedFd<'_>, side: &str| {
        assert!(sockopt::tcp_nodelay(fd).unwrap(), "{side}: TCP_NODELAY");
        #[cfg(not(any(windows, target_os = "openbsd")))]
        {
            assert!(
                sockopt::socket_keepalive(fd).unwrap(),
                "{side}: SO_KEEPALIVE"
            );
            assert_eq!(
                sockopt::tcp_keepidle(fd).unwrap(),
                Duration::from_secs(30),
                "{side}: TCP_KEEPIDLE"
            );
        }
        // Kernels round (Linux doubles); at least what was asked.
        assert!(
            sockopt::socket_send_buffer_size(fd).unwrap() >= 64 * 1024,
            "{side}: SO_SNDBUF"
        );
    };
    let mut base = h.base::<Vec<evloop_core::fd::OwnedFd>>();
    let options = ListenerOptions {
        socket: wanted,
        ..ListenerOptions::default()
    };
    let addr = "127.0.0.1:0".parse().unwrap();
    let listener =
        Listener::bind(&mut base, addr, options, |_, fd, _, kept| kept.push(fd)).unwrap();
    let client = BufferedSocket::connect(
        &mut base,
        listener.local_addr().unwrap(),
        BevOptions {
            socket: wanted,
            ..BevOptions::default()
        },
    )
    .unwrap();
    let mut accepted = Vec::new();
    run_until(&mut base, &mut accepted, "the accept", |a| !a.is_empty());
    use evloop_core::fd::AsFd;
    check(accepted[0].as_fd(), "accepted");
    // SAFETY: the socket is alive and owns its fd for this test's length.
    check(
        unsafe { evloop_core::fd::BorrowedFd::borrow_raw(client.fd()) },
        "connected",
    );

    let (plain, _peer) = tcp_pair();
    let live = BufferedSocket::new(&mut base, plain, BevOptions::default()).unwrap();
    live.set_socket_options(wanted).unwrap();
    // SAFETY: as above.
    check(
        unsafe { evloop_core::fd::BorrowedFd::borrow_raw(live.fd()) },
        "live",
    );

    if cfg!(windows) {
        let idle = SocketOptions {
            keepalive: Some(Duration::from_secs(30)),
            ..SocketOptions::default()
        };
        if let Err(e) = live.set_socket_options(idle) {
            assert!(e.to_string().contains("TCP_KEEPIDLE of 30s"), "{e}");
        }
    }
    let zero = SocketOptions {
        send_buffer: Some(0),
        ..SocketOptions::default()
    };
    let e = live.set_socket_options(zero).unwrap_err();
    assert!(e.to_string().contains("send buffer of 0 bytes"), "{e}");
    let bad = ListenerOptions {
        socket: SocketOptions {
            keepalive: Some(Duration::from_millis(1500)),
            ..SocketOptions::default()
        },
        ..ListenerOptions::default()
    };
    let e = Listener::bind(&mut base, addr, bad, |_, _, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("1.5s"), "{e}");
    let e = BufferedSocket::pair(
        &mut base,
        BevOptions {
            socket: wanted,
            ..BevOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
    live.free(&mut base).unwrap();
    client.free(&mut base).unwrap();
    listener.free(&mut base).unwrap();
}

/// A handle used inside the socket's own callback works: its writes, callback replacement
/// and disable are queued and applied in program order with the context's own calls; what
/// only reads answers `ResourceBusy`; a free through the handle frees the socket when the
/// callback returns, and a write after it is refused, not lost silently.
pub fn a_handle_works_inside_its_own_callbacks(h: &Harness) {
    #[derive(Default)]
    struct Seen {
        first: usize,
        second: usize,
        busy_read: Option<std::io::ErrorKind>,
        write_after_free: Option<std::io::ErrorKind>,
    }
    let (ours, mut peer) = tcp_pair();
    let mut base = h.base::<Seen>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let me = bev.clone();
    let mut control = bev.on(&mut base);
    control.set_read_callback(move |ctx, seen: &mut Seen| {
        seen.first += 1;
        let n = ctx.input().len();
        ctx.input().drain(n).unwrap();
        me.on(ctx.context()).write(b"a").unwrap();
        ctx.write(b"b").unwrap(); // the queued "a" goes first
        me.on(ctx.context()).write(b"c").unwrap();
        seen.busy_read = me.input_len().err().map(|e| e.kind());
        let again = me.clone();
        me.on(ctx.context())
            .set_read_callback(move |ctx, seen: &mut Seen| {
                seen.second += 1;
                let n = ctx.input().len();
                ctx.input().drain(n).unwrap();
                again.on(ctx.context()).write(b"!").unwrap();
                again.clone().free(ctx.context()).unwrap();
                seen.write_after_free = again
                    .on(ctx.context())
                    .write(b"lost")
                    .err()
                    .map(|e| e.kind());
            });
    });
    control.enable(Interest::READ).unwrap();
    drop(bev);
    let mut seen = Seen::default();
    peer.write_all(b"1").unwrap();
    let mut got = [0u8; 3];
    run_until(&mut base, &mut seen, "the first answer", |s| s.first == 1);
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc", "queued and direct writes in program order");
    assert_eq!(seen.busy_read, Some(std::io::ErrorKind::ResourceBusy));
    peer.write_all(b"2").unwrap();
    base.run(&mut seen).unwrap(); // ends: the socket frees itself
    assert_eq!(
        (seen.first, seen.second),
        (1, 1),
        "the replaced callback ran"
    );
    assert_eq!(seen.write_after_free, Some(std::io::ErrorKind::NotFound));
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"!", "the write before the free went out, then EOF");
}

/// The changes a socket takes are one method set, `BevControl`, reached from a handle (`on`)
/// and from a callback's context alike: a helper generic over `BevReach` works through both
/// with the same effect (a read high watermark of 4, then none); after a free, every change
/// is refused with `NotFound` through both, the watermark setters included.
pub fn one_method_set_from_a_handle_and_a_callback(h: &Harness) {
    use std::io::ErrorKind;
    fn read_at_most<D: 'static, S: BevReach<D>>(
        bev: &mut BevControl<'_, D, S>,
        high: usize,
    ) -> std::io::Result<()> {
        bev.set_read_watermark(1, high)
    }
    /// What each change answers: `None` for `Ok`.
    fn refusals<D: 'static, S: BevReach<D>>(
        bev: &mut BevControl<'_, D, S>,
    ) -> Vec<Option<ErrorKind>> {
        let kind = |r: std::io::Result<()>| r.err().map(|e| e.kind());
        vec![
            kind(bev.set_read_watermark(0, 0)),
            kind(bev.set_write_watermark(0, 0)),
            kind(bev.set_timeouts(None, None)),
            kind(bev.enable(Interest::READ)),
            kind(bev.disable(Interest::READ)),
            kind(bev.write(b"x")),
            kind(bev.flush()),
            kind(bev.free_after_flush()),
        ]
    }
    #[derive(Default)]
    struct Seen {
        reads: Vec<usize>,
        in_callback: Vec<Option<ErrorKind>>,
    }
    let (ours, mut peer) = tcp_pair();
    let mut base = h.base::<Seen>();
    let bev = BufferedSocket::new(&mut base, ours, BevOptions::default()).unwrap();
    let mut control = bev.on(&mut base);
    read_at_most(&mut control, 4).unwrap();
    control.set_read_callback(|bev, seen: &mut Seen| {
        let n = bev.input().len();
        bev.input().drain(n).unwrap();
        seen.reads.push(n);
        if seen.reads.len() == 1 {
            read_at_most(bev, 0).unwrap(); // the same helper, on the context
        } else {
            bev.free();
            seen.in_callback = refusals(bev);
        }
    });
    control.enable(Interest::READ).unwrap();
    peer.write_all(&[1; 10]).unwrap();
    let mut seen = Seen::default();
    run_until(&mut base, &mut seen, "two reads", |s| s.reads.len() == 2);
    assert_eq!(
        seen.reads,
        [4, 6],
        "4 under the first watermark, the rest once it went"
    );
    let refused = vec![Some(ErrorKind::NotFound); 8];
    assert_eq!(seen.in_callback, refused, "after the context's free");
    assert!(bev.is_freed());
    assert_eq!(
        refusals(&mut bev.on(&mut base)),
        refused,
        "through a handle"
    );
}

/// Connecting by name: "localhost" connects (trying each address it names: ::1 may come
/// first with nothing listening there) and carries bytes; a name that does not resolve and a
/// port nobody listens on are each one ERROR naming the host; bad input is refused at once.
pub fn connect_by_host_name(h: &Harness) {
    #[derive(Default)]
    struct Seen {
        events: Vec<evloop_core::BevEvent>,
        errors: Vec<String>,
        got: Vec<u8>,
    }
    let mut base = h.base::<Seen>();
    let listener = crate::util::echo_listener(&mut base, ListenerOptions::default(), |_| {});
    let port = listener.local_addr().unwrap().port();
    let record = |bev: &mut evloop_core::BevContext<'_, Seen>, seen: &mut Seen| {
        seen.events.push(bev.fired());
        if let Some(e) = bev.error() {
            seen.errors.push(e.to_string());
        }
    };
    let bev =
        BufferedSocket::connect_host(&mut base, "localhost", port, BevOptions::default()).unwrap();
    let mut control = bev.on(&mut base);
    control.write(b"ping").unwrap(); // waits in the output until connected
    control.set_event_callback(record);
    control.set_read_callback(|bev, seen: &mut Seen| {
        let n = bev.input().len();
        let mut chunk = vec![0; n];
        bev.input().remove(&mut chunk).unwrap();
        seen.got.extend(chunk);
    });
    control.enable(Interest::READ).unwrap();
    let mut seen = Seen::default();
    run_until(&mut base, &mut seen, "the echo through localhost", |s| {
        s.got.len() == 4 || !s.errors.is_empty()
    });
    assert_eq!(seen.got, b"ping", "{:?}", seen.errors);
    assert_eq!(seen.events, [evloop_core::BevEvent::CONNECTED]);
    bev.free(&mut base).unwrap();
    listener.free(&mut base).unwrap();

    // Nobody listens there any more: every address of localhost refuses.
    let mut seen = Seen::default();
    let bev =
        BufferedSocket::connect_host(&mut base, "localhost", port, BevOptions::default()).unwrap();
    bev.on(&mut base).set_event_callback(record);
    run_until(&mut base, &mut seen, "refusals", |s| !s.events.is_empty());
    assert_eq!(seen.events, [evloop_core::BevEvent::ERROR]);
    assert!(
        seen.errors[0].contains(&format!("connect to localhost:{port}")),
        "{:?}",
        seen.errors
    );

    // A name that cannot resolve (.invalid is reserved for that).
    let mut seen = Seen::default();
    let bev =
        BufferedSocket::connect_host(&mut base, "no-such-host.invalid", 80, BevOptions::default())
            .unwrap();
    bev.on(&mut base).set_event_callback(record);
    run_until(&mut base, &mut seen, "the resolver's answer", |s| {
        !s.events.is_empty()
    });
    assert_eq!(
        seen.events,
        [evloop_core::BevEvent::ERROR | evloop_core::BevEvent::WRITING]
    );
    assert!(
        seen.errors[0].contains("resolve no-such-host.invalid"),
        "{:?}",
        seen.errors
    );
    for bad in ["", "bad\0host"] {
        let e =
            BufferedSocket::connect_host(&mut base, bad, 80, BevOptions::default()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
}

/// `connect_any` tries each address in turn: a refused one, then one that accepts; every
/// address refusing is one ERROR naming the peer and the count.
pub fn connect_tries_each_address_in_turn(h: &Harness) {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut base = h.base::<Vec<(evloop_core::BevEvent, String)>>();
    let record = |bev: &mut evloop_core::BevContext<'_, Vec<(evloop_core::BevEvent, String)>>,
                  seen: &mut Vec<(evloop_core::BevEvent, String)>| {
        let e = bev.error().map(|e| e.to_string()).unwrap_or_default();
        seen.push((bev.fired(), e));
        bev.free();
    };
    let addrs = [closed, closed, open.local_addr().unwrap()];
    let bev = BufferedSocket::connect_any(&mut base, "svc", &addrs, BevOptions::default()).unwrap();
    bev.on(&mut base).set_event_callback(record);
    let mut seen = Vec::new();
    run_until(&mut base, &mut seen, "the third address", |s| !s.is_empty());
    assert_eq!(seen[0].0, evloop_core::BevEvent::CONNECTED, "{seen:?}");
    let (accepted, _) = open.accept().unwrap();
    drop(accepted);

    let mut seen = Vec::new();
    let bev =
        BufferedSocket::connect_any(&mut base, "svc", &[closed, closed], BevOptions::default())
            .unwrap();
    bev.on(&mut base).set_event_callback(record);
    run_until(&mut base, &mut seen, "two refusals", |s| !s.is_empty());
    assert_eq!(seen[0].0, evloop_core::BevEvent::ERROR);
    assert!(
        seen[0].1.contains("connect to svc:") && seen[0].1.contains("2 addresses tried"),
        "{seen:?}"
    );
    assert!(BufferedSocket::connect_any(&mut base, "svc", &[], BevOptions::default()).is_err());
}
