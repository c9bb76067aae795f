//! The benchmark's outputs: the table (terminal and Markdown), the targets, the JSON file, and a
//! latency distribution chart (SVG) per implementation, gathered in an HTML page.

use std::fmt::Write as _;

use serde::Serialize;

use crate::measure::{Handoff, Measured, Plan, Summary};
use crate::raw::{self, InProcess};

/// The whole run, as written to `bench.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The version of this file's layout.
    pub format: u32,
    /// The command that produced it.
    pub command: String,
    pub machine: Machine,
    pub plan: Plan,
    /// The implementation every ratio is relative to.
    pub baseline: &'static str,
    /// The bare calls in a tight loop in the benchmark's own process.
    pub in_process: Option<InProcess>,
    pub implementations: Vec<Measured>,
    /// The reference's targets, when the reference was measured.
    pub targets: Vec<Target>,
}

/// Where the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub os: &'static str,
    pub arch: &'static str,
    pub cores: usize,
    /// The kernel release, where known.
    pub kernel: Option<String>,
}

impl Machine {
    pub fn here() -> Machine {
        Machine {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
        }
    }

    fn describe(&self) -> String {
        let kernel = self
            .kernel
            .as_ref()
            .map_or(String::new(), |k| format!(" {k}"));
        format!("{}{kernel} {}, {} cores", self.os, self.arch, self.cores)
    }
}

/// One target of the issue that asked for this benchmark, checked against the reference.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub measured: String,
    pub limit: &'static str,
    /// `None` when it could not be measured.
    pub met: Option<bool>,
}

impl Report {
    fn baseline(&self) -> Option<&Measured> {
        self.implementations.iter().find(|m| m.name == raw::NAME)
    }

    /// Checks the reference's targets; empty when the reference was not measured.
    pub fn check_targets(&mut self) {
        let Some(reference) = self.implementations.iter().find(|m| m.name == "reference") else {
            return;
        };
        let base = self.baseline();
        let ratio = |value: Option<f64>, base: Option<f64>| match (value, base) {
            (Some(v), Some(b)) if b > 0.0 => Some(v / b),
            _ => None,
        };
        let uncontended = ratio(
            reference.uncontended.as_ref().map(|u| u.pair_ns.p50),
            base.and_then(|b| b.uncontended.as_ref())
                .map(|u| u.pair_ns.p50),
        );
        let timed = reference.handoff_timed.as_ref().map(|h| h.latency_ns);
        let handoff_p50 = ratio(
            timed.map(|t| t.p50),
            base.and_then(|b| b.handoff_blocking.as_ref())
                .map(|h| h.latency_ns.p50),
        );
        let overshoot = reference.timeouts.as_ref().map(|t| t.overshoot_ns.p99);
        let cpu = reference.cpu.as_ref().and_then(|c| c.timed_wait);
        let times = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("×{r:.2}"));
        self.targets = vec![
            Target {
                what: "uncontended acquire+release vs raw open+flock+unlock+close",
                measured: times(uncontended),
                limit: "≤ ×1.5",
                met: uncontended.map(|r| r <= 1.5),
            },
            Target {
                what: "timed-acquire hand-off p50 vs raw blocking-flock hand-off p50",
                measured: times(handoff_p50),
                limit: "≤ ×2",
                met: handoff_p50.map(|r| r <= 2.0),
            },
            Target {
                what: "timed-acquire hand-off p99",
                measured: timed.map_or("n/a".into(), |t| duration(t.p99)),
                limit: "≤ 1 ms",
                met: timed.map(|t| t.p99 <= 1e6),
            },
            Target {
                what: "timeout overshoot p99",
                measured: overshoot.map_or("n/a".into(), duration),
                limit: "≤ 5 ms",
                met: overshoot.map(|o| o <= 5e6),
            },
            Target {
                what: "CPU while waiting (timed acquire)",
                measured: cpu.map_or("n/a".into(), percent),
                limit: "≤ 1 % of a core",
                met: cpu.map(|c| c <= 0.01),
            },
        ];
    }

    /// The table: one row per implementation, each figure with its ratio to the baseline.
    fn table(&self) -> Table {
        let base = self.baseline();
        let mut table = Table {
            header: [
                "implementation",
                "acquire+release",
                "per second",
                "hand-off blocking p50",
                "p99",
                "hand-off timed p50",
                "p99",
                "timeout late p50",
                "p99",
                "CPU waiting timed",
                "blocking",
            ]
            .map(String::from)
            .to_vec(),
            rows: Vec::new(),
        };
        let base_blocking = base.and_then(|b| b.handoff_blocking.as_ref());
        for m in &self.implementations {
            let uncontended = m.uncontended.as_ref();
            let base_uncontended = base.and_then(|b| b.uncontended.as_ref());
            let base_timeouts = base.and_then(|b| b.timeouts.as_ref());
            let base_cpu = base
                .and_then(|b| b.cpu.as_ref())
                .and_then(|c| c.blocking_wait);
            let mut row = vec![m.name.clone()];
            row.push(cell(
                uncontended.map(|u| u.pair_ns.p50),
                base_uncontended.map(|u| u.pair_ns.p50),
                duration,
            ));
            row.push(uncontended.map_or("—".into(), |u| rate(u.per_second)));
            for handoff in [m.handoff_blocking.as_ref(), m.handoff_timed.as_ref()] {
                row.extend(p50_p99(
                    handoff.map(|h| &h.latency_ns),
                    base_blocking.map(|h| &h.latency_ns),
                ));
            }
            row.extend(p50_p99(
                m.timeouts.as_ref().map(|t| &t.overshoot_ns),
                base_timeouts.map(|t| &t.overshoot_ns),
            ));
            let cpu = m.cpu.as_ref();
            // A process blocked in the kernel uses next to nothing: a ratio to it means nothing
            // below a hundredth of a percent.
            let cpu_base = base_cpu.filter(|&c| c >= 1e-4);
            row.push(cell(cpu.and_then(|c| c.timed_wait), cpu_base, percent));
            row.push(cell(cpu.and_then(|c| c.blocking_wait), cpu_base, percent));
            table.rows.push(row);
        }
        table
    }

    fn errors(&self) -> Vec<String> {
        self.implementations
            .iter()
            .filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", m.name)))
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            format!(
                "Each figure is followed by its ratio to {}: open + flock(LOCK_EX) to acquire, \
                 flock(LOCK_UN) + close to release, a blocking acquire blocked in flock.",
                raw::NAME
            ),
            "acquire+release: the library calls of one uncontended acquire and one release \
             (median); per second: 1 s over that."
                .into(),
            "hand-off: from the holder's call to release to the waiter's acquire returning, the \
             waiter already waiting (timed: a 60 s timeout); ratios to the baseline's blocking \
             hand-off."
                .into(),
            format!(
                "timeout late: how long after its {} ms timeout a timed acquire of a held lock \
                 returned (the baseline sleeps to its deadline: the OS timer's lateness).",
                self.plan.timeout_ms
            ),
            "CPU waiting: CPU time of the waiting worker per second of waiting, in % of one core."
                .into(),
        ];
        if let Some(in_process) = &self.in_process {
            notes.push(format!(
                "In a tight loop in one process, for orientation: open+flock+unlock+close {}, \
                 flock+unlock {}.",
                duration(in_process.open_lock_unlock_close_ns),
                duration(in_process.lock_unlock_ns)
            ));
        }
        for m in &self.implementations {
            for (kind, handoff) in [
                ("blocking", &m.handoff_blocking),
                ("timed", &m.handoff_timed),
            ] {
                if let Some(Handoff { discarded, .. }) = handoff
                    && *discarded > 0
                {
                    notes.push(format!(
                        "{}: {discarded} {kind} hand-off samples discarded (the waiter had not \
                         begun to wait).",
                        m.name
                    ));
                }
            }
            if let Some(t) = &m.timeouts
                && t.early > 0
            {
                notes.push(format!(
                    "{}: {} of {} timed acquires returned BEFORE their timeout.",
                    m.name, t.early, t.overshoot_ns.n
                ));
            }
        }
        notes
    }

    /// The table, targets and notes for the terminal.
    pub fn terminal(&self) -> String {
        let mut out = format!(
            "lockspec bench — {} — baseline {}\n\n",
            self.machine.describe(),
            raw::NAME
        );
        out.push_str(&self.table().text());
        out.push('\n');
        for note in self.notes() {
            let _ = writeln!(out, "  {note}");
        }
        if !self.targets.is_empty() {
            out.push_str("\ntargets (reference):\n");
            for t in &self.targets {
                let verdict = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                let _ = writeln!(
                    out,
                    "  {:<66} {:>10}  {:<16} {verdict}",
                    t.what, t.measured, t.limit
                );
            }
        }
        for error in self.errors() {
            let _ = writeln!(out, "\nerror: {error}");
        }
        out
    }

    /// The table, targets and notes in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Measured on {} with `{}`.\n\n",
            self.machine.describe(),
            self.command
        );
        out.push_str(&self.table().markdown());
        out.push('\n');
        for note in self.notes() {
            let _ = writeln!(out, "- {note}");
        }
        if !self.targets.is_empty() {
            out.push_str(
                "\n| target (reference) | measured | limit | met |\n| --- | --- | --- | --- |\n",
            );
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                };
                let _ = writeln!(out, "| {} | {} | {} | {met} |", t.what, t.measured, t.limit);
            }
        }
        for error in self.errors() {
            let _ = writeln!(out, "\n> error: {error}");
        }
        out
    }

    /// A self-contained HTML page: the table, the targets and every chart inline.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!doctype html>\n<meta charset=\"utf-8\">\n<title>lockspec bench</title>\n\
             <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
             td:first-child,th:first-child{text-align:left}</style>\n",
        );
        let _ = writeln!(
            out,
            "<h1>lockspec bench</h1>\n<p>{} — <code>{}</code></p>",
            escape(&self.machine.describe()),
            escape(&self.command)
        );
        out.push_str(&self.table().html());
        out.push_str("<ul>\n");
        for note in self.notes() {
            let _ = writeln!(out, "<li>{}</li>", escape(&note));
        }
        out.push_str("</ul>\n");
        if !self.targets.is_empty() {
            out.push_str("<h2>Targets (reference)</h2>\n<table><tr><th>target</th><th>measured</th><th>limit</th><th>met</th></tr>\n");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "not measured",
                };
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{met}</td></tr>",
                    escape(t.what),
                    escape(&t.measured),
                    escape(t.limit)
                );
            }
            out.push_str("</table>\n");
        }
        out.push_str("<h2>Hand-off latency</h2>\n");
        for m in &self.implementations {
            if let Some(svg) = self.chart(m) {
                out.push_str(&svg);
                out.push('\n');
            }
        }
        out
    }

    /// The latency distribution chart of `m`: the cumulative distribution of its hand-offs,
    /// with the baseline's blocking hand-off for comparison; `None` without samples.
    pub fn chart(&self, m: &Measured) -> Option<String> {
        let base = self
            .baseline()
            .filter(|b| b.name != m.name)
            .and_then(|b| b.handoff_blocking.as_ref());
        let mut series: Vec<(String, &str, bool, &[i64])> = Vec::new();
        if let Some(h) = &m.handoff_blocking {
            series.push(("blocking acquire".into(), "#1f77b4", false, &h.samples_ns));
        }
        if let Some(h) = &m.handoff_timed {
            series.push(("timed acquire".into(), "#d62728", false, &h.samples_ns));
        }
        if series.is_empty() {
            return None;
        }
        if let Some(b) = base {
            series.push((
                format!("{} (blocking flock)", raw::NAME),
                "#7f7f7f",
                true,
                &b.samples_ns,
            ));
        }
        Some(cdf_svg(
            &format!(
                "{}: hand-off latency (release called → acquire returned)",
                m.name
            ),
            &series,
        ))
    }
}

/// A value and its ratio to the baseline's, as one cell: `12.3 µs ×1.05`.
/// The p50 and p99 cells of a duration summary, each with its ratio to the baseline's.
fn p50_p99(value: Option<&Summary>, base: Option<&Summary>) -> [String; 2] {
    [
        cell(value.map(|v| v.p50), base.map(|b| b.p50), duration),
        cell(value.map(|v| v.p99), base.map(|b| b.p99), duration),
    ]
}

fn cell(value: Option<f64>, base: Option<f64>, show: fn(f64) -> String) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{} ×{}", show(v), ratio(v / b)),
        (Some(v), _) => show(v),
        (None, _) => "—".into(),
    }
}

fn ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// Nanoseconds, in the unit that suits them, with three significant digits.
pub fn duration(ns: f64) -> String {
    let (value, unit) = if ns.abs() >= 1e9 {
        (ns / 1e9, "s")
    } else if ns.abs() >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns.abs() >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    if value.abs() >= 100.0 {
        format!("{value:.0} {unit}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

/// `10^decade` nanoseconds, as an axis label: `100 ns`, `1 µs`, `10 ms`.
fn decade_label(decade: f64) -> String {
    let exponent = decade.round() as i32;
    let (unit, scale) = match exponent {
        ..=2 => ("ns", 0),
        3..=5 => ("µs", 3),
        6..=8 => ("ms", 6),
        _ => ("s", 9),
    };
    let value = 10f64.powi(exponent - scale);
    format!("{value} {unit}")
}

fn percent(fraction: f64) -> String {
    format!("{:.3} %", fraction * 100.0)
}

fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.0} k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0} /s")
    }
}

/// Rows of cells under a header.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn text(&self) -> String {
        let widths = self.widths();
        let line = |row: &[String]| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &w))| {
                    if i == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&line(&rule));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "| {} |", align.join(" | "));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    fn html(&self) -> String {
        let mut out = String::from("<table>\n<tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cumulative distribution chart on a logarithmic time axis: each series is (label, colour,
/// dashed, samples in nanoseconds).
fn cdf_svg(title: &str, series: &[(String, &str, bool, &[i64])]) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 400.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    // Samples at or below 100 ns (including the impossible negative ones) sit on the left edge.
    const FLOOR: f64 = 100.0;

    let all = series
        .iter()
        .flat_map(|s| s.3.iter().map(|&v| (v as f64).max(FLOOR)));
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo_decade = lo.log10().floor();
    let hi_decade = hi.log10().ceil().max(lo_decade + 1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    const LEGEND: f64 = WIDTH - RIGHT - 300.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |ns: f64| LEFT + (ns.max(FLOOR).log10() - lo_decade) / (hi_decade - lo_decade) * plot_w;
    let y = |fraction: f64| TOP + (1.0 - fraction) * plot_h;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"14\">{}</text>\n",
        escape(title)
    );
    // Decades on the time axis.
    let mut decade = lo_decade;
    while decade <= hi_decade {
        let px = x(10f64.powf(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 16.0,
            decade_label(decade)
        );
        decade += 1.0;
    }
    // Fractions, with the two percentiles of the table.
    // (The top, 1, is too close to p99 for a label of its own.)
    for (fraction, label) in [(0.0, "0"), (0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let py = y(fraction);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">latency (log scale)</text>\
         <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">\
         fraction of hand-offs at most this late</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let legend_top = TOP + plot_h - 24.0 - 16.0 * (series.len() - 1) as f64;
    let mut legend = format!(
        "<rect x=\"{:.1}\" y=\"{legend_top:.1}\" width=\"296\" height=\"{:.1}\" fill=\"white\" \
         fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
        LEGEND - 6.0,
        16.0 * series.len() as f64 + 6.0
    );
    for (index, (label, colour, dashed, samples)) in series.iter().enumerate() {
        let mut sorted: Vec<f64> = samples.iter().map(|&v| v as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mut points = format!("{:.1},{:.1}", x(sorted[0]), y(0.0));
        for (i, v) in sorted.iter().enumerate() {
            let _ = write!(
                points,
                " {:.1},{:.1} {:.1},{:.1}",
                x(*v),
                y(i as f64 / n),
                x(*v),
                y((i + 1) as f64 / n)
            );
        }
        let dash = if *dashed {
            " stroke-dasharray=\"5,4\""
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{points}\"/>"
        );
        // The legend sits at the bottom right, where a cumulative distribution rarely goes.
        let ly = TOP + plot_h - 12.0 - 16.0 * (series.len() - 1 - index) as f64;
        let _ = writeln!(
            legend,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{} ({} samples)</text>",
            LEGEND,
            LEGEND + 24.0,
            LEGEND + 30.0,
            ly + 4.0,
            escape(label),
            samples.len()
        );
    }
    // Drawn last, over the curves.
    svg.push_str(&legend);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(850.0), "850 ns");
        assert_eq!(duration(12_345.0), "12.3 µs");
        assert_eq!(duration(1_520_000.0), "1.52 ms");
        assert_eq!(duration(-2_000.0), "-2.00 µs");
    }

    #[test]
    fn cells_show_the_ratio_to_the_baseline() {
        assert_eq!(
            cell(Some(2_000.0), Some(1_000.0), duration),
            "2.00 µs ×2.00"
        );
        assert_eq!(cell(Some(2_000.0), None, duration), "2.00 µs");
        assert_eq!(cell(Some(2_000.0), Some(0.0), duration), "2.00 µs");
        assert_eq!(cell(None, Some(1.0), duration), "—");
    }

    #[test]
    fn the_chart_is_well_formed_svg() {
        let samples = [150_i64, 2_000, 30_000, -5];
        let svg = cdf_svg("a <title>", &[("x & y".into(), "#000", true, &samples)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;title&gt;") && svg.contains("x &amp; y (4 samples)"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        // 100 ns to 100 µs: four decades, four labels.
        for label in [">100 ns<", ">1 µs<", ">10 µs<", ">100 µs<"] {
            assert!(svg.contains(label), "{label} missing: {svg}");
        }
    }

    #[test]
    fn tables_align_and_render_as_markdown() {
        let table = Table {
            header: vec!["name".into(), "value".into()],
            rows: vec![vec!["reference".into(), "1 µs".into()]],
        };
        assert_eq!(
            table.text(),
            "name       value\n---------  -----\nreference   1 µs\n"
        );
        assert_eq!(
            table.markdown(),
            "| name | value |\n| --- | ---: |\n| reference | 1 µs |\n"
        );
    }
}
