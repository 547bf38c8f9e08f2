//! hyper 1.x serving HTTP/1.1 (keep-alive) on evloop's executor: `Async<TcpStream>` under a
//! small adapter to hyper's `rt::Read`/`rt::Write`, one task per connection. Every request
//! gets `200 OK` with the body `Hello, World!`, as `http-hello` answers. Listens on
//! 127.0.0.1:8083 (the first argument overrides the port); exits 0 on SIGINT or SIGTERM
//! (Ctrl-C or Ctrl-Break on Windows).
//!
//! ```text
//! $ cargo run --release --example hyper-hello &
//! $ curl -v http://127.0.0.1:8083/ http://127.0.0.1:8083/   # one connection, reused
//! ```

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop::rt::{Async, Runtime};
use evloop::Base;
use futures_lite::future;
use futures_lite::{AsyncRead, AsyncWrite};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

/// hyper's I/O traits over an `Async<TcpStream>`.
struct HyperIo(Async<TcpStream>);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // Read into initialized memory and copy: no `unsafe` in an example.
        let mut chunk = [0u8; 8192];
        let n = std::task::ready!(Pin::new(&mut &self.0).poll_read(cx, &mut chunk))?;
        buf.put_slice(&chunk[..n]);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8083);
    let mut base: Base = evloop::new_base()?;
    let rt = Runtime::new(&mut base)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = Async::<TcpListener>::bind(&rt, addr)?;
    eprintln!("hyper-hello: listening on {addr} ({})", base.method());

    let serve = {
        let rt = rt.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.get_ref().set_nodelay(true);
                rt.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(HyperIo(stream), hyper::service::service_fn(hello))
                        .await;
                })
                .detach();
            }
        }
    };
    let stops = evloop::signal::STOP_SIGNALS; // two on every system
    let (mut int, mut term) = (rt.signal(stops[0])?, rt.signal(stops[1])?);
    let stop = async move { future::or(int.recv(), term.recv()).await.map(|_| ()) };
    rt.block_on(&mut base, &mut (), future::or(serve, stop))??;
    eprintln!("hyper-hello: stopped");
    Ok(())
}
