//! Expected failures: what each implementation is known to get wrong, in
//! `expectations/NAME.json`.
//!
//! A file lists, by permanent scenario ID (`area::name`), the scenarios an implementation fails,
//! each with the class of the failure (`fail`, `crash`, `timeout`), the step at which it happens,
//! the rule that step checks (which the failure is charged to) and a one-line reason that names
//! that rule. [`crate::judge`] judges a trial against its entry: an expected failure that happens
//! as expected is fine; one that passes, or fails differently, is itself a problem, so the files
//! stay true.
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
    /// The failure in words: `fail at step 3 (REE-1)`.
    pub fn describe(&self) -> String {
        describe(self.outcome, self.step, self.rule.as_deref())
    }
}

/// A failure in words: `fail at step 3 (REE-1)`, `crash (REL-2)`, `crash`.
pub(crate) fn describe(class: Class, step: Option<usize>, rule: Option<&str>) -> String {
    let mut s = match step {
        Some(step) => format!("{class} at step {step}"),
        None => class.to_string(),
    };
    if let Some(rule) = rule {
        s.push_str(&format!(" ({rule})"));
    }
    s
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

    /// Loads the file of each of `implementations` under `root`, by name.
    ///
    /// # Errors
    ///
    /// As [`Expectations::load`], for the first file that cannot be used.
    pub fn load_all<'a>(
        root: &Path,
        implementations: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, Expectations>, Error> {
        implementations
            .into_iter()
            .map(|name| Ok((name.to_owned(), Expectations::load(root, name)?)))
            .collect()
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
