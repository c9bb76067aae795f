//! The lockspec conformance runner: loads the spec and the scenarios, drives workers over the
//! protocol of `spec/PROTOCOL.md`, and judges what they do.
//!
//! One pipeline, several front ends: [`suite::load`] reads `spec/` and `scenarios/` into a
//! [`Suite`]; [`plan::plan`] turns a [`plan::Selection`] into the tests to run; [`runner::run`]
//! plays them ([`run::run_mixed`] plays one scenario with its [`process::Implementation`]s and
//! returns a [`run::TrialReport`]); [`judge`] judges each against its expectation and decides
//! whether the run fails; [`report`] renders the results. The `lockspec` binary and
//! [`trials`] (libtest-mimic) are the front ends.

pub mod calibrate;
pub mod cleanup;
pub mod expectations;
pub mod implementations;
pub mod judge;
mod libtest;
mod locate;
pub mod plan;
pub mod process;
pub mod report;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod session;
pub mod stress;
pub mod suite;
mod sys;
pub mod timing;

pub use libtest::trials;
pub use process::Implementation;
pub use run::{Settings, TrialReport};
pub use suite::Suite;

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
