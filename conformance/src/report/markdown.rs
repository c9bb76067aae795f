//! The Markdown report: short enough for `$GITHUB_STEP_SUMMARY`, with the environment, the
//! matrices and a list of failures; the evidence is in the HTML report.

use std::fmt::Write as _;

use super::{Counts, Margins, Report, TrialResult};
use crate::judge::{self, Outcome};

/// At most this many failures are listed; the rest are counted.
const MAX_FAILURES: usize = 50;

/// The Markdown report.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    environment(&mut out, report);
    implementations(&mut out, report);
    rules(&mut out, report);
    interop(&mut out, report);
    failures(&mut out, report);
    expected_failures(&mut out, report);
    not_applicable(&mut out, report);
    let _ = writeln!(
        out,
        "\nThe evidence of every failure (timeline, stderr) is in `report.html`; the data in \
         `report.json` (format {}, see `spec/REPORT.md`).",
        report.format
    );
    out
}

/// The title, the environment and the run's result.
fn environment(out: &mut String, report: &Report) {
    let env = &report.environment;
    let _ = writeln!(out, "# lockspec conformance report\n");
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let rows = [
        ("date (UTC)", env.date.clone()),
        ("lockspec", report.lockspec_version.clone()),
        ("system", env.system()),
        ("lock files on", env.lock_files()),
        ("timing scale", env.timing_scale.to_string()),
        (
            "margins",
            env.margins
                .as_ref()
                .map_or("not calibrated".into(), Margins::line),
        ),
        (
            "run",
            format!(
                "{} tests in {:.1} s, {} at a time",
                report.totals.total() + report.interop.as_ref().map_or(0, |i| i.trials.len()),
                env.wall_time_s,
                env.jobs
            ),
        ),
        ("command", code(&env.command)),
    ];
    for (k, v) in rows {
        let v = if k == "command" { v } else { cell(&v) };
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let t = &report.totals;
    let _ = writeln!(
        out,
        "\n**{}** {}.\n",
        if judge::failed(report) {
            "❌ Not as expected:"
        } else {
            "✅ Every result as expected:"
        },
        t
    );
}

/// The implementations, their counts and their adapters' notes.
fn implementations(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Implementations\n");
    let _ = writeln!(
        out,
        "| implementation | library | version | language | capabilities | pass | fail | error | expected fail | unexpected | n/a |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for imp in &report.implementations {
        let c = &imp.totals;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&imp.name),
            cell(imp.library.as_deref().unwrap_or("?")),
            cell(imp.version.as_deref().unwrap_or("?")),
            cell(imp.language.as_deref().unwrap_or("?")),
            cell(&imp.capabilities.join(", ")),
            c.pass,
            c.fail,
            c.error,
            c.expected_fail,
            c.unexpected,
            c.not_applicable
        );
    }

    let _ = writeln!(
        out,
        "\nHow prompt each was, on its workers' clocks (median / largest, and how many): a waiter's \
         return after the lock was freed, a timed-out acquire's return after its timeout, and a \
         call that had to complete at once.\n"
    );
    let _ = writeln!(
        out,
        "| implementation | hand-off | timeout overshoot | immediate call |\n| --- | ---: | ---: | ---: |"
    );
    for imp in &report.implementations {
        let p = &imp.promptness;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&imp.name),
            p.handoff.cell(),
            p.overshoot.cell(),
            p.call.cell()
        );
    }

    let notes: Vec<String> = report
        .implementations
        .iter()
        .filter_map(|imp| {
            let text = match (&imp.unavailable, &imp.notes) {
                (Some(u), _) => format!("**not run here**: {}", one_line(u)),
                (None, Some(n)) => one_line(n),
                (None, None) => return None,
            };
            Some(format!("- **{}**: {text}", cell(&imp.name)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\nWhat each adapter maps to, and what it supplies:\n");
        let _ = writeln!(out, "{}", notes.join("\n"));
    }
}

/// The rules × implementations matrix.
fn rules(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\n## Rules × implementations\n");
    let _ = writeln!(out, "{}\n", legend());
    if report.any_timeout_emulated() {
        let _ = writeln!(out, "{}\n", super::DAGGER);
    }
    let _ = write!(out, "| rule | title |");
    for imp in &report.implementations {
        let _ = write!(out, " {} |", cell(&imp.column()));
    }
    let _ = write!(out, "\n| --- | --- |");
    for _ in &report.implementations {
        let _ = write!(out, " :---: |");
    }
    out.push('\n');
    for row in &report.matrix {
        let _ = write!(
            out,
            "| {} | {} |",
            row.rule,
            cell(report.rule_title(&row.rule))
        );
        for c in &row.cells {
            let _ = write!(out, " {} |", badge(&c.counts));
        }
        out.push('\n');
    }
}

/// The interop matrix, when the check ran.
fn interop(out: &mut String, report: &Report) {
    let Some(interop) = &report.interop else {
        return;
    };
    let _ = writeln!(out, "\n## Interoperability\n");
    let _ = writeln!(
        out,
        "Two implementations on one lock file (IOP-1). Row: the implementation that holds the \
         lock (the first process); column: the one that must wait for it. ❌: the two do \
         not exclude each other on one file, so they must not be mixed (a finding about the \
         pair, not a failure of either; the evidence is in `report.html`). Scenarios: {}.\n",
        interop
            .scenarios
            .iter()
            .map(|s| code(s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = write!(out, "| holds ↓ · waits → |");
    for imp in &report.implementations {
        let _ = write!(out, " {} |", cell(&imp.column()));
    }
    let _ = write!(out, "\n| --- |");
    for _ in &report.implementations {
        let _ = write!(out, " :---: |");
    }
    out.push('\n');
    for first in &report.implementations {
        let _ = write!(out, "| **{}** |", cell(&first.name));
        for second in &report.implementations {
            let counts = interop
                .matrix
                .iter()
                .find(|c| c.first == first.name && c.second == second.name)
                .map(|c| c.counts)
                .unwrap_or_default();
            let _ = write!(out, " {} |", badge(&counts));
        }
        out.push('\n');
    }
}

/// The tests that fail the run, the first [`MAX_FAILURES`] of them.
fn failures(out: &mut String, report: &Report) {
    // Two different implementations that do not exclude each other are shown by the interop
    // matrix, with their evidence in the HTML report; they are not failures of the run.
    let interop_trials = report.interop.iter().flat_map(|i| &i.trials);
    let notable: Vec<&TrialResult> = report
        .trials
        .iter()
        .chain(interop_trials)
        .filter(|t| judge::trial_fails_run(t))
        .collect();
    if !notable.is_empty() {
        let _ = writeln!(out, "\n## Failures\n");
        for t in notable.iter().take(MAX_FAILURES) {
            let _ = writeln!(out, "{}", failure_item(report, t));
        }
        if notable.len() > MAX_FAILURES {
            let _ = writeln!(
                out,
                "- … and {} more: see `report.html` or `report.json`.",
                notable.len() - MAX_FAILURES
            );
        }
    }
}

/// The failures that the expectation files record.
fn expected_failures(out: &mut String, report: &Report) {
    let expected: Vec<&TrialResult> = report
        .trials
        .iter()
        .filter(|t| t.outcome() == Outcome::Expected)
        .collect();
    if !expected.is_empty() {
        let _ = writeln!(out, "\n## Expected failures\n");
        for t in expected {
            let note = t
                .expectation
                .as_ref()
                .expect("an expected outcome has a note");
            let _ = writeln!(
                out,
                "- {} — {}: {}",
                code(&t.test),
                note.describe(),
                one_line(&note.reason)
            );
            // The evidence of this run: what the step expected and what the library did.
            if let Some(e) = &t.evidence {
                let _ = writeln!(
                    out,
                    "  - this run: expected {}; observed {}",
                    one_line(&e.expected),
                    one_line(&e.observed)
                );
            }
        }
    }
}

/// Not applicable, grouped by implementation (in the report's order) and reason.
fn not_applicable(out: &mut String, report: &Report) {
    // Not applicable, grouped by implementation (in the report's order) and reason.
    let mut skipped: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for imp in &report.implementations {
        for t in report
            .trials
            .iter()
            .filter(|t| t.implementation == imp.name && t.outcome() == Outcome::NotApplicable)
        {
            let reason = t.reason.as_deref().unwrap_or("");
            match skipped
                .iter_mut()
                .find(|(i, r, _)| *i == imp.name && *r == reason)
            {
                Some((_, _, scenarios)) => scenarios.push(t.scenario.as_str()),
                None => skipped.push((imp.name.as_str(), reason, vec![t.scenario.as_str()])),
            }
        }
    }
    if !skipped.is_empty() {
        let _ = writeln!(out, "\n## Not applicable\n");
        for (imp, reason, scenarios) in skipped {
            let _ = writeln!(
                out,
                "- **{}**: {} — {}",
                cell(imp),
                scenarios
                    .iter()
                    .map(|s| code(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                one_line(reason)
            );
        }
    }
}

/// The Markdown report as a committed results page (`docs/results.md`): a header that says how
/// it was made and the command that regenerates it, then the report.
pub fn results_markdown(report: &Report) -> String {
    let env = &report.environment;
    let body = markdown(report);
    let body = body
        .strip_prefix("# lockspec conformance report\n")
        .unwrap_or(&body);
    format!(
        "<!-- Generated by lockspec; do not edit. Regenerate with the command below. -->\n\
         # lockspec results\n\n\
         What lockspec {} found on {}, on {} (UTC). Regenerate this page with:\n\n\
         ```sh\n{}\n```\n{body}",
        report.lockspec_version,
        env.system(),
        env.date,
        env.command
    )
}

/// One line of the failure list, naming the rule the failure is charged to.
fn failure_item(report: &Report, t: &TrialResult) -> String {
    let rules: Vec<&str> = match t.charged() {
        Some(rule) => vec![rule],
        None => t.rules.iter().map(String::as_str).collect(),
    };
    let rules: Vec<String> = rules
        .iter()
        .map(|r| format!("{r} {}", report.rule_title(r)))
        .collect();
    let mut line = format!(
        "- **{}** {} — {}",
        t.verdict.label(),
        code(&t.test),
        one_line(&rules.join("; "))
    );
    if let Some(e) = &t.evidence {
        let at = match e.step {
            Some(s) => format!("step {s} of {}", e.steps),
            None => "before the first step".to_owned(),
        };
        let _ = write!(
            line,
            "\n  - {at}: {}\n  - expected: {}\n  - observed: {}",
            code(&e.summary),
            one_line(&e.expected),
            one_line(&e.observed)
        );
    } else if t.verdict == super::Verdict::Pass {
        line.push_str("\n  - passed, but the expectations say it fails");
    }
    if let Some(note) = &t.expectation {
        let _ = write!(
            line,
            "\n  - expectation ({}): {}",
            note.describe(),
            one_line(&note.reason)
        );
    }
    let _ = write!(line, "\n  - rerun: {}", code(&t.rerun));
    line
}

/// The legend of the matrices.
fn legend() -> &'static str {
    "✅ passed · ❌ failed (or an expectation no longer holds) · 💥 the worker broke · \
     🟧 fails, as the implementation's expectation file records · ➖ not applicable · \
     ⬜ not reached (the scenario failed at a step of another rule first) · \
     n/m: scenarios passed of those judged; a failure counts under the rule of the step that failed"
}

/// A matrix cell: a symbol for its worst outcome and `passed/judged`.
pub(super) fn badge(c: &Counts) -> String {
    let symbol = match c.worst() {
        None => return String::new(),
        Some(Outcome::Pass) => "✅",
        Some(Outcome::Fail | Outcome::Unexpected) => "❌",
        Some(Outcome::Error) => "💥",
        Some(Outcome::Expected) => "🟧",
        Some(Outcome::NotApplicable) => return "➖ n/a".to_owned(),
        Some(Outcome::NotReached) => return "⬜ not reached".to_owned(),
    };
    format!("{symbol} {}/{}", c.pass, c.applicable())
}

/// Text made safe for a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// Text on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Inline code, fenced with enough backticks for the text, on one line.
fn code(text: &str) -> String {
    let text = one_line(text).replace('|', "\\|");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest > 0 || text.starts_with('`') || text.ends_with('`') {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a b"), "`a b`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("x | y"), "`x \\| y`");
        assert_eq!(code("two\nlines"), "`two lines`");
    }

    #[test]
    fn badges_show_passed_of_judged() {
        let c = Counts {
            pass: 2,
            fail: 1,
            not_applicable: 1,
            ..Counts::default()
        };
        assert_eq!(badge(&c), "❌ 2/3");
        assert_eq!(badge(&Counts::default()), "");
        let na = Counts {
            not_applicable: 2,
            ..Counts::default()
        };
        assert_eq!(badge(&na), "➖ n/a");
    }
}
