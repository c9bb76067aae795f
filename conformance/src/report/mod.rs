//! The reports of a run: one data model, [`Report`], built from the trials' results by a
//! [`Recorder`], and written as Markdown ([`markdown`]), versioned JSON ([`json`], its shape in
//! `spec/REPORT.md`) and one self-contained HTML page ([`html`]); [`terminal`] prints the per-rule
//! table.
//!
//! The model records each trial as the judge judged it ([`crate::judge::Judgement`]): its verdict
//! (pass, fail, not applicable, error) apart from what the implementation's expectations say about
//! it, so that an expected failure is reported as such and an expectation that no longer holds is
//! a problem of its own. A failure is charged to the rule of the step that failed
//! ([`TrialResult::outcome_for`]): only that rule's cell shows it. The report decides nothing:
//! whether the run failed is [`crate::judge::failed`].

pub mod env;
mod html;
mod markdown;
pub mod terminal;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use html::html;
pub use markdown::{markdown, results_markdown};

use crate::judge::{ExpectationNote, Judgement, Outcome, Verdict};
use crate::plan::{Selection, Test, is_interop};
use crate::process::Implementation;
use crate::run::{self, TrialReport};
use crate::scenario::Scenario;
use crate::suite::Suite;

/// The version of the JSON report's shape. Adding a field keeps it; renaming, removing or
/// changing the meaning of one increments it.
pub const FORMAT: u32 = 2;

/// At most this many lines of a worker's stderr go into a report.
const STDERR_LINES: usize = 40;
/// At most this many bytes of a worker's stderr go into a report.
const STDERR_BYTES: usize = 4000;

/// Everything a run found: the JSON report, and the source of the Markdown and HTML ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`FORMAT`] when written by this version.
    pub format: u32,
    /// The version of lockspec that ran.
    pub lockspec_version: String,
    /// Where and how it ran.
    pub environment: Environment,
    /// The implementations judged, in the order given.
    pub implementations: Vec<ImplementationInfo>,
    /// The rules of the spec, in its order.
    pub rules: Vec<RuleInfo>,
    /// Rules x implementations: one row per rule, one cell per implementation, counting the
    /// trials of the scenarios that cite the rule, each as [`TrialResult::outcome_for`] the rule.
    pub matrix: Vec<MatrixRow>,
    /// Every trial of one implementation against one scenario.
    pub trials: Vec<TrialResult>,
    /// The cross-implementation check, when it ran.
    pub interop: Option<Interop>,
    /// Counts over `trials` (not `interop`).
    pub totals: Counts,
}

/// Where and how a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The operating system family, as Rust names it: `linux`, `macos`, `windows`.
    pub os: String,
    /// The system's own name and release, such as `Debian GNU/Linux 13 (trixie)`.
    pub os_name: Option<String>,
    /// The kernel's release.
    pub kernel: Option<String>,
    /// The processor architecture: `x86_64`, `aarch64`.
    pub arch: String,
    /// The directory given for the lock files (`--dir`), or `None` for the system's temporary
    /// directory.
    pub lock_dir: Option<String>,
    /// The type of the file system that holds the lock files.
    pub filesystem: Option<String>,
    /// When the run started: UTC, ISO 8601.
    pub date: String,
    /// The factor applied to every timing margin.
    pub timing_scale: f64,
    /// The calibrated margins and the noise they were measured from (absent in reports of
    /// runs that did not calibrate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margins: Option<Margins>,
    /// How many trials ran at once.
    pub jobs: usize,
    /// Wall time of the whole run, in seconds.
    pub wall_time_s: f64,
    /// The command that repeats the run.
    pub command: String,
}

/// The margins that judged promptness in a run, and the machine's noise they grew from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margins {
    /// How long after the lock was freed a waiter may return, and how long an immediate call
    /// may take, in milliseconds.
    pub handoff_ms: f64,
    /// How long after its timeout a timed-out acquire may return, in milliseconds.
    pub overshoot_ms: f64,
    /// The 99th percentile of a reference hand-off between two processes, in milliseconds.
    pub noise_handoff_p99_ms: f64,
    /// The 99th percentile of a reference timed wait's overshoot, in milliseconds.
    pub noise_overshoot_p99_ms: f64,
    /// How many samples each noise figure rests on.
    pub samples: usize,
}

impl Margins {
    /// The margins of `timing`, as a report states them.
    pub fn of(timing: &crate::timing::Timing) -> Margins {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let noise = timing.noise();
        Margins {
            handoff_ms: ms(timing.handoff()),
            overshoot_ms: ms(timing.overshoot()),
            noise_handoff_p99_ms: ms(noise.handoff_p99),
            noise_overshoot_p99_ms: ms(noise.overshoot_p99),
            samples: noise.samples,
        }
    }

    /// The margins in one line, for people.
    pub fn line(&self) -> String {
        format!(
            "hand-off and immediate calls within {:.0} ms, timeouts within {:.0} ms late (measured noise: hand-off p99 {:.2} ms, overshoot p99 {:.2} ms, {} samples)",
            self.handoff_ms,
            self.overshoot_ms,
            self.noise_handoff_p99_ms,
            self.noise_overshoot_p99_ms,
            self.samples
        )
    }
}

impl Environment {
    /// The environment of this machine for lock files under `lock_dir` (`None`: the system's
    /// temporary directory), dated now. `wall_time_s` is filled in by [`Recorder::finish`].
    pub fn detect(lock_dir: Option<&Path>, timing_scale: f64, jobs: usize, command: &str) -> Self {
        let dir = lock_dir
            .map(Path::to_owned)
            .unwrap_or_else(std::env::temp_dir);
        Environment {
            os: std::env::consts::OS.to_owned(),
            os_name: env::os_name(),
            kernel: env::kernel(),
            arch: std::env::consts::ARCH.to_owned(),
            lock_dir: lock_dir.map(|d| d.display().to_string()),
            filesystem: env::filesystem(&dir),
            date: env::iso8601(SystemTime::now()),
            timing_scale,
            margins: None,
            jobs,
            wall_time_s: 0.0,
            command: command.to_owned(),
        }
    }

    /// The system in one phrase: `Debian GNU/Linux 13 (trixie), kernel 6.1.0 (x86_64)`.
    pub fn system(&self) -> String {
        let mut s = self.os_name.clone().unwrap_or_else(|| self.os.clone());
        if let Some(k) = &self.kernel {
            s.push_str(&format!(", kernel {k}"));
        }
        s.push_str(&format!(" ({})", self.arch));
        s
    }

    /// Where the lock files were, in one phrase: `tmpfs (the system's temporary directory)`.
    pub fn lock_files(&self) -> String {
        let fs = self.filesystem.as_deref().unwrap_or("unknown file system");
        match &self.lock_dir {
            Some(d) => format!("{fs} ({d})"),
            None => format!("{fs} (the system's temporary directory)"),
        }
    }
}

/// One implementation and what its worker said about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImplementationInfo {
    /// The name used in test names and on the command line.
    pub name: String,
    /// The worker's command line (paths under the suite's root are relative to it).
    pub command: String,
    /// The library under test, from the worker's `hello`.
    pub library: Option<String>,
    /// The library's version, from the worker's `hello`.
    pub version: Option<String>,
    /// The library's language, from the worker's `hello`.
    pub language: Option<String>,
    /// The optional capabilities it declared.
    pub capabilities: Vec<String>,
    /// What the adapter supplies or cannot express, in one line (built-in implementations).
    pub notes: Option<String>,
    /// Why it could not run here (not installed), if so: its every trial is then an error.
    pub unavailable: Option<String>,
    /// Counts over its trials.
    pub totals: Counts,
    /// How prompt it was, over its own trials (not the interop pairs), on its workers' clocks.
    #[serde(default)]
    pub promptness: Promptness,
}

/// How prompt an implementation was over a run: the durations its judged replies showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promptness {
    /// A woken waiter's return after the release (or kill) that freed the lock.
    pub handoff: Figures,
    /// A timed-out acquire's return after its timeout.
    pub overshoot: Figures,
    /// An acquire or release that had to complete at once.
    pub call: Figures,
}

/// The median and the largest of some durations, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// How many durations.
    pub samples: usize,
    /// Their median (0 without samples).
    pub p50_ms: f64,
    /// The largest (0 without samples).
    pub max_ms: f64,
}

impl Figures {
    fn of(mut durations: Vec<Duration>) -> Figures {
        durations.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        match durations.len() {
            0 => Figures::default(),
            n => Figures {
                samples: n,
                p50_ms: ms(durations[(n - 1) / 2]),
                max_ms: ms(durations[n - 1]),
            },
        }
    }

    /// `p50 / max ms (n)`, or a dash without samples.
    pub fn cell(&self) -> String {
        if self.samples == 0 {
            "–".into()
        } else {
            format!(
                "{:.1} / {:.1} ms ({})",
                self.p50_ms, self.max_ms, self.samples
            )
        }
    }
}

/// The capability by which a worker says its adapter polls for timeouts (spec/PROTOCOL.md).
pub const TIMEOUT_EMULATED: &str = "timeout_emulated";

impl ImplementationInfo {
    /// Whether its adapter, not the library, supplies the timeout loop.
    pub fn timeout_emulated(&self) -> bool {
        self.capabilities.iter().any(|c| c == TIMEOUT_EMULATED)
    }

    /// Its name as a matrix column heads it: with ` †` when the adapter supplies the timeouts.
    pub fn column(&self) -> String {
        if self.timeout_emulated() {
            format!("{} †", self.name)
        } else {
            self.name.clone()
        }
    }
}

impl Report {
    /// Whether any implementation's adapter supplies the timeout loop.
    pub fn any_timeout_emulated(&self) -> bool {
        self.implementations
            .iter()
            .any(ImplementationInfo::timeout_emulated)
    }
}

/// The sentence that explains the dagger of [`ImplementationInfo::column`].
pub const DAGGER: &str = "†: the library has no timed acquire; its adapter polls the library's \
                          single attempt until the timeout (capability timeout_emulated)";

/// A rule of the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Its permanent ID.
    pub id: String,
    /// Its title.
    pub title: String,
}

/// One row of the rules x implementations matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRow {
    /// The rule's ID.
    pub rule: String,
    /// One cell per implementation, in the order of [`Report::implementations`].
    pub cells: Vec<Cell>,
}

/// The trials of one implementation against the scenarios citing one rule, each counted as
/// [`TrialResult::outcome_for`] that rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The implementation's name.
    pub implementation: String,
    /// What the trials found.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The cross-implementation check: each ordered pair of implementations on one lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interop {
    /// The IDs of the scenarios played for every pair.
    pub scenarios: Vec<String>,
    /// One cell per ordered pair: `first` plays the scenario's first process (the holder),
    /// `second` every other process.
    pub matrix: Vec<InteropCell>,
    /// The trials; `implementation` is the first, `second` the second.
    pub trials: Vec<TrialResult>,
}

/// One ordered pair of the interop matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteropCell {
    /// The implementation of the first process.
    pub first: String,
    /// The implementation of the other processes.
    pub second: String,
    /// What the trials found.
    #[serde(flatten)]
    pub counts: Counts,
}

/// How the trials of a cell, an implementation or a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// Failed, not expected to.
    pub fail: usize,
    /// The worker broke, not expected to.
    pub error: usize,
    /// Not applicable.
    pub not_applicable: usize,
    /// Failed (or broke) as the expectations say.
    pub expected_fail: usize,
    /// Did not end as the expectations say: passed, or failed differently.
    pub unexpected: usize,
    /// Only in a matrix cell: failed at a step of another rule before this rule's steps ran.
    pub not_reached: usize,
}

impl Counts {
    /// Counts one trial.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pass => self.pass += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Error => self.error += 1,
            Outcome::NotApplicable => self.not_applicable += 1,
            Outcome::Expected => self.expected_fail += 1,
            Outcome::Unexpected => self.unexpected += 1,
            Outcome::NotReached => self.not_reached += 1,
        }
    }

    /// Every trial counted.
    pub fn total(&self) -> usize {
        self.pass
            + self.fail
            + self.error
            + self.not_applicable
            + self.expected_fail
            + self.unexpected
            + self.not_reached
    }

    /// The worst outcome among the trials counted, which colours a cell: a failure or an
    /// expectation that no longer holds ([`Outcome::Fail`]), an error, an expected failure, a
    /// pass, not reached, not applicable, in that order; `None` when no trial is counted.
    pub fn worst(&self) -> Option<Outcome> {
        Some(if self.total() == 0 {
            return None;
        } else if self.fail + self.unexpected > 0 {
            Outcome::Fail
        } else if self.error > 0 {
            Outcome::Error
        } else if self.expected_fail > 0 {
            Outcome::Expected
        } else if self.pass > 0 {
            Outcome::Pass
        } else if self.not_reached > 0 {
            Outcome::NotReached
        } else {
            Outcome::NotApplicable
        })
    }

    /// Trials that were judged (neither not applicable nor not reached).
    pub fn applicable(&self) -> usize {
        self.total() - self.not_applicable - self.not_reached
    }
}

impl fmt::Display for Counts {
    /// `3 pass, 1 fail, 2 n/a`: the non-zero counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.pass, "pass"),
            (self.fail, "fail"),
            (self.error, "error"),
            (self.expected_fail, "expected fail"),
            (self.unexpected, "unexpected"),
            (self.not_applicable, "n/a"),
            (self.not_reached, "not reached"),
        ];
        let text: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        if text.is_empty() {
            f.write_str("no tests")
        } else {
            f.write_str(&text.join(", "))
        }
    }
}

/// One trial: one scenario against one implementation (or a pair, in the interop check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// The test's name: `IMPL::AREA::NAME` (interop: `FIRST+SECOND::AREA::NAME`).
    pub test: String,
    /// The implementation (interop: the one playing the first process).
    pub implementation: String,
    /// Interop only: the implementation playing the other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<String>,
    /// The scenario's ID.
    pub scenario: String,
    /// The scenario's statement.
    pub description: String,
    /// The rules the scenario cites.
    pub rules: Vec<String>,
    /// The steps (counting from 1) that check each of those rules.
    pub checks: BTreeMap<String, Vec<usize>>,
    /// What happened.
    pub verdict: Verdict,
    /// What the implementation's expectations say about this scenario, if anything.
    pub expectation: Option<ExpectationNote>,
    /// Why the scenario did not apply, for `not_applicable`.
    pub reason: Option<String>,
    /// Wall time of the trial, in milliseconds.
    pub elapsed_ms: f64,
    /// For `fail` and `error`: what went wrong, and where.
    pub evidence: Option<Evidence>,
    /// The command that reruns this trial alone.
    pub rerun: String,
}

impl TrialResult {
    /// Where this trial falls in the counts, as the judge judged it.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.verdict, self.expectation.as_ref())
    }

    /// Whether the report shows its evidence: it failed, broke, or broke an expectation.
    pub fn is_notable(&self) -> bool {
        !matches!(self.outcome(), Outcome::Pass | Outcome::NotApplicable)
    }

    /// The rule the trial's outcome is charged to: the rule of the failing step, or for a pass
    /// that the expectations said would fail, the rule they name. `None` when the outcome
    /// concerns every rule the scenario cites (a pass, not applicable, a failure before the
    /// first step).
    pub fn charged(&self) -> Option<&str> {
        match (&self.evidence, &self.expectation) {
            (Some(e), _) => e.step.and(e.rule.as_deref()),
            (None, Some(note)) if self.verdict == Verdict::Pass => note.rule.as_deref(),
            (None, _) => None,
        }
    }

    /// Where this trial falls in the cell of `rule`: its [`TrialResult::outcome`] if it is
    /// charged to that rule (or to every rule); otherwise a pass if every step of `rule` ran
    /// before the failing step (or the trial passed), and not reached if not.
    pub fn outcome_for(&self, rule: &str) -> Outcome {
        let outcome = self.outcome();
        match self.charged() {
            None => outcome,
            Some(charged) if charged == rule => outcome,
            Some(_) => {
                let failed_at = self.evidence.as_ref().and_then(|e| e.step);
                let steps = self.checks.get(rule).map_or(&[][..], Vec::as_slice);
                match failed_at {
                    Some(at) if steps.iter().any(|&s| s >= at) => Outcome::NotReached,
                    _ => Outcome::Pass,
                }
            }
        }
    }
}

/// What went wrong in a trial, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The step that failed, counting from 1; `None` before the first step (starting workers).
    pub step: Option<usize>,
    /// The rule that step checks, which the failure is charged to; `None` before the first step.
    pub rule: Option<String>,
    /// How many steps the scenario has.
    pub steps: usize,
    /// The step in words.
    pub summary: String,
    /// What the scenario expected.
    pub expected: String,
    /// What happened.
    pub observed: String,
    /// The trial's events, each with its time from the trial's start.
    pub timeline: Vec<String>,
    /// The last part of each worker's stderr.
    pub stderr: Vec<StderrTail>,
}

/// The last part of one worker's stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StderrTail {
    /// The scenario's name for the process.
    pub process: String,
    /// The text, at most 40 lines.
    pub tail: String,
}

/// Builds a [`Report`] from the trials of a run.
#[derive(Debug)]
pub struct Recorder {
    report: Report,
    redactor: Redactor,
    started: SystemTime,
    /// The judged durations of each implementation's own trials.
    measures: HashMap<String, Vec<crate::run::Measure>>,
}

impl Recorder {
    /// A report on `implementations` against `suite`, run in `environment`, with lock files
    /// under `lock_base` (the directory that holds the trials' temporary directories).
    pub fn new(
        environment: Environment,
        suite: &Suite,
        implementations: &[Implementation],
        lock_base: &Path,
    ) -> Recorder {
        let redactor = Redactor::new(lock_base, &suite.root);
        let environment = Environment {
            command: redactor.apply(&environment.command),
            ..environment
        };
        Recorder {
            report: Report {
                format: FORMAT,
                lockspec_version: env!("CARGO_PKG_VERSION").to_owned(),
                environment,
                implementations: implementations
                    .iter()
                    .map(|imp| ImplementationInfo {
                        name: imp.name.clone(),
                        command: redactor.apply(&imp.command_line()),
                        library: None,
                        version: None,
                        language: None,
                        capabilities: Vec::new(),
                        notes: None,
                        unavailable: imp.unavailable.as_deref().map(|u| redactor.apply(u)),
                        totals: Counts::default(),
                        promptness: Promptness::default(),
                    })
                    .collect(),
                rules: suite
                    .rules
                    .iter()
                    .map(|r| RuleInfo {
                        id: r.id.clone(),
                        title: r.title.clone(),
                    })
                    .collect(),
                matrix: Vec::new(),
                trials: Vec::new(),
                interop: None,
                totals: Counts::default(),
            },
            redactor,
            started: SystemTime::now(),
            measures: HashMap::new(),
        }
    }

    /// A report on a run of `selection` against `suite`, as [`Recorder::new`], with the interop
    /// check declared when the selection plays it and, with `builtins`, the notes of the built-in
    /// implementations it names.
    pub fn of_selection(
        environment: Environment,
        suite: &Suite,
        selection: &Selection,
        lock_base: &Path,
        builtins: bool,
    ) -> Recorder {
        let mut recorder = Recorder::new(environment, suite, &selection.implementations, lock_base);
        for imp in selection.implementations.iter().filter(|_| builtins) {
            if let Some(builtin) = crate::implementations::find(&imp.name) {
                recorder.describe(&imp.name, builtin.notes);
            }
        }
        if selection.interop {
            let scenarios: Vec<&Scenario> =
                suite.scenarios.iter().filter(|s| is_interop(s)).collect();
            recorder.interop(&scenarios);
        }
        recorder
    }

    /// Adds a one-line note to an implementation: what its adapter supplies or cannot express.
    pub fn describe(&mut self, implementation: &str, notes: &str) {
        if let Some(info) = self
            .report
            .implementations
            .iter_mut()
            .find(|m| m.name == implementation)
        {
            info.notes = Some(notes.to_owned());
        }
    }

    /// Declares that the interop check runs, with these scenarios.
    pub fn interop(&mut self, scenarios: &[&Scenario]) {
        self.report.interop = Some(Interop {
            scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
            matrix: Vec::new(),
            trials: Vec::new(),
        });
    }

    /// Records one test of the plan, what the runner recorded of its trial and how the judge
    /// judged it. Pairs of the interop check go to the interop check.
    pub fn record(&mut self, test: &Test, r: &TrialReport, judgement: &Judgement) {
        let redact = |s: &str| self.redactor.apply(s);
        let scenario = &test.scenario;
        let (implementation, second) = (test.implementation(), test.second());
        let result = TrialResult {
            test: test.name.clone(),
            implementation: implementation.to_owned(),
            second: second.map(str::to_owned),
            scenario: scenario.id.clone(),
            description: scenario.description.clone(),
            rules: scenario.rules.clone(),
            checks: scenario
                .rules
                .iter()
                .map(|rule| {
                    let steps = scenario.steps_checking(rule).map(|i| i + 1).collect();
                    (rule.clone(), steps)
                })
                .collect(),
            verdict: judgement.verdict,
            expectation: judgement.expectation.clone(),
            reason: match &r.verdict {
                run::Verdict::Skip(reason) => Some(redact(reason)),
                _ => None,
            },
            elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
            evidence: self.evidence(scenario, r),
            rerun: redact(&test.rerun),
        };
        if second.is_none() {
            self.measures
                .entry(implementation.to_owned())
                .or_default()
                .extend(r.measures.iter().copied());
        }
        // The first worker of an implementation to say hello names its library and version.
        for (i, w) in r.workers.iter().enumerate() {
            let name = match (i, second) {
                (0, _) | (_, None) => implementation,
                (_, Some(second)) => second,
            };
            if let Some(info) = self
                .report
                .implementations
                .iter_mut()
                .find(|m| m.name == name && m.library.is_none() && m.version.is_none())
            {
                info.library.clone_from(&w.implementation);
                info.version.clone_from(&w.version);
                info.language.clone_from(&w.language);
                info.capabilities.clone_from(&w.capabilities);
            }
        }
        if second.is_some() {
            self.report
                .interop
                .get_or_insert_with(|| Interop {
                    scenarios: Vec::new(),
                    matrix: Vec::new(),
                    trials: Vec::new(),
                })
                .trials
                .push(result);
        } else {
            self.report.trials.push(result);
        }
    }

    /// For a failure or an error: what went wrong, and where, with machine paths removed.
    fn evidence(&self, scenario: &Scenario, r: &TrialReport) -> Option<Evidence> {
        let redact = |s: &str| self.redactor.apply(s);
        let (run::Verdict::Fail(f) | run::Verdict::Error(f)) = &r.verdict else {
            return None;
        };
        Some(Evidence {
            step: f.step.map(|i| i + 1),
            rule: f.rule.clone(),
            steps: scenario.steps.len(),
            summary: redact(&f.summary),
            expected: redact(&f.expected),
            observed: redact(&f.observed),
            timeline: r.timeline.iter().map(|l| redact(l)).collect(),
            stderr: r
                .stderr
                .iter()
                .map(|(process, tail)| StderrTail {
                    process: process.clone(),
                    tail: redact(&tail_of(tail)),
                })
                .collect(),
        })
    }

    /// The finished report: counts, matrices and the wall time since the recorder was made
    /// (or `wall`, if given).
    pub fn finish(mut self, wall: Option<Duration>) -> Report {
        let wall = wall.unwrap_or_else(|| self.started.elapsed().unwrap_or_default());
        for info in &mut self.report.implementations {
            let measures = self.measures.remove(&info.name).unwrap_or_default();
            let of = |kind: crate::run::MeasureKind| {
                Figures::of(
                    measures
                        .iter()
                        .filter(|m| m.kind == kind)
                        .map(|m| m.duration)
                        .collect(),
                )
            };
            info.promptness = Promptness {
                handoff: of(crate::run::MeasureKind::Handoff),
                overshoot: of(crate::run::MeasureKind::Overshoot),
                call: of(crate::run::MeasureKind::Call),
            };
        }
        let report = &mut self.report;
        report.environment.wall_time_s = wall.as_secs_f64();
        let mut cells: HashMap<(&str, &str), Counts> = HashMap::new();
        let mut totals = Counts::default();
        let mut per_impl: HashMap<&str, Counts> = HashMap::new();
        for t in &report.trials {
            let outcome = t.outcome();
            totals.add(outcome);
            per_impl
                .entry(t.implementation.as_str())
                .or_default()
                .add(outcome);
            for rule in &t.rules {
                cells
                    .entry((rule.as_str(), t.implementation.as_str()))
                    .or_default()
                    .add(t.outcome_for(rule));
            }
        }
        let matrix = report
            .rules
            .iter()
            .map(|rule| MatrixRow {
                rule: rule.id.clone(),
                cells: report
                    .implementations
                    .iter()
                    .map(|imp| Cell {
                        implementation: imp.name.clone(),
                        counts: cells
                            .get(&(rule.id.as_str(), imp.name.as_str()))
                            .copied()
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        let per_impl: HashMap<String, Counts> = per_impl
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for imp in &mut report.implementations {
            imp.totals = per_impl.get(&imp.name).copied().unwrap_or_default();
        }
        report.matrix = matrix;
        report.totals = totals;
        if let Some(interop) = &mut report.interop {
            let mut pairs: HashMap<(&str, &str), Counts> = HashMap::new();
            for t in &interop.trials {
                let second = t.second.as_deref().unwrap_or(&t.implementation);
                pairs
                    .entry((t.implementation.as_str(), second))
                    .or_default()
                    .add(t.outcome());
            }
            let mut matrix = Vec::new();
            for first in &report.implementations {
                for second in &report.implementations {
                    matrix.push(InteropCell {
                        first: first.name.clone(),
                        second: second.name.clone(),
                        counts: pairs
                            .get(&(first.name.as_str(), second.name.as_str()))
                            .copied()
                            .unwrap_or_default(),
                    });
                }
            }
            interop.matrix = matrix;
        }
        self.report
    }
}

impl Report {
    /// The cell of `rule` x `implementation`.
    pub fn cell(&self, rule: &str, implementation: &str) -> Option<&Counts> {
        let row = self.matrix.iter().find(|r| r.rule == rule)?;
        row.cells
            .iter()
            .find(|c| c.implementation == implementation)
            .map(|c| &c.counts)
    }

    /// The trials of `implementation` against scenarios citing `rule` (each counts in the rule's
    /// cell as [`TrialResult::outcome_for`] it).
    pub fn trials_of<'a>(
        &'a self,
        rule: &'a str,
        implementation: &'a str,
    ) -> impl Iterator<Item = &'a TrialResult> + 'a {
        self.trials.iter().filter(move |t| {
            t.implementation == implementation && t.rules.iter().any(|r| r == rule)
        })
    }

    /// The title of a rule, or an empty string.
    pub fn rule_title(&self, id: &str) -> &str {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .map_or("", |r| r.title.as_str())
    }
}

/// The JSON report, pretty-printed, with a final newline.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report always serialises");
    s.push('\n');
    s
}

/// Where the reports go unless told otherwise: `lockspec/` in the target directory, beside the
/// directory that holds the running program.
///
/// # Errors
///
/// Returns a message when the running program cannot be found.
pub fn default_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().unwrap_or(Path::new("."));
    Ok(bin_dir.parent().unwrap_or(bin_dir).join("lockspec"))
}

/// The paths of the three report files written by [`write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

impl fmt::Display for Written {
    /// The three paths, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [md, json, html] = [&self.markdown, &self.json, &self.html].map(|p| p.display());
        write!(f, "{md}, {json}, {html}")
    }
}

/// Writes `report.md`, `report.json` and `report.html` into `dir`, creating it.
///
/// # Errors
///
/// Returns an error naming the directory or file that could not be created or written.
pub fn write(report: &Report, dir: &Path) -> io::Result<Written> {
    let with_path =
        |path: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
    let written = Written {
        markdown: dir.join("report.md"),
        json: dir.join("report.json"),
        html: dir.join("report.html"),
    };
    for (path, text) in [
        (&written.markdown, markdown(report)),
        (&written.json, json(report)),
        (&written.html, html(report)),
    ] {
        fs::write(path, text).map_err(|e| with_path(path, e))?;
    }
    Ok(written)
}

/// The last [`STDERR_LINES`] lines (and at most [`STDERR_BYTES`] bytes) of a stderr tail.
fn tail_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n");
    if kept.len() <= STDERR_BYTES {
        return kept;
    }
    let mut cut = kept.len() - STDERR_BYTES;
    while !kept.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &kept[cut..])
}

/// Removes machine paths from what goes into a report: each trial's temporary directory becomes
/// `{dir}` (as in scenario files), paths under the suite's root become relative to it, sources
/// of crates in cargo's cache (in backtraces) become `CRATE-VERSION/...`, and the home directory
/// becomes `~`.
#[derive(Debug, Clone)]
struct Redactor {
    /// Prefixes of the trials' temporary directories: `BASE/lockspec-`.
    trial_prefixes: Vec<String>,
    /// The suite's root, with a trailing separator.
    roots: Vec<String>,
    /// Cargo's caches of crate sources (`CARGO_HOME/registry/src/`, `CARGO_HOME/git/checkouts/`),
    /// each followed by one directory per source.
    crate_caches: Vec<String>,
    /// The home directory, with a trailing separator.
    homes: Vec<String>,
}

/// A path in every spelling a message may use: as given, and canonical.
fn spellings(p: &Path) -> Vec<String> {
    let mut v = vec![p.display().to_string()];
    if let Ok(c) = p.canonicalize() {
        let c = c.display().to_string();
        if !v.contains(&c) {
            v.push(c);
        }
    }
    v.retain(|s| !s.is_empty());
    v
}

/// `text` with every `prefix` and the name that follows it (up to the first character for which
/// `ends_name` holds, and that character too if `and_end`) replaced by `with`.
fn replace_named(
    text: &str,
    prefix: &str,
    ends_name: impl Fn(char) -> bool,
    and_end: bool,
    with: &str,
) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        result.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let mut name_len = after.find(&ends_name).unwrap_or(after.len());
        if and_end && let Some(end) = after[name_len..].chars().next() {
            name_len += end.len_utf8();
        }
        result.push_str(with);
        rest = &after[name_len..];
    }
    result.push_str(rest);
    result
}

impl Redactor {
    fn new(lock_base: &Path, root: &Path) -> Redactor {
        let sep = std::path::MAIN_SEPARATOR;
        let with_sep = |p: String| format!("{}{sep}", p.trim_end_matches(sep));
        let home = std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
            .map(PathBuf::from)
            .filter(|h| h.is_absolute() && h.parent().is_some());
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
        let crate_caches = cargo_home
            .iter()
            .flat_map(|c| {
                [
                    c.join("registry").join("src"),
                    c.join("git").join("checkouts"),
                ]
            })
            .flat_map(|p| spellings(&p))
            .map(with_sep)
            .collect();
        Redactor {
            trial_prefixes: spellings(lock_base)
                .into_iter()
                .map(|b| format!("{}lockspec-", with_sep(b)))
                .collect(),
            roots: spellings(root).into_iter().map(with_sep).collect(),
            crate_caches,
            homes: home
                .iter()
                .flat_map(|h| spellings(h))
                .map(with_sep)
                .collect(),
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for prefix in &self.trial_prefixes {
            let random = |c: char| !(c.is_ascii_alphanumeric() || c == '_');
            out = replace_named(&out, prefix, random, false, "{dir}");
        }
        for root in &self.roots {
            out = out.replace(root.as_str(), "");
        }
        for cache in &self.crate_caches {
            let separator = |c: char| c == '/' || c == std::path::MAIN_SEPARATOR;
            out = replace_named(&out, cache, separator, true, "");
        }
        for home in &self.homes {
            out = out.replace(home.as_str(), &format!("~{}", std::path::MAIN_SEPARATOR));
        }
        out
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
