//! One loop per core: N threads, each with its own base and its own `SO_REUSEPORT` listener on
//! the same port, serving the http-hello responder. The kernel spreads connections over the
//! listeners; nothing is shared between the loops. This is how evloop scales past one core.
//! Windows has no `SO_REUSEPORT`: there the loops watch duplicates of one listening socket,
//! and whichever accepts first gets the connection.
//!
//! ```text
//! $ cargo run --release --example multi-reactor -- --threads 2 8080
//! $ wrk -t2 -c1000 -d5s http://127.0.0.1:8080/
//! ```
//! SIGINT or SIGTERM stops every loop: the main thread's loop catches the signal and tells
//! the others through their handles.

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;

use evloop::{Base, LoopFlags};

fn main() -> std::io::Result<()> {
    http::raise_fd_limit();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut port = 8080u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(threads)
                    .max(1)
            }
            p => port = p.parse().unwrap_or(port),
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Windows has no SO_REUSEPORT: the loops share one listening socket instead, each
    // watching a duplicate of it; the kernel gives each connection to one accept.
    #[cfg(windows)]
    let shared = std::sync::Arc::new(std::net::TcpListener::bind(addr)?);
    #[cfg(windows)]
    let listen = move |base: &mut Base| http::serve_on(base, shared.try_clone()?.into());
    #[cfg(unix)]
    let listen = move |base: &mut Base| http::serve(base, addr, true);
    // Workers: a base each, built on its own thread (a base is not Send).
    let (tx, rx) = std::sync::mpsc::channel();
    let workers: Vec<_> = (1..threads)
        .map(|_| {
            let tx = tx.clone();
            #[allow(clippy::clone_on_copy)] // Copy on Unix; on Windows it holds an Arc
            let listen = listen.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut base: Base = evloop::new_base()?;
                listen(&mut base)?;
                tx.send(base.handle()?).expect("main thread alive");
                base.run_with(LoopFlags::NO_EXIT_ON_EMPTY, &mut ())?;
                Ok(())
            })
        })
        .collect();
    let handles: Vec<_> = rx.iter().take(threads - 1).collect();
    let mut base: Base = evloop::new_base()?;
    listen(&mut base)?;
    http::exit_on_signals(&mut base)?;
    eprintln!(
        "multi-reactor: {threads} loops on {addr} ({})",
        base.method()
    );
    base.run(&mut ())?;
    for h in &handles {
        let _ = h.loop_break();
    }
    for w in workers {
        w.join().expect("worker panicked")?;
    }
    Ok(())
}
