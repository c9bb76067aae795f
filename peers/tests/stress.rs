//! Stress mode against real workers: the reference is clean, the mutants that let two holders
//! in are caught, a seed replays the same script, and the scenario step judges STR-1.

use std::collections::BTreeMap;
use std::time::Duration;

use lockspec_conformance::Implementation;
use lockspec_conformance::run::{self, Settings, Verdict as TrialVerdict};
use lockspec_conformance::stress::checker::Kind;
use lockspec_conformance::stress::history::{AUX_THREAD, OpKind, Outcome};
use lockspec_conformance::stress::{self, Config, Verdict};
use lockspec_conformance::suite;
use lockspec_conformance::timing::Timing;

/// An operation of a thread's script: what, on which lock, with which timeout.
type Scripted = (OpKind, u32, Option<u64>);

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

fn mutant(name: &str) -> Implementation {
    Implementation::new(
        format!("mutant-{name}"),
        lockspec_conformance::bin_path!("lockspec-worker-mutants"),
        &["--mutant", name],
    )
}

fn timing() -> Timing {
    Timing::from_env().expect("a valid LOCKSPEC_TIMING_SCALE")
}

fn short(seed: u64) -> Config {
    Config {
        duration: Duration::from_millis(1500),
        kill_every: Some(Duration::from_millis(400)),
        timing: timing(),
        ..Config::new(seed)
    }
}

fn run(imp: &Implementation, config: &Config) -> stress::Run {
    let replay = stress::replay_command(std::slice::from_ref(imp), config);
    stress::run(std::slice::from_ref(imp), config, None, &replay)
        .unwrap_or_else(|e| panic!("the stress run of {} broke: {e}", imp.name))
}

#[test]
fn the_reference_shows_no_violation_and_every_kind_of_operation() {
    let run = run(&reference(), &short(11));
    let report = &run.report;
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
    assert_eq!(report.violations().count(), 0, "{}", report.summary());
    let history = &run.recorded.history;
    let count =
        |f: &dyn Fn(&stress::history::Op) -> bool| history.ops.iter().filter(|o| f(o)).count();
    assert!(report.stats.acquired > 20, "{}", report.summary());
    assert!(report.stats.lock_errors > 0, "{}", report.summary());
    assert!(report.stats.witnesses > 20, "{}", report.summary());
    assert!(
        count(&|o| o.op == OpKind::Close) > 0,
        "no lock object was re-opened"
    );
    assert!(count(&|o| o.op == OpKind::Release && o.thread == AUX_THREAD) > 0);
    assert!(count(&|o| o.timeout_ms.is_some_and(|t| t > 0)) > 0);
    assert_eq!(
        report.stats.shared_clock_workers, report.stats.workers,
        "the workers' timestamps are on the runner's clock"
    );
    assert_eq!(history.meta.seed, 11);
    assert!(
        history.meta.replay.contains("--seed 11"),
        "{}",
        history.meta.replay
    );
}

#[test]
fn killed_workers_are_replaced_and_get_no_more_commands() {
    let config = Config {
        kill_every: Some(Duration::from_millis(150)),
        ..short(12)
    };
    let run = run(&reference(), &config);
    let history = &run.recorded.history;
    assert!(history.kills.len() >= 3, "{} kills", history.kills.len());
    for kill in &history.kills {
        assert!(
            history
                .ops
                .iter()
                .filter(|o| o.incarnation == kill.incarnation)
                .all(|o| o.invoke_ns <= kill.sent_ns),
            "an operation was sent to a killed worker"
        );
    }
    // The first kill is long before the end: its slot's new worker has done work since.
    let first = &history.kills[0];
    assert!(
        history
            .ops
            .iter()
            .any(|o| o.proc == first.proc && o.incarnation > first.incarnation),
        "process slot {} was not replaced after {first:?}",
        first.proc
    );
    assert_eq!(run.report.verdict, Verdict::Ok, "{}", run.report.summary());
}

#[test]
fn a_seed_replays_each_threads_script() {
    let config = Config {
        kill_every: None,
        ..short(21)
    };
    // Per simulated thread: the opens, acquires and closes it sent, with the timeouts.
    let script = |seed: u64| {
        let run = run(
            &reference(),
            &Config {
                seed,
                ..config.clone()
            },
        );
        let mut scripts: BTreeMap<(u32, u32), Vec<Scripted>> = BTreeMap::new();
        for op in &run.recorded.history.ops {
            if matches!(op.op, OpKind::Open | OpKind::Acquire | OpKind::Close) {
                scripts.entry((op.proc, op.thread)).or_default().push((
                    op.op,
                    op.lock,
                    op.timeout_ms,
                ));
            }
        }
        scripts
    };
    let (first, again, other) = (script(21), script(21), script(22));
    assert_eq!(first.len(), 6);
    for (thread, ops) in &first {
        let replayed = &again[thread];
        let common = ops.len().min(replayed.len());
        assert!(common >= 10, "{thread:?}: only {common} operations");
        assert_eq!(ops[..common], replayed[..common], "thread {thread:?}");
        let different = &other[thread];
        let shared = common.min(different.len());
        assert_ne!(
            ops[..shared],
            different[..shared],
            "another seed, the same script"
        );
    }
}

#[test]
fn a_lock_that_deletes_its_file_on_release_is_caught() {
    for seed in [1, 2] {
        let run = run(&mutant("delete-on-release"), &short(seed));
        let report = &run.report;
        assert_eq!(report.verdict, Verdict::Violation, "{}", report.summary());
        assert!(
            report.findings.iter().any(|f| f.kind.is_two_holders()),
            "{}",
            report.summary()
        );
    }
}

#[test]
fn a_per_process_record_lock_is_caught() {
    for seed in [1, 2] {
        let run = run(&mutant("per-process-record-lock"), &short(seed));
        let report = &run.report;
        assert_eq!(report.verdict, Verdict::Violation, "{}", report.summary());
        assert!(report.counts.get(&Kind::Overlap).is_some_and(|n| *n > 0));
    }
}

#[test]
fn a_violation_writes_the_history_and_a_timeline_that_replay() {
    let run = run(&mutant("per-process-record-lock"), &short(3));
    let out = tempfile::tempdir().unwrap();
    let evidence = stress::save_evidence(&run.recorded.history, &run.report, out.path()).unwrap();
    let saved = stress::History::load(&evidence.history).unwrap();
    assert_eq!(saved, run.recorded.history);
    let again = stress::check(&saved, &stress::checker::Config::new(&timing()));
    assert_eq!(
        again, run.report,
        "checking the saved history gives the same report"
    );
    let timeline = std::fs::read_to_string(&evidence.timeline).unwrap();
    assert!(
        timeline.contains("replay: cargo xtask stress --impl mutant:per-process-record-lock"),
        "{timeline}"
    );
    assert!(timeline.contains("--seed 3"), "{timeline}");
    assert!(timeline.contains("=== finding 1 of"), "{timeline}");
    assert!(timeline.lines().any(|l| l.starts_with(">>")), "{timeline}");
}

#[test]
fn a_worker_that_cannot_start_is_a_drive_error() {
    let missing = Implementation::new("missing", "/nonexistent/lockspec-worker", &[]);
    let error = stress::run(&[missing], &short(1), None, "replay").unwrap_err();
    assert!(error.message.contains("cannot start the worker"), "{error}");
}

#[test]
fn the_stress_scenario_passes_the_reference_and_fails_a_mutant() {
    let suite = suite::load(&suite::default_root()).expect("the suite loads");
    let scenario = suite
        .scenarios
        .iter()
        .find(|s| s.id == "stress::no_two_holders")
        .expect("the stress scenario exists");
    let settings = Settings {
        timing: timing(),
        dir: None,
        reference: None,
    };
    let report = run::run(&reference(), scenario, &settings);
    assert_eq!(report.verdict, TrialVerdict::Pass, "{:#?}", report.timeline);
    let report = run::run(&mutant("delete-on-release"), scenario, &settings);
    let TrialVerdict::Fail(failure) = &report.verdict else {
        panic!("the mutant was not failed: {:?}", report.verdict);
    };
    assert!(failure.observed.contains("seed 1"), "{}", failure.observed);
    assert!(
        failure
            .observed
            .contains("replay: cargo xtask stress --impl mutant:delete-on-release"),
        "{}",
        failure.observed
    );
    assert!(
        failure.observed.contains("history.json"),
        "{}",
        failure.observed
    );
}

#[test]
fn a_clean_run_answers_every_operation() {
    // Without kills, the drain at the end lets every operation finish.
    let run = run(
        &reference(),
        &Config {
            kill_every: None,
            ..short(5)
        },
    );
    assert!(
        run.recorded
            .history
            .ops
            .iter()
            .all(|o| o.outcome != Outcome::Pending),
        "{}",
        run.report.summary()
    );
}
