//! What the conformance test binaries share: every backend crate compiled for this target,
//! enumerated directly (not through the facade's list, which is what is being checked), with
//! a factory the suite can call.

use evloop_conformance::Factory;

/// `(name, factory)` for every backend crate compiled for this target, in the facade's order
/// of preference.
///
/// # Panics
///
/// If the crates and the facade's `supported_methods` (every backend feature on) disagree: a
/// crate compiled without a facade selection would be a backend nobody can choose, and a
/// facade name without a crate here a column that never runs.
pub fn backends() -> Vec<(&'static str, Factory)> {
    let mut crates: Vec<(&'static str, Factory)> = Vec::new();
    #[cfg(has_epoll)]
    crates.push(("epoll", || Ok(Box::new(evloop_epoll::EpollBackend::new()?))));
    #[cfg(has_kqueue)]
    crates.push(("kqueue", || {
        Ok(Box::new(evloop_kqueue::KqueueBackend::new()?))
    }));
    crates.push(("polling", || {
        Ok(Box::new(evloop_polling::PollingBackend::new()?))
    }));
    #[cfg(unix)]
    crates.push(("poll", || Ok(Box::new(evloop_poll::PollBackend::new()))));
    #[cfg(has_select)]
    crates.push(("select", || {
        Ok(Box::new(evloop_select::SelectBackend::new()))
    }));

    let facade = evloop::supported_methods();
    let mut names: Vec<&str> = crates.iter().map(|(n, _)| *n).collect();
    names.sort_by_key(|n| facade.iter().position(|f| f == n).unwrap_or(usize::MAX));
    assert_eq!(
        names, facade,
        "the backend crates compiled for this target (left) and the facade's supported_methods (right) differ"
    );
    crates.sort_by_key(|(n, _)| facade.iter().position(|f| f == n));
    crates
}
