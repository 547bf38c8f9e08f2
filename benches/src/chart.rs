//! The report's chart: one panel per workload, each implementation's figure as a ratio to the
//! best one at that point (1 = the best, 2 = twice the time or half the rate) on a log axis,
//! drawn with `plotters` into an SVG string.
//!
//! Ratios rather than raw figures put n = 100 and n = 8,000, nanoseconds and Gbit/s on one
//! scale; the log axis keeps 1.05 and 3.0 readable in one panel. An implementation keeps its
//! colour and marker in every panel, and the legend is drawn once, in a panel of its own.
//!
//! A workload binary given [`RESULTS_FLAG`] prints each figure for `report` as one line of
//! tab-separated fields (see [`result_line`]): `result`, the panel, the point, the
//! implementation, the value, its unit, and `higher` or `lower` (which is better).

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;

/// Whether a larger figure is better (a rate) or worse (a time, a size).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Better {
    /// Rates: callbacks/s, Gbit/s.
    Higher,
    /// Times and sizes: µs, ns, KiB.
    Lower,
}

/// One measured figure: `panel` is the workload, `x` the point within it (a size, a variant),
/// `imp` the implementation.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The workload's panel title.
    pub panel: String,
    /// The point on the panel's x axis (`n=100`, `pinned`).
    pub x: String,
    /// The implementation (`evloop epoll`, `libuv`).
    pub imp: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// The value's unit, shown in the panel's caption.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
}

/// The tab-separated line a workload binary prints so that `report` can read its figure.
pub fn result_line(f: &Figure) -> String {
    let better = match f.better {
        Better::Higher => "higher",
        Better::Lower => "lower",
    };
    format!(
        "result\t{}\t{}\t{}\t{}\t{}\t{better}",
        f.panel, f.x, f.imp, f.value, f.unit
    )
}

/// The flag that asks a workload binary for [`result_line`]s (`report` passes it).
pub const RESULTS_FLAG: &str = "--results";

/// Prints `f`'s [`result_line`] if the program was given [`RESULTS_FLAG`]; a person reading
/// the binary's table does not see them.
pub fn print_result(f: &Figure) {
    if std::env::args().any(|a| a == RESULTS_FLAG) {
        println!("{}", result_line(f));
    }
}

/// Reads a line made by [`result_line`]; any other line is `None`.
pub fn parse_result_line(line: &str) -> Option<Figure> {
    let f: Vec<&str> = line.trim_end().split('\t').collect();
    let [tag, panel, x, imp, value, unit, better] = f[..] else {
        return None;
    };
    if tag != "result" {
        return None;
    }
    let better = match better {
        "higher" => Better::Higher,
        "lower" => Better::Lower,
        _ => return None,
    };
    Some(Figure {
        panel: panel.into(),
        x: x.into(),
        imp: imp.into(),
        value: value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)?,
        unit: unit.into(),
        better,
    })
}

/// How far `value` is from `best` (≥ 1; 1 is the best).
fn ratio_to_best(value: f64, best: f64, better: Better) -> f64 {
    match better {
        Better::Lower => value / best,
        Better::Higher => best / value,
    }
}

/// `items` without repeats, in first-seen order.
fn in_order<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen
}

/// One panel's points: for each implementation, `(x index, ratio to the best at that x)`.
pub fn panel_ratios(figures: &[&Figure]) -> Vec<(String, Vec<(usize, f64)>)> {
    let xs = in_order(figures.iter().map(|f| f.x.as_str()));
    let imps = in_order(figures.iter().map(|f| f.imp.as_str()));
    let best_at = |x: &str| {
        let at = figures.iter().filter(|f| f.x == x);
        match figures.first().map(|f| f.better) {
            Some(Better::Higher) => at.map(|f| f.value).fold(f64::MIN, f64::max),
            _ => at.map(|f| f.value).fold(f64::MAX, f64::min),
        }
    };
    imps.iter()
        .map(|imp| {
            let points = xs
                .iter()
                .enumerate()
                .filter_map(|(i, x)| {
                    let f = figures.iter().find(|f| f.imp == *imp && f.x == *x)?;
                    Some((i, ratio_to_best(f.value, best_at(x), f.better)))
                })
                .collect();
            (imp.to_string(), points)
        })
        .collect()
}

/// How an implementation is drawn: its library's colour, its backend's marker and line.
/// Colour says who ("evloop", "libev"), marker and dashes say which backend ("epoll",
/// "poll"), so eleven lines in one panel stay apart; a name without a backend ("libuv",
/// or "evloop" in the timer workloads, which run on the default backend) is drawn as that
/// library's default backend.
#[derive(Copy, Clone, Debug, PartialEq)]
struct Style {
    color: RGBColor,
    marker: Marker,
    /// `None` for a solid line, else (dash, gap) in pixels.
    dash: Option<(u32, u32)>,
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

/// The style of implementation `imp` ("library backend" or "library").
fn style_of(imp: &str) -> Style {
    let mut words = imp.split_whitespace();
    let library = words.next().unwrap_or("");
    let backend = words.next().unwrap_or("");
    let color = match library {
        "evloop" => RGBColor(31, 119, 180),
        "libev" => RGBColor(255, 127, 14),
        "libevent" => RGBColor(44, 160, 44),
        "libuv" => RGBColor(214, 39, 40),
        "raw" => RGBColor(0, 0, 0),
        "polling" => RGBColor(148, 103, 189),
        "tokio" => RGBColor(140, 86, 75),
        _ => RGBColor(127, 127, 127),
    };
    let (marker, dash) = match backend {
        "poll" => (Marker::Triangle, Some((10, 5))),
        "select" => (Marker::Square, Some((3, 4))),
        "polling" | "kqueue" => (Marker::Cross, Some((12, 3))),
        _ => (Marker::Circle, None),
    };
    Style {
        color,
        marker,
        dash,
    }
}

/// An x axis of `n` named points at 0, 1, ..., each in the middle of an equal share of the
/// width (plotters' segmented axis needs two points or more).
struct Categories(usize);

impl Ranged for Categories {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (limit.1 - limit.0) as f64 / self.0.max(1) as f64;
        limit.0 + ((value + 0.5) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.0).map(|i| i as f64).collect()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.0 as f64 - 0.5
    }
}

impl ValueFormatter<f64> for Categories {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// The y axis's ticks: enough to read a ratio off, none beyond `top`.
fn ratio_ticks(top: f64) -> Vec<f64> {
    let all: &[f64] = if top <= 2.0 {
        &[1.0, 1.05, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0]
    } else {
        &[
            1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0,
        ]
    };
    all.iter().copied().filter(|t| *t <= top).collect()
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The SVG for `figures`, panels in first-seen order, `title` on top.
///
/// # Errors
///
/// A drawing error from `plotters` (none is expected when drawing into a string).
pub fn render_svg(title: &str, figures: &[Figure]) -> std::io::Result<String> {
    draw_chart(title, figures).map_err(|e| std::io::Error::other(format!("drawing the chart: {e}")))
}

fn draw_chart(title: &str, figures: &[Figure]) -> DrawResult<String> {
    let panels = in_order(figures.iter().map(|f| f.panel.as_str()));
    let imps = in_order(figures.iter().map(|f| f.imp.as_str()));
    let cols = 3usize;
    let rows = (panels.len() + 1).div_ceil(cols).max(1);
    let (w, h) = (1500u32, 60 + 340 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let cells = root.split_evenly((rows, cols));
        for (cell, panel) in cells.iter().zip(&panels) {
            let mine: Vec<&Figure> = figures.iter().filter(|f| f.panel == *panel).collect();
            draw_panel(cell, panel, &mine)?;
        }
        if let Some(cell) = cells.get(panels.len()) {
            draw_legend(cell, &imps)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn draw_panel(
    cell: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &str,
    figures: &[&Figure],
) -> DrawResult<()> {
    let xs = in_order(figures.iter().map(|f| f.x.as_str()));
    let ratios = panel_ratios(figures);
    let worst = ratios
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, r)| *r))
        .fold(1.0f64, f64::max);
    let unit = figures.first().map_or("", |f| f.unit.as_str());
    let better = match figures.first().map(|f| f.better) {
        Some(Better::Higher) => "higher is better",
        _ => "lower is better",
    };
    let caption = format!("{panel} ({unit}, {better})");
    let top = (worst * 1.15).max(1.3);
    let mut chart = ChartBuilder::on(cell)
        .caption(caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(
            Categories(xs.len()),
            (0.95f64..top).log_scale().with_key_points(ratio_ticks(top)),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("workload size or variant")
        .y_desc("× the best (log scale)")
        .x_labels(xs.len())
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| {
            let i = v.round();
            match xs.get(i as usize) {
                Some(name) if i >= 0.0 && (v - i).abs() < 1e-6 => name.to_string(),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()?;
    for (imp, points) in &ratios {
        let style = style_of(imp);
        let at: Vec<(f64, f64)> = points.iter().map(|&(x, r)| (x as f64, r)).collect();
        let line = style.color.stroke_width(2);
        match style.dash {
            None => chart.draw_series(LineSeries::new(at.clone(), line))?,
            Some((dash, gap)) => {
                chart.draw_series(DashedLineSeries::new(at.clone(), dash, gap, line))?
            }
        };
        let fill = style.color.filled();
        let points = at.into_iter();
        match style.marker {
            Marker::Circle => {
                chart.draw_series(points.map(|p| Circle::new(p, 5, fill)))?;
            }
            Marker::Triangle => {
                chart.draw_series(points.map(|p| TriangleMarker::new(p, 6, fill)))?;
            }
            Marker::Square => {
                chart.draw_series(
                    points.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)),
                )?;
            }
            Marker::Cross => {
                chart.draw_series(points.map(|p| Cross::new(p, 5, style.color.stroke_width(2))))?;
            }
        }
    }
    Ok(())
}

fn draw_legend(
    cell: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    imps: &[&str],
) -> DrawResult<()> {
    let font = |size| ("sans-serif", size).into_font();
    cell.draw(&Text::new("implementations", (30, 20), font(15)))?;
    cell.draw(&Text::new(
        "colour: library; marker and dashes: backend",
        (30, 40),
        font(12),
    ))?;
    // Two columns once one would run out of the cell.
    let per_column = imps.len().min(13).max(imps.len().div_ceil(2));
    for (i, imp) in imps.iter().enumerate() {
        let style = style_of(imp);
        let (column, row) = (i / per_column, i % per_column);
        let x = 30 + 230 * column as i32;
        let y = 66 + 20 * row as i32;
        let line = style.color.stroke_width(3);
        match style.dash {
            None => cell.draw(&PathElement::new(vec![(x, y), (x + 44, y)], line))?,
            Some((dash, gap)) => cell.draw(&plotters::element::DashedPathElement::new(
                vec![(x, y), (x + 44, y)],
                dash,
                gap,
                line,
            ))?,
        }
        let fill = style.color.filled();
        match style.marker {
            Marker::Circle => cell.draw(&Circle::new((x + 22, y), 5, fill))?,
            Marker::Triangle => cell.draw(&TriangleMarker::new((x + 22, y), 6, fill))?,
            Marker::Square => {
                cell.draw(&Rectangle::new([(x + 18, y - 4), (x + 26, y + 4)], fill))?
            }
            Marker::Cross => cell.draw(&Cross::new((x + 22, y), 5, style.color.stroke_width(2)))?,
        }
        cell.draw(&Text::new(imp.to_string(), (x + 54, y - 7), font(14)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(panel: &str, x: &str, imp: &str, value: f64, better: Better) -> Figure {
        Figure {
            panel: panel.into(),
            x: x.into(),
            imp: imp.into(),
            value,
            unit: "u".into(),
            better,
        }
    }

    #[test]
    fn result_lines_round_trip_and_other_lines_are_ignored() {
        let f = fig("pound", "100 conns", "libuv", 41234.5, Better::Higher);
        assert_eq!(parse_result_line(&result_line(&f)), Some(f));
        assert_eq!(parse_result_line("  evloop   123 callbacks/s"), None);
        assert_eq!(
            parse_result_line("result\tp\tx\ti\tNaN\tu\tlower"),
            None,
            "a figure that is not a positive number is dropped"
        );
    }

    #[test]
    fn ratios_are_to_the_best_at_each_point_whichever_way_is_better() {
        let times = [
            fig("pipes", "n=100", "a", 10.0, Better::Lower),
            fig("pipes", "n=100", "b", 20.0, Better::Lower),
            fig("pipes", "n=1000", "a", 300.0, Better::Lower),
            fig("pipes", "n=1000", "b", 100.0, Better::Lower),
        ];
        let refs: Vec<&Figure> = times.iter().collect();
        assert_eq!(
            panel_ratios(&refs),
            vec![
                ("a".to_string(), vec![(0, 1.0), (1, 3.0)]),
                ("b".to_string(), vec![(0, 2.0), (1, 1.0)]),
            ]
        );
        let rates = [
            fig("pump", "1", "evloop", 10.0, Better::Higher),
            fig("pump", "1", "libuv", 5.0, Better::Higher),
        ];
        let refs: Vec<&Figure> = rates.iter().collect();
        assert_eq!(
            panel_ratios(&refs),
            vec![
                ("evloop".to_string(), vec![(0, 1.0)]),
                ("libuv".to_string(), vec![(0, 2.0)]),
            ]
        );
    }

    #[test]
    fn colour_names_the_library_and_marker_and_dashes_the_backend() {
        let (ev_epoll, ev_poll, libev_poll) = (
            style_of("evloop epoll"),
            style_of("evloop poll"),
            style_of("libev poll"),
        );
        assert_eq!(ev_epoll.color, ev_poll.color);
        assert_ne!(ev_poll.color, libev_poll.color);
        assert_eq!(
            (ev_poll.marker, ev_poll.dash),
            (libev_poll.marker, libev_poll.dash)
        );
        assert_ne!(ev_epoll.marker, ev_poll.marker);
        assert_eq!(
            style_of("evloop"),
            ev_epoll,
            "no backend: the default, epoll"
        );
        let all = [
            "evloop", "libev", "libevent", "libuv", "raw", "polling", "tokio",
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(style_of(a).color, style_of(b).color, "{a} and {b}");
            }
        }
    }

    #[test]
    fn ticks_stay_inside_the_axis() {
        assert_eq!(ratio_ticks(1.3), vec![1.0, 1.05, 1.1, 1.2, 1.3]);
        assert_eq!(ratio_ticks(7.0), vec![1.0, 1.2, 1.5, 2.0, 3.0, 5.0]);
    }

    #[test]
    fn the_chart_has_a_panel_per_workload_axis_names_and_a_legend() {
        let figures = [
            fig("pipes", "n=100", "evloop epoll", 10.0, Better::Lower),
            fig("pipes", "n=100", "libev epoll", 12.0, Better::Lower),
            fig("pipes", "n=8000", "evloop epoll", 900.0, Better::Lower),
            fig("pipes", "n=8000", "libev epoll", 800.0, Better::Lower),
            fig("pump", "100 conns", "evloop", 17.0, Better::Higher),
            fig("pump", "100 conns", "libuv", 16.0, Better::Higher),
        ];
        let svg = render_svg("evloop bench report", &figures).expect("draws");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "evloop bench report",
            "pipes (u, lower is better)",
            "pump (u, higher is better)",
            "× the best (log scale)",
            "workload size or variant",
            "n=100",
            "n=8000",
            "100 conns",
            "implementations",
            "evloop epoll",
            "libev epoll",
            "libuv",
        ] {
            assert!(svg.contains(text), "the chart lacks {text:?}");
        }
    }
}
