//! Measures this machine's timing noise at the start of a run, on the workers' clocks: lock
//! hand-offs between two worker processes and the overshoot of a short timed wait, both through
//! the reference implementation. The margins that judge promptness grow from these figures
//! (`timing::Timing::with_noise`), so that a loaded machine widens them by measurement.
//!
//! The runner takes no lock here either: two reference workers do, as in any trial.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockspec_protocol::{Kind, Op, Reply};

use crate::process::Implementation;
use crate::run::Settings;
use crate::session::{Broken, Delivery, Session};
use crate::timing::{Noise, Timing};

/// The timeout of the timed waits whose overshoot is measured.
const TIMED_WAIT: Duration = Duration::from_millis(10);

/// How many hand-offs and timed waits a calibration measures by default.
pub const DEFAULT_ROUNDS: usize = 40;

/// How many a second measurement, before a lock is judged too slow, takes.
pub const RECHECK_ROUNDS: usize = 12;

/// The settings of a run whose margins are calibrated now, by `reference`, with lock files under
/// `dir` (the system's temporary directory when `None`); `reference` measures the noise again
/// when a lock is judged slow.
///
/// # Errors
///
/// As [`calibrate`].
pub fn settings(
    reference: Implementation,
    dir: Option<PathBuf>,
    timing: Timing,
) -> Result<Settings, String> {
    let noise = calibrate(&reference, dir.as_deref(), timing, DEFAULT_ROUNDS)?;
    Ok(Settings {
        timing: timing.with_noise(noise),
        dir,
        reference: Some(reference),
    })
}

/// Measures the noise with two workers of `reference` in a fresh directory under `parent` (the
/// system's temporary directory when `None`): `rounds` hand-offs and a quarter as many timed
/// waits.
///
/// # Errors
///
/// Says what went wrong when the workers cannot be started or break the protocol.
pub fn calibrate(
    reference: &Implementation,
    parent: Option<&Path>,
    timing: Timing,
    rounds: usize,
) -> Result<Noise, String> {
    crate::cleanup::install();
    let mut builder = tempfile::Builder::new();
    let prefix = format!("{}calibrate-", crate::cleanup::dir_prefix());
    builder.prefix(&prefix);
    let dir = match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .map_err(|e| format!("cannot create a directory to calibrate in: {e}"))?;
    let _entry = crate::cleanup::DirEntry::new(dir.path());
    let mut session = Session::new(dir.path());
    let holder = spawn(&mut session, reference, "holder")?;
    let waiter = spawn(&mut session, reference, "waiter")?;
    let mut probe = Probe {
        session,
        deadline: timing.startup(),
        early: Vec::new(),
    };
    let result = probe.measure(holder, waiter, rounds);
    probe.session.kill_all();
    result.map_err(|e| format!("calibration with the reference failed: {e}"))
}

fn spawn(session: &mut Session, imp: &Implementation, name: &str) -> Result<usize, String> {
    session
        .spawn(imp, name, false)
        .map_err(|(broken, _)| format!("calibration: {broken}"))
}

/// Two reference workers, the deadline of any one reply, and replies read before they were
/// awaited.
struct Probe {
    session: Session,
    deadline: Duration,
    early: Vec<(usize, Reply)>,
}

impl Probe {
    fn measure(&mut self, holder: usize, waiter: usize, rounds: usize) -> Result<Noise, Broken> {
        self.session
            .handshake(Instant::now() + self.deadline, &mut Vec::new())?;
        let open = |handle: &str, timeout: Option<Duration>| Op::Open {
            handle: handle.into(),
            path: "calibrate.lock".into(),
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
            callback: false,
        };
        self.call(holder, open("a", None))?;
        self.call(waiter, open("b", None))?;
        self.call(waiter, open("t", Some(TIMED_WAIT)))?;
        let acquire = |handle: &str| Op::Acquire {
            handle: handle.into(),
        };
        let release = |handle: &str| Op::Release {
            handle: handle.into(),
        };
        let mut handoffs = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            self.call(holder, acquire("a"))?;
            let waiting = self.session.send(waiter, None, acquire("b"))?;
            // Time for the waiter to start waiting; the hand-off itself is measured on the
            // workers' clocks, from the release's return to the waiter's.
            self.pause(TIMED_WAIT)?;
            let freed = self.call(holder, release("a"))?;
            let woken = self.reply(waiter, waiting)?;
            if let (Some(freed), Some(woken)) = (freed.span(), woken.span()) {
                handoffs.push(Duration::from_nanos(woken.t_ns.saturating_sub(freed.t_ns)));
            }
            self.call(waiter, release("b"))?;
        }
        self.call(holder, acquire("a"))?;
        let mut overshoots = Vec::new();
        for _ in 0..rounds.div_ceil(4) {
            let reply = self.call(waiter, acquire("t"))?;
            if let (Kind::TimedOut | Kind::WouldBlock, Some(span)) = (reply.outcome, reply.span()) {
                overshoots.push(span.duration().saturating_sub(TIMED_WAIT));
            }
        }
        self.call(holder, release("a"))?;
        Ok(Noise {
            handoff_p99: p99(&mut handoffs),
            overshoot_p99: p99(&mut overshoots),
            samples: handoffs.len().min(overshoots.len()),
        })
    }

    /// Waits `length` on the runner's side while nothing is expected; a message that arrives
    /// meanwhile is kept for [`Probe::reply`].
    fn pause(&mut self, length: Duration) -> Result<(), Broken> {
        let until = Instant::now() + length;
        match self.session.next(until)? {
            None => Ok(()),
            Some(delivery) => Err(Broken {
                kind: crate::session::BrokenKind::UnexpectedSeq,
                worker: None,
                message: format!("an unexpected message while a waiter waited: {delivery:?}"),
            }),
        }
    }

    fn call(&mut self, w: usize, op: Op) -> Result<Reply, Broken> {
        let seq = self.session.send(w, None, op)?;
        self.reply(w, seq)
    }

    fn reply(&mut self, w: usize, seq: u64) -> Result<Reply, Broken> {
        if let Some(i) = self
            .early
            .iter()
            .position(|(worker, reply)| *worker == w && reply.seq == seq)
        {
            return Ok(self.early.swap_remove(i).1);
        }
        let deadline = Instant::now() + self.deadline;
        loop {
            match self.session.next(deadline)? {
                Some(Delivery::Reply { worker, reply, .. }) if worker == w && reply.seq == seq => {
                    return Ok(*reply);
                }
                Some(Delivery::Reply { worker, reply, .. }) => self.early.push((worker, *reply)),
                Some(Delivery::Event { .. }) => {}
                None => {
                    return Err(Broken {
                        kind: crate::session::BrokenKind::Stuck,
                        worker: Some(w),
                        message: format!(
                            "worker {} did not answer seq {seq}",
                            self.session.name(w)
                        ),
                    });
                }
            }
        }
    }
}

/// How long a calibration written by another process of the same run stays good.
const SHARED_FOR: Duration = Duration::from_secs(60);

/// The noise for a run of many processes (nextest runs each test in one): measured once per
/// process, and shared between processes through a file in the system's temporary directory for
/// [`SHARED_FOR`], so that a test run calibrates about once a minute rather than once a test.
///
/// # Errors
///
/// As [`calibrate`].
pub fn shared(reference: &Implementation, timing: Timing) -> Result<Noise, String> {
    static NOISE: std::sync::OnceLock<Result<Noise, String>> = std::sync::OnceLock::new();
    NOISE
        .get_or_init(|| {
            let file = std::env::temp_dir().join("lockspec-noise.json");
            if let Some(noise) = read_shared(&file) {
                return Ok(noise);
            }
            let noise = calibrate(reference, None, timing, DEFAULT_ROUNDS)?;
            write_shared(&file, noise);
            Ok(noise)
        })
        .clone()
}

/// The figures of a shared calibration file, with when they were measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SharedNoise {
    /// The shared monotonic clock when it was measured.
    measured_ns: u64,
    handoff_p99_ns: u64,
    overshoot_p99_ns: u64,
    samples: usize,
}

fn read_shared(file: &Path) -> Option<Noise> {
    let shared: SharedNoise = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    let age = lockspec_protocol::now_ns().checked_sub(shared.measured_ns)?;
    (Duration::from_nanos(age) < SHARED_FOR).then(|| Noise {
        handoff_p99: Duration::from_nanos(shared.handoff_p99_ns),
        overshoot_p99: Duration::from_nanos(shared.overshoot_p99_ns),
        samples: shared.samples,
    })
}

/// Writes the figures for other processes, atomically; a failure only costs them a calibration.
fn write_shared(file: &Path, noise: Noise) {
    let shared = SharedNoise {
        measured_ns: lockspec_protocol::now_ns(),
        handoff_p99_ns: noise.handoff_p99.as_nanos() as u64,
        overshoot_p99_ns: noise.overshoot_p99.as_nanos() as u64,
        samples: noise.samples,
    };
    let Some(dir) = file.parent() else { return };
    if let Ok(mut temporary) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write as _;
        let text = serde_json::to_vec(&shared).unwrap_or_default();
        if temporary.write_all(&text).is_ok() {
            let _ = temporary.persist(file);
        }
    }
}

/// The 99th percentile (the largest value with fewer than a hundred samples); zero when empty.
fn p99(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    match values.len() {
        0 => Duration::ZERO,
        n => values[(n * 99).div_ceil(100).saturating_sub(1).min(n - 1)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_largest_of_few_and_a_high_rank_of_many() {
        let ms = Duration::from_millis;
        assert_eq!(p99(&mut []), Duration::ZERO);
        assert_eq!(p99(&mut [ms(3), ms(1), ms(2)]), ms(3));
        let mut many: Vec<Duration> = (1..=200).map(ms).collect();
        assert_eq!(p99(&mut many), ms(198));
    }
}
