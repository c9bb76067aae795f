//! The harness's self-test: deliberately broken locks must each fail a step that checks the rule
//! they break. A suite that passes a broken lock proves nothing.

use std::collections::{BTreeMap, HashSet};

use lockspec_conformance::plan::{self, Rerun, Selection};
use lockspec_conformance::run::{Settings, Verdict};
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, runner, suite};
use rstest::rstest;

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

/// Runs every scenario citing `rule` against the mutant, all at once, and returns (scenario ID,
/// verdict) pairs.
fn judge(mutant: &str, rule: &str) -> Vec<(String, Verdict)> {
    let suite = suite::load(&suite::default_root()).expect("the suite loads");
    let imp = Implementation::new(
        format!("mutant-{mutant}"),
        lockspec_conformance::bin_path!("lockspec-worker-mutants"),
        &["--mutant", mutant],
    );
    let rerun = Rerun::default();
    let mut tests = plan::plan(&suite, &Selection::all(vec![imp]), &BTreeMap::new(), &rerun);
    tests.retain(|t| t.scenario.rules.iter().any(|r| r == rule));
    assert!(!tests.is_empty(), "no scenario cites {rule}");
    let results = runner::run(&tests, &settings(), tests.len(), |_| {});
    let ids = tests.into_iter().map(|t| t.scenario.id);
    ids.zip(results.into_iter().map(|r| r.verdict)).collect()
}

#[rstest]
#[case::reentrant("reentrant", "REE-1")]
#[case::per_process_record_lock_in_process("per-process-record-lock", "IDN-1")]
#[case::per_process_record_lock_other_handle("per-process-record-lock", "FIL-3")]
#[case::timeout_ignored("timeout-ignored", "TMO-3")]
#[case::timeout_immediate("timeout-immediate", "TMO-3")]
#[case::release_unheld_ok("release-unheld-ok", "REL-2")]
#[case::delete_on_release("delete-on-release", "FIL-1")]
#[case::release_other_thread_refused("release-other-thread-refused", "REL-1")]
#[case::leak_to_child("leak-to-child", "INH-1")]
#[case::lock_in_contents("lock-in-contents", "DTH-1")]
fn a_broken_lock_fails_a_step_of_the_rule_it_breaks(#[case] mutant: &str, #[case] rule: &str) {
    let verdicts = judge(mutant, rule);
    let errors: Vec<_> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Error(_)))
        .collect();
    assert!(
        errors.is_empty(),
        "the mutant's worker broke instead of its lock being judged: {errors:#?}"
    );
    let failed: HashSet<&str> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Fail(f) if f.rule.as_deref() == Some(rule)))
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        !failed.is_empty(),
        "mutant {mutant} failed no step that checks {rule}: {verdicts:#?}"
    );
}
