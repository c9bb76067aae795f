//! Timing classes: every margin the runner uses, named, with one scale factor.
//!
//! Scenarios never contain numbers of milliseconds; they name a class. The defaults are
//! documented in `spec/SCENARIOS.md` and multiplied by `--timing-scale` or `LOCKSPEC_TIMING_SCALE`.

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
}

impl Window {
    /// The name used in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Window::Settle => "settle",
            Window::Prompt => "prompt",
            Window::Long => "long",
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
            Timeout::Long => "long",
        }
    }
}

/// The margins of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    scale: f64,
}

/// The environment variable that sets the scale when no option does.
pub const SCALE_ENV: &str = "LOCKSPEC_TIMING_SCALE";

impl Default for Timing {
    fn default() -> Timing {
        Timing { scale: 1.0 }
    }
}

impl Timing {
    /// Margins multiplied by `scale`.
    ///
    /// # Errors
    ///
    /// Returns a message when `scale` is not a finite number of at least 0.1.
    pub fn new(scale: f64) -> Result<Timing, String> {
        if !scale.is_finite() || scale < 0.1 {
            return Err(format!(
                "timing scale must be a number of at least 0.1, got {scale}"
            ));
        }
        Ok(Timing { scale })
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
        }
    }

    /// A timeout's length; `None` waits forever.
    pub fn timeout(&self, t: Timeout) -> Option<Duration> {
        match t {
            Timeout::None => None,
            Timeout::Zero => Some(Duration::ZERO),
            Timeout::Short => Some(self.ms(300)),
            Timeout::Long => Some(self.ms(10_000)),
        }
    }

    /// How late a timed-out acquire may return after its timeout.
    pub fn overshoot(&self) -> Duration {
        self.ms(1000)
    }

    /// How long a worker may take to start and answer `hello`.
    pub fn startup(&self) -> Duration {
        self.ms(10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_multiplies_every_margin() {
        let t = Timing::new(2.5).unwrap();
        assert_eq!(t.window(Window::Settle), Duration::from_millis(500));
        assert_eq!(t.timeout(Timeout::Short), Some(Duration::from_millis(750)));
        assert_eq!(t.timeout(Timeout::Zero), Some(Duration::ZERO));
        assert_eq!(t.timeout(Timeout::None), None);
        assert_eq!(t.overshoot(), Duration::from_millis(2500));
    }

    #[test]
    fn bad_scales_are_refused() {
        assert!(Timing::new(0.0).is_err());
        assert!(Timing::new(f64::NAN).is_err());
        assert!(Timing::new(-1.0).is_err());
    }

    #[test]
    fn a_short_timeout_is_far_longer_than_settle_and_far_shorter_than_long() {
        let t = Timing::default();
        let short = t.timeout(Timeout::Short).unwrap();
        assert!(short > t.window(Window::Settle));
        assert!(t.timeout(Timeout::Long).unwrap() > t.window(Window::Long) * 5);
    }
}
