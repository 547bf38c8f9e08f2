//! Runs the pipes workload at n = 100, 1000, 8000 (a = n/10, w = n) on every evloop backend
//! and peer, the timers workload at 10k and 1M timers and the rearm workload (100,000
//! persistent timeouts of 4 lengths, 1,000,000 random re-arms) on evloop, libev and libevent,
//! each in its own process, in one sitting; prints medians and ratios (pipes to `raw` epoll,
//! timers and rearm to libev), the timer goals' standing, and writes `report.md`,
//! `report.csv` and `pipes.svg` under `target/bench-report/`.
//!
//! On a shared machine a burst of foreign load lands on whichever implementation runs at the
//! time, so the whole set is run `--repeat` times, the implementations taking turns, and each
//! figure is the median over the repeats (of the per-run medians over `--rounds`).
//!
//! ```text
//! cargo run --release -p evloop-benches --bin report [-- --rounds 25 --repeat 3]
//! ```

/// The benchmark itself (Unix: see the crate documentation).
#[cfg(unix)]
mod bench {
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

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

    fn svg_chart(rows: &[Pipes], sizes: &[usize]) -> String {
        let (w, h, left, bottom, top, right) = (760.0, 440.0, 70.0, 50.0, 20.0, 200.0);
        let max = rows.iter().map(|r| r.run_us).fold(1.0f64, f64::max);
        let (lmin, lmax) = ((sizes[0] as f64).ln(), (*sizes.last().unwrap() as f64).ln());
        let x = |n: usize| left + ((n as f64).ln() - lmin) / (lmax - lmin) * (w - left - right);
        let y = |v: f64| h - bottom - v / max * (h - bottom - top);
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="14">pipes: run_us against n (a = n/10, w = n), median of the rounds</text>"#
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            h - bottom,
            w - right,
            h - bottom
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
            h - bottom
        );
        for &n in sizes {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">n={n}</text>"#,
                x(n),
                h - bottom + 18.0
            );
        }
        for i in 0..=4 {
            let v = max * i as f64 / 4.0;
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{v:.0}</text>"#,
                left - 6.0,
                y(v) + 4.0
            );
        }
        let palette = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#000000",
        ];
        let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        names.dedup();
        names.sort();
        names.dedup();
        for (i, name) in names.iter().enumerate() {
            let color = palette[i % palette.len()];
            let points: Vec<String> = sizes
                .iter()
                .filter_map(|&n| rows.iter().find(|r| r.n == n && r.name == *name))
                .map(|r| format!("{:.1},{:.1}", x(r.n), y(r.run_us)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
            let ly = top + 16.0 * i as f64 + 10.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
                w - right + 10.0,
                w - right + 30.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}">{name}</text>"#,
                w - right + 36.0,
                ly + 4.0
            );
        }
        svg.push_str("</svg>\n");
        svg
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

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
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
            .and_then(|_| std::fs::write(dir.join("pipes.svg"), svg_chart(&pipes, &sizes)));
        match written {
            Ok(()) => eprintln!(
                "report: wrote {}/report.md, report.csv, pipes.svg",
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
