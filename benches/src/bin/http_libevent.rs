//! The http-hello responder on libevent's bufferevent (C, through FFI), for the load
//! comparison in `benches/http.sh`: `http_libevent [port]` (default 8081), exits on SIGINT or
//! SIGTERM.

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    pub fn main() {
        if std::env::args().nth(1).as_deref() == Some("--built") {
            let built = evloop_benches::peers_available().contains(&"libevent");
            println!("{}", if built { "yes" } else { "no" });
            return;
        }
        let port: u16 = std::env::args()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(8081);
        eprintln!("http_libevent: listening on 127.0.0.1:{port}");
        if let Err(e) = evloop_benches::http_libevent(port) {
            eprintln!("http_libevent: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!(
            "http_libevent: the benchmarks run on Unix (their peers are epoll, libevent and libev)"
        );
        std::process::exit(2)
    }
}
