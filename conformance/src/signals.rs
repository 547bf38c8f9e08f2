//! Signal scenarios. Signals and dispositions are process-wide, so these run in their own
//! `harness = false` binaries, one at a time on the main thread: `tests/signals.rs` (the
//! self-pipe) and `tests/signalfd.rs` (Linux; the signals are blocked before any thread
//! starts, as signalfd requires).
//!
//! Raising is thread-directed (`raise`): the handler runs in the raising thread before
//! `raise` returns, so counts are exact with the self-pipe. A *blocked* standard signal that
//! is raised again while pending is merged by the kernel, so with signalfd a burst of raises
//! before the loop runs may arrive as fewer deliveries; those scenarios check at least one.

use evloop_core::Features;

use crate::{runner, Scenario};

#[cfg(unix)]
mod posix;

/// Why these scenarios are Unix-only: they raise POSIX signals, inspect `sigaction` and fork.
/// Windows delivers console events instead (Ctrl-C, Ctrl-Break, close); the hello-world
/// process test sends one under Wine.
const POSIX_SIGNALS: &str =
    "POSIX signals (raise, sigaction, fork); Windows' console events are process-tested";

/// Every signal scenario.
pub fn signal_scenarios() -> Vec<Scenario> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => {
            vec![$(Scenario {
                name: stringify!($name),
                requires: Features::empty(),
                unix_only: Some(POSIX_SIGNALS),
                slow: None,
                run: runner!(posix::$name, "posix"),
            }),*]
        };
    }
    list![
        simple_signal,
        signal_with_timeout,
        two_events_on_one_signal,
        two_signals,
        add_delete_add_again,
        raised_before_the_loop_runs,
        raises_before_the_loop_coalesce_into_one_run,
        delete_inside_the_callback_stops_repeats,
        free_inside_the_callback,
        previous_handler_restored,
        second_base_is_refused_until_the_first_lets_go,
        signal_storm_during_io,
        internal_source_does_not_keep_the_loop_alive,
        bad_signal_numbers_are_refused,
        signal_method_names_the_mechanism,
        signalfd_refuses_an_unblocked_signal,
        fork_and_reinit_keep_both_loops_working,
    ]
}
