//! The measurements, each through two workers of one implementation that share a lock file:
//! `holder` and `waiter`. Every duration comes from the workers' own `start_ns` and `t_ns` (the
//! machine's monotonic clock), so the protocol's round trips are not measured.
//!
//! The machine's state drifts (frequency, idle states, other work), and a ratio is only fair if
//! both sides saw the same conditions. So every implementation's workers are started first, and
//! each kind of measurement is taken in [`Plan::rounds`] rounds that go through all the
//! implementations in turn, each round taking its share of the samples.

use std::path::Path;
use std::time::Duration;

use lockspec_conformance::process::Implementation;
use lockspec_protocol::{Kind as Outcome, Op, Span, now_ns};
use serde::Serialize;

use crate::client::{Role, Workers, span};
use crate::cpu;

/// How long any single reply may take before the benchmark gives up on the implementation.
const REPLY: Duration = Duration::from_secs(20);

/// The timeout of the handle that measures hand-off to a timed acquire: far longer than any
/// hand-off, so that it never expires.
const TIMED_HANDOFF_TIMEOUT_MS: u64 = 60_000;

/// The waiter's thread for its acquires and releases, so that its default thread stays free.
const WAITER_THREAD: Option<&str> = Some("waiter");

/// How many samples of each kind a run takes, and how long it watches CPU use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Plan {
    /// How many rounds each kind of measurement is split into.
    pub rounds: usize,
    /// Uncontended acquire + release pairs (each round warms up with a tenth more first).
    pub uncontended: usize,
    /// Hand-offs per kind of acquire.
    pub handoffs: usize,
    /// Timed acquires that time out.
    pub timeouts: usize,
    /// The timeout of those, in milliseconds.
    pub timeout_ms: u64,
    /// How long the waiter's CPU use is watched, per kind of acquire, in milliseconds.
    pub cpu_window_ms: u64,
}

impl Plan {
    /// The default: well under a minute for the reference and the baseline together.
    pub const DEFAULT: Plan = Plan {
        rounds: 5,
        uncontended: 2000,
        handoffs: 200,
        timeouts: 50,
        timeout_ms: 20,
        cpu_window_ms: 1000,
    };

    /// A smoke test: a few samples of everything.
    pub const QUICK: Plan = Plan {
        rounds: 2,
        uncontended: 100,
        handoffs: 20,
        timeouts: 5,
        timeout_ms: 20,
        cpu_window_ms: 200,
    };
}

/// A summary of samples in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Nearest-rank percentiles of `samples`; `None` when there are none.
    pub fn of(samples: &[i64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index] as f64
        };
        Some(Summary {
            n: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            min: sorted[0] as f64,
            max: sorted[sorted.len() - 1] as f64,
            mean: sorted.iter().map(|&s| s as f64).sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// Uncontended acquire + release.
#[derive(Debug, Clone, Serialize)]
pub struct Uncontended {
    /// One acquire call plus one release call.
    pub pair_ns: Summary,
    pub acquire_ns: Summary,
    pub release_ns: Summary,
    /// Pairs per second at the median: 1 s / `pair_ns.p50`.
    pub per_second: f64,
}

/// Hand-off from a holder to a waiter that was already waiting.
#[derive(Debug, Clone, Serialize)]
pub struct Handoff {
    /// From the moment the holder's release call began to the moment the waiter's acquire call
    /// returned: the figure of the table.
    pub latency_ns: Summary,
    /// From the moment the holder's release call returned instead; can be negative, when the
    /// waiter is running before the holder's release has returned.
    pub after_release_returned_ns: Summary,
    /// Every sample of `latency_ns`, in order.
    pub samples_ns: Vec<i64>,
    /// Samples thrown away because the waiter had not begun to wait when the release began.
    pub discarded: usize,
}

/// Timed acquires that time out.
#[derive(Debug, Clone, Serialize)]
pub struct Timeouts {
    pub timeout_ms: u64,
    /// How long after its timeout each acquire returned; negative is a broken lock.
    pub overshoot_ns: Summary,
    /// How many returned before their timeout.
    pub early: usize,
    pub samples_ns: Vec<i64>,
}

/// CPU time the waiting worker used per second of waiting, as a fraction of one core.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub timed_wait: Option<f64>,
    pub blocking_wait: Option<f64>,
    /// Where the figures come from: `schedstat` (nanoseconds, every thread) or `stat` (utime +
    /// stime, clock ticks).
    pub source: &'static str,
}

/// Everything measured about one implementation.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub name: String,
    pub language: String,
    pub version: String,
    pub command: String,
    pub uncontended: Option<Uncontended>,
    pub handoff_blocking: Option<Handoff>,
    pub handoff_timed: Option<Handoff>,
    pub timeouts: Option<Timeouts>,
    pub cpu: Option<Cpu>,
    /// Why the measurements stopped early, if they did.
    pub error: Option<String>,
}

/// What an implementation can be asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Abilities {
    /// Whether its timed acquire really waits for a release (the baseline's does not).
    pub timed_wait: bool,
}

/// One implementation being measured: its workers, and what they have given so far.
struct Subject {
    imp: Implementation,
    abilities: Abilities,
    /// Where the lock files are; `None` if it could not be created.
    dir: Option<tempfile::TempDir>,
    /// `None` once the workers could not be (re)started.
    pair: Option<Pair>,
    measured: Measured,
    /// What failed, one entry per kind of measurement.
    failures: Vec<String>,
    acquire: Vec<i64>,
    release: Vec<i64>,
    blocking: Samples,
    timed: Samples,
    overshoot: Vec<i64>,
    cpu_timed: Vec<f64>,
    cpu_blocking: Vec<f64>,
}

/// Hand-off samples.
#[derive(Default)]
struct Samples {
    latency: Vec<i64>,
    after_return: Vec<i64>,
    discarded: usize,
}

impl Samples {
    fn handoff(self) -> Option<Handoff> {
        Some(Handoff {
            latency_ns: Summary::of(&self.latency)?,
            after_release_returned_ns: Summary::of(&self.after_return)?,
            samples_ns: self.latency,
            discarded: self.discarded,
        })
    }
}

/// The kinds of measurement, in the order they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uncontended,
    HandoffBlocking,
    HandoffTimed,
    Timeouts,
    Cpu,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Uncontended,
        Kind::HandoffBlocking,
        Kind::HandoffTimed,
        Kind::Timeouts,
        Kind::Cpu,
    ];

    fn describe(self) -> &'static str {
        match self {
            Kind::Uncontended => "uncontended acquire + release",
            Kind::HandoffBlocking => "hand-off to a blocking acquire",
            Kind::HandoffTimed => "hand-off to a timed acquire",
            Kind::Timeouts => "timeouts",
            Kind::Cpu => "CPU while waiting",
        }
    }
}

/// Measures every implementation with `plan`, each with its lock files in a fresh directory
/// under `parent`, interleaving them round by round.
pub fn measure_all(
    implementations: &[(Implementation, Abilities)],
    plan: &Plan,
    parent: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Vec<Measured> {
    let mut subjects: Vec<Subject> = implementations
        .iter()
        .map(|(imp, abilities)| Subject::start(imp, *abilities, plan, parent))
        .collect();
    let cpu_source = cpu::source();
    for kind in Kind::ALL {
        if kind == Kind::Cpu && cpu_source.is_none() {
            continue;
        }
        progress(kind.describe());
        let rounds = plan.rounds.max(1);
        for round in 0..rounds {
            for subject in &mut subjects {
                subject.take(kind, round, rounds, plan);
            }
        }
    }
    subjects
        .into_iter()
        .map(|subject| subject.finish(plan, cpu_source))
        .collect()
}

/// `total` split into `rounds` shares as even as possible: the share of round `round`.
fn share(total: usize, round: usize, rounds: usize) -> usize {
    total / rounds + usize::from(round < total % rounds)
}

impl Subject {
    fn start(
        imp: &Implementation,
        abilities: Abilities,
        plan: &Plan,
        parent: Option<&Path>,
    ) -> Subject {
        let mut measured = Measured {
            name: imp.name.clone(),
            language: String::new(),
            version: String::new(),
            command: imp.command_line(),
            uncontended: None,
            handoff_blocking: None,
            handoff_timed: None,
            timeouts: None,
            cpu: None,
            error: None,
        };
        let dir = match parent {
            Some(parent) => tempfile::Builder::new()
                .prefix("lockspec-bench-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("lockspec-bench-").tempdir(),
        };
        let mut failures = Vec::new();
        let (dir, pair) = match dir {
            Ok(dir) => {
                let pair = Pair::start(imp, dir.path(), plan)
                    .map_err(|e| failures.push(format!("start: {e}")))
                    .ok();
                (Some(dir), pair)
            }
            Err(e) => {
                failures.push(format!("cannot create a temporary directory: {e}"));
                (None, None)
            }
        };
        if let Some(pair) = &pair {
            let hello = pair.workers.hello(Role::Holder);
            let field = |value: &Option<String>| value.as_deref().unwrap_or("?").to_owned();
            measured.language = field(&hello.language);
            measured.version = field(&hello.version);
        }
        Subject {
            imp: imp.clone(),
            abilities,
            dir,
            pair,
            measured,
            failures,
            acquire: Vec::new(),
            release: Vec::new(),
            blocking: Samples::default(),
            timed: Samples::default(),
            overshoot: Vec::new(),
            cpu_timed: Vec::new(),
            cpu_blocking: Vec::new(),
        }
    }

    /// Takes round `round`'s share of `kind`, unless this kind already failed. A failure leaves
    /// the workers in an unknown state (an acquire may still block), so they are replaced.
    fn take(&mut self, kind: Kind, round: usize, rounds: usize, plan: &Plan) {
        if kind == Kind::HandoffTimed && !self.abilities.timed_wait {
            return;
        }
        let prefix = format!("{}: ", kind.describe());
        if self.failures.iter().any(|f| f.starts_with(&prefix)) {
            return;
        }
        let Some(pair) = &mut self.pair else {
            return;
        };
        let result = match kind {
            Kind::Uncontended => pair
                .uncontended(share(plan.uncontended, round, rounds))
                .map(|(acquire, release)| {
                    self.acquire.extend(acquire);
                    self.release.extend(release);
                }),
            Kind::HandoffBlocking => pair.handoff(
                "block",
                share(plan.handoffs, round, rounds),
                &mut self.blocking,
            ),
            Kind::HandoffTimed => pair.handoff(
                "timed",
                share(plan.handoffs, round, rounds),
                &mut self.timed,
            ),
            Kind::Timeouts => pair
                .timeouts(share(plan.timeouts, round, rounds), plan.timeout_ms)
                .map(|overshoot| self.overshoot.extend(overshoot)),
            Kind::Cpu => {
                let window = Duration::from_millis(plan.cpu_window_ms) / rounds as u32;
                let timed = if self.abilities.timed_wait {
                    pair.cpu("timed", window).map(Some)
                } else {
                    Ok(None)
                };
                timed.and_then(|timed| {
                    let blocking = pair.cpu("block", window / 2)?;
                    self.cpu_timed.extend(timed);
                    self.cpu_blocking.push(blocking);
                    Ok(())
                })
            }
        };
        if let Err(error) = result {
            self.failures.push(format!("{prefix}{error}"));
            self.pair = self.dir.as_ref().and_then(|dir| {
                Pair::start(&self.imp, dir.path(), plan)
                    .map_err(|e| self.failures.push(format!("restart: {e}")))
                    .ok()
            });
        }
    }

    fn finish(mut self, plan: &Plan, cpu_source: Option<&'static str>) -> Measured {
        let pairs: Vec<i64> = self
            .acquire
            .iter()
            .zip(&self.release)
            .map(|(a, r)| a + r)
            .collect();
        if let (Some(pair_ns), Some(acquire_ns), Some(release_ns)) = (
            Summary::of(&pairs),
            Summary::of(&self.acquire),
            Summary::of(&self.release),
        ) {
            self.measured.uncontended = Some(Uncontended {
                per_second: 1e9 / pair_ns.p50.max(1.0),
                pair_ns,
                acquire_ns,
                release_ns,
            });
        }
        self.measured.handoff_blocking = self.blocking.handoff();
        self.measured.handoff_timed = self.timed.handoff();
        if let Some(overshoot_ns) = Summary::of(&self.overshoot) {
            self.measured.timeouts = Some(Timeouts {
                timeout_ms: plan.timeout_ms,
                early: self.overshoot.iter().filter(|&&o| o < 0).count(),
                overshoot_ns,
                samples_ns: self.overshoot,
            });
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        if let Some(source) = cpu_source
            && !self.cpu_blocking.is_empty()
        {
            self.measured.cpu = Some(Cpu {
                timed_wait: mean(&self.cpu_timed),
                blocking_wait: mean(&self.cpu_blocking),
                source,
            });
        }
        if !self.failures.is_empty() {
            self.measured.error = Some(self.failures.join("; "));
        }
        self.measured
    }
}

/// Two workers of one implementation on one lock file.
struct Pair {
    workers: Workers,
    jitter: Jitter,
}

/// An acquire of `handle`.
fn acquire(handle: &str) -> Op {
    Op::Acquire {
        handle: handle.into(),
    }
}

/// A release of `handle`.
fn release(handle: &str) -> Op {
    Op::Release {
        handle: handle.into(),
    }
}

impl Pair {
    fn start(imp: &Implementation, dir: &Path, plan: &Plan) -> Result<Pair, String> {
        let mut workers = Workers::start(imp, dir)?;
        let open = |handle: &str, timeout_ms: Option<u64>| Op::Open {
            handle: handle.into(),
            path: "bench.lock".into(),
            timeout_ms,
            callback: false,
        };
        let mut expect_ok = |role, op| workers.expect(role, None, op, Outcome::Ok, REPLY);
        expect_ok(Role::Holder, open("h", None))?;
        expect_ok(Role::Waiter, open("block", None))?;
        expect_ok(Role::Waiter, open("timed", Some(TIMED_HANDOFF_TIMEOUT_MS)))?;
        expect_ok(Role::Waiter, open("short", Some(plan.timeout_ms)))?;
        Ok(Pair {
            workers,
            jitter: Jitter::new(),
        })
    }

    fn acquire_holder(&mut self) -> Result<Span, String> {
        let reply =
            self.workers
                .expect(Role::Holder, None, acquire("h"), Outcome::Acquired, REPLY)?;
        span(&reply)
    }

    fn release_holder(&mut self) -> Result<Span, String> {
        let reply =
            self.workers
                .expect(Role::Holder, None, release("h"), Outcome::Released, REPLY)?;
        span(&reply)
    }

    fn release_waiter(&mut self, handle: &str) -> Result<(), String> {
        self.workers.expect(
            Role::Waiter,
            WAITER_THREAD,
            release(handle),
            Outcome::Released,
            REPLY,
        )?;
        Ok(())
    }

    /// `pairs` uncontended acquire + release pairs, after a tenth as many to warm up: the
    /// durations of the acquire calls and of the release calls.
    fn uncontended(&mut self, pairs: usize) -> Result<(Vec<i64>, Vec<i64>), String> {
        let warm_up = pairs.div_ceil(10);
        let (mut acquire, mut release) = (Vec::new(), Vec::new());
        for round in 0..warm_up + pairs {
            let acquired = self.acquire_holder()?;
            let released = self.release_holder()?;
            if round >= warm_up {
                acquire.push(duration_ns(acquired));
                release.push(duration_ns(released));
            }
        }
        Ok((acquire, release))
    }

    /// Starts an acquire of `handle` on the waiter while the holder holds the lock, and returns
    /// once the waiter is waiting: a pause with jitter (so that a waiter that polls is caught at
    /// every phase of its period), then, on Linux, until none of its threads is running.
    fn start_waiting(&mut self, handle: &str) -> Result<u64, String> {
        let seq = self
            .workers
            .send(Role::Waiter, WAITER_THREAD, acquire(handle))?;
        std::thread::sleep(
            Duration::from_micros(500) + self.jitter.up_to(Duration::from_micros(1500)),
        );
        cpu::wait_until_idle(self.workers.pid(Role::Waiter), Duration::from_millis(50));
        if let Some(reply) = self.workers.reply_now(Role::Waiter, seq)? {
            return Err(format!(
                "an acquire of a held lock answered {} before the holder released it",
                reply.to_line()
            ));
        }
        Ok(seq)
    }

    /// `count` hand-offs to an acquire of `handle`, added to `samples`.
    fn handoff(&mut self, handle: &str, count: usize, samples: &mut Samples) -> Result<(), String> {
        for _ in 0..count {
            self.acquire_holder()?;
            let seq = self.start_waiting(handle)?;
            let released = self.release_holder()?;
            let reply = self.workers.reply(Role::Waiter, seq, REPLY)?;
            let acquired = span(&reply)?;
            if reply.outcome != Outcome::Acquired {
                return Err(format!(
                    "the waiting acquire answered {}, expected acquired",
                    reply.to_line()
                ));
            }
            self.release_waiter(handle)?;
            if acquired.start_ns >= released.start_ns {
                samples.discarded += 1;
                continue;
            }
            samples
                .latency
                .push(signed(acquired.t_ns) - signed(released.start_ns));
            samples
                .after_return
                .push(signed(acquired.t_ns) - signed(released.t_ns));
        }
        Ok(())
    }

    /// `count` timed acquires of a held lock: how late after `timeout_ms` each returned.
    fn timeouts(&mut self, count: usize, timeout_ms: u64) -> Result<Vec<i64>, String> {
        let timeout = signed(timeout_ms * 1_000_000);
        self.acquire_holder()?;
        let mut overshoot = Vec::new();
        for _ in 0..count {
            let seq = self
                .workers
                .send(Role::Waiter, WAITER_THREAD, acquire("short"))?;
            let reply = self.workers.reply(Role::Waiter, seq, REPLY)?;
            let attempt = span(&reply)?;
            if reply.outcome != Outcome::TimedOut {
                return Err(format!(
                    "a timed acquire of a held lock answered {}, expected timed_out",
                    reply.to_line()
                ));
            }
            overshoot.push(duration_ns(attempt) - timeout);
        }
        self.release_holder()?;
        Ok(overshoot)
    }

    /// The waiter's CPU use while an acquire of `handle` waits for `window`.
    fn cpu(&mut self, handle: &str, window: Duration) -> Result<f64, String> {
        self.acquire_holder()?;
        let seq = self.start_waiting(handle)?;
        // Past the set-up of the wait, into its steady state.
        std::thread::sleep(Duration::from_millis(50));
        let pid = self.workers.pid(Role::Waiter);
        let (before, start_ns) = (cpu::used(pid), now_ns());
        std::thread::sleep(window);
        let (after, end_ns) = (cpu::used(pid), now_ns());
        let elapsed = Duration::from_nanos(end_ns.saturating_sub(start_ns));
        self.release_holder()?;
        self.workers.reply(Role::Waiter, seq, REPLY)?;
        self.release_waiter(handle)?;
        match (before, after) {
            (Some(before), Some(after)) => {
                Ok(after.saturating_sub(before).as_secs_f64() / elapsed.as_secs_f64())
            }
            _ => Err(format!("cannot read the CPU time of process {pid}")),
        }
    }
}

fn signed(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// How long the library call of `span` took, in nanoseconds.
fn duration_ns(span: Span) -> i64 {
    signed(span.t_ns - span.start_ns)
}

/// Pseudo-random pauses (xorshift), so that samples are not in step with a polling waiter.
struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock's nanoseconds.
    fn new() -> Jitter {
        Jitter(now_ns() | 1)
    }

    fn up_to(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(self.0 % max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<i64> = (1..=100).rev().collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.n, 100);
        assert_eq!(summary.p50, 50.0);
        assert_eq!(summary.p99, 99.0);
        assert_eq!(summary.min, 1.0);
        assert_eq!(summary.max, 100.0);
        assert_eq!(summary.mean, 50.5);
        assert!(Summary::of(&[]).is_none());
        assert_eq!(Summary::of(&[7]).unwrap().p99, 7.0);
    }

    #[test]
    fn rounds_share_the_samples_out_evenly() {
        let shares: Vec<usize> = (0..3).map(|round| share(10, round, 3)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!((0..5).map(|round| share(2, round, 5)).sum::<usize>(), 2);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        let mut jitter = Jitter::new();
        let max = Duration::from_micros(1500);
        let draws: Vec<Duration> = (0..1000).map(|_| jitter.up_to(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        assert!(draws.iter().any(|d| *d > max / 2), "not spread: {draws:?}");
    }
}
