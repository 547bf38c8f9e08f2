//! A keep-alive HTTP/1.1 responder for load tools: every request (ended by an empty line,
//! pipelining allowed) gets `200 OK` with the body `Hello, World!`. Listens on 127.0.0.1:8080
//! (the first argument overrides the port); exits 0 on SIGINT or SIGTERM.
//!
//! ```text
//! $ cargo run --release --example http-hello &
//! $ wrk -t1 -c1000 -d5s http://127.0.0.1:8080/
//! ```

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;

use evloop::Base;

fn main() -> std::io::Result<()> {
    http::raise_fd_limit();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    http::serve(&mut base, addr, false)?;
    http::exit_on_signals(&mut base)?;
    eprintln!("http-hello: listening on {addr} ({})", base.method());
    base.run(&mut ())?;
    Ok(())
}
