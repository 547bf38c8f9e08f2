//! Signal events: prints `caught SIGNAME count N` for each SIGUSR1 or SIGHUP (on Windows,
//! Ctrl-Break: SIGBREAK), and on SIGINT (Ctrl-C) prints `exiting cleanly in two seconds` and
//! exits 0 two seconds later.
//!
//! ```text
//! $ cargo run --example signals &
//! $ kill -USR1 %1     # caught SIGUSR1 count 1
//! $ kill -INT %1      # exiting cleanly in two seconds
//! ```
//! Works on every backend: try `EVENT_NOEPOLL=1` or `EVENT_SHOW_METHOD=1`.

use std::time::Duration;

use evloop::{signal_name, Base};

fn main() -> std::io::Result<()> {
    let mut base: Base = evloop::new_base()?;
    #[cfg(unix)]
    let counted = [libc::SIGUSR1, libc::SIGHUP];
    #[cfg(windows)]
    let counted = [evloop::signal::SIGBREAK];
    for signo in counted {
        let e = base.new_signal(signo, move |ctx, _| {
            println!("caught {} count {}", signal_name(signo), ctx.ncalls());
        })?;
        base.add(e, None)?;
    }
    let int = base.new_signal(libc::SIGINT, |ctx, _| {
        println!("exiting cleanly in two seconds");
        let me = ctx.id();
        ctx.del(me).unwrap();
        ctx.loop_exit(Some(Duration::from_secs(2)));
    })?;
    base.add(int, None)?;
    println!("ready: pid {}", std::process::id());
    base.run(&mut ())?;
    Ok(())
}
