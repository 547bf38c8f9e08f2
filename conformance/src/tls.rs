//! The TLS column: buffered sockets over rustls on this backend. A handshake and megabytes
//! each way byte-exact; TLS 1.2 and 1.3; an untrusted certificate, garbage instead of a
//! ClientHello and a silent peer are each one clear event that harms nothing else;
//! close_notify is EOF and a bare TCP close is truncation; small reads under a high watermark
//! reach the end (libevent#690). Certificates are made at run time (rcgen): no key material
//! is committed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::fd::OwnedFd;
use evloop_core::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop_core::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use evloop_core::{
    BevContext, BevEvent, BevOptions, BufferedSocket, Interest, Listener, ListenerOptions, Registry,
};

use crate::util::run_until;
use crate::Harness;

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and configurations
/// for both ends that speak the ALPN protocol "evloop".
pub struct TestPki {
    /// The server's configuration: the certificate chain and its key.
    pub server: Arc<ServerConfig>,
    /// A client's configuration that trusts the CA.
    pub client: Arc<ClientConfig>,
    /// The CA's certificate, DER.
    pub ca: CertificateDer<'static>,
}

/// ring, the provider evloop is tested with: it builds with a C compiler alone, for every
/// target evloop supports (mingw included). rustls 0.23.48 deprecates its constructor for
/// lacking post-quantum key exchange, which only aws-lc-rs offers; see the README.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TestPki {
    /// Make a new CA and server certificate (a few milliseconds).
    pub fn new() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "evloop test CA (made at run time)",
        );
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server names");
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server certificate");
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server configuration");
        server.alpn_protocols = vec![b"evloop".to_vec()];
        let ca = ca_cert.der().clone();
        TestPki {
            server: Arc::new(server),
            client: Arc::new(client_config(&ca, rustls::ALL_VERSIONS)),
            ca,
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A client configuration trusting `ca`, offering `versions` and ALPN "evloop".
pub fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("CA certificate");
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"evloop".to_vec()];
    client
}

/// What both ends of a scenario record.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    got: Vec<u8>,
    server_got: Vec<u8>,
    errors: Vec<String>,
    version: Option<rustls::ProtocolVersion>,
    alpn: Option<Vec<u8>>,
}

impl Log {
    fn count(&self, what: &str) -> usize {
        self.events.iter().filter(|e| e.as_str() == what).count()
    }
}

fn name(what: BevEvent) -> &'static str {
    if what.contains(BevEvent::CONNECTED) {
        "CONNECTED"
    } else if what.contains(BevEvent::EOF) {
        "EOF"
    } else if what.contains(BevEvent::TIMEOUT) {
        "TIMEOUT"
    } else {
        "ERROR"
    }
}

/// Record an event of `side`; free the socket on anything but CONNECTED.
fn record(side: &str, bev: &mut BevContext<'_, Log>, log: &mut Log) {
    let what = name(bev.fired());
    log.events.push(format!("{side} {what}"));
    if let Some(e) = bev.error() {
        log.errors.push(format!("{side}: {e} ({:?})", e.kind()));
    }
    if what != "CONNECTED" {
        bev.free();
    }
}

/// A TLS server on loopback; `setup` configures each accepted socket.
fn tls_listener(
    ops: &mut Registry<Log>,
    config: Arc<ServerConfig>,
    setup: impl Fn(&mut Registry<Log>, &BufferedSocket<Log>) + 'static,
) -> Listener<Log> {
    let addr = "127.0.0.1:0".parse().expect("a loopback address");
    Listener::bind(
        ops,
        addr,
        ListenerOptions::default(),
        move |ctx, fd, _, _| {
            let bev = BufferedSocket::tls_server(ctx, fd, config.clone(), BevOptions::default())
                .expect("TLS socket");
            setup(ctx, &bev);
        },
    )
    .expect("listen on loopback")
}

/// An echo server's socket, recording its events as "server ...".
fn echo(ops: &mut Registry<Log>, bev: &BufferedSocket<Log>) {
    let mut bev = bev.on(ops);
    bev.set_read_callback(|bev, _| {
        let (input, output) = bev.buffers();
        output.append_buffer(input).expect("unfrozen buffers");
    });
    bev.set_event_callback(|bev, log| record("server", bev, log));
    bev.enable(Interest::READ | Interest::WRITE)
        .expect("enable");
}

/// Take up to `max` bytes of the input.
fn take_input(bev: &mut BevContext<'_, Log>, max: usize) -> Vec<u8> {
    let mut chunk = vec![0u8; bev.input().len().min(max)];
    bev.input().remove(&mut chunk).expect("input");
    chunk
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A client that sends `data` on CONNECTED, keeps what comes back in `got`, and frees itself
/// (close_notify) once `data.len()` bytes came back.
fn echo_client(
    ops: &mut Registry<Log>,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    data: Vec<u8>,
) -> BufferedSocket<Log> {
    let bev = connect_to(ops, addr, config);
    let expect = data.len();
    talk(ops, &bev, data, expect);
    bev
}

/// A TLS client connecting to `addr`, checking the certificate for "localhost".
fn connect_to(
    ops: &mut Registry<Log>,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> BufferedSocket<Log> {
    BufferedSocket::tls_connect(ops, addr, config, "localhost", BevOptions::default())
        .expect("TLS connect")
}

/// Make `bev` a client that sends `data` on CONNECTED (noting the TLS version and ALPN
/// protocol, if it is a TLS socket), keeps what comes back in `got`, and frees itself once
/// `expect` bytes came back.
fn talk(ops: &mut Registry<Log>, bev: &BufferedSocket<Log>, data: Vec<u8>, expect: usize) {
    let mut bev = bev.on(ops);
    bev.set_event_callback(move |bev, log: &mut Log| {
        if bev.fired().contains(BevEvent::CONNECTED) {
            if let Some(tls) = bev.tls() {
                log.version = tls.protocol_version();
                log.alpn = tls.alpn_protocol().map(|p| p.to_vec());
            }
            bev.write(&data).expect("write");
        }
        record("client", bev, log);
    });
    bev.set_read_callback(move |bev, log: &mut Log| {
        let got = take_input(bev, usize::MAX);
        log.got.extend_from_slice(&got);
        if log.got.len() >= expect {
            log.events.push("client done".into());
            bev.free();
        }
    });
    bev.enable(Interest::READ | Interest::WRITE)
        .expect("enable");
}

/// A TLS server on loopback that keeps what each client sends in `server_got`, and echoes it
/// if `echo`.
fn collecting_server(
    ops: &mut Registry<Log>,
    config: Arc<ServerConfig>,
    echo: bool,
) -> Listener<Log> {
    tls_listener(ops, config, move |ops, bev| {
        let mut bev = bev.on(ops);
        bev.set_read_callback(move |bev, log: &mut Log| {
            let got = take_input(bev, usize::MAX);
            log.server_got.extend_from_slice(&got);
            if echo {
                bev.write(&got).expect("echo");
            }
        });
        bev.set_event_callback(|bev, log| record("server", bev, log));
        bev.enable(Interest::READ).expect("enable");
    })
}

/// A handshake, then 4 MiB through an echo server and back, byte-exact; CONNECTED once on
/// each side, TLS 1.3 with ALPN "evloop"; the client's free sends close_notify, which the
/// server sees as EOF (not an error).
pub fn tls_handshake_then_megabytes_each_way(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), echo);
    let addr = listener.local_addr().expect("address");
    let data = pattern(4 << 20);
    let _client = echo_client(&mut base, addr, pki.client.clone(), data.clone());
    let mut log = Log::default();
    run_until(&mut base, &mut log, "4 MiB echoed over TLS", |l| {
        l.count("server EOF") + l.count("server ERROR") > 0
    });
    assert!(log.got == data, "the bytes came back changed");
    assert_eq!(log.count("client CONNECTED"), 1, "{:?}", log.events);
    assert_eq!(log.count("server CONNECTED"), 1, "{:?}", log.events);
    assert_eq!(
        log.count("server EOF"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );
    assert_eq!(log.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(log.alpn.as_deref(), Some(&b"evloop"[..]));
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    listener.free(&mut base).expect("free the listener");
}

/// A client that offers only TLS 1.2 gets TLS 1.2, and the echo works as on 1.3.
pub fn tls12_when_the_client_offers_only_it(h: &Harness) {
    let pki = TestPki::new();
    let client = Arc::new(client_config(&pki.ca, &[&rustls::version::TLS12]));
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), echo);
    let addr = listener.local_addr().expect("address");
    let data = pattern(100_000);
    let _client = echo_client(&mut base, addr, client, data.clone());
    let mut log = Log::default();
    run_until(&mut base, &mut log, "echo over TLS 1.2", |l| {
        l.count("server EOF") + l.count("server ERROR") > 0
    });
    assert!(log.got == data);
    assert_eq!(log.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(
        log.count("server EOF"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );
    listener.free(&mut base).expect("free the listener");
}

/// A client that does not trust the server's CA: one ERROR on the client naming the
/// certificate problem, an ERROR on the server (the alert), no CONNECTED, nothing read; then
/// a trusting client on the same base works.
pub fn tls_untrusted_certificate_is_one_error(h: &Harness) {
    let pki = TestPki::new();
    let stranger = TestPki::new(); // another CA
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), echo);
    let addr = listener.local_addr().expect("address");
    let _bad = echo_client(&mut base, addr, stranger.client.clone(), b"secret".to_vec());
    let mut log = Log::default();
    run_until(
        &mut base,
        &mut log,
        "the handshake fails on both sides",
        |l| l.count("client ERROR") == 1 && l.count("server ERROR") + l.count("server EOF") == 1,
    );
    assert_eq!(log.count("client CONNECTED"), 0);
    assert_eq!(log.count("server CONNECTED"), 0);
    let client_error = log
        .errors
        .iter()
        .find(|e| e.starts_with("client"))
        .expect("the client's error");
    assert!(
        client_error.contains("TLS") && client_error.contains("certificate"),
        "{client_error}"
    );
    assert!(log.got.is_empty());
    // The loop is unharmed: a client that trusts the CA gets through.
    let _good = echo_client(&mut base, addr, pki.client.clone(), b"hello".to_vec());
    run_until(&mut base, &mut log, "a good client after a bad one", |l| {
        l.count("client done") == 1
    });
    assert_eq!(log.got, b"hello");
    listener.free(&mut base).expect("free the listener");
}

/// A peer that sends plain text instead of a ClientHello: the server reports one ERROR that
/// says TLS, and closes; the peer reads at most an alert, then end of file.
pub fn tls_garbage_instead_of_a_client_hello(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), echo);
    let addr = listener.local_addr().expect("address");
    let mut peer = TcpStream::connect(addr).expect("connect");
    peer.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the server rejects garbage", |l| {
        l.count("server ERROR") == 1
    });
    assert!(log.errors[0].contains("TLS"), "{:?}", log.errors);
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = peer.read_to_end(&mut answer);
    // An alert record (content type 21), or nothing.
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    listener.free(&mut base).expect("free the listener");
}

/// close_notify both ways is EOF; a TCP close without it is an ERROR of kind `UnexpectedEof`
/// (truncation), distinct from EOF.
pub fn tls_close_notify_is_eof_and_a_bare_close_is_truncation(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    // A server that answers "ok" to "bye" and frees itself (its close_notify follows "ok").
    let listener = tls_listener(&mut base, pki.server.clone(), |ops, bev| {
        let mut bev = bev.on(ops);
        bev.set_read_callback(|bev, log: &mut Log| {
            let got = take_input(bev, usize::MAX);
            log.server_got.extend_from_slice(&got);
            if log.server_got.ends_with(b"bye") {
                bev.write(b"ok").expect("write");
                bev.free();
            }
        });
        bev.set_event_callback(|bev, log| record("server", bev, log));
        bev.enable(Interest::READ).expect("enable");
    });
    let addr = listener.local_addr().expect("address");
    // The server's close_notify reaches the client as EOF, after "ok".
    let client = connect_to(&mut base, addr, pki.client.clone());
    client
        .on(&mut base)
        .set_event_callback(|bev, log: &mut Log| {
            if bev.fired().contains(BevEvent::CONNECTED) {
                bev.write(b"bye").expect("write");
            }
            record("client", bev, log);
        });
    client
        .on(&mut base)
        .set_read_callback(|bev, log: &mut Log| {
            let got = take_input(bev, usize::MAX);
            log.got.extend_from_slice(&got);
        });
    client.on(&mut base).enable(Interest::READ).expect("enable");
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the server's close_notify", |l| {
        l.count("client EOF") + l.count("client ERROR") > 0
    });
    assert_eq!(log.got, b"ok");
    assert_eq!(
        log.count("client EOF"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );

    // A client whose TCP connection is shut without close_notify: the server hears truncation.
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nonblocking(true).expect("non-blocking");
    let cut = stream.try_clone().expect("clone");
    let fd: OwnedFd = stream.into();
    let bare = BufferedSocket::tls_client(
        &mut base,
        fd,
        pki.client.clone(),
        "localhost",
        BevOptions::default(),
    )
    .expect("TLS client");
    bare.on(&mut base)
        .set_event_callback(|bev, log| record("bare", bev, log));
    let mut log = Log::default();
    run_until(&mut base, &mut log, "both ends of the handshake", |l| {
        l.count("bare CONNECTED") == 1 && l.count("server CONNECTED") == 1
    });
    cut.shutdown(Shutdown::Both).expect("shutdown");
    run_until(&mut base, &mut log, "the server hears the cut", |l| {
        l.count("server ERROR") + l.count("server EOF") > 0
    });
    assert_eq!(
        log.count("server ERROR"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );
    let error = log
        .errors
        .iter()
        .find(|e| e.starts_with("server"))
        .expect("the server's error");
    assert!(
        error.contains("close_notify") && error.contains("UnexpectedEof"),
        "{error}"
    );
    listener.free(&mut base).expect("free the listener");
}

/// A peer that connects and says nothing: the server socket's read timeout fires during the
/// handshake (TIMEOUT with READING), not before it is due.
pub fn tls_silent_peer_times_out_mid_handshake(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), |ops, bev| {
        let mut bev = bev.on(ops);
        bev.set_event_callback(|bev, log: &mut Log| {
            if bev.fired().contains(BevEvent::READING) {
                log.events.push("server READING".into());
            }
            record("server", bev, log);
        });
        bev.set_timeouts(Some(Duration::from_millis(100)), None)
            .expect("timeouts");
    });
    let addr = listener.local_addr().expect("address");
    let started = Instant::now();
    let _silent = TcpStream::connect(addr).expect("connect");
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the handshake timeout", |l| {
        l.count("server TIMEOUT") + l.count("server ERROR") > 0
    });
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        log.count("server TIMEOUT"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );
    assert_eq!(log.count("server READING"), 1);
    listener.free(&mut base).expect("free the listener");
}

/// The server writes `total` bytes at once when connected and frees its socket once they
/// are out; the client reads at most `take` bytes per callback under a `high` watermark.
/// Every byte arrives, in order, then EOF.
fn bulk_to_a_slow_reader(h: &Harness, total: usize, high: usize, take: usize, what: &str) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = tls_listener(&mut base, pki.server.clone(), move |ops, bev| {
        let mut bev = bev.on(ops);
        bev.set_event_callback(move |bev, log: &mut Log| {
            if bev.fired().contains(BevEvent::CONNECTED) {
                bev.write(&pattern(total)).expect("write");
            }
            record("server", bev, log);
        });
        bev.set_write_callback(|bev, _| {
            bev.free();
        });
    });
    let addr = listener.local_addr().expect("address");
    let client = connect_to(&mut base, addr, pki.client.clone());
    client
        .on(&mut base)
        .set_read_watermark(0, high)
        .expect("watermark");
    client
        .on(&mut base)
        .set_read_callback(move |bev, log: &mut Log| {
            let got = take_input(bev, take);
            log.got.extend_from_slice(&got);
        });
    client
        .on(&mut base)
        .set_event_callback(move |bev, log: &mut Log| {
            // As on a plain socket, EOF may come while the input still holds bytes the read
            // callback left there: take them.
            let rest = take_input(bev, usize::MAX);
            assert!(rest.len() <= high, "no more than the high watermark waits");
            log.got.extend_from_slice(&rest);
            record("client", bev, log)
        });
    client.on(&mut base).enable(Interest::READ).expect("enable");
    let mut log = Log::default();
    run_until(&mut base, &mut log, what, |l| {
        l.count("client EOF") + l.count("client ERROR") > 0
    });
    assert_eq!(log.got.len(), total, "{:?} {:?}", log.events, log.errors);
    assert!(log.got == pattern(total));
    assert_eq!(
        log.count("client EOF"),
        1,
        "{:?} {:?}",
        log.events,
        log.errors
    );
    listener.free(&mut base).expect("free the listener");
}

/// libevent#690: a reader that takes at most 512 bytes per callback, under a 1 KiB high
/// watermark, still reaches the end of 1 MiB sent as 16 KiB records (the plaintext rustls
/// holds reaches the input without the fd becoming readable again), then EOF.
pub fn tls_small_reads_under_a_high_watermark_reach_the_end(h: &Harness) {
    bulk_to_a_slow_reader(h, 1 << 20, 1024, 512, "1 MiB in reads of 512 bytes");
}

/// A writer that hands its socket 16 MiB at once, to a reader that takes 16 KiB per callback
/// under a 64 KiB high watermark: every byte arrives, with the writer blocked on the fd
/// many times on the way.
pub fn tls_a_large_write_to_a_slow_reader_arrives_whole(h: &Harness) {
    bulk_to_a_slow_reader(h, 16 << 20, 64 * 1024, 16 * 1024, "16 MiB to a slow reader");
}

/// A filter stacked on a TLS client: CONNECTED comes through after the handshake, the
/// filter sees plaintext both ways (ROT13 out, upper-cased lines in), and freeing the
/// filtered socket sends the TLS socket's close_notify, which the server hears as EOF.
pub fn tls_under_a_filter(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = collecting_server(&mut base, pki.server.clone(), true);
    let addr = listener.local_addr().expect("address");
    let tls = connect_to(&mut base, addr, pki.client.clone());
    let client = BufferedSocket::filtered(
        &mut base,
        tls,
        crate::filters::UpperInRot13Out,
        BevOptions::default(),
    )
    .expect("filtered");
    talk(&mut base, &client, b"hello\nworld\n".to_vec(), 12);
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the server hears EOF", |l| {
        l.count("server EOF") + l.count("server ERROR") > 0
    });
    assert_eq!(log.server_got, b"uryyb\njbeyq\n", "ROT13 inside TLS");
    assert_eq!(
        log.got, b"URYYB\nJBEYQ\n",
        "the reply, upper-cased by lines"
    );
    assert_eq!(log.count("client CONNECTED"), 1, "{:?}", log.events);
    assert_eq!(log.count("server EOF"), 1, "close_notify: {:?}", log.errors);
    assert!(log.errors.is_empty(), "{:?}", log.errors);
}

/// A rate limit on a TLS socket counts the records on the fd: 40 KB of plaintext at 2,000
/// bytes per 50 ms tick take at least the 19 ticks after the first (records and the
/// handshake only add bytes), and arrive whole.
pub fn tls_rate_limited_transfer(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let listener = collecting_server(&mut base, pki.server.clone(), false);
    let addr = listener.local_addr().expect("address");
    let tick = Duration::from_millis(50);
    let limit = evloop_core::RateLimit::new(2000, 2000, 2000, 2000, tick).expect("limit");
    let start = Instant::now(); // before the bucket is made
    let client = echo_client(&mut base, addr, pki.client.clone(), pattern(40_000));
    client
        .on(&mut base)
        .set_rate_limit(Some(limit))
        .expect("limit");
    let mut log = Log::default();
    run_until(&mut base, &mut log, "40 KB at 40 KB/s", |l| {
        l.server_got.len() == 40_000 || !l.errors.is_empty()
    });
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert!(
        log.server_got == pattern(40_000),
        "the bytes arrived changed"
    );
    let least = tick * 19;
    assert!(
        start.elapsed() >= least,
        "done after {:?}, before {least:?}",
        start.elapsed()
    );
    client.free(&mut base).expect("free");
}

/// `free_after_flush` on a TLS socket: a 1 MiB answer goes out whole, then close_notify,
/// which the client reads as a clean EOF (not truncation).
pub fn tls_free_after_flush_ends_with_close_notify(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let answer = pattern(1 << 20);
    let reply = answer.clone();
    let listener = tls_listener(&mut base, pki.server.clone(), move |ops, bev| {
        let reply = reply.clone();
        let mut bev = bev.on(ops);
        bev.set_read_callback(move |bev, _| {
            let _ = take_input(bev, usize::MAX);
            bev.write(&reply).expect("write");
            bev.free_after_flush().expect("free after flush");
        });
        bev.enable(Interest::READ).expect("enable");
    });
    let addr = listener.local_addr().expect("address");
    let client = connect_to(&mut base, addr, pki.client.clone());
    talk(&mut base, &client, b"go".to_vec(), usize::MAX); // read to the end
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the answer, then the end", |l| {
        l.count("client EOF") + l.count("client ERROR") > 0
    });
    assert!(
        log.got == answer,
        "{} of {} bytes",
        log.got.len(),
        answer.len()
    );
    assert_eq!(log.count("client EOF"), 1, "close_notify: {:?}", log.errors);
}

/// A file segment on a TLS socket (which needs the bytes to encrypt them, so reads the file
/// a piece at a time): the client gets the file's bytes exactly, then close_notify.
pub fn tls_sends_a_file_segment_by_reading_it(h: &Harness) {
    let pki = TestPki::new();
    let mut base = h.base::<Log>();
    let answer = pattern(2_500_000);
    let path = std::env::temp_dir().join(format!(
        "evloop-conformance-tls-file-{}-{}",
        h.name(),
        std::process::id()
    ));
    std::fs::write(&path, &answer).expect("a temp file");
    let segment = evloop_core::FileSegment::open(&path).expect("open");
    let listener = tls_listener(&mut base, pki.server.clone(), move |ops, bev| {
        let segment = segment.clone();
        let mut bev = bev.on(ops);
        bev.set_read_callback(move |bev, _| {
            let _ = take_input(bev, usize::MAX);
            bev.output().append_file(&segment).expect("append the file");
            bev.free_after_flush().expect("free after flush");
        });
        bev.enable(Interest::READ).expect("enable");
    });
    let addr = listener.local_addr().expect("address");
    let client = connect_to(&mut base, addr, pki.client.clone());
    talk(&mut base, &client, b"go".to_vec(), usize::MAX); // read to the end
    let mut log = Log::default();
    run_until(&mut base, &mut log, "the file, then the end", |l| {
        l.count("client EOF") + l.count("client ERROR") > 0
    });
    let _ = std::fs::remove_file(&path);
    assert!(
        log.got == answer,
        "{} of {} bytes",
        log.got.len(),
        answer.len()
    );
    assert_eq!(log.count("client EOF"), 1, "close_notify: {:?}", log.errors);
}
