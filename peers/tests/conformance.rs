//! The conformance suite as a test: every scenario against the reference implementation, every
//! Rust peer and the Python peer `locket`, one test each, for `cargo test` and `cargo nextest`.
//!
//! Each peer is judged against its expectation file (`expectations/NAME.json`): a failure listed
//! there passes only if it happens as listed, so an adapter or a library that changes is noticed.
//! The Python peer needs `cargo xtask peers` (which `cargo xtask test` runs first); when it is not
//! installed its tests fail and say so, unless `LOCKSPEC_SKIP_MISSING_PEERS=1`, which turns them
//! into ignored tests that give the reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Trial};
use lockspec_conformance::expectations::Expectations;
use lockspec_conformance::implementations::{self as builtins, Language, Locations};
use lockspec_conformance::plan::{self, Rerun, Selection};
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Settings, Suite, suite, trials};

/// The environment variable that turns the tests of a peer that is not installed into ignored
/// tests instead of failures.
const SKIP_MISSING: &str = "LOCKSPEC_SKIP_MISSING_PEERS";

/// The Python peer judged here besides the Rust ones (`cargo xtask test` installs it).
const PYTHON_PEER: &str = "locket";

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Scenarios mostly wait, so run more of them at once than there are cores.
    if args.test_threads.is_none() {
        args.test_threads = Some(8);
    }
    match plan() {
        Ok(trials) => {
            let conclusion = libtest_mimic::run(&args, trials);
            lockspec_conformance::cleanup::finish();
            conclusion.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The plan of every judged implementation against every scenario (every tier), as trials, and
/// the tests of a peer that is not installed, ignored when `LOCKSPEC_SKIP_MISSING_PEERS=1`.
fn plan() -> Result<Vec<Trial>, String> {
    let root = suite::default_root();
    let suite = suite::load_or_explain(&root)?;
    // Every Rust worker is built into one directory: this package's, and the reference's (a
    // binary of lockspec-conformance).
    let worker = Path::new(lockspec_conformance::bin_path!("lockspec-worker-std"));
    let at = Locations::new(worker.parent().ok_or("no directory of workers")?, &root);
    let settings = Settings {
        timing: Timing::from_env()?,
        dir: None,
        reference: Some(builtins::reference(&at)?),
    };
    let skip_missing = std::env::var_os(SKIP_MISSING).is_some_and(|v| v == "1");
    let mut judged = Vec::new();
    let mut skipped = Vec::new();
    // The reference and every Rust peer of the registry that exists here, and one Python peer.
    let rust = builtins::BUILTINS
        .iter()
        .filter(|b| b.language == Language::Rust && b.exists_here());
    let python = builtins::find(PYTHON_PEER).ok_or_else(|| format!("no built-in {PYTHON_PEER}"))?;
    for builtin in rust.chain([python]) {
        match builtin.resolve(&at) {
            Ok(imp) => judged.push(imp),
            Err(missing) if skip_missing => {
                let reason = format!("{missing} ({SKIP_MISSING}=1)");
                skipped.extend(ignored(&suite, builtin.name, &reason));
            }
            Err(missing) => judged.push(missing.into_implementation()),
        }
    }
    let names = judged.iter().map(|imp| imp.name.as_str());
    let expected: BTreeMap<String, Expectations> =
        Expectations::load_all(&root, names).map_err(|e| e.to_string())?;
    let rerun = Rerun::Nextest {
        package: "lockspec-peers".into(),
        test: "conformance".into(),
    };
    let tests = plan::plan(&suite, &Selection::all(judged), &expected, &rerun);
    let mut all = trials(&suite, tests, &settings);
    all.extend(skipped);
    all.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(all)
}

/// The tests of an implementation that is not installed, ignored with the reason.
fn ignored(suite: &Suite, name: &str, reason: &str) -> Vec<Trial> {
    suite
        .scenarios
        .iter()
        .map(|s| {
            let reason = reason.to_owned();
            Trial::ignorable_test(format!("{name}::{}", s.id), move || {
                Ok(Completion::ignored_with(reason))
            })
        })
        .collect()
}
