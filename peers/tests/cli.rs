//! Bad input to the `lockspec` binary: a broken scenario file or a wrong option is one clear
//! error (with file, line and column for a scenario), exit status 2, and no worker started.
//!
//! The worker in these runs creates a marker file as it starts (`lockspec-worker-misbehave
//! --touch MARKER`): if the runner ever started a worker, the marker file would exist.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

/// The `lockspec` binary, of lockspec-conformance: built beside this package's workers.
fn lockspec_bin() -> PathBuf {
    lockspec_conformance::sibling_bin(misbehave_bin(), "lockspec")
}
/// The `lockspec-worker-misbehave` binary.
fn misbehave_bin() -> &'static str {
    lockspec_conformance::bin_path!("lockspec-worker-misbehave")
}

/// A scenario that loads, and that the cases below break one way each: the runner's fixture, which
/// its parser and consistency tests use too.
const GOOD: &str = include_str!("../../conformance/tests/fixtures/good_scenario.json");

/// A suite root holding the real spec and one scenario, `scenarios/identity/bad.json`, and the
/// path of a marker file that a started worker would create.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(scenario: &str) -> Sandbox {
        let root = lockspec_conformance::suite::default_root();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spec")).unwrap();
        for f in ["SPEC.md", "scenario.schema.json"] {
            fs::copy(root.join("spec").join(f), dir.path().join("spec").join(f)).unwrap();
        }
        let area = dir.path().join("scenarios/identity");
        fs::create_dir_all(&area).unwrap();
        fs::write(area.join("bad.json"), scenario).unwrap();
        fs::create_dir(dir.path().join("trials")).unwrap();
        Sandbox { dir }
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("a-worker-started")
    }

    /// The `--worker` command line of a worker that creates the marker and exits at once.
    fn worker(&self) -> String {
        format!(
            "{} --mode exit-at-once --touch {}",
            misbehave_bin(),
            self.marker().display()
        )
    }

    /// Runs `lockspec --root SANDBOX --dir SANDBOX/trials ARGS`; with `touch`, the worker is
    /// [`Sandbox::worker`].
    fn lockspec(&self, touch: bool, args: &[&str]) -> Output {
        let mut cmd = Command::new(lockspec_bin());
        cmd.arg("--root")
            .arg(self.dir.path())
            .arg("--out")
            .arg(self.dir.path().join("reports"))
            .arg("--dir")
            .arg(self.dir.path().join("trials"))
            .env_remove("LOCKSPEC_TIMING_SCALE");
        if touch {
            cmd.arg("--worker").arg(self.worker());
        }
        cmd.args(args).output().expect("lockspec runs")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_sandbox_does_start_a_worker_when_the_input_is_good() {
    let sandbox = Sandbox::new(GOOD);
    let out = sandbox.lockspec(true, &[]);
    assert!(
        sandbox.marker().exists(),
        "no worker was started: {}",
        stderr(&out)
    );
    // A worker that exits at once: the run is an error verdict, not a usage error.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[rstest]
#[case::empty_file("", "", 1)]
#[case::not_json("", "{{", 1)]
#[case::truncated(
    r#"    {"op": "close", "process": "p2", "handle": "a"}"#,
    r#"    {"op": "close", "#,
    13
)]
#[case::trailing_comma(
    r#""handle": "a"}
  ]"#,
    r#""handle": "a"},
  ]"#,
    13
)]
#[case::unknown_field(r#""processes""#, r#""procs""#, 4)]
#[case::unknown_process(
    r#""process": "p2", "handle": "a", "path""#,
    r#""process": "p3", "handle": "a", "path""#,
    8
)]
#[case::unknown_handle(
    r#""process": "p2", "handle": "a"}"#,
    r#""process": "p2", "handle": "b"}"#,
    12
)]
#[case::rule_not_in_the_spec(r#"["IDN-2"]"#, r#"["IDN-2", "XYZ-1"]"#, 3)]
#[case::impossible_expectation(r#""expect": ["acquired"]"#, r#""expect": "blocks""#, 11)]
fn a_broken_scenario_is_one_error_with_file_line_and_column_and_starts_no_worker(
    #[case] from: &str,
    #[case] to: &str,
    #[case] line: usize,
) {
    let text = if from.is_empty() {
        to.to_owned()
    } else {
        assert!(GOOD.contains(from), "the case does not apply: {from}");
        GOOD.replacen(from, to, 1)
    };
    let sandbox = Sandbox::new(&text);
    let out = sandbox.lockspec(true, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!sandbox.marker().exists(), "a worker was started: {err}");
    let located: Vec<&str> = err.lines().filter(|l| l.contains("bad.json")).collect();
    assert_eq!(located.len(), 1, "not one error about the file: {err}");
    let place = format!(
        "{}:{line}:",
        Path::new("identity").join("bad.json").display()
    );
    let at = located[0]
        .find(&place)
        .unwrap_or_else(|| panic!("no {place} in {err}"));
    let column: usize = located[0][at + place.len()..]
        .split(':')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column in {err}"));
    assert!(column > 0, "{err}");
}

#[rstest]
#[case::unknown_option(&["--bogus"], "--bogus")]
#[case::scale_not_a_number(&["--timing-scale", "fast"], "fast")]
#[case::scale_too_small(&["--timing-scale", "0"], "timing scale")]
#[case::exact_without_filter(&["--exact"], "--filter")]
#[case::filter_matching_nothing(&["--filter", "no-such-test"], "no test matches")]
#[case::name_without_worker(&["--name", "x"], "--worker")]
fn a_wrong_option_is_a_usage_error_and_starts_no_worker(#[case] args: &[&str], #[case] says: &str) {
    let sandbox = Sandbox::new(GOOD);
    let touch = !args.contains(&"--name");
    let out = sandbox.lockspec(touch, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(says), "{err}");
    assert!(!sandbox.marker().exists(), "a worker was started: {err}");
}

#[test]
fn a_bad_scale_in_the_environment_names_the_variable() {
    let sandbox = Sandbox::new(GOOD);
    let out = Command::new(lockspec_bin())
        .arg("--root")
        .arg(sandbox.dir.path())
        .arg("--out")
        .arg(sandbox.dir.path().join("reports"))
        .arg("--worker")
        .arg(sandbox.worker())
        .env("LOCKSPEC_TIMING_SCALE", "fast")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("LOCKSPEC_TIMING_SCALE"), "{err}");
    assert!(!sandbox.marker().exists(), "a worker was started: {err}");
}

#[test]
fn a_missing_directory_is_named() {
    let sandbox = Sandbox::new(GOOD);
    let missing = sandbox.dir.path().join("no-such-dir");
    let out = Command::new(lockspec_bin())
        .arg("--root")
        .arg(sandbox.dir.path())
        .arg("--out")
        .arg(sandbox.dir.path().join("reports"))
        .arg("--worker")
        .arg(sandbox.worker())
        .arg("--dir")
        .arg(&missing)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!sandbox.marker().exists(), "a worker was started: {err}");
}

#[rstest]
#[case::unknown_implementation(&["--impl", "no-such-lock"], "no-such-lock")]
#[case::empty_worker(&["--worker", " "], "empty")]
fn a_wrong_implementation_is_named(#[case] args: &[&str], #[case] says: &str) {
    let sandbox = Sandbox::new(GOOD);
    let out = sandbox.lockspec(false, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(says), "{err}");
}
