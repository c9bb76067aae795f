//! The lockspec conformance runner: loads the spec and the scenarios, drives workers over the
//! protocol of `spec/PROTOCOL.md`, and judges what they do.
//!
//! Data flow: [`suite::load`] reads `spec/` and `scenarios/` into [`scenario::Scenario`]s;
//! [`run::run`] plays one scenario against one [`process::Implementation`] and returns a
//! [`run::TrialReport`]; [`trials`] turns the whole matrix into libtest-mimic trials.

pub mod calibrate;
pub mod cleanup;
pub mod expectations;
pub mod implementations;
mod locate;
pub mod process;
pub mod report;
pub mod run;
pub mod scenario;
pub mod session;
pub mod stress;
pub mod suite;
mod sys;
pub mod timing;

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};

pub use process::Implementation;
pub use run::{Settings, TrialReport, Verdict};
pub use suite::Suite;

/// One libtest-mimic trial per implementation x scenario, named `IMPL::AREA::NAME`, sorted, each
/// judged against the implementation's [`expectations::Expectations`]: a pass or an expected
/// failure passes, a scenario that does not apply is ignored with its reason, and anything else
/// (a failure, an error, an expectation that no longer holds) fails with the explanation.
/// `rerun` gives the command that reruns one test, by name.
pub fn trials(
    suite: &Suite,
    implementations: &[(Implementation, expectations::Expectations)],
    settings: &Settings,
    rerun: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Vec<Trial> {
    let titles = Arc::new(suite.rule_titles());
    let rerun = Arc::new(rerun);
    let mut trials = Vec::new();
    for (imp, expected) in implementations {
        for scenario in &suite.scenarios {
            let name = format!("{}::{}", imp.name, scenario.id);
            let (imp, scenario, settings) = (imp.clone(), scenario.clone(), settings.clone());
            let expectation = expected.get(&scenario.id).cloned();
            let (titles, rerun) = (Arc::clone(&titles), Arc::clone(&rerun));
            let test_name = name.clone();
            trials.push(Trial::ignorable_test(name, move || {
                let report = run::run(&imp, &scenario, &settings);
                let cell = expectations::judge(&report.verdict, expectation.as_ref());
                match &cell {
                    expectations::Cell::Pass | expectations::Cell::ExpectedFail(_) => {
                        Ok(libtest_mimic::Completion::Completed)
                    }
                    expectations::Cell::NotApplicable(reason) => {
                        Ok(libtest_mimic::Completion::ignored_with(reason))
                    }
                    _ => {
                        let mut message = run::explain(
                            &test_name,
                            &scenario,
                            &report,
                            &titles,
                            &rerun(&test_name),
                        );
                        if let Some(mismatch) = cell.mismatch(&report.verdict) {
                            message.push_str(&format!("  {mismatch}\n"));
                        }
                        Err(Failed::from(message))
                    }
                }
            }));
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    trials
}

/// The path of one of the calling package's binaries, for its tests: `CARGO_BIN_EXE_<name>` as the
/// test runner sets it at run time (nextest remaps it when tests run from an archive on another
/// machine), else as cargo set it at build time.
#[macro_export]
macro_rules! bin_path {
    ($name:literal) => {
        $crate::runtime_path(
            concat!("CARGO_BIN_EXE_", $name),
            env!(concat!("CARGO_BIN_EXE_", $name)),
        )
    };
}

/// The path of `name`, a binary of another package of this workspace, for the tests of a package
/// that needs it (`lockspec`, `lockspec-worker-reference`): every package builds its binaries into
/// one directory, so it is beside `beside`, a binary of the test's own package ([`bin_path!`]).
///
/// Cargo builds a package's own binaries before its tests, not those of other packages:
/// `cargo test --workspace` and `cargo xtask test` build them all, `cargo test -p PACKAGE` alone
/// may find none, or an old one.
///
/// # Panics
///
/// If there is no such file, with the command that builds it.
pub fn sibling_bin(beside: &str, name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(beside)
        .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{name} is not built: no {}; run `{}`",
        path.display(),
        implementations::BUILD_WORKERS
    );
    path
}

/// The value of the environment variable `var` if it is set, else `built`. Used by [`bin_path!`].
#[doc(hidden)]
pub fn runtime_path(var: &str, built: &'static str) -> &'static str {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Box::leak(v.into_boxed_str()),
        _ => built,
    }
}
