//! Runs one scenario against one implementation and judges it.
//!
//! The runner starts the scenario's worker processes in a fresh temporary directory, sends each
//! step, stamps every reply with its own monotonic clock, and compares outcomes and timings with
//! the expectations. It never takes a lock itself.
//!
//! This module holds the entry points ([`run`], [`run_mixed`]), the `Trial` and its loop over
//! the steps; each family of steps is played, and its expectations checked, in a module of its
//! own:
//!
//! - `lock`: the lock objects (`open`, `acquire`, `release`, `await`, `expect_blocked`,
//!   `expect_callbacks`, `close`);
//! - `file`: plain handles in the workers (`file_open`, `file_close`) and the files the runner
//!   looks at or arranges itself (`write_file`, `check_file`, `hard_link`, `mkdir`, `symlink`);
//! - `process`: the workers' processes (`spawn_child`, `kill`);
//! - `stress`: a stress run inside a scenario (`stress`).
//!
//! Beside them, `exchange` talks to the workers (commands, replies, events, the handshake),
//! `timing` judges how long a reply took, `verdict` holds what a trial concludes and `explain`
//! puts a failure into words.

mod exchange;
mod explain;
mod file;
mod lock;
mod process;
mod stress;
mod timing;
mod verdict;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockspec_protocol::Op;

use crate::process::{Implementation, is_privileged};
use crate::scenario::{Requirement, Scenario, Step};
use crate::session::Session;
use crate::timing::{Timeout, Timing};

use exchange::{Pending, Received};
pub use explain::explain;
use verdict::Stop;
pub use verdict::{FailKind, Failure, Measure, MeasureKind, TrialReport, Verdict, WorkerInfo};

/// Where and how trials run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Margins.
    pub timing: Timing,
    /// The reference implementation that measures the machine's noise: once per process
    /// ([`crate::calibrate::shared`]) when `timing` was not calibrated already, and again when a
    /// lock is judged too slow, so that a verdict of slowness holds against the noise of the
    /// moment too. `None` judges with the floors alone.
    pub reference: Option<Implementation>,
    /// Parent directory for the trials' temporary directories (default: the system's).
    pub dir: Option<PathBuf>,
}

/// Runs `scenario` against `imp`.
pub fn run(imp: &Implementation, scenario: &Scenario, settings: &Settings) -> TrialReport {
    run_mixed(std::slice::from_ref(imp), scenario, settings)
}

/// Runs `scenario` with its processes played by different implementations: process `i` (in
/// the order of the scenario's `processes`) by `imps[i]`, and any process beyond the list by its
/// last entry. An empty list is an error verdict.
pub fn run_mixed(imps: &[Implementation], scenario: &Scenario, settings: &Settings) -> TrialReport {
    let mut earlier = Vec::new();
    let start = Instant::now();
    for attempt in 1..=TIMING_ATTEMPTS {
        let mut report = attempt_once(imps, scenario, settings);
        report.elapsed = start.elapsed();
        let timing = matches!(&report.verdict, Verdict::Fail(f) if f.kind.is_timing());
        if !timing || attempt == TIMING_ATTEMPTS {
            report.attempts = attempt;
            if !earlier.is_empty() {
                earlier.push(format!("attempt {attempt} of {TIMING_ATTEMPTS}:"));
                earlier.append(&mut report.timeline);
                report.timeline = earlier;
            }
            return report;
        }
        if let Verdict::Fail(f) = &report.verdict {
            earlier.push(format!(
                "attempt {attempt} failed on timing alone at step {}: expected {}; observed {} (played again)",
                f.step.map_or(0, |s| s + 1),
                f.expected,
                f.observed
            ));
        }
    }
    unreachable!("the last attempt returns")
}

/// How many times a scenario is played while it fails on timing alone: a lock that is really too
/// slow is too slow every time, while a burst of load on the machine seldom strikes thrice.
pub const TIMING_ATTEMPTS: u32 = 3;

/// Plays the scenario once.
fn attempt_once(imps: &[Implementation], scenario: &Scenario, settings: &Settings) -> TrialReport {
    crate::cleanup::install();
    let start = Instant::now();
    let mut settings = settings.clone();
    if let Some(reference) = settings
        .reference
        .as_ref()
        .filter(|_| settings.timing.noise().samples == 0)
    {
        match crate::calibrate::shared(reference, settings.timing) {
            Ok(noise) => settings.timing = settings.timing.with_noise(noise),
            Err(e) => {
                let verdict =
                    Stop::Runner(e).into_verdict(None, None, "calibrate the margins".into());
                return TrialReport::before_workers(verdict, start.elapsed());
            }
        }
    }
    let settings = &settings;
    let mut trial = match Trial::new(imps, scenario, settings, start) {
        Ok(t) => t,
        Err(stop) => {
            let verdict = stop.into_verdict(None, None, "start the workers".into());
            return TrialReport::before_workers(verdict, start.elapsed());
        }
    };
    let verdict = trial.run_all();
    trial.session.kill_all();
    let stderr = (0..trial.session.len())
        .map(|p| {
            (
                trial.session.name(p).to_owned(),
                trial.session.stderr_tail(p),
            )
        })
        .collect();
    TrialReport {
        verdict,
        elapsed: start.elapsed(),
        timeline: std::mem::take(&mut trial.timeline),
        stderr,
        workers: std::mem::take(&mut trial.workers),
        measures: std::mem::take(&mut trial.measures),
        attempts: 1,
    }
}

/// One scenario being played: the workers, their temporary directory, and what the steps so far
/// left behind for the steps to come.
struct Trial<'a> {
    scenario: &'a Scenario,
    timing: Timing,
    /// The workers; before `dir`, so that they are killed before it is removed.
    session: Session,
    dir: tempfile::TempDir,
    /// `dir` in the signal handler's registry; after `dir`, so it is removed first.
    _dir_entry: crate::cleanup::DirEntry,
    start: Instant,
    index: HashMap<String, usize>,
    replies: HashMap<(usize, u64), Received>,
    /// The latest moment, on the shared clock, at which a command that frees a lock completed
    /// (a release's reply, a kill's reaping): where a woken waiter's hand-off is measured from.
    freed_ns: Vec<u64>,
    /// The step being played.
    current: usize,
    /// How many acquires of each (worker, handle) are unanswered: events may come only then.
    acquiring: HashMap<(usize, String), u32>,
    /// The identities (device, inode) recorded by `check_file` steps, by name.
    identities: HashMap<String, (u64, u64)>,
    /// What measures the noise again before a lock is judged too slow, and whether it has.
    reference: Option<Implementation>,
    rechecked: bool,
    /// What the judged replies showed, for the report.
    measures: Vec<Measure>,
    pending: HashMap<(usize, String), Pending>,
    timeouts: HashMap<(usize, String), Timeout>,
    failed_open: HashSet<(usize, String)>,
    callbacks: HashMap<(usize, String), u32>,
    timeline: Vec<String>,
    workers: Vec<WorkerInfo>,
    /// Directories whose permissions a step restricted, restored before clean-up.
    restricted: Vec<PathBuf>,
    /// The implementations playing the processes, for the fresh workers of a `stress` step.
    imps: Vec<Implementation>,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        for dir in &self.restricted {
            let _ = crate::sys::set_mode(dir, 0o755);
        }
    }
}

/// A duration in milliseconds, for messages.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl<'a> Trial<'a> {
    fn new(
        imps: &[Implementation],
        scenario: &'a Scenario,
        settings: &Settings,
        start: Instant,
    ) -> Result<Trial<'a>, Stop> {
        if let Some(why) = imps.iter().find_map(|imp| imp.unavailable.as_ref()) {
            return Err(Stop::Unavailable(why.clone()));
        }
        let unprivileged = scenario.requires.contains(&Requirement::Unprivileged);
        let mut builder = tempfile::Builder::new();
        let prefix = crate::cleanup::dir_prefix();
        builder.prefix(&prefix);
        let dir = match &settings.dir {
            Some(parent) => {
                crate::cleanup::sweep_dead_runs(parent);
                builder.tempdir_in(parent)
            }
            None => builder.tempdir(),
        }
        .map_err(|e| Stop::Runner(format!("cannot create a temporary directory: {e}")))?;
        let dir_entry = crate::cleanup::DirEntry::new(dir.path());
        if unprivileged && is_privileged() {
            crate::sys::make_world_writable(dir.path()).map_err(|e| {
                Stop::Skip(format!(
                    "cannot prepare a directory for an unprivileged worker: {e}"
                ))
            })?;
        }
        let mut session = Session::new(dir.path());
        for (i, name) in scenario.processes.iter().enumerate() {
            let Some(imp) = imps.get(i).or(imps.last()) else {
                return Err(Stop::Broken(
                    "no implementation to play the processes".into(),
                ));
            };
            match session.spawn(imp, name.clone(), unprivileged) {
                Ok(_) => {}
                Err((_, e)) if unprivileged && is_privileged() => {
                    return Err(Stop::Skip(format!(
                        "the runner is root and cannot start the worker as an unprivileged user: {e}"
                    )));
                }
                Err((broken, _)) => return Err(Stop::Protocol(broken)),
            }
        }
        let mut trial = Trial {
            scenario,
            timing: settings.timing,
            session,
            dir,
            _dir_entry: dir_entry,
            start,
            index: scenario
                .processes
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i))
                .collect(),
            replies: HashMap::new(),
            freed_ns: Vec::new(),
            current: 0,
            identities: HashMap::new(),
            acquiring: HashMap::new(),
            reference: settings.reference.clone(),
            rechecked: false,
            measures: Vec::new(),
            pending: HashMap::new(),
            timeouts: HashMap::new(),
            failed_open: HashSet::new(),
            callbacks: HashMap::new(),
            timeline: Vec::new(),
            workers: Vec::new(),
            restricted: Vec::new(),
            imps: imps.to_vec(),
        };
        trial.handshake()?;
        Ok(trial)
    }

    fn log(&mut self, at: Instant, line: String) {
        let t = at.saturating_duration_since(self.start);
        self.timeline.push(format!(
            "{:>9} {line}",
            format!("+{:.1}ms", t.as_secs_f64() * 1000.0)
        ));
    }

    fn proc(&self, name: &str) -> usize {
        self.index[name]
    }

    /// `path` of a scenario, in the trial's directory, for the runner.
    fn path(&self, path: &str) -> PathBuf {
        let dir = self.dir.path().to_string_lossy();
        let path = path.replace("{dir}", &dir);
        self.dir.path().join(path)
    }

    /// `path` of a scenario, for a worker (which runs in the trial's directory).
    fn worker_path(&self, path: &str) -> String {
        path.replace("{dir}", &self.dir.path().to_string_lossy())
    }

    fn run_all(&mut self) -> Verdict {
        for i in 0..self.scenario.steps.len() {
            self.current = i;
            let step = &self.scenario.steps[i];
            let now = Instant::now();
            self.log(now, format!("step {}: {}", i + 1, step.summary()));
            if let Err(stop) = self.step(step).and_then(|()| self.drain()) {
                let blamed = stop.blamed_step().unwrap_or(i);
                let summary = self.scenario.steps[blamed].summary();
                let rule = self.scenario.rule_of(blamed).to_owned();
                let verdict = stop.into_verdict(Some(blamed), Some(rule), summary);
                if let Verdict::Fail(f) | Verdict::Error(f) = &verdict {
                    let line = format!(
                        "step {} FAILED: expected {}; observed {}",
                        blamed + 1,
                        f.expected,
                        f.observed
                    );
                    self.log(Instant::now(), line);
                }
                return verdict;
            }
        }
        Verdict::Pass
    }

    /// Plays one step, in the module of its family.
    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match step {
            Step::Open {
                process,
                thread,
                handle,
                path,
                timeout,
                callback,
                expect,
            } => self.open(process, thread, handle, path, *timeout, *callback, expect),
            Step::Acquire {
                process,
                thread,
                handle,
                expect,
                within,
            }
            | Step::Release {
                process,
                thread,
                handle,
                expect,
                within,
            } => {
                let handle_name = handle.clone();
                let command = if matches!(step, Step::Acquire { .. }) {
                    Op::Acquire {
                        handle: handle_name,
                    }
                } else {
                    Op::Release {
                        handle: handle_name,
                    }
                };
                self.acquire_or_release(process, thread, handle, command, expect, *within)
            }
            Step::Await {
                process,
                thread,
                expect,
                within,
            } => self.await_reply(process, thread, expect, *within),
            Step::ExpectBlocked {
                process,
                thread,
                window,
            } => self.expect_blocked(process, thread, *window),
            Step::ExpectCallbacks {
                process,
                handle,
                count,
            } => self.expect_callbacks(process, handle, *count),
            Step::Close {
                process,
                thread,
                handle,
            } => self.close(process, thread, handle),
            Step::FileOpen {
                process,
                thread,
                file,
                path,
            } => self.file_open(process, thread, file, path),
            Step::FileClose {
                process,
                thread,
                file,
            } => self.file_close(process, thread, file),
            Step::WriteFile { path, content } => self.write_file(path, content),
            Step::CheckFile {
                path,
                exists,
                content,
                identity,
            } => self.check_file(path, *exists, content.as_deref(), identity.as_deref()),
            Step::HardLink { path, target } => self.hard_link(path, target),
            Step::Mkdir { path, mode } => self.mkdir(path, mode.as_deref()),
            Step::Symlink { path, target } => self.symlink(path, target),
            Step::SpawnChild {
                process,
                thread,
                child,
            } => self.spawn_child(process, thread, child),
            Step::Kill { process } => self.kill(process),
            Step::Stress { duration, seed } => self.stress(*duration, *seed),
        }
    }
}
