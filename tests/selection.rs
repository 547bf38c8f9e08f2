//! Run-time backend selection through the environment, checked in child processes: this test
//! binary re-executes itself with `EVLOOP_SELECTION_CHILD` set and a chosen environment, so
//! no test changes the environment of the harness's own threads.

use std::process::Command;

const CHILD: &str = "EVLOOP_SELECTION_CHILD";

/// In a child: build a base from the environment and print what it uses (or the error).
#[test]
fn child_report() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    match evloop::new_base::<()>() {
        Ok(base) => println!("CHOSEN {}", base.method()),
        Err(e) => println!("ERROR {e}"),
    }
}

/// Run `child_report` with `vars` set (and every other EVENT_* variable removed); returns
/// the child's stdout line and its stderr.
fn child(vars: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_report",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("EVENT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD, "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHOSEN ") || l.starts_with("ERROR "))
        .unwrap_or_else(|| panic!("no report in {stdout:?}"))
        .to_string();
    (line, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn supported() -> Vec<&'static str> {
    evloop::supported_methods()
}

#[test]
fn default_is_the_first_supported() {
    assert_eq!(child(&[]).0, format!("CHOSEN {}", supported()[0]));
}

#[test]
fn each_event_no_variable_excludes_its_backend() {
    let all = supported();
    for i in 0..all.len() {
        let vars: Vec<(String, &str)> = all[..i]
            .iter()
            .map(|b| (format!("EVENT_NO{}", b.to_uppercase()), "1"))
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            child(&vars).0,
            format!("CHOSEN {}", all[i]),
            "with {vars:?}"
        );
    }
}

#[test]
fn an_empty_value_counts_as_set() {
    let all = supported();
    if all.len() > 1 {
        let var = format!("EVENT_NO{}", all[0].to_uppercase());
        assert_eq!(child(&[(&var, "")]).0, format!("CHOSEN {}", all[1]));
    }
}

#[test]
fn excluding_everything_names_every_backend() {
    let vars: Vec<String> = supported()
        .iter()
        .map(|b| format!("EVENT_NO{}", b.to_uppercase()))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|k| (k.as_str(), "yes")).collect();
    let (line, _) = child(&vars);
    assert!(line.starts_with("ERROR "), "{line}");
    for b in supported() {
        assert!(
            line.contains(&format!("{b}: excluded by EVENT_NO{}", b.to_uppercase())),
            "{line}"
        );
    }
}

#[test]
fn show_method_prints_the_choice_to_stderr() {
    let (line, stderr) = child(&[("EVENT_SHOW_METHOD", "1")]);
    let chosen = line.strip_prefix("CHOSEN ").unwrap();
    assert!(stderr.contains(&format!("using: {chosen}")), "{stderr:?}");
    let (_, quiet) = child(&[]);
    assert!(!quiet.contains("using:"), "{quiet:?}");
}
