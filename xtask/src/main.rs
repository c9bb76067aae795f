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

const USAGE: &str = "\
usage: cargo xtask <task> [args...]

tasks:
  bench [ARGS]         build in release mode and measure the reference (or --impl NAME,...|all,
                       --worker 'CMD') against a raw-flock baseline: a table, and bench.json,
                       bench.md, bench.html and bench-NAME.svg under target/lockspec/
  conformance [ARGS]   build the workers and run the conformance suite (default: the reference);
                       ARGS go to the runner, see `cargo xtask conformance --help`
  conformance --target windows [ARGS]
                       the same for Windows, cross-built and run under Wine (Linux hosts)
  fs-matrix [ARGS]     as root on Linux: the suite on tmpfs, ext4, xfs, btrfs, overlayfs and FUSE,
                       mounted under target/lockspec/fs/; writes docs/fs-matrix.md; see
                       `cargo xtask fs-matrix --help`
  peers [NAME...]      install the Python and Node peers (default: all) under target/lockspec/,
                       pinned, once; `conformance` does this itself for the peers --impl names
  stress [ARGS]        random, reproducible contention against one implementation, with a
                       checker of the history: --impl NAME (or mutant:NAME), --procs N,
                       --threads T, --duration S, --seed X; see `cargo xtask stress --help`
  test [ARGS]          run the whole test suite: cargo nextest run --workspace, then the doctests;
                       ARGS go to nextest (installs the peers first)
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("bench") => bench::run(&rest),
        Some("conformance") => conformance::run(&rest),
        Some("fs-matrix") => fs_matrix::run(&rest),
        Some("peers") => peers::run(&rest),
        Some("stress") => stress::run(&rest),
        Some("test") => test::run(&rest),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
        None => Err(format!("no task given\n\n{USAGE}")),
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
