//! libevent's sample hello-world, on evloop: listens on 0.0.0.0:9995 (the first argument
//! overrides the port), writes `Hello, World!` to each client, prints `flushed answer` once a
//! client's answer is flushed and closes it; on SIGINT prints a message and exits cleanly two
//! seconds later.
//!
//! ```text
//! $ cargo run --release --example hello-world
//! $ nc 127.0.0.1 9995
//! Hello, World!
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use evloop::{Base, BevOptions, BufferedSocket, Interest, Listener, ListenerOptions};

const MESSAGE: &[u8] = b"Hello, World!\n";

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        None => 9995,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("hello-world: bad port: {e}");
            std::process::exit(2);
        }
    };
    let mut base: Base = match evloop::new_base() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Could not initialize evloop! ({e})");
            std::process::exit(1);
        }
    };
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = Listener::bind(
        &mut base,
        addr,
        ListenerOptions::default(),
        |ctx, fd, _peer, _| {
            let bev = match BufferedSocket::new(ctx, fd, BevOptions::default()) {
                Ok(bev) => bev,
                Err(e) => {
                    eprintln!("Error constructing bufferevent! ({e})");
                    ctx.loop_break();
                    return;
                }
            };
            let mut bev = bev.on(ctx);
            bev.set_write_callback(|bev, _| {
                if bev.output().is_empty() {
                    println!("flushed answer");
                    bev.free();
                }
            });
            bev.set_event_callback(|bev, _| {
                if bev.fired().contains(evloop::BevEvent::EOF) {
                    println!("Connection closed.");
                } else if let Some(e) = bev.error() {
                    println!("Got an error on the connection: {e}");
                }
                bev.free();
            });
            let _ = bev.enable(Interest::WRITE);
            let _ = bev.disable(Interest::READ);
            let _ = bev.write(MESSAGE);
        },
    );
    if let Err(e) = listener {
        eprintln!("Could not create a listener! ({e})");
        std::process::exit(1);
    }
    let sigint = base.new_signal(libc::SIGINT, |ctx, _| {
        println!("Caught an interrupt signal; exiting cleanly in two seconds.");
        ctx.loop_exit(Some(Duration::from_secs(2)));
    });
    match sigint.and_then(|ev| base.add(ev, None)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("Could not create/add a signal event! ({e})");
            std::process::exit(1);
        }
    }
    if let Err(e) = base.run(&mut ()) {
        eprintln!("hello-world: the loop failed: {e}");
        std::process::exit(1);
    }
    println!("done");
}
