//! A static file server: every `GET` (any path) answers with the one file named on the command
//! line, sent with `sendfile` where the OS has it (Linux, FreeBSD, macOS) and by reading it
//! a piece at a time elsewhere — the file's bytes never pass through this program's buffers
//! on the first three. Keep-alive and pipelining, `HEAD`, and one `Range: bytes=...` per
//! request (`206 Partial Content`; `416` when it lies past the end); `Connection: close`
//! ends the connection after the answer went out (`free_after_flush`). Listens on
//! 127.0.0.1:8080 (the second argument, a port or an address:port, overrides it); `--copy`
//! first makes every
//! answer go by reading the file (the path without `sendfile`, to compare); exits 0 on
//! SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on Windows).
//!
//! ```text
//! $ cargo run --release --example serve-file -- /usr/share/dict/words 8080 &
//! $ curl -s http://127.0.0.1:8080/ | cmp - /usr/share/dict/words
//! $ curl -s -r 100-199 http://127.0.0.1:8080/ | wc -c
//! 100
//! ```

use std::io::{self, Write};
use std::net::SocketAddr;

use evloop::{
    Base, BevContext, BevOptions, BufferedSocket, Eol, FileSegment, Interest, Listener,
    ListenerOptions,
};

/// The most a request's head may hold; a longer one is answered 431 and the connection closed.
const MAX_HEAD: usize = 16 * 1024;

fn main() -> io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let copy = args.first().is_some_and(|a| a == "--copy");
    if copy {
        args.remove(0);
    }
    let Some(path) = args.first() else {
        eprintln!("usage: serve-file [--copy] PATH [PORT | ADDR:PORT]");
        std::process::exit(2);
    };
    let mut file = FileSegment::open(path)?;
    if copy {
        file = file.without_sendfile();
    }
    // A port on 127.0.0.1, or a whole address to listen on.
    let addr = match args.get(1) {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(a) => match (a.parse::<u16>(), a.parse::<SocketAddr>()) {
            (Ok(port), _) => SocketAddr::from(([127, 0, 0, 1], port)),
            (_, Ok(addr)) => addr,
            _ => {
                let msg = format!("{a:?} is neither a port nor an address:port");
                return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
            }
        },
    };

    let mut base: Base = evloop::new_base()?;
    let options = ListenerOptions {
        backlog: 1024,
        ..Default::default()
    };
    let listener = Listener::bind(&mut base, addr, options, move |ctx, fd, _, _| {
        let Ok(bev) = BufferedSocket::new(ctx, fd, BevOptions::default()) else {
            return;
        };
        let file = file.clone();
        let mut control = bev.on(ctx);
        control.set_read_callback(move |bev, _| answer_requests(bev, &file));
        control.set_event_callback(|bev, _| {
            bev.free();
        });
        let _ = control.enable(Interest::READ | Interest::WRITE);
    })?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    eprintln!(
        "serve-file: {path} ({} bytes{}) on {} ({})",
        FileSegment::open(path)?.len(),
        if copy { ", copying" } else { "" },
        listener.local_addr()?,
        base.method()
    );
    base.run(&mut ())?;
    Ok(())
}

/// Answer every complete request in the input; a partial one waits for more bytes.
fn answer_requests(bev: &mut BevContext<'_, ()>, file: &FileSegment) {
    loop {
        let Some(end) = bev.input().search(b"\r\n\r\n", 0) else {
            if bev.input().len() > MAX_HEAD {
                let _ = bev.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = bev.free_after_flush();
            }
            return;
        };
        let mut head = vec![0; end + 4];
        let _ = bev.input().remove(&mut head);
        let request = Request::parse(&head);
        let close = request.close;
        if let Err(e) = respond(bev, file, &request) {
            eprintln!("serve-file: {e}");
            let _ = bev.free_after_flush();
            return;
        }
        if close {
            // Stop reading; the answer goes out, then the socket closes.
            let _ = bev.free_after_flush();
            return;
        }
    }
}

/// What the server looks at in a request.
struct Request {
    method: String,
    range: Option<String>,
    close: bool,
}

impl Request {
    fn parse(head: &[u8]) -> Request {
        let mut buf = evloop::Buffer::new();
        let _ = buf.append(head);
        let line = buf.read_line(Eol::Crlf).unwrap_or_default();
        let line = String::from_utf8_lossy(&line);
        let mut words = line.split(' ');
        let method = words.next().unwrap_or("").to_string();
        let http10 = words.nth(1) == Some("HTTP/1.0");
        let mut request = Request {
            method,
            range: None,
            close: http10,
        };
        while let Some(line) = buf.read_line(Eol::Crlf) {
            let line = String::from_utf8_lossy(&line);
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("range") {
                request.range = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("connection") {
                request.close = value.eq_ignore_ascii_case("close");
            }
        }
        request
    }
}

/// One `bytes=` range (RFC 9110, 14.1.2) of a `len`-byte file, as (first byte, length);
/// `Ok(None)` for a form this server ignores (several ranges, another unit: the whole file
/// goes); `Err` when it lies outside the file (416).
fn byte_range(spec: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = spec.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| ());
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let n = number(last)?.min(len);
            if n == 0 {
                return Err(());
            }
            Ok(Some((len - n, n)))
        }
        (false, _) => {
            let first = number(first)?;
            let last = if last.trim().is_empty() {
                len.saturating_sub(1)
            } else {
                number(last)?.min(len.saturating_sub(1))
            };
            if first >= len || last < first {
                return Err(());
            }
            Ok(Some((first, last - first + 1)))
        }
        (true, true) => Err(()),
    }
}

/// Queue the answer to one request: a head, and the file (or a range of it) as a file
/// segment, which the socket sends without copying it.
fn respond(bev: &mut BevContext<'_, ()>, file: &FileSegment, request: &Request) -> io::Result<()> {
    let out = bev.output();
    let close = if request.close {
        "Connection: close\r\n"
    } else {
        ""
    };
    if request.method != "GET" && request.method != "HEAD" {
        write!(
            out,
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n{close}\r\n"
        )?;
        return Ok(());
    }
    let len = file.len();
    let range = match request.range.as_deref().map(|r| byte_range(r, len)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(range))) => Some(range),
        Some(Err(())) => {
            write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{close}\r\n"
            )?;
            return Ok(());
        }
    };
    let body = match range {
        Some((first, n)) => {
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{}/{len}\r\n",
                first + n - 1
            )?;
            file.slice(first, n)?
        }
        None => {
            write!(out, "HTTP/1.1 200 OK\r\n")?;
            file.clone()
        }
    };
    write!(
        out,
        "Content-Length: {}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\n{close}\r\n",
        body.len()
    )?;
    if request.method == "GET" {
        out.append_file(&body)?;
    }
    Ok(())
}
