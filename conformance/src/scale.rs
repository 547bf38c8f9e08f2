//! Many fds, and fds beyond select's historical `FD_SETSIZE`.

use evloop_core::fd::OwnedFd;

use evloop_core::{Interest, RunOutcome};

use crate::util::{raise_fd_limit, socketpair, write_all};
use crate::Harness;

/// 1000 socket pairs, every one readable: each event runs exactly once.
pub fn thousand_socketpairs_all_ready(h: &Harness) {
    let limit = raise_fd_limit();
    assert!(
        limit > 2100,
        "this scenario needs 2100 fds; RLIMIT_NOFILE allows {limit}"
    );
    let (writers, readers): (Vec<OwnedFd>, Vec<OwnedFd>) = (0..1000).map(|_| socketpair()).unzip();
    let mut base = h.base::<Vec<u32>>();
    for (i, (a, b)) in writers.iter().zip(readers).enumerate() {
        write_all(a, b"x");
        let e = base
            .new_owned_event(b, Interest::READ, move |_, hits: &mut Vec<u32>| {
                hits[i] += 1
            })
            .unwrap();
        base.add(e, None).unwrap();
    }
    let mut hits = vec![0u32; writers.len()];
    assert_eq!(base.run(&mut hits).unwrap(), RunOutcome::NoEvents);
    assert!(hits.iter().all(|&n| n == 1), "{hits:?}");
}

/// Events on fds at and above 1024 work on every backend (Debian's libevent aborts on
/// select there).
#[cfg(unix)]
pub fn fds_above_1024(h: &Harness) {
    use crate::util::raw;
    let limit = raise_fd_limit();
    assert!(
        limit > 1300,
        "this scenario needs fd 1300; RLIMIT_NOFILE allows {limit}"
    );
    let (a, b) = socketpair();
    let high_b = rustix::io::fcntl_dupfd_cloexec(&b, 1200).unwrap();
    let high_a = rustix::io::fcntl_dupfd_cloexec(&a, 1024).unwrap();
    assert!(raw(&high_b) >= 1200 && raw(&high_a) >= 1024);
    drop((a, b));
    write_all(&high_a, b"x");
    let (fd_b, fd_a) = (raw(&high_b), raw(&high_a));
    let mut base = h.base::<Vec<(i32, evloop_core::Fired)>>();
    for (fd, flags) in [(high_b, Interest::READ), (high_a, Interest::WRITE)] {
        let e = base
            .new_owned_event(fd, flags, move |ctx, log: &mut Vec<_>| {
                log.push((ctx.fd().unwrap(), ctx.fired()))
            })
            .unwrap();
        base.add(e, None).unwrap();
    }
    let mut log = Vec::new();
    base.run(&mut log).unwrap();
    log.sort();
    let mut expected = vec![
        (fd_b, evloop_core::Fired::READ),
        (fd_a, evloop_core::Fired::WRITE),
    ];
    expected.sort();
    assert_eq!(log, expected);
}
