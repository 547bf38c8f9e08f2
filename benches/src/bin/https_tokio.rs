//! The http-hello responder over TLS on tokio's current-thread runtime and tokio-rustls (ring,
//! as evloop's), the peer of `https-hello` in `benches/https.sh`:
//! `https_tokio PORT CERT.pem KEY.pem`, exits on SIGINT or SIGTERM. The same code as
//! `http_tokio` with the stream wrapped by a `TlsAcceptor`, and a request with
//! `Connection: close` answered, then closed.

/// The benchmark itself (Linux, where `https.sh` runs).
#[cfg(target_os = "linux")]
mod bench {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{self, ServerConfig};
    use tokio_rustls::TlsAcceptor;

    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
    /// The answer to a request that asked to close: a new connection per request.
    const RESPONSE_THEN_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

    async fn serve(stream: TcpStream, acceptor: TlsAcceptor) {
        let _ = stream.set_nodelay(true);
        let Ok(mut stream) = acceptor.accept(stream).await else {
            return;
        };
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
            let mut close = false;
            while let Some(end) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = &buf[start..start + end];
                close = head.windows(17).any(|w| w == b"Connection: close");
                start += end + 4;
                if close {
                    out.extend_from_slice(RESPONSE_THEN_CLOSE);
                    break;
                }
                out.extend_from_slice(RESPONSE);
            }
            buf.drain(..start);
            if !out.is_empty() {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if close {
                // close_notify, then the TCP close.
                let _ = stream.shutdown().await;
                return;
            }
        }
    }

    pub fn main() -> std::io::Result<()> {
        let args: Vec<String> = std::env::args().collect();
        let [_, port, cert, key] = &args[..] else {
            eprintln!("usage: https_tokio PORT CERT.pem KEY.pem");
            std::process::exit(2);
        };
        let port: u16 = port.parse().map_err(std::io::Error::other)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(std::io::Error::other)?
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(std::io::Error::other)?;
        #[allow(deprecated)] // ring, as evloop's https-hello uses
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(std::io::Error::other)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            eprintln!("https_tokio: listening on 127.0.0.1:{port}");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(serve(stream, acceptor.clone()));
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
    #[cfg(target_os = "linux")]
    return bench::main();
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("https_tokio: the TLS benchmark runs on Linux (benches/https.sh)");
        std::process::exit(2)
    }
}
