//! A plan as libtest-mimic trials, so that `cargo test` and `cargo nextest` list, filter and run
//! each test of it (`peers/tests/conformance.rs`).

use std::sync::Arc;

use libtest_mimic::{Completion, Failed, Trial};

use crate::judge;
use crate::plan::Test;
use crate::report::terminal;
use crate::run::{self, Settings};
use crate::suite::Suite;

/// One libtest-mimic trial per test of a plan of `suite`, named as the test, sorted. Each is
/// judged as `lockspec` judges it ([`judge::judge`]): a test that fails the run fails with the
/// explanation; a test that does not apply is ignored with its reason, and so is a problem that
/// does not fail the run (two different implementations that do not exclude each other, a
/// finding of the interop matrix); anything else passes.
pub fn trials(suite: &Suite, tests: Vec<Test>, settings: &Settings) -> Vec<Trial> {
    let titles = Arc::new(suite.rule_titles());
    let mut trials: Vec<Trial> = tests
        .into_iter()
        .map(|test| {
            let (settings, titles) = (settings.clone(), Arc::clone(&titles));
            Trial::ignorable_test(test.name.clone(), move || {
                let report = run::run_mixed(&test.players, &test.scenario, &settings);
                let judgement = judge::judge(&test, &report);
                if judgement.fails_run() {
                    return Err(Failed::from(terminal::explain(
                        &test, &report, &judgement, &titles,
                    )));
                }
                Ok(match &report.verdict {
                    run::Verdict::Skip(reason) => Completion::ignored_with(reason),
                    _ if judgement.outcome().is_problem() => Completion::ignored_with(format!(
                        "{}: a finding of the interop matrix, not a failure",
                        judgement.verdict.label()
                    )),
                    _ => Completion::Completed,
                })
            })
        })
        .collect();
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    trials
}
