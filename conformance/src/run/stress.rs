//! The `stress` step: a stress run ([`crate::stress`]) inside a scenario, on fresh workers of the
//! trial's implementations in the trial's directory.

use std::time::Instant;

use super::Trial;
use super::verdict::Stop;
use crate::scenario::StressDuration;
use crate::stress::StepOutcome;

impl Trial<'_> {
    /// `stress`: as many simulated processes as the scenario has, playing the moves of `seed`
    /// for `duration`; the history's verdict is the step's.
    pub(super) fn stress(&mut self, duration: StressDuration, seed: u64) -> Result<(), Stop> {
        let procs = self.scenario.processes.len() as u32;
        let report = crate::stress::scenario_step(
            &self.imps,
            self.dir.path(),
            procs,
            seed,
            duration.length(),
            self.timing,
        );
        for line in report.log {
            self.log(Instant::now(), line);
        }
        match report.outcome {
            StepOutcome::Pass => Ok(()),
            StepOutcome::Fail { expected, observed } => Err(Stop::fail(expected, observed)),
            // A run that could not contend showed nothing: the trial learnt nothing, an error.
            StepOutcome::Unknown(reason) => Err(Stop::Broken(reason)),
            StepOutcome::Broken(message) => Err(Stop::Broken(message)),
        }
    }
}
