//! A run as the terminal shows it: a progress line per finished test, the explanation of each
//! test that fails the run, then the per-rule table, the interop matrix and a one-line summary.
//! Colour only when asked (the `lockspec` binary asks, and prints through `anstream`, which keeps
//! it only where the terminal and `NO_COLOR`/`CLICOLOR_FORCE` allow).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Counts, Report};
use crate::judge::{Judgement, Outcome, Verdict};
use crate::plan::Test;
use crate::run::{self, TrialReport};

/// The ANSI colour of an outcome.
fn ansi(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "32",
        Outcome::Fail | Outcome::Unexpected => "31",
        Outcome::Error => "35",
        Outcome::Expected => "33",
        Outcome::NotApplicable | Outcome::NotReached => "2",
    }
}

/// `text` in the colour of `outcome`, if `colour`.
fn paint(text: &str, outcome: Option<Outcome>, colour: bool) -> String {
    match outcome {
        Some(o) if colour => format!("\x1b[{}m{text}\x1b[0m", ansi(o)),
        _ => text.to_owned(),
    }
}

/// A judgement as a five-letter label, and the outcome whose colour it takes: `PASS`, `XFAIL`
/// (an expected failure), `N/A`, `FAIL`, `ERROR`, and for an expectation that did not hold,
/// `XPASS` (it passed) or `XSKIP` (it did not apply), else the verdict.
fn label(judgement: &Judgement) -> (&'static str, Outcome) {
    match (judgement.outcome(), judgement.verdict) {
        (Outcome::Pass, _) => ("PASS ", Outcome::Pass),
        (Outcome::Expected, _) => ("XFAIL", Outcome::Expected),
        (o @ (Outcome::NotApplicable | Outcome::NotReached), _) => ("N/A  ", o),
        (Outcome::Unexpected, Verdict::Pass) => ("XPASS", Outcome::Fail),
        (Outcome::Unexpected, Verdict::NotApplicable) => ("XSKIP", Outcome::Fail),
        (Outcome::Error, _) | (Outcome::Unexpected, Verdict::Error) => ("ERROR", Outcome::Error),
        (Outcome::Fail | Outcome::Unexpected, _) => ("FAIL ", Outcome::Fail),
    }
}

/// The progress line of a finished test: `[ 12/340] PASS  reference::acquire::free (0.12 s)`.
pub fn progress(
    done: usize,
    total: usize,
    test: &Test,
    judgement: &Judgement,
    elapsed: Duration,
    colour: bool,
) -> String {
    let (word, outcome) = label(judgement);
    format!(
        "[{done:>3}/{total}] {} {} ({:.2} s)",
        paint(word, Some(outcome), colour),
        test.name,
        elapsed.as_secs_f64()
    )
}

/// Why a test fails the run, for a person: scenario, step, rule, expected and observed, the
/// timeline, the workers' stderr and the rerun command ([`run::explain`]), and what the
/// expectation file said if it did not hold.
pub fn explain(
    test: &Test,
    report: &TrialReport,
    judgement: &Judgement,
    rule_titles: &HashMap<String, String>,
) -> String {
    let mut text = run::explain(&test.name, &test.scenario, report, rule_titles, &test.rerun);
    if let Some(mismatch) = judgement.mismatch(&report.verdict) {
        // A pass or a skip is explained in one line without its end.
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = writeln!(text, "  {mismatch}");
    }
    text
}

/// A cell in words, such as `pass 3/3`, `FAIL 1/3`, `xfail 1/2`, `n/a 2/2`, `unreached 1/1`.
pub fn cell_text(c: &Counts) -> String {
    let total = c.total();
    match c.worst() {
        None => "-".to_owned(),
        Some(Outcome::Fail | Outcome::Unexpected) => {
            let mut s = format!("FAIL {}/{total}", c.fail + c.unexpected);
            if c.error > 0 {
                s.push('!');
            }
            s
        }
        Some(Outcome::Error) => format!("ERROR {}/{total}", c.error),
        Some(Outcome::Expected) => format!("xfail {}/{total}", c.expected_fail),
        Some(Outcome::Pass) => format!("pass {}/{total}", c.pass),
        Some(Outcome::NotApplicable) => format!("n/a {}/{total}", c.not_applicable),
        Some(Outcome::NotReached) => format!("unreached {}/{total}", c.not_reached),
    }
}

/// A cell in words, coloured, then padded to `width` (so that a line's trailing spaces stay
/// outside the colour, and are trimmed).
fn padded(c: &Counts, width: usize, colour: bool) -> String {
    let text = cell_text(c);
    let pad = width.saturating_sub(text.chars().count());
    format!("{}{:pad$}", paint(&text, c.worst(), colour), "")
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

/// What the terminal shows after the explanations: a blank line, the per-rule table, the interop
/// matrix when the check ran, and the summary line.
pub fn tables(report: &Report, colour: bool) -> String {
    let mut out = format!("\n{}\n", table(report, colour));
    if report.interop.is_some() {
        let _ = writeln!(out, "{}", interop_table(report, colour));
    }
    out.push_str(&summary(report));
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
