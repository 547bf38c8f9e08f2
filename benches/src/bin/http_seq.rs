//! A deterministic HTTP client for instruction counts: one keep-alive connection to
//! 127.0.0.1:PORT, COUNT `GET /` requests sent one at a time, each answered in full before the
//! next. Every request then costs the server the same work (one wake-up, one read, one send),
//! so the difference of two runs' instruction counts over the difference of their request
//! counts is the server's instructions per request, whatever the machine's timing. (wrk's
//! concurrent connections batch a varying number of requests per wake-up.)
//!
//! ```text
//! http_seq PORT COUNT
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(port), Some(count)) = (
        args.first().and_then(|p| p.parse::<u16>().ok()),
        args.get(1).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: http_seq PORT COUNT");
        std::process::exit(2);
    };
    // The server may still be starting (under valgrind, for seconds).
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("http_seq: cannot connect to port {port}: {e}");
                std::process::exit(1);
            }
        }
    };
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut buf = [0u8; 4096];
    for i in 0..count {
        stream.write_all(REQUEST).expect("send a request");
        // A response ends with the 13-byte body after the blank line.
        let mut got = Vec::new();
        loop {
            let n = stream.read(&mut buf).expect("read a response");
            if n == 0 {
                eprintln!("http_seq: the server closed after {i} responses");
                std::process::exit(1);
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= head + 4 + 13 {
                    break;
                }
            }
        }
        assert!(got.starts_with(b"HTTP/1.1 200 OK"), "response {i}: {got:?}");
    }
    println!("{count}");
}
