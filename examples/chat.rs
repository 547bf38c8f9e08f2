//! A line chat server: every line a client sends goes to every other client, prefixed by the
//! sender's address. Listens on 127.0.0.1:9997 (the first argument overrides the port).
//!
//! - A client that sends nothing for `IDLE` (300 s; the second argument overrides it, in
//!   seconds) is dropped by its read timeout.
//! - A client that does not read is dropped once `MAX_BACKLOG` bytes wait for it (the write
//!   high watermark), instead of growing the server's memory.
//! - Ctrl-C (SIGINT, SIGTERM; Ctrl-Break on Windows) exits with status 0.
//!
//! ```text
//! $ cargo run --release --example chat
//! $ nc 127.0.0.1 9997        # in two terminals; type lines in one, read them in the other
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::{
    Base, BevContext, BevEvent, BevOptions, BufferedSocket, Eol, Interest, Listener,
    ListenerOptions,
};

/// Most bytes waiting for one client before it is dropped.
const MAX_BACKLOG: usize = 256 * 1024;
/// Longest line kept: a client sending more without a newline is dropped.
const MAX_LINE: usize = 64 * 1024;

/// The loop's user data: every connected client by number, with its name.
#[derive(Default)]
struct Chat {
    clients: HashMap<u64, (BufferedSocket<Chat>, String)>,
    next: u64,
    idle: Duration,
}

impl Chat {
    /// Send `line` to every client but `from`; drop those that cannot take it.
    fn broadcast(&mut self, ops: &mut evloop::Registry<Chat>, from: u64, line: &[u8]) {
        let mut slow = Vec::new();
        for (&id, (bev, _)) in &self.clients {
            if id != from && bev.on(ops).write(line).is_err() {
                slow.push(id);
            }
        }
        for id in slow {
            if let Some((bev, name)) = self.clients.remove(&id) {
                println!("{name} dropped: not reading");
                let _ = bev.free(ops);
            }
        }
    }
}

fn on_line(bev: &mut BevContext<'_, Chat>, chat: &mut Chat, id: u64) {
    let name = match chat.clients.get(&id) {
        Some((_, name)) => name.clone(),
        None => return,
    };
    while let Some(line) = bev.input().read_line(Eol::Crlf) {
        let mut msg = Vec::with_capacity(name.len() + line.len() + 3);
        let _ = write!(msg, "{name}: ");
        msg.extend_from_slice(&line);
        msg.push(b'\n');
        chat.broadcast(bev.context(), id, &msg);
    }
    if bev.input().len() > MAX_LINE {
        leave(bev, chat, id, "line too long");
    }
}

fn leave(bev: &mut BevContext<'_, Chat>, chat: &mut Chat, id: u64, why: &str) {
    if let Some((_, name)) = chat.clients.remove(&id) {
        println!("{name} left: {why}");
        chat.broadcast(bev.context(), id, format!("* {name} left\n").as_bytes());
    }
    bev.free();
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9997);
    let idle = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut base: Base<Chat> = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Listener::bind(
        &mut base,
        addr,
        ListenerOptions::default(),
        |ctx, fd, peer, chat: &mut Chat| {
            let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
                return;
            };
            let id = chat.next;
            chat.next += 1;
            let name = peer.to_string();
            let mut control = bev.on(ctx);
            control.set_read_callback(move |bev, chat: &mut Chat| on_line(bev, chat, id));
            control.set_event_callback(move |bev, chat: &mut Chat| {
                let why = if bev.fired().contains(BevEvent::TIMEOUT) {
                    "idle"
                } else if bev.fired().contains(BevEvent::EOF) {
                    "closed"
                } else {
                    "error"
                };
                leave(bev, chat, id, why);
            });
            let setup = control
                .set_write_watermark(0, MAX_BACKLOG)
                .and_then(|()| control.set_timeouts(Some(chat.idle), None))
                .and_then(|()| control.enable(Interest::READ | Interest::WRITE))
                .and_then(|()| control.write(format!("* you are {name}\n").as_bytes()));
            if setup.is_err() {
                let _ = bev.free(ctx);
                return;
            }
            println!("{name} joined");
            chat.broadcast(ctx, id, format!("* {name} joined\n").as_bytes());
            chat.clients.insert(id, (bev, name));
        },
    )?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    println!("chat: listening on {addr}");
    let mut chat = Chat {
        idle: Duration::from_secs(idle),
        ..Chat::default()
    };
    base.run(&mut chat)?;
    // The sockets close with the base; say goodbye to nobody in particular.
    println!("chat: {} clients at exit", chat.clients.len());
    Ok(())
}
