//! The reports written by the `lockspec` binary: a run against the reference, and one against a
//! broken lock, each write report.md, report.json and report.html with the expected structure.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use lockspec_conformance::judge::{self, Verdict};
use lockspec_conformance::report::{self, Report};
use serde_json::Value;

/// Runs `lockspec ARGS --out DIR` and returns its output. `lockspec` is a binary of
/// lockspec-conformance, built beside this package's workers.
fn lockspec(out: &Path, args: &[&str]) -> Output {
    Command::new(lockspec_conformance::sibling_bin(
        lockspec_conformance::bin_path!("lockspec-worker-mutants"),
        "lockspec",
    ))
    .args(args)
    .arg("--out")
    .arg(out)
    .output()
    .expect("lockspec runs")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_run_against_the_reference_writes_three_reports() {
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("results.md");
    let run = lockspec(
        out.path(),
        &[
            "--interop",
            "--filter",
            "interop::",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("reports: "), "{stdout}");
    assert!(stdout.contains("interop (IOP-1)"), "{stdout}");

    let text = read(&out.path().join("report.json"));
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], report::FORMAT);
    let report: Report = serde_json::from_str(&text).expect("the JSON reads back as a Report");
    assert_eq!(report.implementations.len(), 1);
    let reference = &report.implementations[0];
    assert_eq!(reference.name, "reference");
    assert_eq!(reference.language.as_deref(), Some("rust"));
    assert_eq!(
        reference.version.as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "the version comes from the worker's hello"
    );
    assert!(
        !reference.command.starts_with('/'),
        "the suite's root is removed from paths: {}",
        reference.command
    );
    assert_eq!(
        report.matrix.len(),
        report.rules.len(),
        "one row per rule, even those filtered out"
    );
    // The filter keeps the interop scenarios: as reference x reference in the conformance
    // trials, and once more as the pair in the interop check.
    assert!(report.trials.len() >= 2);
    assert!(report.trials.iter().all(|t| t.verdict == Verdict::Pass));
    let iop = report.cell("IOP-1", "reference").unwrap();
    assert_eq!(iop.pass, report.trials.len());
    let interop = report.interop.as_ref().expect("--interop adds the check");
    assert_eq!(interop.matrix.len(), 1);
    assert_eq!(interop.matrix[0].counts.pass, interop.scenarios.len());
    assert!(
        interop
            .trials
            .iter()
            .all(|t| t.test.starts_with("reference+reference::"))
    );
    let env = &report.environment;
    assert!(
        env.date.ends_with('Z') && env.date.len() == 20,
        "{}",
        env.date
    );
    assert!(env.command.starts_with("cargo xtask conformance --interop"));
    if cfg!(target_os = "linux") {
        assert!(env.filesystem.is_some());
        assert!(env.kernel.is_some());
    }

    let md = read(&out.path().join("report.md"));
    assert!(md.starts_with("# lockspec conformance report"));
    assert!(md.contains("## Rules × implementations"));
    assert!(md.contains("| IOP-1 |"));
    assert!(md.contains("## Interoperability"));
    assert!(!md.contains("## Failures"));

    let html = read(&out.path().join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<table class=\"matrix\">"));
    assert!(html.contains("<h2 id=\"interop\">"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("id=\"evidence\""), "nothing failed");

    let results = read(&results);
    assert!(results.contains("# lockspec results"));
    assert!(results.contains("cargo xtask conformance --interop --filter interop::"));
    assert!(results.contains("## Rules × implementations"));
}

#[test]
fn a_broken_lock_gets_evidence_and_a_failing_exit_status() {
    let out = tempfile::tempdir().unwrap();
    let worker = format!(
        "{} --mutant delete-on-release",
        lockspec_conformance::bin_path!("lockspec-worker-mutants")
    );
    let test = "broken::file::kept_after_release";
    let run = lockspec(
        out.path(),
        &[
            "--worker", &worker, "--name", "broken", "--exact", "--filter", test,
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");

    let report: Report = serde_json::from_str(&read(&out.path().join("report.json"))).unwrap();
    assert_eq!(report.trials.len(), 1);
    let trial = &report.trials[0];
    assert_eq!(trial.verdict, Verdict::Fail);
    let evidence = trial.evidence.as_ref().expect("a failure has evidence");
    assert!(evidence.step.is_some_and(|s| s >= 1 && s <= evidence.steps));
    assert!(!evidence.timeline.is_empty());
    assert!(trial.rerun.contains("--worker") && trial.rerun.ends_with(test));
    assert_eq!(
        evidence.rule.as_deref(),
        Some("FIL-1"),
        "the failing step checks FIL-1"
    );
    assert_eq!(report.cell("FIL-1", "broken").unwrap().fail, 1);
    assert_eq!(
        report.cell("FIL-4", "broken").unwrap().pass,
        1,
        "the scenario's FIL-4 step came first and passed"
    );
    assert!(judge::failed(&report));

    let md = read(&out.path().join("report.md"));
    assert!(md.contains("## Failures"));
    assert!(md.contains(&format!("`{test}`")));
    assert!(md.contains("❌ 0/1"));

    let html = read(&out.path().join("report.html"));
    assert!(html.contains("id=\"evidence\""));
    assert!(html.contains("<details class=\"cell\""));
    assert!(html.contains(&report::escape_html(&evidence.observed)));
    let trial_dirs = std::env::temp_dir().join("lockspec-");
    assert!(
        !html.contains(&trial_dirs.display().to_string()),
        "trial directories are written {{dir}}"
    );
}
