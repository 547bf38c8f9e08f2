//! Runs the pipes workload at n = 100, 1000, 8000 (a = n/10, w = n) on every evloop backend
//! and peer, the timers workload at 10k and 1M timers and the rearm workload (100,000
//! persistent timeouts of 4 lengths, 1,000,000 random re-arms) on evloop, libev and libevent,
//! each in its own process, in one sitting; prints medians and ratios (pipes to `raw` epoll,
//! timers and rearm to libev), the timer goals' standing; then libuv's workloads
//! (`tcp_workloads`, `million_async`, `million_timers`, `loop_hooks`' loop_count; `--skip-libuv`
//! leaves them out, they take about 5 minutes per repeat), and writes `report.md`,
//! `report.csv`, `figures.tsv` and `report.svg` under `target/bench-report/`. The SVG has one
//! panel per workload: each implementation's figure over the best one at that point, on a log
//! axis; `report --chart target/bench-report/figures.tsv` draws it again from a run's figures.
//!
//! On a shared machine a burst of foreign load lands on whichever implementation runs at the
//! time, so the whole set is run `--repeat` times, the implementations taking turns, and each
//! figure is the median over the repeats (of the per-run medians over `--rounds`).
//!
//! ```text
//! cargo run --release -p evloop-benches --bin report [-- --rounds 25 --repeat 3 --skip-libuv]
//! ```

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use evloop_benches::chart::{self, Better, Figure, RESULTS_FLAG};
    use evloop_benches::flag;

    #[derive(Clone, Debug)]
    struct Pipes {
        n: usize,
        name: String,
        setup_us: f64,
        run_us: f64,
    }

    #[derive(Clone, Debug)]
    struct Timers {
        n: u64,
        name: String,
        add_ns: f64,
        rearm_ns: f64,
        run_ms: f64,
        rss_kib: u64,
    }

    fn sibling(name: &str) -> PathBuf {
        std::env::current_exe()
            .expect("current exe")
            .with_file_name(name)
    }

    fn run(bin: &str, args: &[String]) -> String {
        let out = Command::new(sibling(bin))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e}"));
        if !out.status.success() {
            eprintln!(
                "report: {bin} {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn num(words: &[&str], key: &str) -> Option<f64> {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// One row per (n, implementation) of `samples`, ordered by n (first seen first within an
    /// n), made by `merge` from that row's samples.
    fn per_row<T>(
        samples: &[T],
        key: impl Fn(&T) -> (u64, &str),
        merge: impl Fn(&[&T]) -> T,
    ) -> Vec<T> {
        let mut keys: Vec<(u64, &str)> = Vec::new();
        for s in samples {
            if !keys.contains(&key(s)) {
                keys.push(key(s));
            }
        }
        keys.sort_by_key(|k| k.0);
        keys.iter()
            .map(|k| {
                let same: Vec<&T> = samples.iter().filter(|s| key(s) == *k).collect();
                merge(&same)
            })
            .collect()
    }

    /// Each figure the median over its runs.
    fn median_pipes(samples: &[Pipes]) -> Vec<Pipes> {
        per_row(
            samples,
            |p| (p.n as u64, p.name.as_str()),
            |same| {
                let m = |f: fn(&Pipes) -> f64| median(same.iter().map(|p| f(p)).collect());
                Pipes {
                    setup_us: m(|p| p.setup_us),
                    run_us: m(|p| p.run_us),
                    ..same[0].clone()
                }
            },
        )
    }

    #[derive(Clone, Debug)]
    struct Rearm {
        name: String,
        rearm_ns: f64,
        rss_kib: u64,
    }

    /// Each figure the median over its runs.
    fn median_rearm(samples: &[Rearm]) -> Vec<Rearm> {
        per_row(
            samples,
            |r| (0u64, r.name.as_str()),
            |same| Rearm {
                rearm_ns: median(same.iter().map(|r| r.rearm_ns).collect()),
                rss_kib: median(same.iter().map(|r| r.rss_kib as f64).collect()) as u64,
                ..same[0].clone()
            },
        )
    }

    /// Each figure the median over its runs.
    fn median_timers(samples: &[Timers]) -> Vec<Timers> {
        per_row(
            samples,
            |t| (t.n, t.name.as_str()),
            |same| {
                let m = |f: fn(&Timers) -> f64| median(same.iter().map(|t| f(t)).collect());
                Timers {
                    add_ns: m(|t| t.add_ns),
                    rearm_ns: m(|t| t.rearm_ns),
                    run_ms: m(|t| t.run_ms),
                    rss_kib: m(|t| t.rss_kib as f64) as u64,
                    ..same[0].clone()
                }
            },
        )
    }

    /// The chart's figures of the workloads `report` runs itself: pipes run time by n, the
    /// timers' add, re-arm and run by n, and rearm.
    fn chart_figures(pipes: &[Pipes], timers: &[Timers], rearms: &[Rearm]) -> Vec<Figure> {
        let fig = |panel: &str, x: String, imp: &str, value: f64, unit: &str| Figure {
            panel: panel.into(),
            x,
            imp: imp.into(),
            value,
            unit: unit.into(),
            better: Better::Lower,
        };
        let mut out: Vec<Figure> = pipes
            .iter()
            .map(|p| fig("pipes", format!("n={}", p.n), &p.name, p.run_us, "run µs"))
            .collect();
        for (panel, unit, value) in [
            (
                "timers: add",
                "ns per timer",
                (|t: &Timers| t.add_ns) as fn(&Timers) -> f64,
            ),
            ("timers: re-arm", "ns per re-arm", |t| t.rearm_ns),
            ("timers: run", "ms", |t| t.run_ms),
        ] {
            out.extend(
                timers
                    .iter()
                    .map(|t| fig(panel, format!("{} timers", t.n), &t.name, value(t), unit)),
            );
        }
        out.extend(rearms.iter().map(|r| {
            fig(
                "rearm",
                "100,000 timeouts".into(),
                &r.name,
                r.rearm_ns,
                "ns per re-arm",
            )
        }));
        out
    }

    /// `report --chart FILE`: draw `report.svg` again from the `figures.tsv` of a run.
    fn redraw(from: &Path) {
        let text = std::fs::read_to_string(from)
            .unwrap_or_else(|e| panic!("report: cannot read {}: {e}", from.display()));
        let figures: Vec<Figure> = text.lines().filter_map(chart::parse_result_line).collect();
        let out = from.with_file_name("report.svg");
        match chart::render_svg(TITLE, &figures).and_then(|svg| std::fs::write(&out, svg)) {
            Ok(()) => eprintln!("report: wrote {}", out.display()),
            Err(e) => eprintln!("report: cannot write {}: {e}", out.display()),
        }
    }

    const TITLE: &str = "evloop and its peers: each figure over the best at that point (medians)";

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let chart_from: String = flag(&args, "--chart", String::new());
        if !chart_from.is_empty() {
            return redraw(Path::new(&chart_from));
        }
        let rounds: usize = flag(&args, "--rounds", 25);
        let repeat: usize = flag(&args, "--repeat", 3).max(1);
        let sizes = [100usize, 1000, 8000];
        let mut pipes = Vec::new();
        for (rep, &n) in (0..repeat).flat_map(|r| sizes.iter().map(move |n| (r, n))) {
            eprintln!("report: pipes n={n} (run {} of {repeat}) ...", rep + 1);
            let a = (n / 10).max(1);
            let args: Vec<String> = [
                "-n",
                &n.to_string(),
                "-a",
                &a.to_string(),
                "-w",
                &n.to_string(),
                "-r",
                &rounds.to_string(),
                "--backend",
                "all",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for line in run("pipes", &args).lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let (Some(s), Some(r)) = (num(&words, "setup_us"), num(&words, "run_us")) {
                    pipes.push(Pipes {
                        n,
                        name: format!("{} {}", words[0], words[1]),
                        setup_us: s,
                        run_us: r,
                    });
                } else if line.contains("skipped") {
                    eprintln!("report:   {line}");
                }
            }
        }
        let pipes = median_pipes(&pipes);
        let mut timers = Vec::new();
        for (rep, n) in (0..repeat).flat_map(|r| [10_000u64, 1_000_000].map(move |n| (r, n))) {
            for imp in ["evloop", "libev", "libevent"] {
                eprintln!(
                    "report: timers n={n} {imp} (run {} of {repeat}) ...",
                    rep + 1
                );
                let args: Vec<String> = ["-n", &n.to_string(), "-r", "2", "--impl", imp]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                for line in run("timers", &args).lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if let (Some(a), Some(r), Some(m), Some(k)) = (
                        num(&words, "add_ns"),
                        num(&words, "rearm_ns"),
                        num(&words, "run_ms"),
                        num(&words, "rss_kib"),
                    ) {
                        timers.push(Timers {
                            n,
                            name: imp.to_string(),
                            add_ns: a,
                            rearm_ns: r,
                            run_ms: m,
                            rss_kib: k as u64,
                        });
                    } else if line.contains("skipped") {
                        eprintln!("report:   {line}");
                    }
                }
            }
        }

        let timers = median_timers(&timers);
        let mut rearms = Vec::new();
        for rep in 0..repeat {
            for imp in ["evloop", "libev", "libevent"] {
                eprintln!("report: rearm {imp} (run {} of {repeat}) ...", rep + 1);
                let args: Vec<String> = ["--impl", imp].iter().map(|s| s.to_string()).collect();
                for line in run("rearm", &args).lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if let (Some(r), Some(k)) = (num(&words, "rearm_ns"), num(&words, "rss_kib")) {
                        rearms.push(Rearm {
                            name: imp.to_string(),
                            rearm_ns: r,
                            rss_kib: k as u64,
                        });
                    } else if line.contains("skipped") {
                        eprintln!("report:   {line}");
                    }
                }
            }
        }
        let rearms = median_rearm(&rearms);

        let mut md = String::new();
        let mut csv = String::from("workload,n,impl,setup_us,run_us,ratio_run_to_raw,add_ns,rearm_ns,run_ms,rss_kib,ratio_add_to_libev,ratio_rearm_to_libev\n");
        let _ = writeln!(
        md,
        "### pipes (medians of {rounds} rounds, median of {repeat} runs; ratio = run_us / raw epoll's)\n"
    );
        let _ = writeln!(
            md,
            "| n | impl | setup_us | run_us | run / raw |\n|---|---|---|---|---|"
        );
        for &n in &sizes {
            let raw = pipes
                .iter()
                .find(|p| p.n == n && p.name == "raw epoll")
                .map(|p| p.run_us);
            for p in pipes.iter().filter(|p| p.n == n) {
                let ratio = raw.map(|r| p.run_us / r);
                let ratio_s = ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
                let _ = writeln!(
                    md,
                    "| {n} | {} | {:.0} | {:.0} | {ratio_s} |",
                    p.name, p.setup_us, p.run_us
                );
                let _ = writeln!(
                    csv,
                    "pipes,{n},{},{:.1},{:.1},{},,,,,,",
                    p.name,
                    p.setup_us,
                    p.run_us,
                    ratio.map_or(String::new(), |r| format!("{r:.3}"))
                );
            }
        }
        let _ = writeln!(
            md,
            "\n### timers (r = 2, median of {repeat} runs; ratios to libev)\n"
        );
        let _ = writeln!(md, "| n | impl | add_ns | rearm_ns | run_ms | peak RSS (KiB) | add / libev | rearm / libev |\n|---|---|---|---|---|---|---|---|");
        for n in [10_000u64, 1_000_000] {
            let libev = timers
                .iter()
                .find(|t| t.n == n && t.name == "libev")
                .cloned();
            for t in timers.iter().filter(|t| t.n == n) {
                let ra = libev.as_ref().map(|l| t.add_ns / l.add_ns);
                let rr = libev.as_ref().map(|l| t.rearm_ns / l.rearm_ns);
                let f = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
                let _ = writeln!(
                    md,
                    "| {n} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                    t.name,
                    t.add_ns,
                    t.rearm_ns,
                    t.run_ms,
                    t.rss_kib,
                    f(ra),
                    f(rr)
                );
                let _ = writeln!(
                    csv,
                    "timers,{n},{},,,,{:.1},{:.1},{:.1},{},{},{}",
                    t.name,
                    t.add_ns,
                    t.rearm_ns,
                    t.run_ms,
                    t.rss_kib,
                    f(ra),
                    f(rr)
                );
            }
        }
        let _ = writeln!(
            md,
            "\n### rearm (100,000 persistent timeouts of 4 lengths, 1,000,000 random re-arms; median of {repeat} runs)\n"
        );
        let _ = writeln!(
            md,
            "| impl | rearm_ns | peak RSS (KiB) | rearm / libev |\n|---|---|---|---|"
        );
        let libev_rearm = rearms
            .iter()
            .find(|r| r.name == "libev")
            .map(|r| r.rearm_ns);
        for r in &rearms {
            let ratio = libev_rearm.map(|l| r.rearm_ns / l);
            let ratio_s = ratio.map_or("-".to_string(), |x| format!("{x:.2}"));
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {ratio_s} |",
                r.name, r.rearm_ns, r.rss_kib
            );
            let _ = writeln!(
                csv,
                "rearm,100000,{},,,,,{:.1},,{},,{}",
                r.name,
                r.rearm_ns,
                r.rss_kib,
                ratio.map_or(String::new(), |x| format!("{x:.3}"))
            );
        }
        // The goals of the timer work (issue 18), each as measured in this sitting.
        let _ = writeln!(
            md,
            "\n### timer goals (this run; instructions per timer: `benches/instructions.sh`)\n"
        );
        let _ = writeln!(md, "| goal | evloop | peer | met |\n|---|---|---|---|");
        let get = |n: u64, name: &str| timers.iter().find(|t| t.n == n && t.name == name);
        let mut goal = |what: &str, ours: Option<f64>, theirs: Option<f64>, unit: &str| {
            if let (Some(o), Some(t)) = (ours, theirs) {
                let met = if o <= t { "yes" } else { "no" };
                let _ = writeln!(md, "| {what} | {o:.1} {unit} | {t:.1} {unit} | {met} |");
            }
        };
        let (ours, libev) = (get(1_000_000, "evloop"), get(1_000_000, "libev"));
        goal(
            "add ≤ libev's at 1M timers",
            ours.map(|t| t.add_ns),
            libev.map(|t| t.add_ns),
            "ns",
        );
        goal(
            "re-arm ≤ libev's at 1M timers",
            ours.map(|t| t.rearm_ns),
            libev.map(|t| t.rearm_ns),
            "ns",
        );
        goal(
            "run ≤ libev's at 1M timers",
            ours.map(|t| t.run_ms),
            libev.map(|t| t.run_ms),
            "ms",
        );
        goal(
            "peak RSS ≤ libev's at 1M timers",
            ours.map(|t| t.rss_kib as f64),
            libev.map(|t| t.rss_kib as f64),
            "KiB",
        );
        let rearm_of = |name: &str| rearms.iter().find(|r| r.name == name).map(|r| r.rearm_ns);
        goal(
            "rearm ahead of libev",
            rearm_of("evloop"),
            rearm_of("libev"),
            "ns",
        );
        goal(
            "rearm ahead of libevent",
            rearm_of("evloop"),
            rearm_of("libevent"),
            "ns",
        );
        // libuv's workloads (issue 23): each binary runs its own rounds, the implementations
        // taking turns, and prints its table and, for the chart, its figures.
        let mut figures = Vec::new();
        if !args.iter().any(|a| a == "--skip-libuv") {
            let _ = writeln!(
                md,
                "\n### libuv's workloads (median of {repeat} runs each, taking turns)\n\n```text"
            );
            for bin in [
                "tcp_workloads",
                "million_async",
                "million_timers",
                "loop_hooks",
            ] {
                eprintln!("report: {bin} ({repeat} rounds) ...");
                let mut bin_args = vec!["--rounds".to_string(), repeat.to_string()];
                bin_args.push(RESULTS_FLAG.to_string());
                if bin == "loop_hooks" {
                    bin_args.extend(["--firings".to_string(), "0".to_string()]);
                }
                for line in run(bin, &bin_args).lines() {
                    match chart::parse_result_line(line) {
                        Some(f) => figures.push(f),
                        None => {
                            let _ = writeln!(md, "{line}");
                        }
                    }
                }
            }
            let _ = writeln!(md, "```");
        }
        figures.splice(0..0, chart_figures(&pipes, &timers, &rearms));
        print!("{md}");
        let dir: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                sibling("x")
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("target"))
                    .to_path_buf()
            })
            .join("bench-report");
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("report.md"), &md))
            .and_then(|_| std::fs::write(dir.join("report.csv"), &csv))
            .and_then(|_| {
                let tsv: String = figures
                    .iter()
                    .map(|f| chart::result_line(f) + "\n")
                    .collect();
                std::fs::write(dir.join("figures.tsv"), tsv)
            })
            .and_then(|_| {
                let svg = chart::render_svg(TITLE, &figures)?;
                std::fs::write(dir.join("report.svg"), svg)
            });
        match written {
            Ok(()) => eprintln!(
                "report: wrote {}/report.md, report.csv, figures.tsv, report.svg",
                dir.display()
            ),
            Err(e) => eprintln!("report: cannot write {}: {e}", dir.display()),
        }
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    {
        eprintln!("report: the benchmarks run on Unix (their peers are epoll, libevent and libev)");
        std::process::exit(2)
    }
}
