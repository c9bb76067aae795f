//! The lockspec conformance runner: loads the spec and the scenarios, drives workers over the
//! protocol of `spec/PROTOCOL.md`, and judges what they do.
//!
//! Data flow: [`suite::load`] reads `spec/` and `scenarios/` into [`scenario::Scenario`]s;
//! [`run::run`] plays one scenario against one [`process::Implementation`] and returns a
//! [`run::TrialReport`]; [`trials`] turns the whole matrix into libtest-mimic trials.

mod locate;
pub mod process;
pub mod run;
pub mod scenario;
pub mod suite;
pub mod timing;

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};

pub use process::Implementation;
pub use run::{Settings, TrialReport, Verdict};
pub use suite::Suite;

/// One libtest-mimic trial per implementation x scenario, named `IMPL::AREA::NAME`, sorted.
/// `rerun` gives the command that reruns one test, by name.
pub fn trials(
    suite: &Suite,
    implementations: &[Implementation],
    settings: &Settings,
    rerun: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Vec<Trial> {
    let titles = Arc::new(suite.rule_titles());
    let rerun = Arc::new(rerun);
    let mut trials = Vec::new();
    for imp in implementations {
        for scenario in &suite.scenarios {
            let name = format!("{}::{}", imp.name, scenario.id);
            let (imp, scenario, settings) = (imp.clone(), scenario.clone(), settings.clone());
            let (titles, rerun) = (Arc::clone(&titles), Arc::clone(&rerun));
            let test_name = name.clone();
            trials.push(Trial::ignorable_test(name, move || {
                let report = run::run(&imp, &scenario, &settings);
                match &report.verdict {
                    Verdict::Pass => Ok(libtest_mimic::Completion::Completed),
                    Verdict::Skip(reason) => Ok(libtest_mimic::Completion::ignored_with(reason)),
                    Verdict::Fail(_) | Verdict::Error(_) => Err(Failed::from(run::explain(
                        &test_name,
                        &scenario,
                        &report,
                        &titles,
                        &rerun(&test_name),
                    ))),
                }
            }));
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    trials
}
