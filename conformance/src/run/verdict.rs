//! What a trial concludes: the verdict and its failure, the report of a trial, and `Stop`, why a
//! trial stopped early, which becomes its verdict.

use std::time::Duration;

use crate::session::{Broken, BrokenKind};

/// The verdict of one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// The implementation did something the spec forbids.
    Fail(Failure),
    /// The scenario does not apply (a capability is absent, or the environment cannot run it).
    Skip(String),
    /// The worker broke the protocol, crashed or could not start: nothing was learnt about the lock.
    Error(Failure),
}

impl Verdict {
    /// A one-word name: pass, fail, skip, error.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Skip(_) => "skip",
            Verdict::Error(_) => "error",
        }
    }
}

/// What kind of wrong: decided where the failure is seen, so that nothing downstream reads the
/// words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// An outcome the step does not allow.
    WrongOutcome,
    /// No reply in time to an operation that had to answer: the lock hung.
    NoReply,
    /// An operation that had to block completed before anything freed the lock.
    NotBlocked,
    /// An operation that had to complete at once, or a woken waiter, took too long.
    Slow,
    /// A timeout fired before its time.
    Early,
    /// A timeout fired too long after its time.
    Late,
    /// The contention callback was called the wrong number of times.
    Callbacks,
    /// The lock file is not as it must be.
    File,
    /// The stress history shows a violation.
    History,
    /// The worker broke the protocol, crashed or hung on a command that never waits.
    Broken(BrokenKind),
    /// The worker broke in a way the runner saw itself (it could not be killed, it answered
    /// without a field it owed, a stress run it drove could not be completed).
    Worker,
    /// The runner could not do its own part of the trial: not the worker's fault.
    Runner,
    /// The implementation is not installed here.
    Unavailable,
}

impl FailKind {
    /// Whether the failure is about timing alone (too slow, too late): the one kind of failure a
    /// burst of load on the machine could cause, and so the one that is played again before it
    /// is believed ([`crate::run::TIMING_ATTEMPTS`]). A timeout that fires early is never noise.
    pub fn is_timing(self) -> bool {
        matches!(self, FailKind::Slow | FailKind::Late)
    }
}

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What kind of wrong.
    pub kind: FailKind,
    /// Index of the step (0-based), if a step was running.
    pub step: Option<usize>,
    /// The rule that step checks ([`Scenario::rule_of`](crate::scenario::Scenario::rule_of));
    /// `None` before the first step.
    pub rule: Option<String>,
    /// The step in words.
    pub summary: String,
    /// What the scenario expected.
    pub expected: String,
    /// What happened.
    pub observed: String,
}

/// How [`Failure::observed`] begins when an operation got no reply in time.
pub(super) const NO_REPLY: &str = "no reply after";

/// [`Failure::expected`] of an implementation that is not installed.
const INSTALLED: &str = "an implementation installed on this machine";

#[cfg(test)]
impl Failure {
    /// The failure the unit tests of judging share: `kind` at `step`, a step that checks REL-2.
    pub(crate) fn fixture(kind: FailKind, step: Option<usize>) -> Failure {
        Failure {
            kind,
            step,
            rule: step.map(|_| "REL-2".into()),
            summary: "acquire".into(),
            expected: "acquired".into(),
            observed: "timed_out after 300.0 ms".into(),
        }
    }
}

impl Failure {
    /// Whether the failure is an operation that got no reply in time (it hung), rather than a
    /// wrong reply.
    pub fn hung(&self) -> bool {
        self.kind == FailKind::NoReply
    }

    /// Whether the implementation could not run at all here (not installed): nothing was tried.
    pub fn unavailable(&self) -> bool {
        self.kind == FailKind::Unavailable
    }
}

/// Everything recorded about one trial.
#[derive(Debug, Clone)]
pub struct TrialReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time of the trial.
    pub elapsed: Duration,
    /// One line per event, with times from the trial's start.
    pub timeline: Vec<String>,
    /// Each worker's name and the tail of its stderr.
    pub stderr: Vec<(String, String)>,
    /// What each worker that answered `hello` said about itself, in process order.
    pub workers: Vec<WorkerInfo>,
    /// The durations its judged replies showed, for the report's figures of promptness.
    pub measures: Vec<Measure>,
    /// How many times the scenario was played: more than once only when every attempt but the
    /// last failed on timing alone ([`FailKind::is_timing`]).
    pub attempts: u32,
}

/// A duration that one judged reply showed, on the worker's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// What was measured.
    pub kind: MeasureKind,
    /// How long.
    pub duration: Duration,
}

/// What a [`Measure`] is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeasureKind {
    /// A woken waiter's return after the release (or kill) that freed the lock.
    Handoff,
    /// A timed-out acquire's return after its timeout.
    Overshoot,
    /// An acquire or release that had to complete at once: the whole call.
    Call,
}

impl TrialReport {
    /// The report of a trial that stopped before any worker answered: a verdict, and nothing
    /// recorded.
    pub(super) fn before_workers(verdict: Verdict, elapsed: Duration) -> TrialReport {
        TrialReport {
            verdict,
            elapsed,
            timeline: Vec::new(),
            stderr: Vec::new(),
            workers: Vec::new(),
            measures: Vec::new(),
            attempts: 1,
        }
    }
}

/// What a worker said about itself in its `hello` reply (every field is optional there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The scenario's name for the process the worker played.
    pub process: String,
    /// The library it puts under test.
    pub implementation: Option<String>,
    /// The library's version.
    pub version: Option<String>,
    /// The language of the library.
    pub language: Option<String>,
    /// The optional features it declared.
    pub capabilities: Vec<String>,
    /// The protocol version it speaks: 1 is judged on the runner's clock.
    pub protocol: Option<u64>,
}

/// Why a trial stopped early.
pub(super) enum Stop {
    Fail {
        expected: String,
        observed: String,
        /// The step to blame, when it is not the one being played.
        step: Option<usize>,
        kind: FailKind,
    },
    Broken(String),
    /// The runner itself could not do its part (a directory it cannot create, a file it cannot
    /// write): nothing was learnt about the lock, and the worker is not to blame.
    Runner(String),
    /// A worker broke the protocol, as the session saw it.
    Protocol(Broken),
    Skip(String),
    /// The implementation cannot run here (not installed), with the message that says why.
    Unavailable(String),
}

impl Stop {
    pub(super) fn fail(expected: impl Into<String>, observed: impl Into<String>) -> Stop {
        Stop::failed(FailKind::WrongOutcome, expected, observed)
    }

    pub(super) fn failed(
        kind: FailKind,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Stop {
        Stop::Fail {
            expected: expected.into(),
            observed: observed.into(),
            step: None,
            kind,
        }
    }

    /// The step this stop blames, when it is not the one being played.
    pub(super) fn blamed_step(&self) -> Option<usize> {
        match self {
            Stop::Fail { step, .. } => *step,
            _ => None,
        }
    }

    pub(super) fn into_verdict(
        self,
        step: Option<usize>,
        rule: Option<String>,
        summary: String,
    ) -> Verdict {
        match self {
            Stop::Fail {
                expected,
                observed,
                kind,
                ..
            } => Verdict::Fail(Failure {
                kind,
                step,
                rule,
                summary,
                expected,
                observed,
            }),
            Stop::Broken(observed) => Verdict::Error(Failure {
                kind: FailKind::Worker,
                step,
                rule,
                summary,
                expected: "a worker that follows the protocol".into(),
                observed,
            }),
            Stop::Runner(observed) => Verdict::Error(Failure {
                kind: FailKind::Runner,
                step,
                rule,
                summary,
                expected: "a runner that can prepare the trial on this machine".into(),
                observed,
            }),
            Stop::Protocol(broken) => Verdict::Error(Failure {
                kind: FailKind::Broken(broken.kind),
                step,
                rule,
                summary,
                expected: "a worker that follows the protocol".into(),
                observed: broken.message,
            }),
            Stop::Skip(reason) => Verdict::Skip(reason),
            Stop::Unavailable(observed) => Verdict::Error(Failure {
                kind: FailKind::Unavailable,
                step,
                rule,
                summary,
                expected: INSTALLED.into(),
                observed,
            }),
        }
    }
}

/// A break the session saw, as a reason to stop.
pub(super) fn broken(broken: Broken) -> Stop {
    Stop::Protocol(broken)
}
