//! A failed trial in words, for a person: scenario, step, rules, expected vs observed, the
//! timeline, each worker's stderr, and the command that reruns it.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{TrialReport, Verdict};
use crate::scenario::Scenario;

/// Formats a failed trial for a person: scenario, step, rules, expected vs observed, the
/// timeline, each worker's stderr, and the command that reruns it.
pub fn explain(
    test_name: &str,
    scenario: &Scenario,
    report: &TrialReport,
    rule_titles: &HashMap<String, String>,
    rerun: &str,
) -> String {
    let mut out = String::new();
    let (what, failure) = match &report.verdict {
        Verdict::Fail(f) => ("FAILED", f),
        Verdict::Error(f) => ("ERROR (the worker broke, not the lock)", f),
        Verdict::Pass => return format!("{test_name}: passed"),
        Verdict::Skip(reason) => return format!("{test_name}: skipped: {reason}"),
    };
    let _ = writeln!(out, "{test_name} {what}");
    let _ = writeln!(
        out,
        "  scenario: {} ({})",
        scenario.description,
        scenario.file.display()
    );
    // The rule of the failing step; before the first step, every rule the scenario cites.
    let rules = match &failure.rule {
        Some(rule) => std::slice::from_ref(rule),
        None => scenario.rules.as_slice(),
    };
    for rule in rules {
        let title = rule_titles.get(rule).map(String::as_str).unwrap_or("");
        let _ = writeln!(out, "  rule:     {rule} {title}");
    }
    match failure.step {
        Some(i) => {
            let _ = writeln!(
                out,
                "  step:     {} of {}: {}",
                i + 1,
                scenario.steps.len(),
                failure.summary
            );
        }
        None => {
            let _ = writeln!(out, "  while:    {}", failure.summary);
        }
    }
    let _ = writeln!(out, "  expected: {}", failure.expected);
    let _ = writeln!(out, "  observed: {}", failure.observed);
    let _ = writeln!(out, "  timeline:");
    for line in &report.timeline {
        let _ = writeln!(out, "    {line}");
    }
    for (name, tail) in &report.stderr {
        if tail.trim().is_empty() {
            let _ = writeln!(out, "  stderr of {name}: (empty)");
        } else {
            let _ = writeln!(out, "  stderr of {name} (last part):");
            for line in tail
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    let _ = writeln!(out, "  rerun:    {rerun}");
    out
}
