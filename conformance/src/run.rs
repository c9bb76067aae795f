//! Runs one scenario against one implementation and judges it.
//!
//! The runner starts the scenario's worker processes in a fresh temporary directory, sends each
//! step, stamps every reply with its own monotonic clock, and compares outcomes and timings with
//! the expectations. It never takes a lock itself.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockspec_protocol::{Op, Reply, Span, now_ns};

use crate::process::{Implementation, is_privileged};
use crate::scenario::{Expect, Kind, Requirement, Scenario, Step, parse_mode};
use crate::session::{Broken, BrokenKind, Delivery, Sent, Session};
use crate::timing::{Noise, Timeout, Timing, Window};

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
    /// The worker broke in a way the runner saw itself (a file it could not write, say).
    Runner,
    /// The implementation is not installed here.
    Unavailable,
}

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What kind of wrong.
    pub kind: FailKind,
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
    let mut settings = settings.clone();
    if let Some(reference) = settings
        .reference
        .as_ref()
        .filter(|_| settings.timing.noise().samples == 0)
    {
        match crate::calibrate::shared(reference, settings.timing) {
            Ok(noise) => settings.timing = settings.timing.with_noise(noise),
            Err(e) => {
                return TrialReport {
                    verdict: Stop::Broken(e).into_verdict(
                        None,
                        None,
                        "calibrate the margins".into(),
                    ),
                    elapsed: start.elapsed(),
                    timeline: Vec::new(),
                    stderr: Vec::new(),
                    workers: Vec::new(),
                };
            }
        }
    }
    let settings = &settings;
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
    }
}

/// Why a trial stopped early.
enum Stop {
    Fail {
        expected: String,
        observed: String,
        /// The step to blame, when it is not the one being played.
        step: Option<usize>,
        kind: FailKind,
    },
    Broken(String),
    /// A worker broke the protocol, as the session saw it.
    Protocol(Broken),
    Skip(String),
    /// The implementation cannot run here (not installed), with the message that says why.
    Unavailable(String),
}

impl Stop {
    fn fail(expected: impl Into<String>, observed: impl Into<String>) -> Stop {
        Stop::failed(FailKind::WrongOutcome, expected, observed)
    }

    fn failed(kind: FailKind, expected: impl Into<String>, observed: impl Into<String>) -> Stop {
        Stop::Fail {
            expected: expected.into(),
            observed: observed.into(),
            step: None,
            kind,
        }
    }

    /// The step this stop blames, when it is not the one being played.
    fn blamed_step(&self) -> Option<usize> {
        match self {
            Stop::Fail { step, .. } => *step,
            _ => None,
        }
    }

    fn into_verdict(self, step: Option<usize>, rule: Option<String>, summary: String) -> Verdict {
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
                kind: FailKind::Runner,
                step,
                rule,
                summary,
                expected: "a worker that follows the protocol".into(),
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

/// A reply, as received.
#[derive(Debug, Clone)]
struct Received {
    kind: Kind,
    detail: Option<String>,
    /// When the runner read it.
    at: Instant,
    /// The library call's start and end on the worker's clock (protocol 2).
    span: Option<Span>,
    /// The command it answers.
    sent: Sent,
    reply: Reply,
}

impl Received {
    /// How long the call took: on the worker's clock when it gave its times, else from sending
    /// the command to reading the reply.
    fn took(&self) -> Duration {
        self.span.map_or_else(
            || self.at.saturating_duration_since(self.sent.at),
            Span::duration,
        )
    }

    fn detail(&self) -> String {
        self.detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    }
}

/// How many plain sleeps measure a worker's wake-up delay, and how long each is.
const SLEEP_PROBES: usize = 8;
const SLEEP_PROBE: Duration = Duration::from_millis(10);

/// The worker thread the sleeps run on, apart from every thread a scenario names.
const NOISE_THREAD: &str = "lockspec-noise";

/// An operation left blocked on a thread.
#[derive(Debug, Clone)]
struct Pending {
    proc: usize,
    seq: u64,
    sent: Sent,
    handle: String,
    /// The step that sent it, which is blamed if it turns out not to have blocked.
    step: usize,
    /// When the first command that could free the lock (a release, a close, a kill) was sent
    /// after it, on the shared clock.
    freed_from_ns: Option<u64>,
}

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
        let deadline = Instant::now() + self.timing.startup();
        let mut early = Vec::new();
        self.session
            .handshake(deadline, &mut early)
            .map_err(|mut broken| {
                if broken.kind == BrokenKind::NoHello {
                    broken.message = format!(
                        "worker {} did not answer `hello` within {}",
                        broken.worker.map_or("?", |w| self.session.name(w)),
                        ms(self.timing.startup())
                    );
                }
                Stop::Protocol(broken)
            })?;
        for delivery in early {
            self.deliver(delivery)?;
        }
        let mut missing = Vec::new();
        for p in 0..self.session.len() {
            let hello = self.session.hello(p).cloned().unwrap_or_default();
            let caps: Vec<&str> = hello.capabilities.iter().map(String::as_str).collect();
            for req in &self.scenario.requires {
                if !req.met_by(&caps) {
                    missing.push(*req);
                }
            }
            self.workers.push(WorkerInfo {
                process: self.session.name(p).to_owned(),
                implementation: hello.implementation.clone(),
                version: hello.version.clone(),
                language: hello.language.clone(),
                capabilities: hello.capabilities.clone(),
                protocol: hello.protocol,
            });
        }
        if let Some(req) = missing.first() {
            return Err(Stop::Skip(req.unmet()));
        }
        Ok(())
    }

    fn send(&mut self, p: usize, thread: &str, op: Op) -> Result<u64, Stop> {
        let frees = matches!(
            op,
            Op::Release { .. } | Op::Close { .. } | Op::FileClose { .. }
        );
        let acquiring = match &op {
            Op::Acquire { handle } => Some(handle.clone()),
            _ => None,
        };
        let seq = self.session.send(p, Some(thread), op).map_err(broken)?;
        if let Some(handle) = acquiring {
            *self.acquiring.entry((p, handle)).or_default() += 1;
        }
        if frees {
            let at_ns = self.session.sent(p, seq).map_or_else(now_ns, |s| s.at_ns);
            self.freeing(at_ns);
        }
        Ok(seq)
    }

    /// Notes that a command that may free a lock was sent at `at_ns`.
    fn freeing(&mut self, at_ns: u64) {
        for pending in self.pending.values_mut() {
            pending.freed_from_ns.get_or_insert(at_ns);
        }
    }

    /// Handles one message from a worker.
    fn deliver(&mut self, delivery: Delivery) -> Result<(), Stop> {
        match delivery {
            Delivery::Event {
                worker, event, at, ..
            } => {
                let name = self.session.name(worker).to_owned();
                self.log(at, format!("{name} event callback on {}", event.handle));
                let key = (worker, event.handle);
                if self.acquiring.get(&key).copied().unwrap_or(0) == 0 {
                    // PROTOCOL.md: an event is written before the reply to the acquire it
                    // happened in, so none can come while no acquire on its object is answered.
                    return Err(broken(Broken {
                        kind: BrokenKind::StrayEvent,
                        worker: Some(worker),
                        message: format!(
                            "worker {name} reported a call of the contention callback of {} while no acquire on it was unanswered",
                            key.1
                        ),
                    }));
                }
                *self.callbacks.entry(key).or_default() += 1;
                Ok(())
            }
            Delivery::Reply {
                worker,
                reply,
                sent,
                at,
                ..
            } => {
                let name = self.session.name(worker);
                let span = reply.span();
                let took = span.map_or_else(
                    || {
                        format!(
                            "{} after sending",
                            ms(at.saturating_duration_since(sent.at))
                        )
                    },
                    |s| format!("call took {}", ms(s.duration())),
                );
                let line = format!(
                    "{name} seq {} -> {}{} ({took})",
                    reply.seq,
                    reply.outcome,
                    reply
                        .detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default(),
                );
                self.log(at, line);
                if let (true, Some(handle)) = (sent.op == "acquire", &sent.handle)
                    && let Some(n) = self.acquiring.get_mut(&(worker, handle.clone()))
                {
                    *n = n.saturating_sub(1);
                }
                if let (true, Some(span)) = (sent.op == "release", span) {
                    self.freed_ns.push(span.t_ns);
                }
                let received = Received {
                    kind: reply.outcome,
                    detail: reply.detail.clone(),
                    at,
                    span,
                    sent,
                    reply: *reply,
                };
                self.check_pending(worker, &received)?;
                self.replies.insert((worker, received.reply.seq), received);
                Ok(())
            }
        }
    }

    /// A blocked operation that answers before anything could free the lock did not block: the
    /// step that expected it to is blamed. Judged on the worker's clock, so a reply that the runner
    /// read late still counts as early when it was.
    fn check_pending(&self, p: usize, received: &Received) -> Result<(), Stop> {
        let Some(pending) = self
            .pending
            .values()
            .find(|pending| pending.proc == p && pending.seq == received.reply.seq)
        else {
            return Ok(());
        };
        let Some(span) = received.span else {
            return Ok(());
        };
        if received.kind != Kind::Acquired {
            return Ok(());
        }
        if pending.freed_from_ns.is_none_or(|freed| span.t_ns < freed) {
            return Err(Stop::Fail {
                expected: "blocks until the lock is freed".into(),
                observed: format!(
                    "{}{} {} after it was sent, before anything freed the lock (the call took {})",
                    received.kind,
                    received.detail(),
                    ms(Duration::from_nanos(
                        span.t_ns.saturating_sub(pending.sent.at_ns)
                    )),
                    ms(span.duration())
                ),
                step: Some(pending.step),
                kind: FailKind::NotBlocked,
            });
        }
        Ok(())
    }

    /// Waits until `deadline` for the reply to `seq` of worker `p`.
    fn wait_reply(
        &mut self,
        p: usize,
        seq: u64,
        deadline: Instant,
    ) -> Result<Option<Received>, Stop> {
        loop {
            if let Some(r) = self.replies.remove(&(p, seq)) {
                return Ok(Some(r));
            }
            match self.session.next(deadline).map_err(broken)? {
                Some(delivery) => self.deliver(delivery)?,
                None => return Ok(None),
            }
        }
    }

    /// Like [`Trial::wait_reply`], for windows in which a reply must *not* come: a reply that the
    /// runner received at or after `deadline` (because the runner itself was slow to look) does
    /// not count as arriving within the window; it is kept for a later `await`.
    fn wait_reply_before(
        &mut self,
        p: usize,
        seq: u64,
        deadline: Instant,
    ) -> Result<Option<Received>, Stop> {
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
        while let Some(delivery) = self.session.try_next().map_err(broken)? {
            self.deliver(delivery)?;
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

    /// Sends a command and checks its reply against `expect` (not `blocks`).
    fn exchange(
        &mut self,
        p: usize,
        thread: &str,
        op: Op,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
    ) -> Result<Received, Stop> {
        let seq = self.send(p, thread, op)?;
        let from = Instant::now();
        self.expect_reply(p, seq, from, expect, within, timeout, false)
    }

    /// Waits for the reply to `seq` and checks it. `from` is when the `within` window starts;
    /// `awaited` says that the operation was blocked, so that a success is a hand-off.
    #[expect(
        clippy::too_many_arguments,
        reason = "one place that checks every kind of reply"
    )]
    fn expect_reply(
        &mut self,
        p: usize,
        seq: u64,
        from: Instant,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
        awaited: bool,
    ) -> Result<Received, Stop> {
        let sent = self
            .session
            .sent(p, seq)
            .cloned()
            .or_else(|| self.replies.get(&(p, seq)).map(|r| r.sent.clone()))
            .expect("a command sent by this trial");
        let window = self.timing.window(within.unwrap_or(Window::Prompt));
        let mut deadline = from + window;
        let limit = timeout.and_then(|t| self.timing.timeout(t));
        let contention = expect.allows(Kind::TimedOut) || expect.allows(Kind::WouldBlock);
        if let (true, Some(t)) = (contention, limit) {
            deadline = deadline.max(sent.at + t + self.timing.overshoot() + window);
        }
        let Some(reply) = self.wait_reply(p, seq, deadline)? else {
            let waited = ms(Instant::now().saturating_duration_since(sent.at));
            let op = sent.op;
            if !sent.calls_lock {
                return Err(broken(Broken {
                    kind: BrokenKind::Stuck,
                    worker: Some(p),
                    message: format!(
                        "worker {} gave no reply to `{op}` (seq {seq}) after {waited}, though `{op}` never waits for a lock; it is still running",
                        self.scenario.processes[p],
                    ),
                }));
            }
            return Err(Stop::failed(
                FailKind::NoReply,
                format!(
                    "{expect} within {}",
                    ms(deadline.saturating_duration_since(sent.at))
                ),
                format!("{NO_REPLY} {waited} (still blocked)"),
            ));
        };
        if !expect.allows(reply.kind) {
            return Err(Stop::fail(
                expect.to_string(),
                format!(
                    "{}{} after {}",
                    reply.kind,
                    reply.detail(),
                    ms(reply.took())
                ),
            ));
        }
        if let Err(stop) = self.judge_time(&reply, limit, awaited) {
            if !self.recheck_noise(&stop, p)? {
                return Err(stop);
            }
            self.judge_time(&reply, limit, awaited)?;
        }
        Ok(reply)
    }

    /// Before a lock is judged too slow or too late, measures the noise once more, with the
    /// reference's hand-offs and with plain sleeps in the judged worker `p` (its runtime's own
    /// wake-up delay, now), and widens the margins if the moment is noisier than the start of the
    /// run was; says whether it measured, so that the reply is judged again.
    fn recheck_noise(&mut self, stop: &Stop, p: usize) -> Result<bool, Stop> {
        let slow = matches!(
            stop,
            Stop::Fail {
                kind: FailKind::Slow | FailKind::Late,
                ..
            }
        );
        if !slow || self.rechecked {
            return Ok(false);
        }
        self.rechecked = true;
        let reference = match &self.reference {
            Some(reference) => crate::calibrate::calibrate(
                reference,
                Some(self.dir.path()),
                self.timing,
                crate::calibrate::RECHECK_ROUNDS,
            )
            .unwrap_or_else(|e| {
                self.timeline.push(format!("noise not measured again: {e}"));
                Noise::default()
            }),
            None => Noise::default(),
        };
        let sleeps = self.sleep_noise(p)?;
        let before = self.timing.noise();
        let noise = Noise {
            handoff_p99: before.handoff_p99.max(reference.handoff_p99).max(sleeps),
            overshoot_p99: before
                .overshoot_p99
                .max(reference.overshoot_p99)
                .max(sleeps),
            samples: before.samples + reference.samples,
        };
        self.timing = self.timing.with_noise(noise);
        self.log(
            Instant::now(),
            format!(
                "noise measured again: reference hand-off p99 {}, overshoot p99 {}; {}'s sleeps woke up to {} late; margins now {} and {}",
                ms(reference.handoff_p99),
                ms(reference.overshoot_p99),
                self.scenario.processes[p],
                ms(sleeps),
                ms(self.timing.handoff()),
                ms(self.timing.overshoot())
            ),
        );
        Ok(true)
    }

    /// How late worker `p` wakes from plain sleeps on a thread of its own (the most of a few);
    /// zero for a worker that does not time its calls or cannot sleep.
    fn sleep_noise(&mut self, p: usize) -> Result<Duration, Stop> {
        let mut worst = Duration::ZERO;
        if !self.session.timed(p) {
            return Ok(worst);
        }
        for _ in 0..SLEEP_PROBES {
            let op = Op::Sleep {
                ms: SLEEP_PROBE.as_millis() as u64,
            };
            let seq = self.send(p, NOISE_THREAD, op)?;
            let deadline = Instant::now() + self.timing.window(Window::Prompt) + SLEEP_PROBE;
            let Some(reply) = self.wait_reply(p, seq, deadline)? else {
                break;
            };
            if reply.kind != Kind::Ok {
                break;
            }
            worst = worst.max(reply.took().saturating_sub(SLEEP_PROBE));
        }
        Ok(worst)
    }

    /// Judges how long an allowed reply took: a timeout neither early nor late, a single attempt
    /// or a free lock at once, a woken waiter promptly. Durations come from the worker's clock;
    /// a version 1 worker, which gives none, is judged on timeouts only, from the runner's clock.
    fn judge_time(
        &self,
        reply: &Received,
        limit: Option<Duration>,
        awaited: bool,
    ) -> Result<(), Stop> {
        let took = reply.took();
        let kind = reply.kind;
        if let (Kind::TimedOut | Kind::WouldBlock, Some(t)) = (kind, limit)
            && !t.is_zero()
        {
            if took + self.timing.early_tolerance(t) < t {
                return Err(Stop::failed(
                    FailKind::Early,
                    format!("{kind} no earlier than the timeout of {}", ms(t)),
                    format!("{kind} after {}", ms(took)),
                ));
            }
            if took > t + self.timing.overshoot() {
                return Err(Stop::failed(
                    FailKind::Late,
                    format!(
                        "{kind} within {} of the timeout of {}",
                        ms(self.timing.overshoot()),
                        ms(t)
                    ),
                    format!("{kind} after {}", ms(took)),
                ));
            }
            return Ok(());
        }
        let Some(span) = reply.span else {
            return Ok(());
        };
        if awaited {
            if kind != Kind::Acquired {
                return Ok(());
            }
            // Measured from the last release or kill that completed after the waiter began and
            // before it returned; none such means that it returned while the release was under way.
            let began = reply.sent.at_ns;
            let Some(freed) = self
                .freed_ns
                .iter()
                .copied()
                .filter(|&f| f >= began && f <= span.t_ns)
                .max()
            else {
                return Ok(());
            };
            let latency = Duration::from_nanos(span.t_ns - freed);
            if latency > self.timing.handoff() {
                return Err(Stop::failed(
                    FailKind::Slow,
                    format!(
                        "acquired within {} of the lock being freed",
                        ms(self.timing.handoff())
                    ),
                    format!("acquired {} after the lock was freed", ms(latency)),
                ));
            }
            return Ok(());
        }
        if reply.sent.calls_lock && took > self.timing.at_once() {
            return Err(Stop::failed(
                FailKind::Slow,
                format!(
                    "{kind} at once (a call of at most {})",
                    ms(self.timing.at_once())
                ),
                format!("{kind}, the call took {}", ms(took)),
            ));
        }
        Ok(())
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
                let op = Op::Open {
                    handle: handle.clone(),
                    path: self.worker_path(path).into(),
                    timeout_ms,
                    callback: *callback,
                };
                self.timeouts.insert((p, handle.clone()), *timeout);
                let reply = self.exchange(p, thread, op, expect, None, None)?;
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
                let command = if matches!(step, Step::Acquire { .. }) {
                    Op::Acquire {
                        handle: handle.clone(),
                    }
                } else {
                    Op::Release {
                        handle: handle.clone(),
                    }
                };
                let op = command.name();
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
                if *expect == Expect::Blocks {
                    let seq = self.send(p, thread, command)?;
                    let sent = self.session.sent(p, seq).cloned().expect("just sent");
                    let settle = self.timing.window(Window::Settle);
                    if let Some(reply) = self.wait_reply_before(p, seq, sent.at + settle)? {
                        return Err(Stop::failed(
                            FailKind::NotBlocked,
                            format!("blocks (no reply within {})", ms(settle)),
                            format!(
                                "{}{} after {}",
                                reply.kind,
                                reply.detail(),
                                ms(reply.took())
                            ),
                        ));
                    }
                    let pending = Pending {
                        proc: p,
                        seq,
                        sent,
                        handle: handle.clone(),
                        step: self.current,
                        freed_from_ns: None,
                    };
                    // A reply read after the window may still show that the call never blocked.
                    if let Some(reply) = self.replies.get(&(p, seq)) {
                        let reply = reply.clone();
                        self.pending.insert((p, thread.clone()), pending);
                        self.check_pending(p, &reply)?;
                    } else {
                        self.pending.insert((p, thread.clone()), pending);
                    }
                } else {
                    self.exchange(p, thread, command, expect, *within, timeout)?;
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
                    Instant::now(),
                    expect,
                    *within,
                    timeout,
                    true,
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
                    return Err(Stop::failed(
                        FailKind::NotBlocked,
                        format!("still blocked for another {}", ms(length)),
                        format!(
                            "{}{} {} after it was sent",
                            reply.kind,
                            reply.detail(),
                            ms(reply.at.saturating_duration_since(pending.sent.at))
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
                while self.callbacks.get(&key).copied().unwrap_or(0) < *count {
                    match self.session.next(deadline).map_err(broken)? {
                        Some(delivery) => self.deliver(delivery)?,
                        None => break,
                    }
                }
                let seen = self.callbacks.get(&key).copied().unwrap_or(0);
                if seen != *count {
                    return Err(Stop::failed(
                        FailKind::Callbacks,
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
                let op = Op::Close {
                    handle: handle.clone(),
                };
                self.exchange(p, thread, op, &prompt, None, None)?;
            }
            Step::FileOpen {
                process,
                thread,
                file,
                path,
            } => {
                let p = self.proc(process);
                let op = Op::FileOpen {
                    file: file.clone(),
                    path: self.worker_path(path).into(),
                };
                self.exchange(p, thread, op, &prompt, None, None)?;
            }
            Step::FileClose {
                process,
                thread,
                file,
            } => {
                let p = self.proc(process);
                let op = Op::FileClose { file: file.clone() };
                self.exchange(p, thread, op, &prompt, None, None)?;
            }
            Step::SpawnChild {
                process,
                thread,
                child,
            } => {
                let p = self.proc(process);
                let op = Op::SpawnChild {
                    child: Some(child.clone()),
                };
                let reply = self.exchange(p, thread, op, &prompt, None, None)?;
                match reply.reply.pid {
                    Some(pid) => self.session.add_child(p, pid),
                    None => {
                        return Err(Stop::Broken(format!(
                            "worker {process} answered spawn_child without a `pid`"
                        )));
                    }
                }
            }
            Step::Kill { process } => {
                let p = self.proc(process);
                self.freeing(now_ns());
                self.session
                    .kill(p)
                    .map_err(|e| Stop::Broken(format!("cannot kill worker {process}: {e}")))?;
                self.acquiring.retain(|(q, _), _| *q != p);
                // Reaped: whatever the worker held is free from now on.
                self.freed_ns.push(now_ns());
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
                identity,
            } => {
                let full = self.path(path);
                let found = full.exists();
                if found != *exists {
                    return Err(Stop::failed(
                        FailKind::File,
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
                        return Err(Stop::failed(
                            FailKind::File,
                            format!("{path} contains {want:?}"),
                            format!("{path} contains {:?}", String::from_utf8_lossy(&got)),
                        ));
                    }
                }
                if let Some(name) = identity {
                    let now = crate::sys::file_identity(&full).map_err(|e| {
                        Stop::Skip(format!("cannot read the identity of {path} here: {e}"))
                    })?;
                    match self.identities.get(name) {
                        None => {
                            self.identities.insert(name.clone(), now);
                        }
                        Some(&first) if first != now => {
                            return Err(Stop::failed(
                                FailKind::File,
                                format!(
                                    "{path} is still the file `{name}` (device and inode {first:?})"
                                ),
                                format!(
                                    "{path} is another file (device and inode {now:?}): it was deleted and created again"
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            Step::HardLink { path, target } => {
                let (link, target) = (self.path(path), self.path(target));
                std::fs::hard_link(&target, &link)
                    .map_err(|e| Stop::Skip(format!("cannot create a hard link here: {e}")))?;
            }
            Step::Mkdir { path, mode } => {
                let full = self.path(path);
                std::fs::create_dir_all(&full).map_err(|e| {
                    Stop::Broken(format!("the runner cannot create {}: {e}", full.display()))
                })?;
                if let Some(mode) = mode {
                    crate::sys::set_mode(&full, parse_mode(mode).expect("checked when loaded"))
                        .map_err(|e| Stop::Skip(format!("cannot set permissions here: {e}")))?;
                    self.restricted.push(full);
                }
            }
            Step::Symlink { path, target } => {
                let full = self.path(path);
                crate::sys::symlink_dir(Path::new(&self.worker_path(target)), &full)
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
                    // A run that could not contend showed nothing: the trial learnt nothing, an error.
                    StepOutcome::Unknown(reason) => return Err(Stop::Broken(reason)),
                    StepOutcome::Broken(message) => return Err(Stop::Broken(message)),
                }
            }
        }
        Ok(())
    }
}

/// A break the session saw, as a reason to stop.
fn broken(broken: Broken) -> Stop {
    Stop::Protocol(broken)
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
