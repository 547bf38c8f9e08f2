//! The http-hello responder written with async/await on evloop's runtime (`Async<TcpStream>`
//! and one task per connection), for the comparison with the callback `http-hello` and with
//! tokio's current-thread runtime (`http_tokio`, the same code line for line) in
//! `benches/http.sh` and `benches/instructions.sh`: `http_async [port]` (default 8084),
//! exits on SIGINT or SIGTERM. Every request ended by an empty line gets the same response.

use std::net::{SocketAddr, TcpListener, TcpStream};

use evloop::rt::{Async, Runtime};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

async fn serve(stream: Async<TcpStream>) {
    let _ = stream.get_ref().set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match (&stream).read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(end) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
            start += end + 4;
            out.extend_from_slice(RESPONSE);
        }
        buf.drain(..start);
        if !out.is_empty() {
            if (&stream).write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8084);
    let mut base: evloop::Base = evloop::new_base()?;
    let rt = Runtime::new(&mut base)?;
    let listener = Async::<TcpListener>::bind(&rt, SocketAddr::from(([127, 0, 0, 1], port)))?;
    eprintln!(
        "http_async: listening on 127.0.0.1:{port} ({})",
        base.method()
    );
    let accept = {
        let rt = rt.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await?;
                rt.spawn(serve(stream)).detach();
            }
        }
    };
    let stops = evloop::signal::STOP_SIGNALS; // two on every system
    let (mut int, mut term) = (rt.signal(stops[0])?, rt.signal(stops[1])?);
    let stop = async move { future::or(int.recv(), term.recv()).await.map(|_| ()) };
    rt.block_on(&mut base, &mut (), future::or(accept, stop))?
}
