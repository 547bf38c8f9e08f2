//! The echo server written with async/await: `Async<TcpStream>` and the `futures-lite` I/O
//! helpers on evloop's executor. Every byte a client sends comes back, until it closes.
//! Listens on 127.0.0.1:9997 (the first argument overrides the port); exits 0 on SIGINT or
//! SIGTERM (Ctrl-C or Ctrl-Break on Windows).
//!
//! ```text
//! $ cargo run --release --example async-echo &
//! $ socat - TCP:127.0.0.1:9997
//! ```

use std::net::{SocketAddr, TcpListener};

use evloop::rt::{Async, Runtime};
use evloop::Base;
use futures_lite::future;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9997);
    let mut base: Base = evloop::new_base()?;
    let rt = Runtime::new(&mut base)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = Async::<TcpListener>::bind(&rt, addr)?;
    println!("async-echo: listening on {addr} ({})", base.method());

    let serve = {
        let rt = rt.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await?;
                rt.spawn(async move {
                    // One task per connection: copy what it reads back into it, reading and
                    // writing through two shared references to the one socket.
                    let _ = futures_lite::io::copy(&stream, &mut &stream).await;
                })
                .detach();
            }
        }
    };
    // Stop on the first of the stop signals.
    let stops = evloop::signal::STOP_SIGNALS; // two on every system
    let (mut int, mut term) = (rt.signal(stops[0])?, rt.signal(stops[1])?);
    let stop = async move { future::or(int.recv(), term.recv()).await.map(|_| ()) };
    rt.block_on(&mut base, &mut (), future::or(serve, stop))??;
    println!("async-echo: stopped");
    Ok(())
}
