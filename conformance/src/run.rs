//! Runs one scenario against one implementation and judges it.
//!
//! The runner starts the scenario's worker processes in a fresh temporary directory, sends each
//! step, stamps every reply with its own monotonic clock, and compares outcomes and timings with
//! the expectations. It never takes a lock itself.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{Implementation, Incoming, Msg, WorkerProcess, is_privileged};
use crate::scenario::{Expect, Kind, Requirement, Scenario, Step, parse_mode};
use crate::timing::{Timeout, Timing, Window};

/// The protocol version this runner speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Where and how trials run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Margins.
    pub timing: Timing,
    /// Parent directory for the trials' temporary directories (default: the system's).
    pub dir: Option<PathBuf>,
}

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

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Index of the step (0-based), if a step was running.
    pub step: Option<usize>,
    /// The rule that step checks ([`Scenario::rule_of`]); `None` before the first step.
    pub rule: Option<String>,
    /// The step in words.
    pub summary: String,
    /// What the scenario expected.
    pub expected: String,
    /// What happened.
    pub observed: String,
}

/// How [`Failure::observed`] begins when an operation got no reply in time.
const NO_REPLY: &str = "no reply after";

/// [`Failure::expected`] of an implementation that is not installed.
const INSTALLED: &str = "an implementation installed on this machine";

impl Failure {
    /// Whether the failure is an operation that got no reply in time (it hung), rather than a
    /// wrong reply.
    pub fn hung(&self) -> bool {
        self.observed.starts_with(NO_REPLY)
    }

    /// Whether the implementation could not run at all here (not installed): nothing was tried.
    pub fn unavailable(&self) -> bool {
        self.step.is_none() && self.expected == INSTALLED
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
}

/// Runs `scenario` against `imp`.
pub fn run(imp: &Implementation, scenario: &Scenario, settings: &Settings) -> TrialReport {
    run_mixed(std::slice::from_ref(imp), scenario, settings)
}

/// Runs `scenario` with its processes played by different implementations: process `i` (in
/// the order of the scenario's `processes`) by `imps[i]`, and any process beyond the list by its
/// last entry. An empty list is an error verdict.
pub fn run_mixed(imps: &[Implementation], scenario: &Scenario, settings: &Settings) -> TrialReport {
    crate::cleanup::install();
    let start = Instant::now();
    let mut trial = match Trial::new(imps, scenario, settings, start) {
        Ok(t) => t,
        Err(stop) => {
            return TrialReport {
                verdict: stop.into_verdict(None, None, "start the workers".into()),
                elapsed: start.elapsed(),
                timeline: Vec::new(),
                stderr: Vec::new(),
                workers: Vec::new(),
            };
        }
    };
    let verdict = trial.run_all();
    for p in &mut trial.procs {
        p.kill_all();
    }
    let stderr = scenario
        .processes
        .iter()
        .zip(&trial.procs)
        .map(|(name, p)| (name.clone(), p.stderr_tail()))
        .collect();
    TrialReport {
        verdict,
        elapsed: start.elapsed(),
        timeline: std::mem::take(&mut trial.timeline),
        stderr,
        workers: std::mem::take(&mut trial.workers),
    }
}

/// Why a trial stopped early.
enum Stop {
    Fail {
        expected: String,
        observed: String,
    },
    Broken(String),
    Skip(String),
    /// The implementation cannot run here (not installed), with the message that says why.
    Unavailable(String),
}

impl Stop {
    fn fail(expected: impl Into<String>, observed: impl Into<String>) -> Stop {
        Stop::Fail {
            expected: expected.into(),
            observed: observed.into(),
        }
    }

    fn into_verdict(self, step: Option<usize>, rule: Option<String>, summary: String) -> Verdict {
        match self {
            Stop::Fail { expected, observed } => Verdict::Fail(Failure {
                step,
                rule,
                summary,
                expected,
                observed,
            }),
            Stop::Broken(observed) => Verdict::Error(Failure {
                step,
                rule,
                summary,
                expected: "a worker that follows the protocol".into(),
                observed,
            }),
            Stop::Skip(reason) => Verdict::Skip(reason),
            Stop::Unavailable(observed) => Verdict::Error(Failure {
                step,
                rule,
                summary,
                expected: INSTALLED.into(),
                observed,
            }),
        }
    }
}

/// A reply, as received.
#[derive(Debug, Clone)]
struct Reply {
    kind: Kind,
    detail: Option<String>,
    at: Instant,
    value: Value,
}

/// A command sent and not yet answered.
#[derive(Debug, Clone)]
struct Sent {
    sent_at: Instant,
    op: String,
}

/// The commands that call the lock itself and may wait on it, rightly (`acquire`) or because the
/// lock is broken: no reply to them is the lock's failure. No reply to any other command is the
/// worker's (spec/PROTOCOL.md, Errors).
const LOCK_OPS: [&str; 2] = ["acquire", "release"];

/// How often a wait for replies checks that the workers are still running.
const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// How long the output of a worker that has exited may take to arrive.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// An operation left blocked on a thread.
#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    sent_at: Instant,
    handle: String,
}

struct Trial<'a> {
    scenario: &'a Scenario,
    timing: Timing,
    dir: tempfile::TempDir,
    /// `dir` in the signal handler's registry; after `dir`, so it is removed first.
    _dir_entry: crate::cleanup::DirEntry,
    start: Instant,
    procs: Vec<WorkerProcess>,
    index: HashMap<String, usize>,
    rx: Receiver<Msg>,
    next_seq: Vec<u64>,
    outstanding: Vec<HashMap<u64, Sent>>,
    replies: HashMap<(usize, u64), Reply>,
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
            let _ = set_mode(dir, 0o755);
        }
    }
}

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
        builder.prefix("lockspec-");
        let dir = match &settings.dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(|e| Stop::Broken(format!("cannot create a temporary directory: {e}")))?;
        let dir_entry = crate::cleanup::DirEntry::new(dir.path());
        if unprivileged && is_privileged() {
            make_world_writable(dir.path()).map_err(|e| {
                Stop::Skip(format!(
                    "cannot prepare a directory for an unprivileged worker: {e}"
                ))
            })?;
        }
        let (tx, rx) = mpsc::channel();
        let mut procs = Vec::new();
        for i in 0..scenario.processes.len() {
            let Some(imp) = imps.get(i).or(imps.last()) else {
                return Err(Stop::Broken(
                    "no implementation to play the processes".into(),
                ));
            };
            match WorkerProcess::spawn(imp, i, dir.path(), tx.clone(), unprivileged) {
                Ok(p) => procs.push(p),
                Err(e) if unprivileged && is_privileged() => {
                    return Err(Stop::Skip(format!(
                        "the runner is root and cannot start the worker as an unprivileged user: {e}"
                    )));
                }
                Err(e) => {
                    return Err(Stop::Broken(format!(
                        "cannot start the worker `{}`: {e}",
                        imp.command_line()
                    )));
                }
            }
        }
        let n = procs.len();
        let mut trial = Trial {
            scenario,
            timing: settings.timing,
            dir,
            _dir_entry: dir_entry,
            start,
            procs,
            index: scenario
                .processes
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i))
                .collect(),
            rx,
            next_seq: vec![0; n],
            outstanding: vec![HashMap::new(); n],
            replies: HashMap::new(),
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

    fn handshake(&mut self) -> Result<(), Stop> {
        let mut seqs = Vec::new();
        for p in 0..self.procs.len() {
            seqs.push(self.send(p, json!({"op": "hello", "protocol": PROTOCOL_VERSION}))?);
        }
        let deadline = Instant::now() + self.timing.startup();
        let mut missing = Vec::new();
        for (p, seq) in seqs.into_iter().enumerate() {
            let name = self.scenario.processes[p].clone();
            let Some(reply) = self.wait_reply(p, seq, deadline)? else {
                return Err(Stop::Broken(format!(
                    "worker {name} did not answer `hello` within {}",
                    ms(self.timing.startup())
                )));
            };
            let _ = reply.kind;
            let version = reply.value.get("protocol").and_then(Value::as_u64);
            if version != Some(PROTOCOL_VERSION) {
                return Err(Stop::Broken(format!(
                    "worker {name} speaks protocol {}, this runner speaks {PROTOCOL_VERSION}",
                    version.map_or("(none given)".into(), |v| v.to_string())
                )));
            }
            let caps: Vec<&str> = reply
                .value
                .get("capabilities")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for req in &self.scenario.requires {
                if !req.met_by(&caps) {
                    missing.push(*req);
                }
            }
            let text = |key: &str| {
                reply
                    .value
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            self.workers.push(WorkerInfo {
                process: name,
                implementation: text("implementation"),
                version: text("version"),
                language: text("language"),
                capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            });
        }
        if let Some(req) = missing.first() {
            return Err(Stop::Skip(req.unmet()));
        }
        Ok(())
    }

    fn send(&mut self, p: usize, mut command: Value) -> Result<u64, Stop> {
        let seq = self.next_seq[p];
        self.next_seq[p] += 1;
        command["seq"] = json!(seq);
        let line = command.to_string();
        let sent_at = Instant::now();
        if let Err(e) = self.procs[p].send(&line) {
            let name = &self.scenario.processes[p];
            let status = self.procs[p].exit_status(Duration::from_millis(200));
            return Err(Stop::Broken(format!(
                "cannot write to worker {name} ({e}); {}",
                describe_exit(status)
            )));
        }
        let op = command["op"].as_str().unwrap_or_default().to_owned();
        self.outstanding[p].insert(seq, Sent { sent_at, op });
        Ok(seq)
    }

    /// Handles one message from a worker.
    fn receive(&mut self, msg: Msg) -> Result<(), Stop> {
        let p = msg.proc;
        let name = self.scenario.processes[p].clone();
        match msg.incoming {
            // What a worker wrote before the runner killed it answers nothing any more.
            Incoming::Line(_) if self.procs[p].killed => Ok(()),
            Incoming::Line(line) => {
                let value: Value = serde_json::from_str(&line).map_err(|e| {
                    Stop::Broken(format!(
                        "worker {name} wrote a line that is not JSON ({e}): {line:?}"
                    ))
                })?;
                if !value.is_object() {
                    return Err(Stop::Broken(format!(
                        "worker {name} wrote JSON that is not an object: {line:?}"
                    )));
                }
                if let Some(seq) = value.get("seq") {
                    let Some(seq) = seq.as_u64() else {
                        return Err(Stop::Broken(format!(
                            "worker {name} wrote a `seq` that is not an integer: {line:?}"
                        )));
                    };
                    let Some(sent) = self.outstanding[p].remove(&seq) else {
                        let why = if seq < self.next_seq[p] {
                            "a second time"
                        } else {
                            "but no command with that seq was sent"
                        };
                        return Err(Stop::Broken(format!(
                            "worker {name} answered seq {seq} {why}: {line:?}"
                        )));
                    };
                    let outcome = value.get("outcome").and_then(Value::as_str).unwrap_or("");
                    let kind = if seq == 0 && outcome == "hello" {
                        Kind::Ok
                    } else {
                        Kind::parse(outcome).ok_or_else(|| {
                            Stop::Broken(format!(
                                "worker {name} answered seq {seq} with an unknown outcome {outcome:?}: {line:?}"
                            ))
                        })?
                    };
                    let detail = value
                        .get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let took = msg.at.saturating_duration_since(sent.sent_at);
                    self.log(
                        msg.at,
                        format!(
                            "{name} seq {seq} -> {outcome}{} ({})",
                            detail
                                .as_deref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default(),
                            ms(took)
                        ),
                    );
                    self.replies.insert(
                        (p, seq),
                        Reply {
                            kind,
                            detail,
                            at: msg.at,
                            value,
                        },
                    );
                    Ok(())
                } else if value.get("event").and_then(Value::as_str) == Some("callback") {
                    let handle = value
                        .get("handle")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    self.log(msg.at, format!("{name} event callback on {handle}"));
                    *self.callbacks.entry((p, handle)).or_default() += 1;
                    Ok(())
                } else {
                    Err(Stop::Broken(format!(
                        "worker {name} wrote a message that is neither a reply (no `seq`) nor a known event: {line:?}"
                    )))
                }
            }
            Incoming::Eof | Incoming::ReadError(_) => {
                if self.procs[p].killed {
                    return Ok(());
                }
                let status = self.procs[p].exit_status(Duration::from_millis(500));
                let why = match msg.incoming {
                    Incoming::ReadError(e) => format!("worker {name} wrote {e}"),
                    _ => format!("worker {name} closed its output"),
                };
                Err(Stop::Broken(format!(
                    "{why}; {} (with {} command(s) unanswered)",
                    describe_exit(status),
                    self.outstanding[p].len()
                )))
            }
        }
    }

    /// Waits until `deadline` for the reply to `seq` of worker `p`.
    fn wait_reply(&mut self, p: usize, seq: u64, deadline: Instant) -> Result<Option<Reply>, Stop> {
        loop {
            if let Some(r) = self.replies.remove(&(p, seq)) {
                return Ok(Some(r));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            match self.rx.recv_timeout((deadline - now).min(LIVENESS_POLL)) {
                Ok(msg) => self.receive(msg)?,
                Err(RecvTimeoutError::Timeout) => self.check_alive()?,
                Err(RecvTimeoutError::Disconnected) => {
                    // Every reader has ended: nothing more can arrive.
                    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    return Ok(None);
                }
            }
        }
    }

    /// Stops the trial when a worker that the runner did not kill has exited, even if a process
    /// it started still holds its output open, so that no end of file arrives.
    fn check_alive(&mut self) -> Result<(), Stop> {
        for p in 0..self.procs.len() {
            if self.procs[p].killed {
                continue;
            }
            let Some(status) = self.procs[p].exit_status(Duration::ZERO) else {
                continue;
            };
            // Its last lines and its end of file may still be on their way, and say more.
            let grace = Instant::now() + EXIT_GRACE;
            while let Ok(msg) = self
                .rx
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
            {
                self.receive(msg)?;
            }
            return Err(Stop::Broken(format!(
                "worker {} exited ({status}) with {} command(s) unanswered, and a process it started still holds its output open",
                self.scenario.processes[p],
                self.outstanding[p].len()
            )));
        }
        Ok(())
    }

    /// Like [`Trial::wait_reply`], for windows in which a reply must *not* come: a reply that the
    /// runner received at or after `deadline` (because the runner itself was slow to look) does
    /// not count as arriving within the window; it is kept for a later `await`.
    fn wait_reply_before(
        &mut self,
        p: usize,
        seq: u64,
        deadline: Instant,
    ) -> Result<Option<Reply>, Stop> {
        match self.wait_reply(p, seq, deadline)? {
            Some(reply) if reply.at >= deadline => {
                self.replies.insert((p, seq), reply);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Handles whatever has already arrived, without waiting.
    fn drain(&mut self) -> Result<(), Stop> {
        while let Ok(msg) = self.rx.try_recv() {
            self.receive(msg)?;
        }
        Ok(())
    }

    fn proc(&self, name: &str) -> usize {
        self.index[name]
    }

    fn path(&self, path: &str) -> PathBuf {
        let dir = self.dir.path().to_string_lossy();
        let path = path.replace("{dir}", &dir);
        self.dir.path().join(path)
    }

    fn worker_path(&self, path: &str) -> String {
        path.replace("{dir}", &self.dir.path().to_string_lossy())
    }

    fn run_all(&mut self) -> Verdict {
        for i in 0..self.scenario.steps.len() {
            let step = &self.scenario.steps[i];
            let summary = step.summary();
            let now = Instant::now();
            self.log(now, format!("step {}: {summary}", i + 1));
            if let Err(stop) = self.step(step).and_then(|()| self.drain()) {
                let rule = self.scenario.rule_of(i).to_owned();
                let verdict = stop.into_verdict(Some(i), Some(rule), summary.clone());
                if let Verdict::Fail(f) | Verdict::Error(f) = &verdict {
                    let line = format!(
                        "step {} FAILED: expected {}; observed {}",
                        i + 1,
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

    /// Sends a command and checks its reply against `expect` (not `blocks`).
    fn exchange(
        &mut self,
        p: usize,
        command: Value,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
    ) -> Result<Reply, Stop> {
        let seq = self.send(p, command)?;
        let sent_at = self.outstanding[p][&seq].sent_at;
        self.expect_reply(p, seq, sent_at, sent_at, expect, within, timeout)
    }

    /// Waits for the reply to `seq` and checks it. `from` is when the `within` window starts.
    #[expect(
        clippy::too_many_arguments,
        reason = "one place that checks every kind of reply"
    )]
    fn expect_reply(
        &mut self,
        p: usize,
        seq: u64,
        sent_at: Instant,
        from: Instant,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
    ) -> Result<Reply, Stop> {
        let window = self.timing.window(within.unwrap_or(Window::Prompt));
        let mut deadline = from + window;
        let limit = timeout.and_then(|t| self.timing.timeout(t));
        let contention = expect.allows(Kind::TimedOut) || expect.allows(Kind::WouldBlock);
        if let (true, Some(t)) = (contention, limit) {
            deadline = deadline.max(sent_at + t + self.timing.overshoot());
        }
        let Some(reply) = self.wait_reply(p, seq, deadline)? else {
            let op = self.outstanding[p].get(&seq).map_or("", |s| s.op.as_str());
            if !LOCK_OPS.contains(&op) {
                return Err(Stop::Broken(format!(
                    "worker {} gave no reply to `{op}` (seq {seq}) after {}, though `{op}` never waits for a lock; it is still running",
                    self.scenario.processes[p],
                    ms(Instant::now().saturating_duration_since(sent_at))
                )));
            }
            return Err(Stop::fail(
                format!(
                    "{expect} within {}",
                    ms(deadline.saturating_duration_since(sent_at))
                ),
                format!(
                    "{NO_REPLY} {} (still blocked)",
                    ms(Instant::now().saturating_duration_since(sent_at))
                ),
            ));
        };
        let took = reply.at.saturating_duration_since(sent_at);
        let detail = reply
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        if !expect.allows(reply.kind) {
            return Err(Stop::fail(
                expect.to_string(),
                format!("{}{detail} after {}", reply.kind, ms(took)),
            ));
        }
        if let (Kind::TimedOut | Kind::WouldBlock, Some(t)) = (reply.kind, limit)
            && !t.is_zero()
        {
            if took < t {
                return Err(Stop::fail(
                    format!("{} no earlier than the timeout of {}", reply.kind, ms(t)),
                    format!("{} after {}", reply.kind, ms(took)),
                ));
            }
            if took > t + self.timing.overshoot() {
                return Err(Stop::fail(
                    format!(
                        "{} within {} of the timeout of {}",
                        reply.kind,
                        ms(self.timing.overshoot()),
                        ms(t)
                    ),
                    format!("{} after {}", reply.kind, ms(took)),
                ));
            }
        }
        Ok(reply)
    }

    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        let prompt = Expect::OneOf([Kind::Ok].into());
        match step {
            Step::Open {
                process,
                thread,
                handle,
                path,
                timeout,
                callback,
                expect,
            } => {
                let p = self.proc(process);
                let timeout_ms = self.timing.timeout(*timeout).map(|d| d.as_millis() as u64);
                let command = json!({"op": "open", "thread": thread, "handle": handle,
                    "path": self.worker_path(path), "timeout_ms": timeout_ms, "callback": callback});
                self.timeouts.insert((p, handle.clone()), *timeout);
                let reply = self.exchange(p, command, expect, None, None)?;
                if reply.kind == Kind::IoError {
                    self.failed_open.insert((p, handle.clone()));
                }
            }
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
                let p = self.proc(process);
                let op = if matches!(step, Step::Acquire { .. }) {
                    "acquire"
                } else {
                    "release"
                };
                if self.failed_open.contains(&(p, handle.clone())) {
                    if expect.allows(Kind::IoError) {
                        self.log(
                            Instant::now(),
                            format!("not sent: opening {handle} failed with io_error, as allowed"),
                        );
                        return Ok(());
                    }
                    return Err(Stop::fail(
                        expect.to_string(),
                        format!("opening {handle} failed with io_error, so it cannot {op}"),
                    ));
                }
                let timeout = self.timeouts.get(&(p, handle.clone())).copied();
                let command = json!({"op": op, "thread": thread, "handle": handle});
                if *expect == Expect::Blocks {
                    let seq = self.send(p, command)?;
                    let sent_at = self.outstanding[p][&seq].sent_at;
                    let settle = self.timing.window(Window::Settle);
                    if let Some(reply) = self.wait_reply_before(p, seq, sent_at + settle)? {
                        let detail = reply.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                        return Err(Stop::fail(
                            format!("blocks (no reply within {})", ms(settle)),
                            format!(
                                "{}{detail} after {}",
                                reply.kind,
                                ms(reply.at.saturating_duration_since(sent_at))
                            ),
                        ));
                    }
                    self.pending.insert(
                        (p, thread.clone()),
                        Pending {
                            seq,
                            sent_at,
                            handle: handle.clone(),
                        },
                    );
                } else {
                    self.exchange(p, command, expect, *within, timeout)?;
                }
            }
            Step::Await {
                process,
                thread,
                expect,
                within,
            } => {
                let p = self.proc(process);
                let pending = self
                    .pending
                    .remove(&(p, thread.clone()))
                    .expect("checked when the scenario was loaded");
                let timeout = self.timeouts.get(&(p, pending.handle.clone())).copied();
                self.expect_reply(
                    p,
                    pending.seq,
                    pending.sent_at,
                    Instant::now(),
                    expect,
                    *within,
                    timeout,
                )?;
            }
            Step::ExpectBlocked {
                process,
                thread,
                window,
            } => {
                let p = self.proc(process);
                let pending = self.pending[&(p, thread.clone())].clone();
                let length = self.timing.window(*window);
                if let Some(reply) =
                    self.wait_reply_before(p, pending.seq, Instant::now() + length)?
                {
                    return Err(Stop::fail(
                        format!("still blocked for another {}", ms(length)),
                        format!(
                            "{} {} after it was sent",
                            reply.kind,
                            ms(reply.at.saturating_duration_since(pending.sent_at))
                        ),
                    ));
                }
            }
            Step::ExpectCallbacks {
                process,
                handle,
                count,
            } => {
                let p = self.proc(process);
                let key = (p, handle.clone());
                self.drain()?;
                let deadline = Instant::now() + self.timing.window(Window::Prompt);
                while self.callbacks.get(&key).copied().unwrap_or(0) < *count
                    && Instant::now() < deadline
                {
                    match self.rx.recv_timeout(deadline - Instant::now()) {
                        Ok(msg) => self.receive(msg)?,
                        Err(_) => break,
                    }
                }
                let seen = self.callbacks.get(&key).copied().unwrap_or(0);
                if seen != *count {
                    return Err(Stop::fail(
                        format!("{count} call(s) of the contention callback so far"),
                        format!("{seen} call(s)"),
                    ));
                }
            }
            Step::Close {
                process,
                thread,
                handle,
            } => {
                let p = self.proc(process);
                let command = json!({"op": "close", "thread": thread, "handle": handle});
                self.exchange(p, command, &prompt, None, None)?;
            }
            Step::FileOpen {
                process,
                thread,
                file,
                path,
            } => {
                let p = self.proc(process);
                let command = json!({"op": "file_open", "thread": thread, "file": file,
                    "path": self.worker_path(path)});
                self.exchange(p, command, &prompt, None, None)?;
            }
            Step::FileClose {
                process,
                thread,
                file,
            } => {
                let p = self.proc(process);
                let command = json!({"op": "file_close", "thread": thread, "file": file});
                self.exchange(p, command, &prompt, None, None)?;
            }
            Step::SpawnChild {
                process,
                thread,
                child,
            } => {
                let p = self.proc(process);
                let command = json!({"op": "spawn_child", "thread": thread, "child": child});
                let reply = self.exchange(p, command, &prompt, None, None)?;
                match reply.value.get("pid").and_then(Value::as_u64) {
                    Some(pid) => self.procs[p].add_child(pid as u32),
                    None => {
                        return Err(Stop::Broken(format!(
                            "worker {process} answered spawn_child without a `pid`"
                        )));
                    }
                }
            }
            Step::Kill { process } => {
                let p = self.proc(process);
                self.procs[p]
                    .kill()
                    .map_err(|e| Stop::Broken(format!("cannot kill worker {process}: {e}")))?;
                self.outstanding[p].clear();
                self.pending.retain(|(q, _), _| *q != p);
                self.log(Instant::now(), format!("{process} killed and reaped"));
            }
            Step::WriteFile { path, content } => {
                let path = self.path(path);
                std::fs::write(&path, content).map_err(|e| {
                    Stop::Broken(format!("the runner cannot write {}: {e}", path.display()))
                })?;
            }
            Step::CheckFile {
                path,
                exists,
                content,
            } => {
                let full = self.path(path);
                let found = full.exists();
                if found != *exists {
                    return Err(Stop::fail(
                        format!(
                            "{path} {}",
                            if *exists { "exists" } else { "does not exist" }
                        ),
                        format!("{path} {}", if found { "exists" } else { "does not exist" }),
                    ));
                }
                if let Some(want) = content {
                    let got = std::fs::read(&full).map_err(|e| {
                        Stop::Broken(format!("the runner cannot read {}: {e}", full.display()))
                    })?;
                    if got != want.as_bytes() {
                        return Err(Stop::fail(
                            format!("{path} contains {want:?}"),
                            format!("{path} contains {:?}", String::from_utf8_lossy(&got)),
                        ));
                    }
                }
            }
            Step::Mkdir { path, mode } => {
                let full = self.path(path);
                std::fs::create_dir_all(&full).map_err(|e| {
                    Stop::Broken(format!("the runner cannot create {}: {e}", full.display()))
                })?;
                if let Some(mode) = mode {
                    set_mode(&full, parse_mode(mode).expect("checked when loaded"))
                        .map_err(|e| Stop::Skip(format!("cannot set permissions here: {e}")))?;
                    self.restricted.push(full);
                }
            }
            Step::Symlink { path, target } => {
                let full = self.path(path);
                symlink_dir(Path::new(&self.worker_path(target)), &full)
                    .map_err(|e| Stop::Skip(format!("cannot create a symbolic link here: {e}")))?;
            }
            Step::Stress { duration, seed } => {
                use crate::stress::StepOutcome;
                let procs = self.scenario.processes.len() as u32;
                let report = crate::stress::scenario_step(
                    &self.imps,
                    self.dir.path(),
                    procs,
                    *seed,
                    duration.length(),
                    self.timing,
                );
                for line in report.log {
                    self.log(Instant::now(), line);
                }
                match report.outcome {
                    StepOutcome::Pass => {}
                    StepOutcome::Fail { expected, observed } => {
                        return Err(Stop::fail(expected, observed));
                    }
                    StepOutcome::Unknown(reason) => return Err(Stop::Skip(reason)),
                    StepOutcome::Broken(message) => return Err(Stop::Broken(message)),
                }
            }
        }
        Ok(())
    }
}

fn describe_exit(status: Option<std::process::ExitStatus>) -> String {
    match status {
        Some(s) => format!("it exited with {s}"),
        None => "it is still running".into(),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "Unix permission bits",
    ))
}

#[cfg(unix)]
fn make_world_writable(path: &Path) -> std::io::Result<()> {
    set_mode(path, 0o777)
}

#[cfg(not(unix))]
fn make_world_writable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)?;
    // Wine (8.0 at least) reports success from `CreateSymbolicLinkW` and creates nothing.
    match std::fs::symlink_metadata(link) {
        Ok(metadata) if metadata.file_type().is_symlink() => Ok(()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the system reported the link created, but there is none (Wine does this)",
        )),
    }
}

#[cfg(not(any(unix, windows)))]
fn symlink_dir(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "symbolic links",
    ))
}

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
