//! Expected failures: what each implementation is known to get wrong, in
//! `expectations/NAME.json`, and the judgement of a trial against it.
//!
//! A file lists, by permanent scenario ID (`area::name`), the scenarios an implementation fails,
//! each with the class of the failure (`fail`, `crash`, `timeout`), the step at which it happens,
//! the rule that step checks (which the failure is charged to) and a one-line reason that names
//! that rule. [`judge`] turns a trial's verdict and its
//! expectation into a [`Cell`]: an expected failure that happens as expected is fine; one that
//! passes, or fails differently, is itself a failure, so the files stay true.
//! [`Expectations::bless`] rewrites a file from a run (`cargo xtask conformance --bless`), keeping
//! the reasons already written and marking new entries for review. The format is documented in
//! `expectations/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run::Verdict;
use crate::suite::Suite;

/// The directory of the expectation files, under the source tree.
pub const DIR: &str = "expectations";

/// How the reason of an entry that `--bless` added begins, until a person replaces it.
pub const UNREVIEWED: &str = "observed on ";

/// How a trial failed, as far as expectations care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The lock answered wrongly: a rule is broken.
    Fail,
    /// The worker broke: the library crashed (a panic, an uncaught exception) or broke the
    /// protocol.
    Crash,
    /// An operation that had to answer did not answer in time: the lock hung.
    Timeout,
}

impl Class {
    /// The class of a verdict; `None` for a pass or a skip.
    pub fn of(verdict: &Verdict) -> Option<Class> {
        match verdict {
            Verdict::Pass | Verdict::Skip(_) => None,
            Verdict::Fail(f) if f.hung() => Some(Class::Timeout),
            Verdict::Fail(_) => Some(Class::Fail),
            Verdict::Error(_) => Some(Class::Crash),
        }
    }

    /// Its name in files and reports: `fail`, `crash`, `timeout`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Fail => "fail",
            Class::Crash => "crash",
            Class::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One expected failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// How the trial fails.
    pub outcome: Class,
    /// The step (counting from 1) at which it fails; absent: at any step (`--bless` leaves it out
    /// for a crash, whose step depends on timing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The rule of the step at which it fails: the rule the failure is charged to. Absent only in
    /// a file written before rules were recorded (`--bless` adds it; `problems` reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, in one line from the library's behaviour, naming the rule it breaks.
    pub reason: String,
}

impl Expected {
    /// Whether `verdict` is this failure: the same class, at the same step (when one is given),
    /// charged to the same rule (when one is given). An implementation that is not installed
    /// never matches.
    pub fn matches(&self, verdict: &Verdict) -> bool {
        let (Verdict::Fail(failure) | Verdict::Error(failure)) = verdict else {
            return false;
        };
        !failure.unavailable()
            && Class::of(verdict) == Some(self.outcome)
            && self
                .step
                .is_none_or(|step| failure.step.map(|i| i + 1) == Some(step))
            && self
                .rule
                .as_ref()
                .is_none_or(|rule| failure.rule.as_ref() == Some(rule))
    }

    /// The failure in words: `fail at step 3 (REE-1)`.
    pub fn describe(&self) -> String {
        describe(self.outcome, self.step, self.rule.as_deref())
    }
}

/// A failure in words: `fail at step 3 (REE-1)`, `crash (REL-2)`, `crash`.
fn describe(class: Class, step: Option<usize>, rule: Option<&str>) -> String {
    let mut s = match step {
        Some(step) => format!("{class} at step {step}"),
        None => class.to_string(),
    };
    if let Some(rule) = rule {
        s.push_str(&format!(" ({rule})"));
    }
    s
}

/// The judgement of one trial against its expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Passed, and no failure was expected.
    Pass,
    /// Failed exactly as expected.
    ExpectedFail(Expected),
    /// Not applicable (a capability is absent, or the environment cannot run it). An expectation
    /// of the scenario is neither confirmed nor broken.
    NotApplicable(String),
    /// The lock broke a rule; `expected` is set when a different failure was expected.
    Fail {
        /// The failure that was expected instead, if any.
        expected: Option<Expected>,
    },
    /// The worker broke (or is not installed); `expected` is set when a different failure was
    /// expected.
    Error {
        /// The failure that was expected instead, if any.
        expected: Option<Expected>,
    },
    /// Passed, though a failure was expected: the expectation no longer holds.
    UnexpectedPass(Expected),
    /// Not applicable, though a failure was expected: the expectation can no longer be checked
    /// (a capability or condition went missing), which must not pass for a confirmation.
    UnexpectedSkip(Expected, String),
}

impl Cell {
    /// Whether the cell is as it should be: a pass, an expected failure, or not applicable.
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            Cell::Pass | Cell::ExpectedFail(_) | Cell::NotApplicable(_)
        )
    }

    /// The expectation that was checked and did not hold, if any.
    pub fn broken_expectation(&self) -> Option<&Expected> {
        match self {
            Cell::UnexpectedPass(e)
            | Cell::UnexpectedSkip(e, _)
            | Cell::Fail { expected: Some(e) }
            | Cell::Error { expected: Some(e) } => Some(e),
            _ => None,
        }
    }

    /// A short name: `pass`, `expected fail`, `n/a`, `fail`, `error`, `unexpected pass`.
    pub fn name(&self) -> &'static str {
        match self {
            Cell::Pass => "pass",
            Cell::ExpectedFail(_) => "expected fail",
            Cell::NotApplicable(_) => "n/a",
            Cell::Fail { .. } => "fail",
            Cell::Error { .. } => "error",
            Cell::UnexpectedPass(_) => "unexpected pass",
            Cell::UnexpectedSkip(..) => "unexpected n/a",
        }
    }

    /// One line for a person when the cell is not OK because of its expectation: what was
    /// expected and what happened instead.
    pub fn mismatch(&self, verdict: &Verdict) -> Option<String> {
        let expected = self.broken_expectation()?;
        let observed = match (verdict, Class::of(verdict)) {
            (Verdict::Fail(f) | Verdict::Error(f), Some(class)) => {
                describe(class, f.step.map(|i| i + 1), f.rule.as_deref())
            }
            (Verdict::Skip(reason), _) => format!("not applicable ({reason})"),
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

/// Judges a trial's `verdict` against the implementation's expectation for its scenario.
pub fn judge(verdict: &Verdict, expected: Option<&Expected>) -> Cell {
    match (verdict, expected) {
        (Verdict::Skip(reason), Some(e)) => Cell::UnexpectedSkip(e.clone(), reason.clone()),
        (Verdict::Skip(reason), None) => Cell::NotApplicable(reason.clone()),
        (Verdict::Pass, None) => Cell::Pass,
        (Verdict::Pass, Some(e)) => Cell::UnexpectedPass(e.clone()),
        (_, Some(e)) if e.matches(verdict) => Cell::ExpectedFail(e.clone()),
        (Verdict::Fail(_), e) => Cell::Fail {
            expected: e.cloned(),
        },
        (Verdict::Error(_), e) => Cell::Error {
            expected: e.cloned(),
        },
    }
}

/// The expectation file of one implementation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The implementation the file is about; it names the file.
    pub implementation: String,
    /// The expected failures, by scenario ID.
    pub failures: BTreeMap<String, Expected>,
}

/// Why an expectation file cannot be used.
#[derive(Debug)]
pub enum Error {
    /// The file exists but cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a valid expectation file.
    Parse {
        /// The file.
        path: PathBuf,
        /// Where, counting from 1.
        line: usize,
        /// Where, counting from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Parse {
                path,
                line,
                column,
                message,
            } => write!(f, "{}:{line}:{column}: {message}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            Error::Parse { .. } => None,
        }
    }
}

/// What [`Expectations::bless`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blessed {
    /// Entries kept with their reason.
    pub kept: usize,
    /// Entries added, or changed in class: their reason needs a person's review.
    pub to_review: usize,
    /// Entries removed because the scenario now passes.
    pub removed: usize,
}

impl Expectations {
    /// The file of `implementation` under the source tree `root`.
    pub fn path(root: &Path, implementation: &str) -> PathBuf {
        root.join(DIR).join(format!("{implementation}.json"))
    }

    /// Loads the file of `implementation` under `root`; a missing file expects no failures.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Read`] when the file exists but cannot be read, and [`Error::Parse`] with
    /// line and column when it is not valid (unknown fields included) or names another
    /// implementation.
    pub fn load(root: &Path, implementation: &str) -> Result<Expectations, Error> {
        let path = Expectations::path(root, implementation);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Expectations {
                    implementation: implementation.to_owned(),
                    failures: BTreeMap::new(),
                });
            }
            Err(source) => return Err(Error::Read { path, source }),
        };
        Expectations::parse(&text, &path, implementation)
    }

    /// Parses the text of the file at `path`, which must be about `implementation`.
    ///
    /// # Errors
    ///
    /// As [`Expectations::load`].
    pub fn parse(text: &str, path: &Path, implementation: &str) -> Result<Expectations, Error> {
        let parsed: Expectations = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if parsed.implementation != implementation {
            return Err(Error::Parse {
                path: path.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "the file is about {:?}, expected {implementation:?}",
                    parsed.implementation
                ),
            });
        }
        Ok(parsed)
    }

    /// The expectation for the scenario `id`, if any.
    pub fn get(&self, id: &str) -> Option<&Expected> {
        self.failures.get(id)
    }

    /// Rewrites the entries of the scenarios that ran (`results`: scenario ID and verdict) so
    /// that they describe this run: a pass removes the entry; a failure records its class, step
    /// and rule, keeps the entry's reason when its class and rule are unchanged, and otherwise
    /// gets the reason "observed on `today`, reason not yet reviewed", which a person must
    /// replace. An entry that recorded no rule (a file from before rules were recorded) keeps its
    /// reason if the reason names the rule. Scenarios that were not applicable, or whose
    /// implementation is not installed, keep their entries as they are.
    pub fn bless<'a>(
        &mut self,
        results: impl IntoIterator<Item = (&'a str, &'a Verdict)>,
        today: &str,
    ) -> Blessed {
        let mut blessed = Blessed::default();
        for (id, verdict) in results {
            let failure = match verdict {
                Verdict::Fail(f) | Verdict::Error(f) if !f.unavailable() => f,
                Verdict::Fail(_) | Verdict::Error(_) | Verdict::Skip(_) => continue,
                Verdict::Pass => {
                    if self.failures.remove(id).is_some() {
                        blessed.removed += 1;
                    }
                    continue;
                }
            };
            let outcome = Class::of(verdict).expect("a failure has a class");
            // A crash shows at whichever step next talks to the dead worker, which depends on
            // timing: it is expected at any step.
            let step = match outcome {
                Class::Crash => None,
                Class::Fail | Class::Timeout => failure.step.map(|i| i + 1),
            };
            let rule = failure.rule.clone();
            let same_rule = |old: &Expected| match (&old.rule, &rule) {
                (Some(old), Some(new)) => old == new,
                (None, Some(new)) => old.reason.contains(new.as_str()),
                (_, None) => old.rule.is_none(),
            };
            let reason = match self.failures.get(id) {
                Some(old)
                    if old.outcome == outcome
                        && same_rule(old)
                        && !old.reason.starts_with(UNREVIEWED) =>
                {
                    blessed.kept += 1;
                    old.reason.clone()
                }
                _ => {
                    blessed.to_review += 1;
                    format!("{UNREVIEWED}{today}, reason not yet reviewed")
                }
            };
            self.failures.insert(
                id.to_owned(),
                Expected {
                    outcome,
                    step,
                    rule,
                    reason,
                },
            );
        }
        blessed
    }

    /// The file's text: pretty JSON, entries sorted by scenario ID, a final newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("expectations serialise");
        text.push('\n');
        text
    }

    /// Writes the file of this implementation under `root`, creating `expectations/`.
    ///
    /// # Errors
    ///
    /// Returns the I/O error, with the path, when the file cannot be written.
    pub fn save(&self, root: &Path) -> io::Result<PathBuf> {
        let path = Expectations::path(root, &self.implementation);
        let annotate = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(annotate)?;
        }
        std::fs::write(&path, self.to_text()).map_err(annotate)?;
        Ok(path)
    }

    /// What is wrong with the file against `suite`: entries for scenarios that do not exist,
    /// steps beyond the scenario's end, a rule that is missing, not cited by the scenario or not
    /// the rule of the step, and reasons that are still unreviewed or do not name the entry's
    /// rule. Empty when all is well.
    pub fn problems(&self, suite: &Suite) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, e) in &self.failures {
            let at = format!("{DIR}/{}.json: {id}", self.implementation);
            let Some(scenario) = suite.scenarios.iter().find(|s| s.id == *id) else {
                problems.push(format!("{at}: no such scenario"));
                continue;
            };
            if let Some(step) = e.step
                && (step == 0 || step > scenario.steps.len())
            {
                problems.push(format!(
                    "{at}: step {step}, but the scenario has {} steps",
                    scenario.steps.len()
                ));
            }
            match (&e.rule, e.step) {
                (None, _) => problems.push(format!(
                    "{at}: no rule: rerun with --bless to record the rule of the failing step"
                )),
                (Some(rule), _) if !scenario.rules.contains(rule) => problems.push(format!(
                    "{at}: rule {rule}, which the scenario does not cite (it cites {:?})",
                    scenario.rules
                )),
                (Some(rule), Some(step))
                    if (1..=scenario.steps.len()).contains(&step)
                        && scenario.rule_of(step - 1) != rule =>
                {
                    problems.push(format!(
                        "{at}: rule {rule}, but step {step} checks {}",
                        scenario.rule_of(step - 1)
                    ));
                }
                (Some(_), _) => {}
            }
            if e.reason.starts_with(UNREVIEWED) {
                problems.push(format!(
                    "{at}: the reason is not reviewed yet: {:?}",
                    e.reason
                ));
            } else if let Some(rule) = &e.rule
                && !e.reason.contains(rule.as_str())
            {
                problems.push(format!(
                    "{at}: the reason does not name the entry's rule {rule}: {:?}",
                    e.reason
                ));
            }
            if e.reason.trim().is_empty() || e.reason.contains('\n') {
                problems.push(format!("{at}: the reason must be one line"));
            }
        }
        problems
    }
}

/// Today's date in UTC, `YYYY-MM-DD`, for unreviewed reasons.
pub fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests;
