//! http-hello over TLS: the same keep-alive HTTP/1.1 responses, on buffered sockets made
//! with `BufferedSocket::tls_server` (rustls). `https-hello [port] [cert.pem key.pem]`:
//! listens on 127.0.0.1:8443 (or `port`) with the given certificate chain and key, or else a
//! self-signed certificate for `localhost` and 127.0.0.1 made at start, whose path it prints;
//! exits 0 on SIGINT or SIGTERM.
//!
//! ```text
//! $ cargo run --release --example https-hello &
//! https-hello: listening on 127.0.0.1:8443 (epoll), certificate in /tmp/evloop-https-hello-8443/cert.pem
//! $ curl --cacert /tmp/evloop-https-hello-8443/cert.pem https://localhost:8443/
//! $ openssl s_client -connect 127.0.0.1:8443 -CAfile /tmp/evloop-https-hello-8443/cert.pem
//! ```

#[path = "common/tls.rs"]
mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use evloop::fd::OwnedFd;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop::rustls::ServerConfig;
use evloop::{Base, BevOptions, BufferedSocket, Context, Interest, Listener, ListenerOptions};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The answer to a request that asked to close (`wrk -H "Connection: close"`: a new
/// connection, and so a handshake, per request).
const RESPONSE_THEN_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// A self-signed certificate for localhost and 127.0.0.1, written (certificate only) to
/// `dir`; the key stays in memory.
fn self_signed(dir: &std::path::Path) -> io::Result<Arc<ServerConfig>> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    tls::server_config(vec![cert.cert.der().clone()], key, &[b"http/1.1"])
}

/// The accept callback: a TLS socket that answers every request (ended by an empty line;
/// pipelining allowed), and frees itself on EOF, an error or a TLS failure.
fn answer(ctx: &mut Context<'_, ()>, fd: OwnedFd, config: &Arc<ServerConfig>) {
    let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
    let bev = match BufferedSocket::tls_server(ctx, fd, config.clone(), BevOptions::default()) {
        Ok(bev) => bev,
        Err(e) => return eprintln!("https-hello: {e}"),
    };
    let mut bev = bev.on(ctx);
    bev.set_read_callback(|bev, _| {
        while let Some(end) = bev.input().search(b"\r\n\r\n", 0) {
            let close = bev
                .input()
                .search_range(b"Connection: close", 0, end)
                .is_some();
            let _ = bev.input().drain(end + 4);
            if close {
                // Answer, then free the socket (close_notify) once the answer went out.
                let _ = bev.output().append(RESPONSE_THEN_CLOSE);
                let _ = bev.free_after_flush();
                break;
            }
            let _ = bev.output().append(RESPONSE);
        }
    });
    bev.set_event_callback(|bev, _| {
        if let (true, Some(e)) = (bev.fired().contains(evloop::BevEvent::ERROR), bev.error()) {
            eprintln!("https-hello: fd {}: {e}", bev.fd());
        }
        if !bev.fired().contains(evloop::BevEvent::CONNECTED) {
            bev.free();
        }
    });
    // A peer that stalls (mid-handshake, or idle between requests) is dropped after a minute.
    let idle = Some(std::time::Duration::from_secs(60));
    let _ = bev.set_timeouts(idle, idle);
    let _ = bev.enable(Interest::READ | Interest::WRITE);
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8443);
    let dir = std::env::temp_dir().join(format!("evloop-https-hello-{port}"));
    let (config, cert_path) = match &args[..] {
        [_, _, cert, key] => (
            tls::server_config_from_files(cert, key, &[b"http/1.1"])?,
            std::path::PathBuf::from(cert),
        ),
        _ => (self_signed(&dir)?, dir.join("cert.pem")),
    };
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let options = ListenerOptions {
        backlog: 4096,
        ..Default::default()
    };
    let _listener = Listener::bind(&mut base, addr, options, move |ctx, fd, _, _| {
        answer(ctx, fd, &config)
    })?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    eprintln!(
        "https-hello: listening on {addr} ({}), certificate in {}",
        base.method(),
        cert_path.display()
    );
    base.run(&mut ())?;
    eprintln!("https-hello: stopped");
    Ok(())
}
