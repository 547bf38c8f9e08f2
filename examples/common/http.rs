//! The keep-alive HTTP/1.1 responder shared by the `http-hello` and `multi-reactor` examples.

use std::io;
use std::net::SocketAddr;

use evloop::fd::OwnedFd;
use evloop::{BevOptions, BufferedSocket, Context, Interest, Listener, ListenerOptions, Registry};

pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// Listen on `addr` and answer every request (ended by an empty line; pipelining allowed).
#[allow(dead_code)] // multi-reactor on Windows shares one listener instead
pub fn serve(
    ops: &mut Registry<()>,
    addr: SocketAddr,
    reuseport: bool,
) -> io::Result<Listener<()>> {
    let options = ListenerOptions {
        backlog: 4096,
        reuseport,
        ..Default::default()
    };
    Listener::bind(ops, addr, options, answer)
}

/// Answer on a socket that already listens (several loops sharing one listener).
#[allow(dead_code)] // multi-reactor on Windows
pub fn serve_on(ops: &mut Registry<()>, listener: OwnedFd) -> io::Result<Listener<()>> {
    Listener::adopt(ops, listener, ListenerOptions::default(), answer)
}

/// The accept callback: a buffered socket that answers every request.
fn answer(ctx: &mut Context<'_, ()>, fd: OwnedFd, _: evloop::PeerAddr, _: &mut ()) {
    {
        let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
        let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
            return;
        };
        let mut bev = bev.on(ctx);
        bev.set_read_callback(|bev, _| {
            // Answer every complete request; a partial one waits for more bytes.
            while let Some(end) = bev.input().search(b"\r\n\r\n", 0) {
                let _ = bev.input().drain(end + 4);
                let _ = bev.output().append(RESPONSE);
            }
        });
        bev.set_event_callback(|bev, _| {
            bev.free();
        });
        let _ = bev.enable(Interest::READ | Interest::WRITE);
    }
}

/// Exit the loop on SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on Windows).
pub fn exit_on_signals(base: &mut evloop::Base) -> io::Result<()> {
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    Ok(())
}

/// Raise the fd limit so that thousands of clients fit (Windows has no such limit).
#[cfg(windows)]
pub fn raise_fd_limit() {}

/// Raise the fd limit so that thousands of clients fit (Windows has no such limit).
#[cfg(unix)]
pub fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}
