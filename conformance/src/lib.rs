//! One suite of scenarios that every evloop backend must pass.
//!
//! A scenario is a function over a [`Harness`], which builds bases on the backend under test.
//! [`trials`] instantiates every scenario for one backend as tests named
//! `<backend>::<scenario>`; a scenario whose [`Scenario::requires`] the backend lacks is
//! listed as *ignored* with the kind `unsupported`, never silently passed.
//!
//! # Testing your own backend
//!
//! Add a test target with `harness = false` to your crate and hand the suite a factory:
//!
//! ```no_run
//! // tests/conformance.rs, with `[[test]] name = "conformance" harness = false`
//! # #[allow(clippy::needless_doctest_main)]
//! fn main() {
//!     // Replace the factory with your backend's constructor: `|| Ok(Box::new(Mine::new()?))`.
//!     evloop_conformance::run_matrix(&[("poll", || evloop::backend::by_name("poll"))]);
//! }
//! ```
//!
//! `cargo test --test conformance -- poll::` then runs that column, and `-- --list` lists it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop_core::{Backend, Base, BaseOptions, Features};
use libtest_mimic::{Arguments, Trial};

mod async_io;
mod buffered;
mod control;
#[cfg(unix)]
mod differential;
mod ending;
mod files;
mod filters;
mod floods;
mod hooks;
mod hostile;
mod io_events;
mod lifecycle;
mod ratelim;
mod remote;
mod scale;
pub mod signals;
mod timers;
#[cfg(feature = "tls")]
pub mod tls;
pub mod util;

/// Creates the backend under test; called once per base.
pub type Factory = fn() -> io::Result<Box<dyn Backend>>;

/// What a scenario gets: the backend's name and a way to build bases on it.
#[derive(Clone, Copy)]
pub struct Harness {
    name: &'static str,
    factory: Factory,
    signalfd: bool,
}

impl Harness {
    /// A harness for the backend `name` made by `factory`.
    pub fn new(name: &'static str, factory: Factory) -> Self {
        Self {
            name,
            factory,
            signalfd: false,
        }
    }

    /// The same backend, with signals delivered through a signalfd.
    pub fn with_signalfd(self) -> Self {
        Self {
            signalfd: true,
            ..self
        }
    }

    /// Whether bases use a signalfd for signals.
    pub fn uses_signalfd(&self) -> bool {
        self.signalfd
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A fresh backend.
    #[track_caller]
    pub fn backend(&self) -> Box<dyn Backend> {
        (self.factory)().unwrap_or_else(|e| panic!("creating backend {}: {e}", self.name))
    }

    /// The backend's features.
    pub fn features(&self) -> Features {
        self.backend().features()
    }

    /// A base with default options.
    #[track_caller]
    pub fn base<D>(&self) -> Base<D> {
        self.base_with(BaseOptions::default())
    }

    /// A base with `options`.
    #[track_caller]
    pub fn base_with<D>(&self, options: BaseOptions) -> Base<D> {
        let options = BaseOptions {
            signalfd: self.signalfd,
            ..options
        };
        Base::with_backend(self.backend(), options).expect("valid base options")
    }

    /// A base whose backend counts the interest changes it is told about.
    #[track_caller]
    pub fn counting_base<D>(&self) -> (Base<D>, util::ChangeCounter) {
        let (backend, counter) = util::counting(self.backend());
        (
            Base::with_backend(Box::new(backend), BaseOptions::default()).unwrap(),
            counter,
        )
    }
}

/// One scenario of the suite.
pub struct Scenario {
    /// Its name, the second half of the test name.
    pub name: &'static str,
    /// Features the backend needs for the scenario to apply.
    pub requires: Features,
    /// Why the scenario applies only on Unix (fork, POSIX signals, pipes, fd numbers a program
    /// chooses); `None` if it runs everywhere. Elsewhere it is listed as ignored, saying why.
    pub unix_only: Option<&'static str>,
    /// Why the scenario is too slow for every `cargo test` (it measures rates over seconds);
    /// `None` if it is quick. A slow one is listed ignored, saying why, and `.ci/run` runs it
    /// (`cargo test -p evloop-conformance --test matrix -- --ignored ratelim_`).
    pub slow: Option<&'static str>,
    /// The scenario; it panics on failure.
    pub run: fn(&Harness),
}

/// What a Unix-only scenario runs as elsewhere: nothing, as it is listed ignored.
#[cfg(not(unix))]
pub(crate) fn not_here(_: &Harness) {}

/// The function a scenario runs: itself, or for a Unix-only one off Unix, [`not_here`].
macro_rules! runner {
    ($f:path) => {
        $f
    };
    ($f:path, $why:literal) => {{
        #[cfg(unix)]
        let run: fn(&$crate::Harness) = $f;
        #[cfg(not(unix))]
        let run: fn(&$crate::Harness) = $crate::not_here;
        run
    }};
}
#[allow(unused_imports)] // used by path from `signals`; this file uses it by name
pub(crate) use runner;

macro_rules! scenario_list {
    (fn $list:ident; $($module:ident :: $name:ident $([unix: $why:literal])? $([slow: $slow:literal])? $(requires $req:expr)?),* $(,)?) => {
        /// Scenarios, in a fixed order.
        fn $list() -> Vec<Scenario> {
            vec![$(Scenario {
                name: stringify!($name),
                requires: Features::empty() $(| $req)?,
                unix_only: None $(.or(Some($why)))?,
                slow: None $(.or(Some($slow)))?,
                run: runner!($module::$name $(, $why)?),
            }),*]
        }
    };
}

scenario_list! {
    fn listed_scenarios;
    io_events::simple_read,
    io_events::simple_write,
    io_events::two_readers_and_a_writer_on_one_fd,
    io_events::persistent_read,
    io_events::combined_read_write,
    io_events::delete_one_of_two_events_on_an_fd,
    io_events::closed_on_peer_shutdown,
    io_events::closed_reported_before_data_is_read requires Features::EARLY_CLOSE,
    io_events::et_fires_once_per_edge requires Features::EDGE_TRIGGERED,
    io_events::et_is_reported_in_fired requires Features::EDGE_TRIGGERED,
    io_events::edge_to_level_in_one_iteration requires Features::EDGE_TRIGGERED,
    io_events::et_refused_without_the_feature,
    io_events::fd_closed_while_registered requires Features::CLOSE_TOLERANT,
    io_events::fd_number_reused_after_close [unix: "Windows socket values are not numbers a program can reuse (dup2)"],
    io_events::new_event_on_a_reused_number_fires_despite_a_stale_registration [unix: "Windows socket values are not numbers a program can reuse (dup2)"] requires Features::CLOSE_TOLERANT,
    io_events::freed_fd_with_a_live_duplicate_leaves_no_registration [unix: "dup of an fd"],
    io_events::delete_then_readd_costs_no_change,
    io_events::persistent_io_timeout_restarts_on_activity,
    timers::simple_timeout,
    timers::persistent_timeout_rearms,
    timers::persistent_timeout_does_not_burst_after_a_stall,
    timers::timeout_replaced_by_readd,
    timers::timers_fire_in_deadline_order,
    timers::timers_near_and_far_fire_in_deadline_order_never_early,
    timers::pending_reports_flags_and_deadline,
    timers::zero_interval_persistent_timer_runs_once_per_iteration,
    timers::timeout_activated_by_hand_keeps_the_cadence,
    timers::persistent_timeout_starved_by_a_better_priority_runs_once_and_goes_on,
    timers::common_timeouts_fire_in_arming_order_never_early,
    timers::a_stale_queue_head_runs_nothing_early,
    timers::a_timeout_pushed_back_many_times_fires_once_after_the_last_push,
    timers::lazily_rearmed_timers_keep_the_order_of_equal_deadlines,
    control::priorities,
    control::better_priority_preempts_a_worse_queue,
    control::manual_activation,
    control::manual_activation_with_a_pending_fd,
    control::loop_exit_without_delay,
    control::loop_exit_with_delay,
    control::loop_exit_before_the_loop_starts,
    control::loop_break_from_a_callback,
    control::loop_break_before_the_loop_starts,
    control::empty_loop_returns,
    control::no_exit_on_empty_with_loop_exit,
    control::nonblock_returns_at_once,
    control::one_nonblocking_pass_calls_every_ready_fd,
    control::nonblock_until_idle_finishes_the_work_it_triggers,
    control::dispatch_limits_bound_a_flood,
    control::remove_timer_keeps_the_io_interest,
    control::active_by_fd_activates_every_matching_event,
    lifecycle::once_with_timeout,
    lifecycle::once_with_fd,
    lifecycle::once_rejections,
    lifecycle::once_storage_freed_with_the_base,
    lifecycle::delete_self_and_another_from_a_callback,
    lifecycle::readd_inside_the_callback,
    lifecycle::free_inside_the_callback,
    lifecycle::context_names_what_the_event_watches,
    lifecycle::events_on_one_owned_fd_share_it,
    lifecycle::new_event_on_refusals,
    lifecycle::stale_and_foreign_ids_are_refused,
    lifecycle::panicking_callback_leaves_the_base_usable,
    scale::thousand_socketpairs_all_ready,
    scale::fds_above_1024 [unix: "fd numbers a program chooses (F_DUPFD)"],
    differential::random_trace_matches_the_polling_oracle [unix: "compares readiness at one instant with another poller's, and TCP loopback pairs (Windows' socketpair) change readiness asynchronously as ACKs arrive"],
    buffered::buffered_socketpair_both_ways,
    buffered::read_watermarks,
    buffered::unreachable_socket_is_freed_after_its_last_callback,
    buffered::write_watermark,
    buffered::read_timeout,
    buffered::write_timeout,
    buffered::connect_success,
    buffered::connect_failure,
    buffered::refused_connect_is_one_error_whatever_the_readiness_order,
    buffered::connect_timeout_is_one_timeout [unix: "a full accept queue drops SYNs on Unix; native Windows refuses instead"],
    buffered::eof_after_data,
    buffered::free_inside_callbacks,
    buffered::pair_both_ways_and_eof_on_free,
    buffered::pair_timeouts_fire,
    buffered::pair_keeps_bytes_until_the_reader_reads,
    buffered::listener_accepts_500_concurrent_clients,
    buffered::listener_backs_off_on_emfile [unix: "RLIMIT_NOFILE in a forked child"],
    buffered::large_transfer_through_echo,
    buffered::slow_reader_grows_the_output_and_loses_nothing,
    buffered::output_limit_tells_the_writer_and_loses_nothing,
    buffered::peer_reset_mid_write_reports_an_error,
    buffered::half_closed_socket_still_writes,
    remote::remote_activation_wakes_a_blocked_loop,
    remote::remote_activations_from_4_threads_all_delivered,
    remote::remote_loop_break_and_loop_exit,
    remote::remote_closures_run_fifo_per_sender,
    remote::remote_activation_leaves_no_busy_loop,
    remote::remote_handle_after_the_base_is_dropped,
    remote::remote_delete_while_its_callback_runs,
    hooks::prepare_wait_check_callbacks_in_order,
    hooks::idle_runs_only_when_nothing_else_is_active,
    hooks::idle_watchers_follow_priorities,
    hooks::prepare_watcher_shortens_the_wait,
    hooks::watchers_started_and_freed_from_inside_watchers,
    hooks::hooks_liveness_and_loop_break,
    hooks::hooks_refuse_timeouts_and_activation,
    hooks::metrics_count_exactly_on_a_scripted_run,
    hooks::precise_timers_are_never_early,
    async_io::async_readiness_matches_callbacks,
    async_io::async_future_dropped_mid_wait,
    async_io::async_short_reads_still_see_end_of_file,
    async_io::async_1000_concurrent_tasks_on_sockets,
    async_io::async_timers_never_early_and_in_order,
    async_io::async_wake_from_another_thread,
    async_io::async_block_on_refusals_and_panics,
    async_io::async_callbacks_and_tasks_mix_and_close_with_the_base,
    hostile::bad_input_gets_clear_errors_and_the_base_keeps_working,
    hostile::more_than_65535_events_on_one_fd_are_refused,
    hostile::injected_faults_lose_nothing,
    buffered::buffered_socket_over_pipes [unix: "pipes"],
    ending::dropping_the_base_closes_what_it_owned,
    ending::free_after_flush_sends_everything_then_closes,
    ending::free_after_flush_is_bounded_by_the_write_timeout,
    ending::user_events_run_when_activated,
    ending::socket_options_on_every_side,
    ending::a_handle_works_inside_its_own_callbacks,
    ending::one_method_set_from_a_handle_and_a_callback,
    ending::connect_by_host_name,
    ending::connect_tries_each_address_in_turn,
    files::file_segments_arrive_byte_exact_between_other_bytes,
    files::file_segments_through_a_pair_and_a_filter,
    files::a_file_range_past_the_end_or_a_shrunk_file_is_one_clear_error,
    floods::a_flood_of_activations_neither_starves_the_loop_nor_grows_memory,
    floods::busy_callbacks_run_in_the_next_pass,
    filters::filter_transforms_both_ways_a_line_at_a_time,
    filters::filter_small_reads_under_a_high_watermark_reach_the_end,
    filters::filter_error_is_one_error_event,
    filters::filter_finished_pushes_out_what_was_held_back,
    filters::filter_free_closes_the_socket_under,
    ratelim::ratelim_never_exceeded_and_changed_live,
    ratelim::ratelim_on_filtered_and_grouped_sockets,
    ratelim::ratelim_group_limit [slow: "5 s, as libevent's test-ratelim"],
    ratelim::ratelim_connection_limit [slow: "5 s, as libevent's test-ratelim"],
    ratelim::ratelim_connection_and_group_limit [slow: "5 s, as libevent's test-ratelim"],
    ratelim::ratelim_group_drained_every_tick [slow: "5 s, as libevent's test-ratelim"],
}

#[cfg(feature = "tls")]
scenario_list! {
    fn tls_scenarios;
    tls::tls_handshake_then_megabytes_each_way,
    tls::tls12_when_the_client_offers_only_it,
    tls::tls_untrusted_certificate_is_one_error,
    tls::tls_garbage_instead_of_a_client_hello,
    tls::tls_close_notify_is_eof_and_a_bare_close_is_truncation,
    tls::tls_small_reads_under_a_high_watermark_reach_the_end,
    tls::tls_a_large_write_to_a_slow_reader_arrives_whole,
    tls::tls_silent_peer_times_out_mid_handshake,
    tls::tls_under_a_filter,
    tls::tls_rate_limited_transfer,
    tls::tls_free_after_flush_ends_with_close_notify,
    tls::tls_sends_a_file_segment_by_reading_it,
}

/// Every scenario, in a fixed order; the TLS column (rustls on buffered sockets) last, in a
/// build with the `tls` feature (the default).
pub fn scenarios() -> Vec<Scenario> {
    #[allow(unused_mut)]
    let mut all = listed_scenarios();
    #[cfg(feature = "tls")]
    all.extend(tls_scenarios());
    all
}

/// The scenarios for one backend as libtest-mimic trials named `<backend>::<scenario>`.
/// Each trial aborts the suite if it runs longer than six times [`util::patience`] (60 s by
/// default), so a hung loop cannot stall CI.
pub fn trials(name: &'static str, factory: Factory) -> Vec<Trial> {
    trials_of(name, Harness::new(name, factory), scenarios())
}

/// `scenarios` as trials named `<prefix>::<scenario>`, run on `harness`.
pub fn trials_of(prefix: &str, harness: Harness, scenarios: Vec<Scenario>) -> Vec<Trial> {
    let features = (harness.factory)()
        .map(|b| b.features())
        .unwrap_or(Features::empty());
    let name = harness.name;
    scenarios
        .into_iter()
        .map(|s| {
            let test_name = format!("{prefix}::{}", s.name);
            let run = s.run;
            let watched_name = test_name.clone();
            let trial = Trial::test(test_name, move || {
                let done = Arc::new(AtomicBool::new(false));
                let flag = done.clone();
                std::thread::spawn(move || {
                    let limit = util::patience() * 6;
                    let started = std::time::Instant::now();
                    while started.elapsed() < limit {
                        std::thread::sleep(Duration::from_millis(100));
                        if flag.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                    eprintln!("{watched_name}: still running after {limit:?}; aborting the suite");
                    std::process::exit(101);
                });
                let result = std::panic::catch_unwind(|| run(&harness));
                done.store(true, Ordering::Relaxed);
                result.map_err(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".to_string());
                    msg.into()
                })
            });
            if let (false, Some(why)) = (cfg!(unix), s.unix_only) {
                trial
                    .with_ignored_flag(true)
                    .with_kind(format!("unix only: {why}"))
            } else if let Some(why) = s.slow {
                trial
                    .with_ignored_flag(true)
                    .with_kind(format!("slow: {why}"))
            } else if features.contains(s.requires) {
                trial
            } else {
                trial.with_ignored_flag(true).with_kind(format!(
                    "unsupported: {name} lacks {:?}",
                    s.requires.without(features)
                ))
            }
        })
        .collect()
}

/// Run every scenario on every backend given, as a libtest-compatible test binary (answers
/// `--list`, name filters, `--exact`, `--ignored`), and exit with its status.
pub fn run_matrix(backends: &[(&'static str, Factory)]) -> ! {
    util::raise_fd_limit();
    let args = Arguments::from_args();
    let trials = backends
        .iter()
        .flat_map(|&(name, factory)| trials(name, factory))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
