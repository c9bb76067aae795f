//! `cargo xtask bench`: builds the benchmark and the workers in release mode, then runs
//! `lockspec-bench`, which writes its outputs under `target/lockspec/`.

use std::ffi::OsString;
use std::process::Command;

/// Installs the peers that `--impl` names, builds `lockspec-bench` and the Rust workers in release
/// mode, and runs `lockspec-bench ARGS` (with `--out target/lockspec` unless given).
pub fn run(args: &[String]) -> Result<(), String> {
    let peers = crate::peers::named_in(args);
    if !peers.is_empty() {
        crate::peers::install(Some(&peers));
    }
    // Release mode: the workers are what is measured.
    crate::run(
        crate::cargo()
            .args([
                "build",
                "--quiet",
                "--release",
                "--package",
                "lockspec-bench",
            ])
            .args(crate::RUNNER_AND_WORKERS)
            .arg("--bins"),
    )?;
    let exe = crate::target_dir()
        .join("release")
        .join(format!("lockspec-bench{}", std::env::consts::EXE_SUFFIX));
    let mut command = Command::new(&exe);
    command.args(args);
    if !args.iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        let out: OsString = crate::target_dir().join("lockspec").into();
        command.arg("--out").arg(out);
    }
    let typed = std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let status = command
        .env("LOCKSPEC_BENCH_COMMAND", typed)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the benchmark failed ({status})"))
    }
}
