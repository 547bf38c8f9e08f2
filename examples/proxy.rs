//! A TCP proxy after libevent's le-proxy: `proxy [TLS OPTIONS] LISTEN_PORT TARGET_HOST:PORT`
//! accepts on 127.0.0.1:LISTEN_PORT and connects each client to the target, copying both
//! directions. A target host name is resolved for each client off the loop thread
//! (`BufferedSocket::connect_host`), each of its addresses tried in turn.
//!
//! - TLS on either side (le-proxy's `-s`, on rustls): `--tls-accept CERT.pem KEY.pem` makes
//!   clients speak TLS to the proxy; `--tls-connect CA.pem` speaks TLS to the target,
//!   verifying it against CA.pem under the target's host name (`--tls-name NAME` overrides).
//!   Either, both or neither; the bytes relayed are the plaintext.
//! - Backpressure: once `MAX_OUTPUT` bytes wait to go out on one side, the proxy stops reading
//!   the other side until that output drains to half, so a slow reader holds the proxy's
//!   memory at about `MAX_OUTPUT` per direction, whatever the fast side sends.
//! - When either side closes (or fails), what it sent is still delivered: the other side is
//!   closed once its output is flushed.
//! - Ctrl-C (SIGINT, SIGTERM; Ctrl-Break on Windows) exits with status 0.
//!
//! As in le-proxy, a side's callbacks change while it runs: the write callback that
//! re-enables reading is installed when the output fills up, and removed once it drained.
//!
//! ```text
//! $ cargo run --release --example proxy -- 9998 example.com:80
//! $ curl -H 'Host: example.com' http://127.0.0.1:9998/
//! ```

use std::io;
use std::net::SocketAddr;

#[cfg(feature = "tls")]
#[path = "common/tls.rs"]
mod common_tls;
#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "tls")]
use evloop::rustls;

use evloop::{
    Base, BevContext, BevEvent, BevOptions, Buffer, BufferedSocket, Interest, Listener,
    ListenerOptions, Registry,
};

/// Bytes waiting to be written to one side before the other side stops being read.
const MAX_OUTPUT: usize = 512 * 1024;

type Bev = BufferedSocket<()>;
type Ctx<'a> = BevContext<'a, ()>;

/// Copy what `bev` read to its partner; stop reading once the partner's output is full, and
/// have the partner's drain start it again (le-proxy's `readcb`).
fn relay(bev: &mut Ctx<'_>, partner: &Bev) {
    if partner.is_freed() {
        let n = bev.input().len();
        let _ = bev.input().drain(n);
        return;
    }
    let mut chunk = Buffer::new();
    let n = bev.input().len();
    let _ = bev.input().remove_into(&mut chunk, n);
    let _ = partner.with_output(bev.context(), |out| out.append_buffer(&mut chunk));
    if partner.output_len().unwrap_or(0) >= MAX_OUTPUT {
        let me = bev.handle();
        let mut to = partner.on(bev.context());
        to.set_write_callback(move |partner, _| drained(partner, &me));
        let _ = to.set_write_watermark(MAX_OUTPUT / 2, 0);
        let _ = bev.disable(Interest::READ);
    }
}

/// The partner's output drained to half: read the other side again, and stop watching the
/// drain (le-proxy's `drained_writecb`).
fn drained(bev: &mut Ctx<'_>, other: &Bev) {
    bev.set_write_callback(|_, _| {});
    let _ = bev.set_write_watermark(0, 0);
    if !other.is_freed() {
        let _ = other.on(bev.context()).enable(Interest::READ);
    }
}

/// EOF or an error on `bev`: deliver what it read, close the partner once its output is out,
/// and free `bev` (le-proxy's `eventcb`).
fn finish(bev: &mut Ctx<'_>, partner: &Bev) {
    if bev.fired().contains(BevEvent::CONNECTED) {
        return;
    }
    if let Some(e) = bev.error() {
        eprintln!("proxy: {e}");
    }
    relay(bev, partner);
    if !partner.is_freed() {
        // What the partner holds still goes out (bounded by its write timeout), then it closes.
        let _ = partner.on(bev.context()).free_after_flush();
    }
    bev.free();
}

/// Give `bev` the callbacks that relay to `partner`, and start it.
fn wire(ops: &mut Registry<()>, bev: &Bev, partner: &Bev) -> io::Result<()> {
    let mut bev = bev.on(ops);
    let to = partner.clone();
    bev.set_read_callback(move |bev, _| relay(bev, &to));
    let to = partner.clone();
    bev.set_event_callback(move |bev, _| finish(bev, &to));
    bev.enable(Interest::READ | Interest::WRITE)
}

/// How each side speaks: plain, or TLS with these configurations.
#[derive(Default, Clone)]
struct Tls {
    #[cfg(feature = "tls")]
    accept: Option<Arc<rustls::ServerConfig>>,
    #[cfg(feature = "tls")]
    connect: Option<(Arc<rustls::ClientConfig>, String)>,
}

fn usage() -> ! {
    eprintln!(
        "usage: proxy [--tls-accept CERT.pem KEY.pem] [--tls-connect CA.pem [--tls-name NAME]] \
         LISTEN_PORT TARGET_HOST:PORT"
    );
    std::process::exit(2)
}

/// The options before the ports: `--tls-accept`, `--tls-connect`, `--tls-name`.
#[cfg(feature = "tls")]
fn parse_tls(
    args: &mut Vec<String>,
    target_host: impl Fn(&[String]) -> String,
) -> std::io::Result<Tls> {
    let mut tls = Tls::default();
    let (mut ca, mut name) = (None, None);
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let mut value = || {
            if args.is_empty() {
                usage()
            } else {
                args.remove(0)
            }
        };
        match flag.as_str() {
            "--tls-accept" => {
                let (cert, key) = (value(), value());
                tls.accept = Some(common_tls::server_config_from_files(&cert, &key, &[])?);
            }
            "--tls-connect" => ca = Some(value()),
            "--tls-name" => name = Some(value()),
            _ => usage(),
        }
    }
    if let Some(ca) = ca {
        let name = name.unwrap_or_else(|| target_host(args));
        tls.connect = Some((common_tls::client_config(&ca)?, name));
    }
    Ok(tls)
}

/// Built without the `tls` feature: no options.
#[cfg(not(feature = "tls"))]
fn parse_tls(args: &mut [String], _: impl Fn(&[String]) -> String) -> std::io::Result<Tls> {
    if args.first().is_some_and(|a| a.starts_with("--")) {
        eprintln!("proxy: built without the tls feature");
        usage();
    }
    Ok(Tls::default())
}

/// The client's socket over the accepted fd, TLS if asked.
fn accepted(
    ctx: &mut evloop::Context<'_, ()>,
    fd: evloop::fd::OwnedFd,
    tls: &Tls,
) -> std::io::Result<Bev> {
    #[cfg(feature = "tls")]
    if let Some(config) = &tls.accept {
        return BufferedSocket::tls_server(ctx, fd, config.clone(), BevOptions::default());
    }
    let _ = tls;
    BufferedSocket::new(ctx, fd, BevOptions::default())
}

/// The target's socket, TLS if asked: an address connects at once, a host name is resolved
/// for each client off the loop thread (`connect_host`), each of its addresses tried in turn.
fn connected(
    ctx: &mut evloop::Context<'_, ()>,
    target: &Target,
    tls: &Tls,
) -> std::io::Result<Bev> {
    let options = BevOptions::default();
    #[cfg(feature = "tls")]
    if let Some((config, name)) = &tls.connect {
        return match target.addr {
            Some(addr) => BufferedSocket::tls_connect(ctx, addr, config.clone(), name, options),
            None => BufferedSocket::tls_connect_host(
                ctx,
                &target.host,
                target.port,
                config.clone(),
                name,
                options,
            ),
        };
    }
    let _ = tls;
    match target.addr {
        Some(addr) => BufferedSocket::connect(ctx, addr, options),
        None => BufferedSocket::connect_host(ctx, &target.host, target.port, options),
    }
}

/// `HOST:PORT` (`[v6]:PORT` for an IPv6 address), with the address if HOST is one.
struct Target {
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
}

impl Target {
    fn parse(text: &str) -> Option<Target> {
        let (host, port) = text.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        (!host.is_empty()).then_some(Target { host, port, addr })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let tls = parse_tls(&mut args, |rest| {
        rest.get(1)
            .and_then(|t| t.rsplit_once(':').map(|(host, _)| host.to_string()))
            .unwrap_or_default()
    })?;
    let mut args = args.into_iter();
    let (Some(port), Some(target)) = (args.next(), args.next()) else {
        usage();
    };
    let port: u16 = port.parse().unwrap_or_else(|e| {
        eprintln!("proxy: bad port {port:?}: {e}");
        std::process::exit(2);
    });
    let Some(target) = Target::parse(&target) else {
        eprintln!("proxy: the target must be HOST:PORT, not {target:?}");
        std::process::exit(2);
    };
    let banner = format!("proxy: 127.0.0.1:{port} -> {target}");
    let mut base: Base = evloop::new_base()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Listener::bind(
        &mut base,
        addr,
        ListenerOptions::default(),
        move |ctx, fd, _, _| {
            let Ok(client) = accepted(ctx, fd, &tls) else {
                return;
            };
            let server = match connected(ctx, &target, &tls) {
                Ok(server) => server,
                Err(e) => {
                    eprintln!("proxy: connect to {target}: {e}");
                    let _ = client.free(ctx);
                    return;
                }
            };
            let wired = wire(ctx, &client, &server).and_then(|()| wire(ctx, &server, &client));
            if let Err(e) = wired {
                eprintln!("proxy: {e}");
                let _ = client.free(ctx);
                let _ = server.free(ctx);
            }
        },
    )?;
    for &signo in evloop::signal::STOP_SIGNALS {
        let ev = base.new_signal(signo, |ctx, _| ctx.loop_exit(None))?;
        base.add(ev, None)?;
    }
    println!("{banner}");
    base.run(&mut ())?;
    Ok(())
}
