//! An echo server: every byte a client sends comes back, until it closes. Listens on
//! 127.0.0.1:9996 (the first argument overrides the port); exits 0 on SIGINT or SIGTERM
//! (Ctrl-C or Ctrl-Break on Windows).

use std::net::SocketAddr;

use evloop::{Base, BevOptions, BufferedSocket, Interest, Listener, ListenerOptions};

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9996);
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Listener::bind(
        &mut base,
        addr,
        ListenerOptions::default(),
        |ctx, fd, _, _| {
            let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
                return;
            };
            let mut bev = bev.on(ctx);
            bev.set_read_callback(|bev, _| {
                // Move the input's chunks to the output: no copy.
                let (input, output) = bev.buffers();
                let _ = output.append_buffer(input);
            });
            bev.set_event_callback(|bev, _| {
                bev.free();
            });
            let _ = bev.enable(Interest::READ | Interest::WRITE);
        },
    )?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    println!("echo: listening on {addr}");
    base.run(&mut ())?;
    Ok(())
}
