//! How long a reply took, judged against the margins of [`crate::timing`]: a timeout neither
//! early nor late, a free lock at once, a woken waiter promptly; and the noise measured again
//! before a lock is judged too slow.

use std::time::{Duration, Instant};

use lockspec_protocol::Op;

use super::exchange::Received;
use super::verdict::Stop;
use super::{FailKind, Measure, MeasureKind, Trial, ms};
use crate::scenario::Kind;
use crate::timing::{Noise, Window};

/// How many plain sleeps measure a worker's wake-up delay, and how long each is.
const SLEEP_PROBES: usize = 8;
const SLEEP_PROBE: Duration = Duration::from_millis(10);

/// The worker thread the sleeps run on, apart from every thread a scenario names.
const NOISE_THREAD: &str = "lockspec-noise";

impl Trial<'_> {
    /// Before a lock is judged too slow or too late, measures the noise once more, with the
    /// reference's hand-offs and with plain sleeps in the judged worker `p` (its runtime's own
    /// wake-up delay, now), and widens the margins if the moment is noisier than the start of the
    /// run was; says whether it measured, so that the reply is judged again.
    pub(super) fn recheck_noise(&mut self, stop: &Stop, p: usize) -> Result<bool, Stop> {
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
    pub(super) fn judge_time(
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
            return self.judge_timeout(kind, took, t);
        }
        let Some(span) = reply.span else {
            return Ok(());
        };
        if awaited {
            if kind != Kind::Acquired {
                return Ok(());
            }
            return self.judge_handoff(reply.sent.at_ns, span.t_ns);
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

    /// The duration that `reply` shows, as [`Trial::judge_time`] judges it: the overshoot of a
    /// timeout, a woken waiter's hand-off, or an immediate call's length; `None` when there is
    /// nothing to measure (a worker without times, a waiter with no release before it).
    pub(super) fn measure(
        &self,
        reply: &Received,
        limit: Option<Duration>,
        awaited: bool,
    ) -> Option<Measure> {
        let kind = reply.kind;
        let span = reply.span?;
        let (kind, duration) = match (kind, limit) {
            (Kind::TimedOut | Kind::WouldBlock, Some(t)) if !t.is_zero() => {
                (MeasureKind::Overshoot, span.duration().saturating_sub(t))
            }
            (Kind::Acquired, _) if awaited => {
                let freed = self.freed_between(reply.sent.at_ns, span.t_ns)?;
                (
                    MeasureKind::Handoff,
                    Duration::from_nanos(span.t_ns - freed),
                )
            }
            _ if !awaited && reply.sent.calls_lock => (MeasureKind::Call, span.duration()),
            _ => return None,
        };
        Some(Measure { kind, duration })
    }

    /// The last release or kill that completed after `began` and no later than `returned`.
    fn freed_between(&self, began: u64, returned: u64) -> Option<u64> {
        self.freed_ns
            .iter()
            .copied()
            .filter(|&f| f >= began && f <= returned)
            .max()
    }

    /// A timeout of `t` that ended the call with `kind` after `took`: neither early nor late.
    fn judge_timeout(&self, kind: Kind, took: Duration, t: Duration) -> Result<(), Stop> {
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
        Ok(())
    }

    /// A waiter that began at `began` and acquired at `acquired` (both on the shared clock): it
    /// must have done so promptly once the lock was freed.
    fn judge_handoff(&self, began: u64, acquired: u64) -> Result<(), Stop> {
        // Measured from the last release or kill that completed after the waiter began and
        // before it returned; none such means that it returned while the release was under way.
        let Some(freed) = self.freed_between(began, acquired) else {
            return Ok(());
        };
        let latency = Duration::from_nanos(acquired - freed);
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
        Ok(())
    }
}
