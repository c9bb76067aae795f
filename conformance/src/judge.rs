//! The judge: the one vocabulary for what a test's result means against its expectation, and the
//! one policy that decides whether a run fails.
//!
//! A trial ends with a [`run::Verdict`] (pass, fail, not applicable or error, with its evidence).
//! [`judge`] compares it with the failure the implementation's expectation file lists for the
//! scenario ([`Expected`]) and gives a [`Judgement`]: the [`Verdict`] without its evidence, what the
//! expectation said and whether it held ([`ExpectationNote`]), and so the test's [`Outcome`].
//!
//! An outcome that [is a problem](Outcome::is_problem) fails the run, unless the test pairs two
//! different implementations: whether they exclude each other is a finding of the interop matrix,
//! not a failure of the run (IOP-1 is a SHOULD across implementations), while an implementation
//! paired with itself must pass. [`Judgement::fails_run`] applies that policy to one test (a
//! libtest-mimic trial), [`failed`] to a whole report (the exit status of `lockspec`). The report
//! renders these judgements; it decides nothing. [`bless`] rewrites the expectation files from
//! a run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::expectations::{self, Blessed, Class, Expectations, Expected};
use crate::plan::Test;
use crate::report::{Report, TrialResult};
use crate::run::{self, TrialReport};

/// The verdict of a trial without its evidence, as reports record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation of the scenario held.
    Pass,
    /// The lock did something a rule forbids.
    Fail,
    /// The scenario needs a capability the implementation lacks, or the environment cannot run it.
    NotApplicable,
    /// The worker broke (crashed, hung, broke the protocol, is not installed): nothing was learnt
    /// about the lock.
    Error,
}

impl Verdict {
    /// The verdict of a runner's verdict.
    pub fn of(v: &run::Verdict) -> Verdict {
        match v {
            run::Verdict::Pass => Verdict::Pass,
            run::Verdict::Fail(_) => Verdict::Fail,
            run::Verdict::Skip(_) => Verdict::NotApplicable,
            run::Verdict::Error(_) => Verdict::Error,
        }
    }

    /// Its name in reports: `pass`, `fail`, `n/a`, `error`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "n/a",
            Verdict::Error => "error",
        }
    }
}

/// What an implementation's expectation file says about one trial, and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationNote {
    /// The failure the file expects: `fail`, `crash`, `timeout`.
    pub outcome: Class,
    /// The step (counting from 1) at which the file expects it; `None`: any step.
    pub step: Option<usize>,
    /// The rule of that step, which the failure is charged to; `None` in a file that records
    /// none.
    pub rule: Option<String>,
    /// Its one-line reason.
    pub reason: String,
    /// Whether the trial ended as expected. An expectation that does not hold is a problem.
    pub held: bool,
}

impl ExpectationNote {
    /// The expected failure in words: `fail at step 3 (REE-1)`.
    pub fn describe(&self) -> String {
        expectations::describe(self.outcome, self.step, self.rule.as_deref())
    }
}

/// Where a trial falls: its verdict judged against its expectation. Each trial has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed, with no expectation.
    Pass,
    /// Failed, with no expectation: a finding.
    Fail,
    /// The worker broke, with no expectation.
    Error,
    /// Not applicable, with no expectation.
    NotApplicable,
    /// Ended as its expectation says (an expected failure).
    Expected,
    /// Did not end as its expectation says (passed, failed differently, or did not apply).
    Unexpected,
    /// Only in a rule's cell of a report: the trial failed, at a step of another rule, before
    /// every step of this rule had run, so it says nothing about this rule.
    NotReached,
}

impl Outcome {
    /// The outcome of a trial that ended with `verdict`, given what its expectation file says.
    pub fn of(verdict: Verdict, expectation: Option<&ExpectationNote>) -> Outcome {
        match (expectation, verdict) {
            (Some(e), _) if e.held => Outcome::Expected,
            (Some(_), _) => Outcome::Unexpected,
            (None, Verdict::Pass) => Outcome::Pass,
            (None, Verdict::Fail) => Outcome::Fail,
            (None, Verdict::Error) => Outcome::Error,
            (None, Verdict::NotApplicable) => Outcome::NotApplicable,
        }
    }

    /// Whether it is a problem: an unexpected failure, an error, or an expectation that no longer
    /// holds. A problem fails the run where it [binds](binds).
    pub fn is_problem(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error | Outcome::Unexpected)
    }
}

/// One test's result judged against its expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// How the trial ended.
    pub verdict: Verdict,
    /// What the expectation file says about it, if anything, and whether that held.
    pub expectation: Option<ExpectationNote>,
    /// Whether a problem here fails the run ([`binds`]).
    pub binding: bool,
}

impl Judgement {
    /// Where the trial falls.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.verdict, self.expectation.as_ref())
    }

    /// Whether this test makes the run fail: a problem, where problems bind.
    pub fn fails_run(&self) -> bool {
        fails_run(self.outcome(), self.binding)
    }

    /// One line for a person when the expectation did not hold: what it says and what `verdict`
    /// (the trial's) shows instead.
    pub fn mismatch(&self, verdict: &run::Verdict) -> Option<String> {
        let expected = self.expectation.as_ref().filter(|e| !e.held)?;
        let observed = match (verdict, Class::of(verdict)) {
            (run::Verdict::Fail(f) | run::Verdict::Error(f), Some(class)) => {
                expectations::describe(class, f.step.map(|i| i + 1), f.rule.as_deref())
            }
            (run::Verdict::Skip(reason), _) => format!("not applicable ({reason})"),
            _ => "a pass".to_owned(),
        };
        Some(format!(
            "the expectations say {} ({}), but this run shows {observed}; if the library \
             changed, review and rerun with --bless",
            expected.describe(),
            expected.reason
        ))
    }
}

/// Judges one finished test of a plan.
pub fn judge(test: &Test, report: &TrialReport) -> Judgement {
    let binding = binds(test.implementation(), test.second());
    judge_verdict(&report.verdict, test.expected.as_ref(), binding)
}

/// Judges `verdict` against `expected`, the failure an expectation file lists for it, if any.
pub fn judge_verdict(
    verdict: &run::Verdict,
    expected: Option<&Expected>,
    binding: bool,
) -> Judgement {
    Judgement {
        verdict: Verdict::of(verdict),
        expectation: expected.map(|e| ExpectationNote {
            outcome: e.outcome,
            step: e.step,
            rule: e.rule.clone(),
            reason: e.reason.clone(),
            held: holds(e, verdict),
        }),
        binding,
    }
}

/// Whether `verdict` is the failure `expected` describes: the same class, at the same step (when
/// one is given), charged to the same rule (when one is given). A pass or a trial that did not
/// apply never is, and neither is an implementation that is not installed.
fn holds(expected: &Expected, verdict: &run::Verdict) -> bool {
    let (run::Verdict::Fail(failure) | run::Verdict::Error(failure)) = verdict else {
        return false;
    };
    !failure.unavailable()
        && Class::of(verdict) == Some(expected.outcome)
        && expected
            .step
            .is_none_or(|step| failure.step.map(|i| i + 1) == Some(step))
        && expected
            .rule
            .as_ref()
            .is_none_or(|rule| failure.rule.as_ref() == Some(rule))
}

/// Whether the problems of a test played by `first` (and, in the interop check, `second` for the
/// other processes) fail the run: always, but for two different implementations.
pub fn binds(first: &str, second: Option<&str>) -> bool {
    second.is_none_or(|second| second == first)
}

/// The exit policy, once: a problem fails the run where it binds.
fn fails_run(outcome: Outcome, binding: bool) -> bool {
    binding && outcome.is_problem()
}

/// Whether a trial recorded in a report fails the run (as [`Judgement::fails_run`] did when it
/// ran).
pub fn trial_fails_run(t: &TrialResult) -> bool {
    fails_run(t.outcome(), binds(&t.implementation, t.second.as_deref()))
}

/// Whether the run that `report` records failed: any of its trials, the interop check's
/// included, fails the run.
pub fn failed(report: &Report) -> bool {
    let interop = report.interop.iter().flat_map(|i| &i.trials);
    report.trials.iter().chain(interop).any(trial_fails_run)
}

/// The exit status of the run that `report` records: failure when it [`failed`].
pub fn exit_code(report: &Report) -> ExitCode {
    if failed(report) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One expectation file that [`bless`] rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlessedFile {
    /// The file.
    pub path: PathBuf,
    /// What changed in it.
    pub changes: Blessed,
}

impl fmt::Display for BlessedFile {
    /// `blessed PATH: 3 kept, 1 to review, 2 removed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.changes;
        write!(
            f,
            "blessed {}: {} kept, {} to review, {} removed",
            self.path.display(),
            c.kept,
            c.to_review,
            c.removed
        )
    }
}

/// Rewrites, under `root`, the expectation file of every implementation in `files` that played
/// tests alone (the interop pairs are not its own) from their results, in the order of the names.
///
/// # Errors
///
/// Returns a message naming the implementation whose file cannot be written.
pub fn bless(
    root: &Path,
    tests: &[Test],
    results: &[TrialReport],
    files: &mut BTreeMap<String, Expectations>,
) -> Result<Vec<BlessedFile>, String> {
    let today = expectations::today();
    let mut blessed = Vec::new();
    for (name, file) in files.iter_mut() {
        let ran: Vec<(&str, &run::Verdict)> = tests
            .iter()
            .zip(results)
            .filter(|(t, _)| t.second().is_none() && t.implementation() == name)
            .map(|(t, r)| (t.scenario.id.as_str(), &r.verdict))
            .collect();
        if ran.is_empty() {
            continue;
        }
        let changes = file.bless(ran, &today);
        let path = file
            .save(root)
            .map_err(|e| format!("cannot write the expectations of {name}: {e}"))?;
        blessed.push(BlessedFile { path, changes });
    }
    Ok(blessed)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::run::{FailKind, Failure};

    /// A failure of `kind` at `step`, which checks REL-2.
    fn failure(kind: FailKind, step: Option<usize>) -> Failure {
        Failure::fixture(kind, step)
    }

    fn fail_at(step: usize) -> run::Verdict {
        run::Verdict::Fail(failure(FailKind::WrongOutcome, Some(step - 1)))
    }

    /// A crash at `step` (counting from 0), which checks REL-2.
    fn crash_at(step: usize) -> run::Verdict {
        run::Verdict::Error(failure(
            FailKind::Broken(crate::session::BrokenKind::Exited),
            Some(step),
        ))
    }

    fn expected(outcome: Class, step: Option<usize>) -> Expected {
        Expected {
            outcome,
            step,
            rule: Some("REL-2".into()),
            reason: "REL-2: it is silent".into(),
        }
    }

    /// A failure at `step` that checks `rule`.
    fn fail_of(step: usize, rule: &str) -> run::Verdict {
        run::Verdict::Fail(Failure {
            rule: Some(rule.into()),
            ..failure(FailKind::WrongOutcome, Some(step - 1))
        })
    }

    #[rstest]
    #[case::pass(run::Verdict::Pass, None, Outcome::Pass)]
    #[case::skip(run::Verdict::Skip("no callback".into()), None, Outcome::NotApplicable)]
    #[case::skip_with_expectation(
        run::Verdict::Skip("no callback".into()),
        Some(expected(Class::Fail, Some(3))),
        Outcome::Unexpected
    )]
    #[case::fail(fail_at(3), None, Outcome::Fail)]
    #[case::error(crash_at(2), None, Outcome::Error)]
    #[case::expected_fail(fail_at(3), Some(expected(Class::Fail, Some(3))), Outcome::Expected)]
    #[case::expected_fail_any_step(
        fail_at(5),
        Some(expected(Class::Fail, None)),
        Outcome::Expected
    )]
    #[case::fails_at_another_step(
        fail_at(4),
        Some(expected(Class::Fail, Some(3))),
        Outcome::Unexpected
    )]
    #[case::fails_in_another_way(
        fail_at(3),
        Some(expected(Class::Crash, Some(3))),
        Outcome::Unexpected
    )]
    #[case::fails_charged_to_another_rule(
        fail_of(3, "REL-3"),
        Some(expected(Class::Fail, Some(3))),
        Outcome::Unexpected
    )]
    #[case::crash_charged_to_another_rule(
        run::Verdict::Error(Failure { rule: Some("REL-3".into()), ..failure(FailKind::Runner, Some(2)) }),
        Some(expected(Class::Crash, None)),
        Outcome::Unexpected
    )]
    #[case::starts_passing(
        run::Verdict::Pass,
        Some(expected(Class::Fail, Some(3))),
        Outcome::Unexpected
    )]
    #[case::crash(crash_at(2), Some(expected(Class::Crash, Some(3))), Outcome::Expected)]
    #[case::hang(
        run::Verdict::Fail(failure(FailKind::NoReply, Some(2))),
        Some(expected(Class::Timeout, Some(3))),
        Outcome::Expected
    )]
    #[case::hang_is_not_a_wrong_reply(
        run::Verdict::Fail(failure(FailKind::NoReply, Some(2))),
        Some(expected(Class::Fail, Some(3))),
        Outcome::Unexpected
    )]
    fn judging(
        #[case] verdict: run::Verdict,
        #[case] expectation: Option<Expected>,
        #[case] outcome: Outcome,
    ) {
        let j = judge_verdict(&verdict, expectation.as_ref(), true);
        assert_eq!(j.outcome(), outcome, "{j:?}");
        let problem = !matches!(
            outcome,
            Outcome::Pass | Outcome::Expected | Outcome::NotApplicable
        );
        assert_eq!(j.fails_run(), problem, "{j:?}");
        assert_eq!(
            j.mismatch(&verdict).is_some(),
            outcome == Outcome::Unexpected,
            "{j:?}"
        );
        let free = judge_verdict(&verdict, expectation.as_ref(), false);
        assert!(
            !free.fails_run(),
            "a problem that does not bind never fails the run"
        );
        assert_eq!(free.outcome(), outcome);
    }

    #[test]
    fn not_installed_never_matches() {
        let verdict = run::Verdict::Error(Failure {
            kind: FailKind::Unavailable,
            step: None,
            rule: None,
            summary: "start the workers".into(),
            expected: "an implementation installed on this machine".into(),
            observed: "locket is not installed".into(),
        });
        let e = expected(Class::Crash, None);
        let j = judge_verdict(&verdict, Some(&e), true);
        assert_eq!(j.outcome(), Outcome::Unexpected);
        assert!(j.fails_run());
    }

    #[rstest]
    #[case::alone("a", None, true)]
    #[case::with_itself("a", Some("a"), true)]
    #[case::with_another("a", Some("b"), false)]
    fn two_different_implementations_are_a_finding(
        #[case] first: &str,
        #[case] second: Option<&str>,
        #[case] binding: bool,
    ) {
        assert_eq!(binds(first, second), binding);
    }
}
