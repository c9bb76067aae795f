//! The interop check: `run::run_mixed` lets different implementations play one scenario's
//! processes, so that two locks that do not see each other fail IOP-1 while each passes alone;
//! the plan pairs every two implementations, and the judge counts a pair of two different ones
//! as a finding, not a failure of the run.

use std::collections::BTreeMap;

use lockspec_conformance::plan::{self, Rerun, Selection, Test};
use lockspec_conformance::run::{self, Settings, TrialReport, Verdict};
use lockspec_conformance::scenario::Scenario;
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, runner, suite};

fn settings() -> Settings {
    Settings {
        timing: Timing::from_env().expect("a valid LOCKSPEC_TIMING_SCALE"),
        dir: None,
        reference: Some(Implementation::new(
            "reference",
            lockspec_conformance::sibling_bin(
                lockspec_conformance::bin_path!("lockspec-worker-mutants"),
                "lockspec-worker-reference",
            ),
            &[],
        )),
    }
}

fn interop_scenarios() -> Vec<Scenario> {
    let suite = suite::load(&suite::default_root()).expect("the suite loads");
    let found: Vec<Scenario> = suite
        .scenarios
        .into_iter()
        .filter(plan::is_interop)
        .collect();
    assert!(!found.is_empty(), "no interop scenarios");
    for s in &found {
        assert_eq!(s.rules, ["IOP-1"], "{}", s.id);
        assert_eq!(s.processes.len(), 2, "{}", s.id);
    }
    found
}

fn reference() -> Implementation {
    Implementation::new(
        "reference",
        lockspec_conformance::sibling_bin(
            lockspec_conformance::bin_path!("lockspec-worker-mutants"),
            "lockspec-worker-reference",
        ),
        &[],
    )
}

/// `fcntl` record locks, which do not see the reference's `flock` on Linux.
fn record_lock() -> Implementation {
    Implementation::new(
        "record-lock",
        lockspec_conformance::bin_path!("lockspec-worker-mutants"),
        &["--mutant", "per-process-record-lock"],
    )
}

#[test]
fn each_process_is_played_by_its_own_implementation() {
    let s = &interop_scenarios()[0];
    let report = run::run_mixed(&[record_lock(), reference()], s, &settings());
    let libraries: Vec<Option<&str>> = report
        .workers
        .iter()
        .map(|w| w.implementation.as_deref())
        .collect();
    assert_eq!(report.workers.len(), 2, "{report:#?}");
    assert_ne!(
        libraries[0], libraries[1],
        "both processes were played by one implementation: {libraries:?}"
    );
    assert_eq!(libraries[1], Some("reference"));
}

/// Every ordered pair of the reference and the record-lock mutant against every interop
/// scenario, as `lockspec --interop` plans them, and what the runner recorded of each: the pairs
/// of one implementation with itself if `same`, else the pairs of two different ones.
fn pairs(same: bool) -> Vec<(Test, TrialReport)> {
    let suite = suite::load(&suite::default_root()).expect("the suite loads");
    let selection = Selection {
        interop: true,
        filter: Some(format!("::{}::", plan::INTEROP_AREA)),
        ..Selection::all(vec![reference(), record_lock()])
    };
    let rerun = Rerun::default();
    let mut tests = plan::plan(&suite, &selection, &BTreeMap::new(), &rerun);
    tests.retain(|t| {
        t.second()
            .is_some_and(|b| (b == t.implementation()) == same)
    });
    assert_eq!(tests.len(), 2 * interop_scenarios().len(), "two pairs each");
    let results = runner::run(&tests, &settings(), tests.len(), |_| {});
    tests.into_iter().zip(results).collect()
}

#[test]
fn an_implementation_excludes_itself_in_every_interop_scenario() {
    for (test, report) in pairs(true) {
        assert_eq!(report.verdict, Verdict::Pass, "{}: {report:#?}", test.name);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn locks_that_do_not_see_each_other_fail_the_interop_scenarios() {
    // On Linux, flock and fcntl record locks are independent: neither waits for the other.
    for (test, report) in pairs(false) {
        assert!(
            matches!(report.verdict, Verdict::Fail(_)),
            "{} holding, {:?} waiting: {report:#?}",
            test.implementation(),
            test.second()
        );
        let judgement = lockspec_conformance::judge::judge(&test, &report);
        assert!(
            judgement.outcome().is_problem() && !judgement.fails_run(),
            "a pair of two implementations is a finding, not a failure of the run: {judgement:?}"
        );
    }
}
