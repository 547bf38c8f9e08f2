//! A filter stacked on a socket (libevent's filter bufferevent): an echo server whose
//! replies come back upper-cased, a line at a time. The connection logic is a plain echo;
//! the `Lines` filter does the rest, its input side passing on whole lines only and its output
//! side upper-casing. A last line without a newline is answered when the client closes its
//! sending side, since the filter's input runs as `Finished` at end of file, and the socket
//! closes once that answer went out (`free_after_flush`). Listens on 127.0.0.1:9997 (the first argument overrides
//! the port); exits 0 on SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on Windows).
//!
//! Try: `printf 'hello\nworld' | nc -N 127.0.0.1 9997` prints `HELLO` and `WORLD`.

use std::io;
use std::net::SocketAddr;

use evloop::{
    Base, BevEvent, BevOptions, Buffer, BufferedSocket, Eol, Filter, FilterResult, FlushMode,
    Interest, Listener, ListenerOptions,
};

/// Whole lines in; upper case out.
struct Lines;

impl Filter for Lines {
    fn input(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        _limit: usize,
        mode: FlushMode,
    ) -> io::Result<FilterResult> {
        // Pass complete lines, with their end; hold a partial one until its end arrives (or
        // the stream ends: `Finished`).
        while let Some((at, len)) = src.search_eol(0, Eol::Crlf) {
            src.remove_into(dst, at + len)?;
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

    fn output(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        limit: usize,
        _mode: FlushMode,
    ) -> io::Result<FilterResult> {
        let mut chunk = vec![0; src.len().min(limit).min(64 * 1024)];
        src.remove(&mut chunk)?;
        chunk.make_ascii_uppercase();
        dst.append(&chunk)?;
        Ok(FilterResult::Ok)
    }
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9997);
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Listener::bind(
        &mut base,
        addr,
        ListenerOptions::default(),
        |ctx, fd, _, _| {
            let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()).and_then(|under| {
                BufferedSocket::filtered(ctx, under, Lines, BevOptions::default())
            }) else {
                return;
            };
            let mut bev = bev.on(ctx);
            bev.set_read_callback(|bev, _| {
                let (input, output) = bev.buffers();
                let _ = output.append_buffer(input);
            });
            bev.set_event_callback(|bev, _| {
                // At the client's end of file the last line was answered just before: close
                // once that answer went out. An error ends it at once.
                if bev.fired().contains(BevEvent::EOF) {
                    let _ = bev.free_after_flush();
                } else {
                    bev.free();
                }
            });
            let _ = bev.enable(Interest::READ | Interest::WRITE);
        },
    )?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    println!("shout: listening on {addr}");
    base.run(&mut ())?;
    Ok(())
}
