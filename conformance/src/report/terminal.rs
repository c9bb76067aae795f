//! The report as the terminal shows it after the progress lines: the per-rule table, the interop
//! matrix and a one-line summary. Colour only when asked (on a terminal).

use std::fmt::Write as _;

use super::{CellClass, Counts, Report};

/// The ANSI colour of a class, if any.
fn ansi(class: CellClass) -> Option<&'static str> {
    match class {
        CellClass::Pass => Some("32"),
        CellClass::Fail => Some("31"),
        CellClass::Error => Some("35"),
        CellClass::Expected => Some("33"),
        CellClass::NotApplicable | CellClass::NotReached => Some("2"),
        CellClass::Empty => None,
    }
}

/// A cell in words, such as `pass 3/3`, `FAIL 1/3`, `xfail 1/2`, `n/a 2/2`, `unreached 1/1`.
pub fn cell_text(c: &Counts) -> String {
    let total = c.total();
    match c.class() {
        CellClass::Empty => "-".to_owned(),
        CellClass::Fail => {
            let mut s = format!("FAIL {}/{total}", c.fail + c.unexpected);
            if c.error > 0 {
                s.push('!');
            }
            s
        }
        CellClass::Error => format!("ERROR {}/{total}", c.error),
        CellClass::Expected => format!("xfail {}/{total}", c.expected_fail),
        CellClass::Pass => format!("pass {}/{total}", c.pass),
        CellClass::NotApplicable => format!("n/a {}/{total}", c.not_applicable),
        CellClass::NotReached => format!("unreached {}/{total}", c.not_reached),
    }
}

fn padded(c: &Counts, width: usize, colour: bool) -> String {
    let text = format!("{:<width$}", cell_text(c));
    match (colour, ansi(c.class())) {
        (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text,
    }
}

/// The per-rule table: rule, title, and one column per implementation.
pub fn table(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let title_width = report
        .rules
        .iter()
        .map(|r| r.title.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 60);
    let widths: Vec<usize> = report
        .implementations
        .iter()
        .map(|i| i.name.chars().count().max(12) + 2)
        .collect();
    let _ = write!(out, "{:<7} {:<title_width$} ", "rule", "title");
    for (imp, w) in report.implementations.iter().zip(&widths) {
        let _ = write!(out, "{:<w$}", imp.name);
    }
    out.truncate(out.trim_end_matches(' ').len());
    out.push('\n');
    for row in &report.matrix {
        let title: String = report
            .rule_title(&row.rule)
            .chars()
            .take(title_width)
            .collect();
        let _ = write!(out, "{:<7} {:<title_width$} ", row.rule, title);
        for (c, w) in row.cells.iter().zip(&widths) {
            out.push_str(&padded(&c.counts, *w, colour));
        }
        out.truncate(out.trim_end_matches(' ').len());
        out.push('\n');
    }
    out
}

/// The interop matrix: rows hold the lock, columns wait; empty when the check did not run.
pub fn interop_table(report: &Report, colour: bool) -> String {
    let Some(interop) = &report.interop else {
        return String::new();
    };
    let mut out = String::from("interop (IOP-1): row holds the lock, column waits\n");
    let first_width = report
        .implementations
        .iter()
        .map(|i| i.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6)
        + 2;
    let widths: Vec<usize> = report
        .implementations
        .iter()
        .map(|i| i.name.chars().count().max(11) + 2)
        .collect();
    let _ = write!(out, "{:<first_width$}", "");
    for (imp, w) in report.implementations.iter().zip(&widths) {
        let _ = write!(out, "{:<w$}", imp.name);
    }
    out.truncate(out.trim_end_matches(' ').len());
    out.push('\n');
    let n = report.implementations.len();
    for (r, first) in report.implementations.iter().enumerate() {
        let _ = write!(out, "{:<first_width$}", first.name);
        for (i, w) in widths.iter().enumerate() {
            let counts = interop
                .matrix
                .get(r * n + i)
                .map(|c| c.counts)
                .unwrap_or_default();
            out.push_str(&padded(&counts, *w, colour));
        }
        out.truncate(out.trim_end_matches(' ').len());
        out.push('\n');
    }
    out
}

/// The last line: counts, test count, wall time and timing scale.
pub fn summary(report: &Report) -> String {
    let t = &report.totals;
    let mut s = format!(
        "{} passed, {} failed, {} errors, {} not applicable",
        t.pass, t.fail, t.error, t.not_applicable
    );
    if t.expected_fail + t.unexpected > 0 {
        let _ = write!(
            s,
            "; {} failed as expected, {} not as expected",
            t.expected_fail, t.unexpected
        );
    }
    if let Some(interop) = &report.interop {
        let mut c = Counts::default();
        for cell in &interop.matrix {
            c.pass += cell.counts.pass;
            c.fail += cell.counts.fail;
            c.error += cell.counts.error;
            c.not_applicable += cell.counts.not_applicable;
        }
        let _ = write!(
            s,
            "; interop: {} passed, {} failed, {} errors, {} not applicable",
            c.pass, c.fail, c.error, c.not_applicable
        );
    }
    let total = t.total() + report.interop.as_ref().map_or(0, |i| i.trials.len());
    let _ = write!(
        s,
        "; {total} tests in {:.1} s (timing scale {})",
        report.environment.wall_time_s, report.environment.timing_scale
    );
    s
}
