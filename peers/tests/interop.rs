//! The interop check: `run::run_mixed` lets different implementations play one scenario's
//! processes, so that two locks that do not see each other fail IOP-1 while each passes alone.

use lockspec_conformance::run::{self, Settings, Verdict};
use lockspec_conformance::scenario::Scenario;
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, suite};

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
        .filter(|s| s.id.starts_with("interop::"))
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

#[test]
fn an_implementation_excludes_itself_in_every_interop_scenario() {
    for s in interop_scenarios() {
        for imp in [reference(), record_lock()] {
            let report = run::run_mixed(&[imp.clone(), imp.clone()], &s, &settings());
            assert_eq!(
                report.verdict,
                Verdict::Pass,
                "{} x {} on {}: {report:#?}",
                imp.name,
                imp.name,
                s.id
            );
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn locks_that_do_not_see_each_other_fail_the_interop_scenarios() {
    // On Linux, flock and fcntl record locks are independent: neither waits for the other.
    for s in interop_scenarios() {
        for pair in [[reference(), record_lock()], [record_lock(), reference()]] {
            let report = run::run_mixed(&pair, &s, &settings());
            assert!(
                matches!(report.verdict, Verdict::Fail(_)),
                "{} holding, {} waiting, on {}: {report:#?}",
                pair[0].name,
                pair[1].name,
                s.id
            );
        }
    }
}
