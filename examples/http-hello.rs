//! A keep-alive HTTP/1.1 responder for load tools: every request (ended by an empty line,
//! pipelining allowed) gets `200 OK` with the body `Hello, World!`. Listens on 127.0.0.1:8080
//! (the first argument overrides the port); exits 0 on SIGINT or SIGTERM.
//!
//! ```text
//! $ cargo run --release --example http-hello &
//! $ wrk -t1 -c1000 -d5s http://127.0.0.1:8080/
//! ```

use std::net::SocketAddr;

use evloop::{Base, BevOptions, BufferedSocket, EventFlags, Listener, ListenerOptions};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// Raise the fd limit so that a thousand clients fit.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

fn main() -> std::io::Result<()> {
    raise_fd_limit();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let options = ListenerOptions {
        backlog: 4096,
        ..Default::default()
    };
    Listener::bind(&mut base, addr, options, |ctx, fd, _, _| {
        let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
        let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
            return;
        };
        let _ = bev.set_read_callback(|bev, _| {
            // Answer every complete request; a partial one waits for more bytes.
            while let Some(end) = bev.input().search(b"\r\n\r\n", 0) {
                let _ = bev.input().drain(end + 4);
                let _ = bev.output().append(RESPONSE);
            }
        });
        let _ = bev.set_event_callback(|bev, _| {
            bev.free();
        });
        let _ = bev.enable(ctx, EventFlags::READ | EventFlags::WRITE);
    })?;
    for signo in [libc::SIGINT, libc::SIGTERM] {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None).expect("loop_exit"))?;
        base.add(ev, None)?;
    }
    eprintln!("http-hello: listening on {addr} ({})", base.method());
    base.run(&mut ())?;
    Ok(())
}
