//! `cargo xtask`: the one entry point for lockspec's tasks.
//!
//! Each subcommand is a module. Cargo is invoked through `$CARGO` and the workspace root is found
//! from this crate's manifest directory, so the tasks work from any current directory.

mod bench;
mod conformance;
mod fs_matrix;
mod peers;
mod stress;
mod test;
mod windows;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// lockspec's tasks.
#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    subcommand_value_name = "TASK",
    subcommand_help_heading = "Tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// One task; the arguments of those that run another program go to it unchanged.
#[derive(Debug, Subcommand)]
enum Task {
    /// Measure the reference (or --impl NAME,...|all, --worker 'CMD') against raw flock
    ///
    /// Builds in release mode and measures against a raw-flock baseline: a table, and
    /// bench.json, bench.md, bench.html and bench-NAME.svg under target/lockspec/. ARGS go to
    /// lockspec-bench.
    #[command(disable_help_flag = true)]
    Bench(Passed),
    /// Build the workers and run the conformance suite (default: the reference)
    ///
    /// ARGS go to the runner: see `cargo xtask conformance --help`. With `--target windows
    /// [ARGS]`, the same for Windows, cross-built and run under Wine (Linux hosts).
    #[command(disable_help_flag = true)]
    Conformance(Passed),
    /// As root on Linux: the suite on tmpfs, ext4, xfs, btrfs, overlayfs and FUSE
    #[command(long_about = fs_matrix::ABOUT)]
    FsMatrix(fs_matrix::Options),
    /// Install the Python and Node peers (default: all) under target/lockspec/, pinned, once
    ///
    /// `conformance` does this itself for the peers that --impl names.
    Peers {
        /// The peers to install.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Random, reproducible contention against one implementation, and a check of the history
    ///
    /// --impl NAME (or mutant:NAME), --procs N, --threads T, --duration S, --seed X: ARGS go to
    /// lockspec-stress, see `cargo xtask stress --help`.
    #[command(disable_help_flag = true)]
    Stress(Passed),
    /// The whole test suite: cargo nextest run --workspace, then the doctests
    ///
    /// Installs the tested peers first; ARGS go to nextest.
    #[command(disable_help_flag = true)]
    Test(Passed),
}

/// Arguments passed on, unchanged, to the program a task runs (`--help` included).
#[derive(Debug, clap::Args)]
struct Passed {
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Bench(p) => bench::run(&p.args),
        Task::Conformance(p) => conformance::run(&p.args),
        Task::FsMatrix(options) => fs_matrix::run(&options),
        Task::Peers { names } => peers::run(&names),
        Task::Stress(p) => stress::run(&p.args),
        Task::Test(p) => test::run(&p.args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `cargo` as the one running us, in the workspace root.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion; a non-zero exit is an error naming the command.
fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// The directory cargo builds into.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// The packages of the runner (`lockspec`, `lockspec-stress`, the reference's worker) and of the
/// other Rust workers, as `cargo build` arguments: with `--bins`, the runner's `BUILD_WORKERS`.
const RUNNER_AND_WORKERS: [&str; 4] = [
    "--package",
    "lockspec-conformance",
    "--package",
    "lockspec-peers",
];

/// Builds the runner and every Rust worker (debug profile) and returns the path of the binary
/// `name`.
fn build_conformance_bin(name: &str) -> Result<PathBuf, String> {
    run(cargo()
        .args(["build", "--quiet"])
        .args(RUNNER_AND_WORKERS)
        .arg("--bins"))?;
    Ok(target_dir()
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs a built program with `args`, in the current directory, and returns how it ended.
fn run_built(exe: &Path, args: &[String]) -> Result<std::process::ExitStatus, String> {
    Command::new(exe)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Task {
        Cli::try_parse_from(std::iter::once("xtask").chain(words.iter().copied()))
            .unwrap()
            .task
    }

    #[test]
    fn the_arguments_of_a_task_that_runs_a_program_pass_unchanged() {
        let words = ["--profile", "ci", "--help", "-E", "x", "--", "--nocapture"];
        let Task::Test(passed) = parse(&[&["test"][..], &words].concat()) else {
            panic!("not the test task");
        };
        assert_eq!(passed.args, words);
        let Task::Conformance(passed) = parse(&["conformance", "--target", "windows"]) else {
            panic!("not the conformance task");
        };
        assert_eq!(passed.args, ["--target", "windows"]);
        let Task::Stress(passed) = parse(&["stress"]) else {
            panic!("not the stress task");
        };
        assert!(passed.args.is_empty());
    }
}
