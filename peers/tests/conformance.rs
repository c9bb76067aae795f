//! The conformance suite as a test: every scenario against the reference implementation, every
//! Rust peer and the Python peer `locket`, one test each, for `cargo test` and `cargo nextest`.
//!
//! Each peer is judged against its expectation file (`expectations/NAME.json`): a failure listed
//! there passes only if it happens as listed, so an adapter or a library that changes is noticed.
//! The Python peer needs `cargo xtask peers` (which `cargo xtask test` runs first); when it is not
//! installed its tests fail and say so, unless `LOCKSPEC_SKIP_MISSING_PEERS=1`, which turns them
//! into ignored tests that give the reason.

use std::path::Path;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Trial};
use lockspec_conformance::expectations::Expectations;
use lockspec_conformance::implementations::{self as builtins, Language, Locations};
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

fn plan() -> Result<Vec<Trial>, String> {
    let root = suite::default_root();
    let suite = suite::load(&root).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(
            "{}\nthe suite at {} cannot be loaded ({} problem(s))",
            list.join("\n"),
            root.display(),
            errors.len()
        )
    })?;
    let mut settings = Settings {
        timing: Timing::from_env()?,
        dir: None,
        reference: None,
    };
    // Every Rust worker is built into one directory: this package's, and the reference's (a
    // binary of lockspec-conformance).
    let worker = Path::new(lockspec_conformance::bin_path!("lockspec-worker-std"));
    let at = Locations::new(worker.parent().ok_or("no directory of workers")?, &root);
    let reference_builtin = builtins::find("reference").ok_or("no built-in reference")?;
    settings.reference = Some(reference_builtin.resolve(&at).map_err(|e| e.to_string())?);
    let skip_missing = std::env::var_os(SKIP_MISSING).is_some_and(|v| v == "1");
    let mut judged = Vec::new();
    let mut skipped = Vec::new();
    // The reference and every Rust peer of the registry that exists here, and one Python peer.
    let rust = builtins::BUILTINS
        .iter()
        .filter(|b| b.language == Language::Rust && b.exists_here());
    let python = builtins::find(PYTHON_PEER).ok_or_else(|| format!("no built-in {PYTHON_PEER}"))?;
    for builtin in rust.chain([python]) {
        let name = builtin.name;
        let imp = match builtin.resolve(&at) {
            Ok(imp) => imp,
            Err(missing) if skip_missing => {
                skipped.extend(ignored(
                    &suite,
                    name,
                    &format!("{missing} ({SKIP_MISSING}=1)"),
                ));
                continue;
            }
            Err(missing) => missing.into_implementation(),
        };
        let expected = Expectations::load(&root, name).map_err(|e| e.to_string())?;
        judged.push((imp, expected));
    }
    let mut all = trials(&suite, &judged, &settings, |name| {
        format!("cargo nextest run -p lockspec-peers --test conformance -E 'test(={name})'")
    });
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
