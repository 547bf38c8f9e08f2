//! The examples as processes: what a user sees when running them. Unix: the processes get
//! their signals from `kill`; on Windows the same contracts are checked from Linux against
//! the examples running under Wine (`.ci/windows-examples`).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// The example's binary: `cargo test` builds examples next to the test binaries
/// (target/<profile>/examples); a run filtered to this test alone may not, so build it then.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building example {name}");
    }
    path
}

fn check_signals(env: &[&str]) {
    let mut child = start_with_env("signals", &[], env);
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    assert!(next().starts_with("ready: pid"), "{env:?}");
    for (sig, name) in [
        (Signal::USR1, "SIGUSR1"),
        (Signal::HUP, "SIGHUP"),
        (Signal::USR1, "SIGUSR1"),
    ] {
        kill_process(pid, sig).unwrap();
        assert_eq!(next(), format!("caught {name} count 1"), "{env:?}");
    }
    kill_process(pid, Signal::INT).unwrap();
    let asked = Instant::now();
    assert_eq!(next(), "exiting cleanly in two seconds", "{env:?}");
    let status = child.wait().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{env:?}: {status:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{env:?}: {took:?}"
    );
}

#[test]
fn reports_signals_and_exits_two_seconds_after_sigint_on_every_backend() {
    let mut combos: Vec<Vec<&str>> = vec![vec![]];
    let all = evloop::supported_methods();
    let vars: Vec<String> = all
        .iter()
        .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
        .collect();
    for i in 1..all.len() {
        combos.push(vars[..i].iter().map(|s| s.as_str()).collect());
    }
    std::thread::scope(|s| {
        for combo in &combos {
            s.spawn(move || check_signals(combo));
        }
    });
}

/// Start example `name` with `args`, no EVENT_* variables but those in `env` (set to 1),
/// stdout piped.
fn start_with_env(name: &str, args: &[&str], env: &[&str]) -> Child {
    let mut cmd = Command::new(example(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("EVENT_") {
            cmd.env_remove(k);
        }
    }
    for var in env {
        cmd.env(var, "1");
    }
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example")
}

/// Start a server example on a free port and return it with the port and a first
/// connection. Choosing the port and waiting until the server listens happen under one lock,
/// so two tests never pick the same port.
fn serve(name: &str, env: &[&str]) -> (Child, u16, TcpStream) {
    serve_with(name, &[], env)
}

/// [`serve`] with arguments before the port.
fn serve_with(name: &str, args: &[&str], env: &[&str]) -> (Child, u16, TcpStream) {
    serve_args(
        name,
        |port| {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            all.push(port.to_string());
            all
        },
        env,
    )
}

/// [`serve`] with the arguments `args(port)`.
fn serve_args(
    name: &str,
    args: impl Fn(u16) -> Vec<String>,
    env: &[&str],
) -> (Child, u16, TcpStream) {
    static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = args(port);
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let child = start_with_env(name, &args, env);
    let first = connect(port);
    (child, port, first)
}

/// Connect, retrying while the example starts up.
fn connect(port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("connect to {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32).unwrap()
}

#[test]
fn hello_world_greets_each_client_and_exits_two_seconds_after_sigint() {
    let (mut child, port, first) = serve("hello-world", &[]);
    let mut first = Some(first);
    for _ in 0..3 {
        let mut s = first.take().unwrap_or_else(|| connect(port));
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"Hello, World!\n");
    }
    kill_process(pid(&child), Signal::INT).unwrap();
    let asked = Instant::now();
    let status = child.wait().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(4),
        "{took:?}"
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out.matches("flushed answer").count(), 3, "{out}");
    assert!(
        out.contains("Caught an interrupt signal; exiting cleanly in two seconds."),
        "{out}"
    );
    assert!(out.trim_end().ends_with("done"), "{out}");
}

#[test]
fn http_hello_answers_pipelined_keep_alive_requests_and_exits_on_sigterm() {
    let (mut child, _, mut s) = serve("http-hello", &[]);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
    // Three pipelined requests, the last split in two writes.
    let mut burst = request.repeat(2);
    burst.extend_from_slice(&request[..10]);
    s.write_all(&burst).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&request[10..]).unwrap();
    let mut got = vec![0u8; response.len() * 3];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, response.repeat(3));
    // Keep-alive: the same connection serves another request.
    s.write_all(request).unwrap();
    let mut again = vec![0u8; response.len()];
    s.read_exact(&mut again).unwrap();
    assert_eq!(again, response);
    kill_process(pid(&child), Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn echo_returns_every_byte_until_the_client_closes() {
    let (mut child, _, mut s) = serve("echo", &[]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let expected = data.clone();
    let read = std::thread::spawn(move || {
        let mut got = vec![0u8; expected.len()];
        reader.read_exact(&mut got).unwrap();
        got == expected
    });
    s.write_all(&data).unwrap();
    assert!(read.join().unwrap(), "echo corrupted the bytes");
    drop(s);
    kill_process(pid(&child), Signal::INT).unwrap();
    assert!(child.wait().unwrap().success());
}

/// 1,000 concurrent keep-alive clients, each served three requests, under every backend.
#[test]
fn http_hello_holds_1000_keep_alive_clients_on_every_backend() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response_len =
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"
            .len();
    let all = evloop::supported_methods();
    let vars: Vec<String> = all
        .iter()
        .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
        .collect();
    for i in 0..all.len() {
        let env: Vec<&str> = vars[..i].iter().map(|s| s.as_str()).collect();
        let (mut child, port, first) = serve("http-hello", &env);
        let mut clients: Vec<TcpStream> = std::iter::once(first)
            .chain((1..1000).map(|_| connect(port)))
            .collect();
        for round in 0..3 {
            for c in &mut clients {
                c.write_all(request).unwrap();
            }
            for (n, c) in clients.iter_mut().enumerate() {
                let mut got = vec![0u8; response_len];
                c.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("{}: client {n} round {round}: {e}", all[i]));
                assert!(got.ends_with(b"Hello, World!"), "{}", all[i]);
            }
        }
        drop(clients);
        kill_process(pid(&child), Signal::INT).unwrap();
        assert!(child.wait().unwrap().success(), "{}", all[i]);
    }
}

/// Two loops on one port (SO_REUSEPORT): 200 clients are all served, and SIGINT stops both.
#[test]
fn multi_reactor_serves_from_two_loops_and_stops_on_sigint() {
    let (mut child, port, first) = serve_with("multi-reactor", &["--threads", "2"], &[]);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut clients: Vec<TcpStream> = std::iter::once(first)
        .chain((1..200).map(|_| connect(port)))
        .collect();
    for c in &mut clients {
        c.write_all(request).unwrap();
    }
    for c in &mut clients {
        let mut got = vec![0u8; 78];
        c.read_exact(&mut got).unwrap();
        assert!(got.ends_with(b"Hello, World!"));
    }
    kill_process(pid(&child), Signal::INT).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Read lines from `s` until one equals `want`, returning the lines before it.
fn lines_until(s: &mut BufReader<TcpStream>, want: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let mut line = String::new();
        let n = s.read_line(&mut line).unwrap();
        assert!(n > 0, "EOF before {want:?}; got {before:?}");
        let line = line.trim_end().to_string();
        if line == want {
            return before;
        }
        before.push(line);
    }
}

/// A chat client: connected, greeted, with its name (its address as the server sees it).
fn chat_client(port: u16, first: Option<TcpStream>) -> (BufReader<TcpStream>, TcpStream, String) {
    let s = first.unwrap_or_else(|| connect(port));
    let name = s.local_addr().unwrap().to_string();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    lines_until(&mut reader, &format!("* you are {name}"));
    (reader, s, name)
}

#[test]
fn chat_broadcasts_lines_to_the_others_and_exits_on_sigint() {
    let (mut child, port, first) = serve("chat", &[]);
    let (mut ra, mut a, na) = chat_client(port, Some(first));
    let (mut rb, mut b, nb) = chat_client(port, None);
    let (mut rc, mut c, nc) = chat_client(port, None);
    a.write_all(b"hello from a\r\n").unwrap();
    for r in [&mut rb, &mut rc] {
        lines_until(r, &format!("{na}: hello from a"));
    }
    b.write_all(b"hi from b\n").unwrap();
    let seen_by_a = lines_until(&mut ra, &format!("{nb}: hi from b"));
    assert!(
        !seen_by_a.iter().any(|l| l.contains("hello from a")),
        "a got its own line back: {seen_by_a:?}"
    );
    lines_until(&mut rc, &format!("{nb}: hi from b"));
    drop(rb);
    drop(b);
    lines_until(&mut ra, &format!("* {nb} left"));
    c.write_all(b"still here\n").unwrap();
    lines_until(&mut ra, &format!("{nc}: still here"));
    kill_process(pid(&child), Signal::INT).unwrap();
    assert!(child.wait().unwrap().success());
    drop((ra, a, rc, c));
}

#[test]
fn chat_drops_idle_clients_and_clients_that_do_not_read() {
    // Idle clients go after one second, never before.
    let (mut child, port, first) = serve_args("chat", |p| vec![p.to_string(), "1".into()], &[]);
    let (mut idle, _idle_w, _) = chat_client(port, Some(first));
    let joined = Instant::now();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap(); // EOF: the server dropped it
    let took = joined.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // A client that never reads is dropped once its backlog passes the watermark, while the
    // sender goes on.
    let (_deaf_r, deaf, deaf_name) = chat_client(port, None);
    let (mut talker_r, mut talker, _) = chat_client(port, None);
    let line = format!("{}\n", "x".repeat(1000));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The server reports the drop on stdout; keep sending (in bursts) until it does. The
    // reader comes back so that the pipe stays open until the server exits.
    let reporter = std::thread::spawn(move || loop {
        out.clear();
        if stdout.read_line(&mut out).unwrap() == 0 {
            return (false, stdout);
        }
        if out.contains(&format!("{deaf_name} dropped: not reading")) {
            return (true, stdout);
        }
    });
    talker.set_nonblocking(true).unwrap();
    while !reporter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the deaf client was never dropped"
        );
        for _ in 0..64 {
            let _ = talker.write_all(line.as_bytes());
        }
        std::thread::sleep(Duration::from_millis(5));
        talker_r.get_mut().set_nonblocking(true).unwrap();
        let mut sink = [0u8; 65536];
        while talker_r.get_mut().read(&mut sink).is_ok_and(|n| n > 0) {}
    }
    let (dropped, _stdout) = reporter.join().unwrap();
    assert!(dropped);
    drop(deaf);
    kill_process(pid(&child), Signal::INT).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Peak resident memory of process `pid` in KiB (Linux: VmHWM), if known.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Through a proxy (or a chain) from `client` to the target's `server`: `down` bytes from
/// the target (which then waits `pause` before it reads) while `up` bytes go to it, both
/// byte-exact; the client's shutdown reaches the target as end of file after every byte, and
/// the client then sees end of file too.
fn carry_both_ways(
    client: TcpStream,
    mut server: TcpStream,
    up: usize,
    down: usize,
    pause: Duration,
) {
    let pattern = |i: usize| (i * 7 % 251) as u8;
    server
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let target_side = std::thread::spawn(move || {
        let sent: Vec<u8> = (0..down).map(|i| pattern(i + 3)).collect();
        server.write_all(&sent).unwrap();
        std::thread::sleep(pause);
        let mut got = Vec::with_capacity(up);
        server.read_to_end(&mut got).unwrap(); // until the proxy closes it
        got
    });
    let mut writer = client.try_clone().unwrap();
    let up_side = std::thread::spawn(move || {
        let sent: Vec<u8> = (0..up).map(pattern).collect();
        writer.write_all(&sent).unwrap();
    });
    let mut reader = client.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut down_got = vec![0u8; down];
    reader.read_exact(&mut down_got).unwrap();
    assert!(
        down_got
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(i + 3)),
        "target to client corrupted"
    );
    up_side.join().unwrap();
    // Done sending: the proxy flushes what it holds to the target, then closes it.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let up_got = target_side.join().unwrap();
    assert_eq!(up_got.len(), up);
    assert!(
        up_got.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "client to target corrupted"
    );
    // The client side is closed too once the target side is gone.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn proxy_carries_32_mib_both_ways_byte_exact_with_bounded_memory() {
    const UP: usize = 32 << 20;
    const DOWN: usize = 4 << 20;
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    // By name: the proxy resolves it for each client (connect_host).
    let target_addr = format!("localhost:{}", target.local_addr().unwrap().port());
    let (mut child, _, client) =
        serve_args("proxy", |p| vec![p.to_string(), target_addr.clone()], &[]);
    let (server, _) = target.accept().unwrap();
    // The target reads nothing for a while: the proxy must stop reading the client.
    carry_both_ways(client, server, UP, DOWN, Duration::from_millis(500));
    if let Some(peak) = peak_rss_kib(child.id()) {
        // The watermarks hold about 512 KiB per direction; 32 MiB would show.
        assert!(peak < 16 * 1024, "proxy peak RSS {peak} KiB");
    }
    kill_process(pid(&child), Signal::INT).unwrap();
    assert!(child.wait().unwrap().success());
}

/// The proxy with TLS on both sides of a hop: client → proxy A (plain in, `--tls-connect`) →
/// proxy B (`--tls-accept`, plain out) → target. 64 MiB up and 16 MiB down byte-exact through
/// rustls on both ends, then the client's shutdown reaches the target as end of file after
/// every byte (flush-then-close across TLS: close_notify, not truncation). It caught a stall:
/// a TLS socket stopped moving its output when rustls's buffer had been full before a write
/// event and the fd then took all of it (one run in about six under load; `ss` showed the
/// first proxy's client unread and nothing in flight between the proxies).
#[cfg(feature = "tls")]
#[test]
fn proxy_over_tls_carries_64_mib_byte_exact_and_closes_cleanly() {
    const UP: usize = 64 << 20;
    const DOWN: usize = 16 << 20;
    let dir = std::env::temp_dir().join(format!("evloop-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap().to_string();
    let (mut b, b_port, probe) = serve_args(
        "proxy",
        |p| {
            vec![
                "--tls-accept".into(),
                cert.clone(),
                key.clone(),
                p.to_string(),
                target_addr.clone(),
            ]
        },
        &[],
    );
    drop(probe);
    let _ = target.accept().unwrap(); // the probe's leg, closed at once
                                      // By name, over TLS (tls_connect_host).
    let b_addr = format!("localhost:{b_port}");
    let (mut a, _, client) = serve_args(
        "proxy",
        |p| {
            let name = "localhost".to_string();
            vec![
                "--tls-connect".into(),
                cert.clone(),
                "--tls-name".into(),
                name,
                p.to_string(),
                b_addr.clone(),
            ]
        },
        &[],
    );
    let (server, _) = target.accept().unwrap();
    carry_both_ways(client, server, UP, DOWN, Duration::ZERO);
    for child in [&mut a, &mut b] {
        kill_process(pid(child), Signal::INT).unwrap();
    }
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let said = String::from_utf8_lossy(&a.stderr).to_string() + &String::from_utf8_lossy(&b.stderr);
    assert!(
        !said.contains("close_notify"),
        "a TLS side was cut short: {said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 16 MiB through the async echo server come back byte-exact, on every backend; SIGINT ends
/// it with status 0.
#[test]
fn async_echo_returns_16_mib_byte_exact_on_every_backend() {
    let all = evloop::supported_methods();
    for skip in 0..all.len() {
        let env: Vec<String> = all[..skip]
            .iter()
            .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
            .collect();
        let env: Vec<&str> = env.iter().map(|s| s.as_str()).collect();
        let (child, _, s) = serve("async-echo", &env);
        let data: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut reader = s.try_clone().unwrap();
        let expected = data.clone();
        let read = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            reader.read_exact(&mut got).unwrap();
            got == expected
        });
        (&s).write_all(&data).unwrap();
        assert!(
            read.join().unwrap(),
            "async-echo corrupted the bytes ({env:?})"
        );
        drop(s);
        kill_process(pid(&child), Signal::INT).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{env:?}: {:?}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(all[skip]), "{env:?}: ran on {stdout}");
    }
}

/// hyper on the runtime answers keep-alive requests on one connection, 200 with the body,
/// several clients at once; SIGTERM ends it with status 0.
#[test]
fn hyper_hello_answers_keep_alive_requests_and_exits_on_sigterm() {
    let (mut child, port, first) = serve("hyper-hello", &[]);
    let mut clients = vec![first];
    for _ in 0..9 {
        clients.push(connect(port));
    }
    for round in 0..3 {
        for s in &mut clients {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        }
        for s in &mut clients {
            // Headers, then the 13-byte body; the connection stays open for the next round.
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                got.push(byte[0]);
            }
            let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
            assert!(
                head.starts_with("http/1.1 200 ok\r\n"),
                "round {round}: {head}"
            );
            assert!(head.contains("content-length: 13\r\n"), "{head}");
            let mut body = [0u8; 13];
            s.read_exact(&mut body).unwrap();
            assert_eq!(&body, b"Hello, World!");
        }
    }
    kill_process(pid(&child), Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
}

/// https-hello on every backend: a rustls client that trusts the certificate the example
/// printed gets `200 OK` twice on one connection (TLS 1.3, ALPN http/1.1); SIGTERM ends it
/// with status 0. (`.ci/tls-interop` checks it against curl, openssl s_client and wrk.)
#[cfg(feature = "tls")]
#[test]
fn https_hello_answers_over_tls_on_every_backend() {
    use evloop::rustls::pki_types::pem::PemObject;
    use evloop::rustls::pki_types::CertificateDer;
    use evloop::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    use std::sync::Arc;
    let all = evloop::supported_methods();
    for skip in 0..all.len() {
        let env: Vec<String> = all[..skip]
            .iter()
            .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
            .collect();
        let env: Vec<&str> = env.iter().map(|s| s.as_str()).collect();
        let (child, port, stream) = serve("https-hello", &env);
        let cert = std::env::temp_dir()
            .join(format!("evloop-https-hello-{port}"))
            .join("cert.pem");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&cert).expect("the printed certificate"))
            .unwrap();
        #[allow(deprecated)] // ring, as the example uses
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let conn =
            ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
        let mut tls = StreamOwned::new(conn, stream);
        for _ in 0..2 {
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while !got.ends_with(b"Hello, World!") {
                tls.read_exact(&mut byte).unwrap();
                got.push(byte[0]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{env:?}");
        }
        assert_eq!(
            tls.conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        // A request that asks to close is answered, then the server closes: close_notify,
        // which reads as a clean end of stream (an error if it were a bare TCP close).
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("{env:?}: {e} after {rest:?}"));
        assert!(
            rest.starts_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\n")
                && rest.ends_with(b"Hello, World!"),
            "{env:?}: {}",
            String::from_utf8_lossy(&rest)
        );
        drop(tls);
        kill_process(pid(&child), Signal::TERM).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{env:?}: {:?}", out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(all[skip]), "{env:?}: ran on {stderr}");
        assert!(!stderr.contains("without close_notify"), "{stderr}");
    }
}

/// The filter example: whole lines come back upper-cased, a partial line waits for its end,
/// and the last line without a newline is answered at the client's end of file, after which
/// the server closes (on every backend).
#[test]
fn shout_answers_whole_lines_through_its_filter_on_every_backend() {
    for env in backend_envs() {
        let env: Vec<&str> = env.iter().map(|s| s.as_str()).collect();
        let (mut child, _, mut s) = serve("shout", &env);
        s.write_all(b"hello\r\nwor").unwrap();
        let mut first = [0u8; 7];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HELLO\r\n", "{env:?}");
        s.write_all(b"ld\nbye").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(
            rest, b"WORLD\nBYE",
            "{env:?}: the rest, then the server's close"
        );
        kill_process(pid(&child), Signal::INT).unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// One environment per compiled backend: `EVENT_NO*` for those before it in the order
/// evloop prefers them, so each run picks the next.
fn backend_envs() -> Vec<Vec<String>> {
    let all = evloop::supported_methods();
    (0..all.len())
        .map(|skip| {
            all[..skip]
                .iter()
                .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
                .collect()
        })
        .collect()
}

/// A temporary file removed when dropped.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Send one request on `s` and read one response: its head, and a body of `Content-Length`
/// bytes (none for `HEAD`).
fn http_exchange(s: &mut BufReader<TcpStream>, request: &str) -> (String, Vec<u8>) {
    s.get_mut().write_all(request.as_bytes()).unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            s.read_line(&mut line).unwrap() > 0,
            "the head ended early: {head}"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0; if request.starts_with("HEAD") { 0 } else { len }];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

/// The static file server on every backend: a 3 MB file byte-exact, keep-alive and
/// pipelined; a range past 4 GiB of a 5 GiB sparse file (offsets beyond 32 bits) returning
/// the bytes written there; a suffix range; `416` past the end; `HEAD`; and, where curl is
/// installed, the same through curl.
#[test]
fn serve_file_sends_files_and_ranges_byte_exact_on_every_backend() {
    let dir = std::env::temp_dir();
    let small = TempPath(dir.join(format!("evloop-serve-file-{}", std::process::id())));
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&small.0, &bytes).unwrap();
    let sparse = TempPath(dir.join(format!("evloop-serve-sparse-{}", std::process::id())));
    let marker_at: u64 = (4 << 30) + 12_345;
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::create(&sparse.0).unwrap();
        f.set_len(5 << 30).unwrap();
        f.seek(SeekFrom::Start(marker_at)).unwrap();
        f.write_all(b"past four GiB").unwrap();
    }
    let curl = Command::new("curl").arg("--version").output().is_ok();
    for env in backend_envs() {
        let env: Vec<&str> = env.iter().map(|s| s.as_str()).collect();
        let path = small.0.to_str().unwrap();
        let (mut child, port, s) = serve_with("serve-file", &[path], &env);
        let mut s = BufReader::new(s);
        let (head, body) = http_exchange(&mut s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{env:?}: {head}");
        assert!(body == bytes, "{env:?}: {} bytes, or changed", body.len());
        // Two pipelined requests on the same connection.
        let (h1, b1) = http_exchange(
            &mut s,
            "GET /a HTTP/1.1\r\nRange: bytes=1000-1999\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n",
        );
        assert!(h1.starts_with("HTTP/1.1 206"), "{env:?}: {h1}");
        assert!(
            h1.contains("Content-Range: bytes 1000-1999/3000000"),
            "{h1}"
        );
        assert_eq!(b1, bytes[1000..2000], "{env:?}");
        let mut head_only = String::new();
        loop {
            let mut line = String::new();
            s.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head_only.push_str(&line);
        }
        assert!(head_only.contains("Content-Length: 3000000"), "{head_only}");
        let (h, b) = http_exchange(&mut s, "GET / HTTP/1.1\r\nRange: bytes=-10\r\n\r\n");
        assert!(h.starts_with("HTTP/1.1 206"), "{h}");
        assert_eq!(b, bytes[bytes.len() - 10..]);
        let (h, _) = http_exchange(&mut s, "GET / HTTP/1.1\r\nRange: bytes=3000000-\r\n\r\n");
        assert!(h.starts_with("HTTP/1.1 416"), "{h}");
        assert!(h.contains("Content-Range: bytes */3000000"), "{h}");
        // `Connection: close`: the answer, then the server's close.
        let (_, b) = http_exchange(&mut s, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(b == bytes, "{env:?}");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{env:?}: the server closes");
        if curl {
            let out = Command::new("curl")
                .args(["-sf", &format!("http://127.0.0.1:{port}/")])
                .output()
                .unwrap();
            assert!(out.status.success() && out.stdout == bytes, "{env:?}: curl");
        }
        kill_process(pid(&child), Signal::INT).unwrap();
        assert!(child.wait().unwrap().success());

        let path = sparse.0.to_str().unwrap();
        let (mut child, port, s) = serve_with("serve-file", &[path], &env);
        let mut s = BufReader::new(s);
        let range = format!(
            "GET / HTTP/1.1\r\nRange: bytes={}-{}\r\n\r\n",
            marker_at - 5,
            marker_at + 17
        );
        let (h, b) = http_exchange(&mut s, &range);
        let mut want = vec![0u8; 5];
        want.extend_from_slice(b"past four GiB");
        want.extend_from_slice(&[0; 5]);
        assert!(h.contains("/5368709120"), "{env:?}: {h}");
        assert_eq!(b, want, "{env:?}");
        if curl {
            let range = format!("{}-{}", marker_at, marker_at + 12);
            let out = Command::new("curl")
                .args(["-sf", "-r", &range, &format!("http://127.0.0.1:{port}/")])
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"past four GiB", "{env:?}: curl");
        }
        kill_process(pid(&child), Signal::INT).unwrap();
        assert!(child.wait().unwrap().success());
    }
}
