//! The conformance suite as a test: every scenario against the reference implementation, one
//! test each, for `cargo test` and `cargo nextest`.

use std::process::ExitCode;

use libtest_mimic::Arguments;
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, Settings, suite, trials};

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Scenarios mostly wait, so run more of them at once than there are cores.
    if args.test_threads.is_none() {
        args.test_threads = Some(8);
    }
    let root = suite::default_root();
    let suite = match suite::load(&root) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "error: the suite at {} cannot be loaded ({} problem(s))",
                root.display(),
                errors.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let timing = match Timing::from_env() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = Settings { timing, dir: None };
    let reference = Implementation::new(
        "reference",
        env!("CARGO_BIN_EXE_lockspec-worker-reference"),
        &[],
    );
    let trials = trials(&suite, &[reference], &settings, |name| {
        format!("cargo nextest run -p lockspec-conformance --test conformance -E 'test(={name})'")
    });
    libtest_mimic::run(&args, trials).exit_code()
}
