//! The `signals` example as a process, under each EVENT_NO* combination: it reports SIGUSR1
//! and SIGHUP, and exits 0 two seconds after SIGINT.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// The example's binary: `cargo test` builds examples next to the test binaries
/// (target/<profile>/examples); a run filtered to this test alone may not, so build it then.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building example {name}");
    }
    path
}

fn check(env: &[&str]) {
    let mut cmd = Command::new(example("signals"));
    for (k, _) in std::env::vars() {
        if k.starts_with("EVENT_") {
            cmd.env_remove(k);
        }
    }
    for var in env {
        cmd.env(var, "1");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the signals example");
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    assert!(next().starts_with("ready: pid"), "{env:?}");
    for (sig, name) in [
        (Signal::USR1, "SIGUSR1"),
        (Signal::HUP, "SIGHUP"),
        (Signal::USR1, "SIGUSR1"),
    ] {
        kill_process(pid, sig).unwrap();
        assert_eq!(next(), format!("caught {name} count 1"), "{env:?}");
    }
    kill_process(pid, Signal::INT).unwrap();
    let asked = Instant::now();
    assert_eq!(next(), "exiting cleanly in two seconds", "{env:?}");
    let status = child.wait().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{env:?}: {status:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{env:?}: {took:?}"
    );
}

#[test]
fn reports_signals_and_exits_two_seconds_after_sigint_on_every_backend() {
    let mut combos: Vec<Vec<&str>> = vec![vec![]];
    let all = evloop::supported_methods();
    let vars: Vec<String> = all
        .iter()
        .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
        .collect();
    for i in 1..all.len() {
        combos.push(vars[..i].iter().map(|s| s.as_str()).collect());
    }
    std::thread::scope(|s| {
        for combo in &combos {
            s.spawn(move || check(combo));
        }
    });
}
