//! The http-hello responder on tokio's current-thread runtime, for the load comparison in
//! `benches/http.sh`: `http_tokio [port]` (default 8082), exits on SIGINT or SIGTERM. Same
//! protocol as evloop's example: every request ended by an empty line gets the same response.

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

    async fn serve(mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
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
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        }
    }

    pub fn main() -> std::io::Result<()> {
        let port: u16 = std::env::args()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(8082);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            eprintln!("http_tokio: listening on 127.0.0.1:{port}");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(serve(stream));
                        }
                    }
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = term.recv() => return Ok(()),
                }
            }
        })
    }
}

fn main() -> std::io::Result<()> {
    #[cfg(unix)]
    return bench::main();
    #[cfg(not(unix))]
    {
        eprintln!(
            "http_tokio: the benchmarks run on Unix (their peers are epoll, libevent and libev)"
        );
        std::process::exit(2)
    }
}
