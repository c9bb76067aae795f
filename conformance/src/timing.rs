//! Timing classes and margins: every duration the runner waits for or judges with, named, with
//! one scale factor.
//!
//! Scenarios never contain numbers of milliseconds; they name a class. The defaults are
//! documented in `spec/SCENARIOS.md` and multiplied by `--timing-scale` or `LOCKSPEC_TIMING_SCALE`.
//! The two margins that judge a lock's promptness, hand-off and overshoot, are calibrated: each is
//! the bound SPEC.md states plus a multiple of this machine's noise as measured at the start of
//! the run ([`Noise`]): a delay the machine adds to every wake-up adds to the lock's own, so the
//! margins grow with the load by measurement.

use std::time::Duration;

use serde::Deserialize;

/// A window the runner waits for, named in scenarios (`within`, `for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// How long an operation must stay unanswered to count as blocked.
    Settle,
    /// The deadline of an operation that must complete at once.
    Prompt,
    /// A window that shows "waits forever".
    Long,
    /// A window longer than the default timeouts libraries substitute for "none" (5, 10 and
    /// 30 seconds): only in `slow` scenarios.
    Forever,
}

impl Window {
    /// The name used in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Window::Settle => "settle",
            Window::Prompt => "prompt",
            Window::Long => "long",
            Window::Forever => "forever",
        }
    }
}

/// A lock object's timeout, named in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timeout {
    /// Wait forever.
    #[default]
    None,
    /// A single attempt.
    Zero,
    /// A short timeout that scenarios let expire.
    Short,
    /// A timeout long enough that doubling it, or adding a second wait to it, is unmistakable.
    Medium,
    /// A timeout longer than any scenario waits.
    Long,
}

impl Timeout {
    /// The name used in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Timeout::None => "none",
            Timeout::Zero => "zero",
            Timeout::Short => "short",
            Timeout::Medium => "medium",
            Timeout::Long => "long",
        }
    }
}

/// This machine's timing noise, measured on the workers' clocks at the start of a run (see
/// `calibrate`): the 99th percentile of a lock hand-off between two processes, and of the
/// overshoot of a short timed wait.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Noise {
    /// A waiter's wake-up after the holder's release returned.
    pub handoff_p99: Duration,
    /// A timed wait's return after its timeout.
    pub overshoot_p99: Duration,
    /// How many samples each figure rests on (0: not measured).
    pub samples: usize,
}

/// The bound on a woken waiter's or an immediate call's latency that SPEC.md states: the margin
/// never goes below it, however quiet the machine.
pub const HANDOFF_FLOOR: Duration = Duration::from_millis(100);

/// The bound on a timeout's overshoot that SPEC.md states.
pub const OVERSHOOT_FLOOR: Duration = Duration::from_millis(50);

/// How many times the measured noise a margin adds to its bound.
pub const NOISE_FACTOR: u32 = 2;

/// The largest scale accepted: every margin stays far below a day.
pub const MAX_SCALE: f64 = 1000.0;

/// The margins of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    scale: f64,
    noise: Noise,
}

/// The environment variable that sets the scale when no option does.
pub const SCALE_ENV: &str = "LOCKSPEC_TIMING_SCALE";

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            scale: 1.0,
            noise: Noise::default(),
        }
    }
}

impl Timing {
    /// Margins multiplied by `scale`.
    ///
    /// # Errors
    ///
    /// Returns a message when `scale` is not a number from 0.1 to [`MAX_SCALE`].
    pub fn new(scale: f64) -> Result<Timing, String> {
        if !scale.is_finite() || !(0.1..=MAX_SCALE).contains(&scale) {
            return Err(format!(
                "timing scale must be a number from 0.1 to {MAX_SCALE}, got {scale}"
            ));
        }
        Ok(Timing {
            scale,
            noise: Noise::default(),
        })
    }

    /// The same margins, with the promptness margins calibrated to `noise`.
    pub fn with_noise(self, noise: Noise) -> Timing {
        Timing { noise, ..self }
    }

    /// The noise the margins were calibrated to.
    pub fn noise(&self) -> Noise {
        self.noise
    }

    fn calibrated(&self, floor: Duration, measured: Duration) -> Duration {
        (floor + measured * NOISE_FACTOR).mul_f64(self.scale)
    }

    /// How long after the lock is freed a waiter may return, and how long a call on a free lock
    /// (or a single attempt) may take, on the worker's clock: "promptly" and "at once".
    pub fn handoff(&self) -> Duration {
        self.calibrated(HANDOFF_FLOOR, self.noise.handoff_p99)
    }

    /// How long an acquire that must complete at once may take, on the worker's clock.
    pub fn at_once(&self) -> Duration {
        self.handoff()
    }

    /// How much earlier than its timeout `t` a timed-out acquire may return, on the worker's
    /// clock: the granularity of the clocks a library may use, never a real early return.
    pub fn early_tolerance(&self, t: Duration) -> Duration {
        Duration::from_millis(2) + t / 100
    }

    /// Margins multiplied by `scale` when one is given ([`Timing::new`]), else by the scale of
    /// the environment ([`Timing::from_env`]).
    ///
    /// # Errors
    ///
    /// As those two.
    pub fn scaled(scale: Option<f64>) -> Result<Timing, String> {
        scale.map_or_else(Timing::from_env, Timing::new)
    }

    /// The scale from `LOCKSPEC_TIMING_SCALE`, or 1.
    ///
    /// # Errors
    ///
    /// Returns a message naming the variable when it is set but not a valid scale.
    pub fn from_env() -> Result<Timing, String> {
        match std::env::var(SCALE_ENV) {
            Ok(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{SCALE_ENV}={v:?} is not a number"))
                .and_then(Timing::new)
                .map_err(|e| format!("{SCALE_ENV}: {e}")),
            Err(_) => Ok(Timing::default()),
        }
    }

    /// The factor every margin is multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    fn ms(&self, base: u64) -> Duration {
        Duration::from_secs_f64(base as f64 * self.scale / 1000.0)
    }

    /// The length of a window.
    pub fn window(&self, w: Window) -> Duration {
        match w {
            Window::Settle => self.ms(200),
            Window::Prompt => self.ms(2000),
            Window::Long => self.ms(1000),
            Window::Forever => self.ms(35_000),
        }
    }

    /// A timeout's length; `None` waits forever.
    pub fn timeout(&self, t: Timeout) -> Option<Duration> {
        match t {
            Timeout::None => None,
            Timeout::Zero => Some(Duration::ZERO),
            Timeout::Short => Some(self.ms(300)),
            Timeout::Medium => Some(self.ms(1000)),
            Timeout::Long => Some(self.ms(10_000)),
        }
    }

    /// How late a timed-out acquire may return after its timeout, on the worker's clock.
    pub fn overshoot(&self) -> Duration {
        self.calibrated(OVERSHOOT_FLOOR, self.noise.overshoot_p99)
    }

    /// How late a timed-out acquire may return in a stress run, where many workers contend on
    /// the machine's cores: the history checker's bound, not calibrated.
    pub fn stress_overshoot(&self) -> Duration {
        self.ms(1000)
    }

    /// How long a worker may take to start and answer `hello`.
    pub fn startup(&self) -> Duration {
        self.ms(10_000)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn margins_grow_with_the_noise_from_the_bound() {
        let quiet = Timing::default();
        assert_eq!(quiet.handoff(), HANDOFF_FLOOR);
        assert_eq!(quiet.overshoot(), OVERSHOOT_FLOOR);
        let loaded = Timing::default().with_noise(Noise {
            handoff_p99: Duration::from_millis(60),
            overshoot_p99: Duration::from_millis(30),
            samples: 10,
        });
        assert_eq!(loaded.handoff(), Duration::from_millis(220));
        assert_eq!(loaded.overshoot(), Duration::from_millis(110));
    }

    use super::*;

    #[test]
    fn scale_multiplies_every_margin() {
        let t = Timing::new(2.5).unwrap();
        assert_eq!(t.window(Window::Settle), Duration::from_millis(500));
        assert_eq!(t.timeout(Timeout::Short), Some(Duration::from_millis(750)));
        assert_eq!(t.timeout(Timeout::Zero), Some(Duration::ZERO));
        assert_eq!(t.timeout(Timeout::None), None);
        assert_eq!(t.overshoot(), Duration::from_millis(125));
        assert_eq!(t.at_once(), t.handoff());
        assert_eq!(t.handoff(), Duration::from_millis(250));
    }

    #[test]
    fn bad_scales_are_refused() {
        assert!(Timing::new(0.0).is_err());
        assert!(Timing::new(f64::NAN).is_err());
        assert!(Timing::new(-1.0).is_err());
        assert!(Timing::new(1e15).is_err());
        assert!(Timing::new(1e20).is_err());
        assert!(Timing::new(MAX_SCALE).is_ok());
    }

    #[test]
    fn a_short_timeout_is_far_longer_than_settle_and_far_shorter_than_long() {
        let t = Timing::default();
        let short = t.timeout(Timeout::Short).unwrap();
        assert!(short > t.window(Window::Settle));
        assert!(t.timeout(Timeout::Long).unwrap() > t.window(Window::Long) * 5);
    }
}
