//! The measurements, each through two workers of one implementation that share a lock file:
//! `holder` and `waiter`. Every duration comes from the workers' own `start_ns` and `t_ns` (the
//! machine's monotonic clock), so the protocol's round trips are not measured.

use std::path::Path;
use std::time::{Duration, Instant};

use lockspec_conformance::process::Implementation;
use serde::Serialize;
use serde_json::json;

use crate::client::{Worker, timed};
use crate::cpu;

/// How long any single reply may take before the benchmark gives up on the implementation.
const REPLY: Duration = Duration::from_secs(20);

/// The timeout of the handle that measures hand-off to a timed acquire: far longer than any
/// hand-off, so that it never expires.
const TIMED_HANDOFF_TIMEOUT_MS: u64 = 60_000;

/// How many samples of each kind a run takes, and how long it watches CPU use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Plan {
    /// Uncontended acquire + release pairs (after as many again to warm up, at most 100).
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
        uncontended: 2000,
        handoffs: 200,
        timeouts: 50,
        timeout_ms: 20,
        cpu_window_ms: 1000,
    };

    /// A smoke test: a few samples of everything.
    pub const QUICK: Plan = Plan {
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

/// Measures `imp` with `plan`, with its lock files in a fresh directory under `parent`.
pub fn measure(
    imp: &Implementation,
    abilities: Abilities,
    plan: &Plan,
    parent: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Measured {
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
    if let Err(error) = run(imp, abilities, plan, parent, &mut measured, progress) {
        measured.error = Some(error);
    }
    measured
}

fn run(
    imp: &Implementation,
    abilities: Abilities,
    plan: &Plan,
    parent: Option<&Path>,
    measured: &mut Measured,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let dir = match parent {
        Some(parent) => tempfile::Builder::new()
            .prefix("lockspec-bench-")
            .tempdir_in(parent),
        None => tempfile::Builder::new().prefix("lockspec-bench-").tempdir(),
    }
    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let mut pair = Pair::start(imp, dir.path(), plan)?;
    measured.language = pair.holder.hello["language"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    measured.version = pair.holder.hello["version"]
        .as_str()
        .unwrap_or("?")
        .to_owned();

    // A phase that fails leaves its workers in an unknown state (an acquire may still block):
    // the next phase gets fresh ones, and the failures are reported together.
    let mut failures = Vec::new();
    let mut phase =
        |name: &str, pair: &mut Pair, run: &mut dyn FnMut(&mut Pair) -> Result<(), String>| {
            progress(name);
            if let Err(error) = run(pair) {
                failures.push(format!("{name}: {error}"));
                *pair = Pair::start(imp, dir.path(), plan)?;
            }
            Ok::<(), String>(())
        };
    phase("uncontended acquire + release", &mut pair, &mut |pair| {
        measured.uncontended = Some(pair.uncontended(plan.uncontended)?);
        Ok(())
    })?;
    phase("hand-off to a blocking acquire", &mut pair, &mut |pair| {
        measured.handoff_blocking = Some(pair.handoff("block", plan.handoffs)?);
        Ok(())
    })?;
    if abilities.timed_wait {
        phase("hand-off to a timed acquire", &mut pair, &mut |pair| {
            measured.handoff_timed = Some(pair.handoff("timed", plan.handoffs)?);
            Ok(())
        })?;
    }
    phase("timeouts", &mut pair, &mut |pair| {
        measured.timeouts = Some(pair.timeouts(plan.timeouts, plan.timeout_ms)?);
        Ok(())
    })?;
    if let Some(source) = cpu::source() {
        phase("CPU while waiting", &mut pair, &mut |pair| {
            let window = Duration::from_millis(plan.cpu_window_ms);
            let timed_wait = if abilities.timed_wait {
                Some(pair.cpu("timed", window)?)
            } else {
                None
            };
            let blocking_wait = Some(pair.cpu("block", window / 2)?);
            measured.cpu = Some(Cpu {
                timed_wait,
                blocking_wait,
                source,
            });
            Ok(())
        })?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Two workers of one implementation on one lock file.
struct Pair {
    holder: Worker,
    waiter: Worker,
    jitter: Jitter,
}

impl Pair {
    fn start(imp: &Implementation, dir: &Path, plan: &Plan) -> Result<Pair, String> {
        let mut holder = Worker::start(imp, dir, "holder")?;
        let mut waiter = Worker::start(imp, dir, "waiter")?;
        let open = |handle: &str, timeout_ms: Option<u64>| {
            json!({"op": "open", "handle": handle, "path": "bench.lock",
                "timeout_ms": timeout_ms, "callback": false})
        };
        holder.expect(open("h", None), "ok", REPLY)?;
        waiter.expect(open("block", None), "ok", REPLY)?;
        waiter.expect(open("timed", Some(TIMED_HANDOFF_TIMEOUT_MS)), "ok", REPLY)?;
        waiter.expect(open("short", Some(plan.timeout_ms)), "ok", REPLY)?;
        Ok(Pair {
            holder,
            waiter,
            jitter: Jitter::new(),
        })
    }

    fn acquire_holder(&mut self) -> Result<crate::client::Timed, String> {
        let reply =
            self.holder
                .expect(json!({"op": "acquire", "handle": "h"}), "acquired", REPLY)?;
        timed(&reply)
    }

    fn release_holder(&mut self) -> Result<crate::client::Timed, String> {
        let reply =
            self.holder
                .expect(json!({"op": "release", "handle": "h"}), "released", REPLY)?;
        timed(&reply)
    }

    fn release_waiter(&mut self, handle: &str) -> Result<(), String> {
        self.waiter.expect(
            json!({"op": "release", "handle": handle, "thread": "waiter"}),
            "released",
            REPLY,
        )?;
        Ok(())
    }

    fn uncontended(&mut self, pairs: usize) -> Result<Uncontended, String> {
        let (mut acquire, mut release, mut pair) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..pairs + pairs.min(100) {
            let acquired = self.acquire_holder()?;
            let released = self.release_holder()?;
            if round < pairs.min(100) {
                continue;
            }
            let (a, r) = (
                signed(acquired.duration_ns()),
                signed(released.duration_ns()),
            );
            acquire.push(a);
            release.push(r);
            pair.push(a + r);
        }
        let pair_ns = Summary::of(&pair).ok_or("no samples")?;
        Ok(Uncontended {
            per_second: 1e9 / pair_ns.p50.max(1.0),
            pair_ns,
            acquire_ns: Summary::of(&acquire).ok_or("no samples")?,
            release_ns: Summary::of(&release).ok_or("no samples")?,
        })
    }

    /// Starts an acquire of `handle` on the waiter while the holder holds the lock, and returns
    /// once the waiter is waiting: a pause with jitter (so that a waiter that polls is caught at
    /// every phase of its period), then, on Linux, until none of its threads is running.
    fn start_waiting(&mut self, handle: &str) -> Result<u64, String> {
        let seq = self
            .waiter
            .send(json!({"op": "acquire", "handle": handle, "thread": "waiter"}))?;
        std::thread::sleep(
            Duration::from_micros(500) + self.jitter.up_to(Duration::from_micros(1500)),
        );
        cpu::wait_until_idle(self.waiter.pid(), Duration::from_millis(50));
        if let Some(reply) = self.waiter.reply_now(seq)? {
            return Err(format!(
                "an acquire of a held lock answered {reply} before the holder released it"
            ));
        }
        Ok(seq)
    }

    fn handoff(&mut self, handle: &str, samples: usize) -> Result<Handoff, String> {
        let (mut latency, mut after_return, mut discarded) = (Vec::new(), Vec::new(), 0);
        for _ in 0..samples {
            self.acquire_holder()?;
            let seq = self.start_waiting(handle)?;
            let released = self.release_holder()?;
            let reply = self.waiter.reply(seq, REPLY)?;
            let acquired = timed(&reply)?;
            if acquired.outcome != "acquired" {
                return Err(format!(
                    "the waiting acquire answered {reply}, expected acquired"
                ));
            }
            self.release_waiter(handle)?;
            if acquired.start_ns >= released.start_ns {
                discarded += 1;
                continue;
            }
            latency.push(signed(acquired.t_ns) - signed(released.start_ns));
            after_return.push(signed(acquired.t_ns) - signed(released.t_ns));
        }
        Ok(Handoff {
            latency_ns: Summary::of(&latency).ok_or("every sample was discarded")?,
            after_release_returned_ns: Summary::of(&after_return).ok_or("no samples")?,
            samples_ns: latency,
            discarded,
        })
    }

    fn timeouts(&mut self, samples: usize, timeout_ms: u64) -> Result<Timeouts, String> {
        let timeout = signed(timeout_ms * 1_000_000);
        self.acquire_holder()?;
        let mut overshoot = Vec::new();
        for _ in 0..samples {
            let reply = self.waiter.call(
                json!({"op": "acquire", "handle": "short", "thread": "waiter"}),
                REPLY,
            )?;
            let attempt = timed(&reply)?;
            if attempt.outcome != "timed_out" {
                return Err(format!(
                    "a timed acquire of a held lock answered {reply}, expected timed_out"
                ));
            }
            overshoot.push(signed(attempt.duration_ns()) - timeout);
        }
        self.release_holder()?;
        Ok(Timeouts {
            timeout_ms,
            overshoot_ns: Summary::of(&overshoot).ok_or("no samples")?,
            early: overshoot.iter().filter(|&&o| o < 0).count(),
            samples_ns: overshoot,
        })
    }

    /// The waiter's CPU use while an acquire of `handle` waits for `window`.
    fn cpu(&mut self, handle: &str, window: Duration) -> Result<f64, String> {
        self.acquire_holder()?;
        let seq = self.start_waiting(handle)?;
        // Past the set-up of the wait, into its steady state.
        std::thread::sleep(Duration::from_millis(50));
        let pid = self.waiter.pid();
        let (before, start) = (cpu::used(pid), Instant::now());
        std::thread::sleep(window);
        let (after, elapsed) = (cpu::used(pid), start.elapsed());
        self.release_holder()?;
        self.waiter.reply(seq, REPLY)?;
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

/// Pseudo-random pauses (xorshift), so that samples are not in step with a polling waiter.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos(),
        );
        Jitter(seed | 1)
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
    fn jitter_stays_below_its_bound() {
        let mut jitter = Jitter::new();
        let max = Duration::from_micros(1500);
        let draws: Vec<Duration> = (0..1000).map(|_| jitter.up_to(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        assert!(draws.iter().any(|d| *d > max / 2), "not spread: {draws:?}");
    }
}
