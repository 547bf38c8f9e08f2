//! Prints the backends compiled in (in order of preference) and the one a new base uses.
//!
//! ```text
//! $ cargo run --example methods
//! supported: epoll poll select
//! using: epoll
//! $ EVENT_NOEPOLL=1 cargo run --example methods
//! supported: epoll poll select
//! using: poll
//! ```

fn main() -> std::io::Result<()> {
    println!("supported: {}", evloop::supported_methods().join(" "));
    let base: evloop::Base = evloop::new_base()?;
    println!("using: {}", base.method());
    Ok(())
}
