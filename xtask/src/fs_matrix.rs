//! `cargo xtask fs-matrix`: the conformance suite on the file systems users have (tmpfs, ext4,
//! xfs and btrfs on loop images, overlayfs, and FUSE through bindfs), one column each, written
//! to `docs/fs-matrix.md`.
//!
//! Linux only, as root. Everything is mounted under `target/lockspec/fs/` and unmounted after its
//! run. A guardian shell, which ignores SIGINT, SIGTERM and SIGHUP and waits for this process's
//! end on a pipe, unmounts whatever is left (and stops the runner) even if this process is
//! interrupted or killed. A file system that cannot be made here is a column that says why.
//!
//! The verdicts come from the `report.json` that each run of `lockspec --out DIR` writes
//! (spec/REPORT.md), never from its terminal output, which is only kept in a log.

mod mount;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::builder::{NonEmptyStringValueParser, PossibleValuesParser};

use mount::{Guardian, Made, Skip, boundary, make, remove_scaffolding, unmount_under};
use report::{Column, read_report, render};

/// What `cargo xtask fs-matrix --help` says besides the options.
pub const ABOUT: &str = "\
As root on Linux: the suite on tmpfs, ext4, xfs, btrfs, overlayfs and FUSE.

Mounts each file system under target/lockspec/fs/, runs the conformance suite there
(`lockspec --dir MOUNT --out DIR`, then reads DIR/report.json), unmounts it, and writes one
report (default: docs/fs-matrix.md). File systems: default (the system's temporary directory,
for comparison), tmpfs, ext4, xfs, btrfs, overlay, fuse. The tools they need, on Debian and
Ubuntu: apt-get install -y e2fsprogs xfsprogs btrfs-progs bindfs fuse3 (a missing one skips its
column).";

/// The file systems, in the report's order.
const FILESYSTEMS: [&str; 7] = [
    "default", "tmpfs", "ext4", "xfs", "btrfs", "overlay", "fuse",
];

/// What the command line asked for.
#[derive(Debug, Default, clap::Args)]
pub struct Options {
    /// The implementations to judge, as the runner's --impl (default: the reference).
    #[arg(long = "impl", value_name = "NAME,...", value_parser = NonEmptyStringValueParser::new())]
    impls: Option<String>,
    /// Only these file systems, in the report's order.
    #[arg(
        long,
        value_name = "FS,...",
        value_delimiter = ',',
        value_parser = PossibleValuesParser::new(FILESYSTEMS)
    )]
    only: Option<Vec<String>>,
    /// The runner's --timing-scale.
    #[arg(long = "timing-scale", value_name = "F", value_parser = NonEmptyStringValueParser::new())]
    scale: Option<String>,
    /// The runner's --filter.
    #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new())]
    filter: Option<String>,
    /// Where to write the report (default: docs/fs-matrix.md).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs the matrix and writes the report.
pub fn run(opts: &Options) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("fs-matrix needs Linux (loop devices, overlayfs and FUSE)".into());
    }
    if !is_root() {
        return Err(
            "fs-matrix mounts file systems, so it runs as root: sudo -E cargo xtask fs-matrix"
                .into(),
        );
    }
    crate::run(
        crate::cargo()
            .args(["build", "--quiet"])
            .args(crate::RUNNER_AND_WORKERS)
            .arg("--bins"),
    )?;
    let lockspec = crate::target_dir()
        .join("debug")
        .join(format!("lockspec{}", std::env::consts::EXE_SUFFIX));
    let base = crate::target_dir().join("lockspec").join("fs");
    // Left over by a run that could not clean up (the machine went down, say).
    unmount_under(&base);
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let mut guardian = Guardian::start(&base)?;

    let wanted: Vec<&str> = FILESYSTEMS
        .iter()
        .copied()
        .filter(|fs| opts.only.as_ref().is_none_or(|o| o.iter().any(|n| n == fs)))
        .collect();
    let mut columns = Vec::new();
    let mut missing_packages = Vec::new();
    for fs in wanted {
        let column = match make(fs, &base) {
            Err(Skip { reason, package }) => {
                if let Some(p) = package {
                    missing_packages.push(p);
                }
                println!("fs-matrix: {fs}: skipped: {reason}");
                Column::skipped(fs, reason)
            }
            Ok(made) => {
                println!("fs-matrix: {fs}: running the suite on {}", made.describe());
                let mut result = run_suite(&lockspec, &made, opts, &base, &mut guardian);
                if let (Ok(column), Some(mount), Some(below)) =
                    (&mut result, &made.mount, &made.below)
                {
                    let worker = lockspec.with_file_name(format!(
                        "lockspec-worker-reference{}",
                        std::env::consts::EXE_SUFFIX
                    ));
                    column.boundary = Some(boundary(&worker, mount, &below.0, below.1));
                }
                if let (Ok(column), Some(default)) = (
                    &mut result,
                    columns.iter().find(|c: &&Column| c.fs == "default"),
                ) {
                    confirm_differences(column, default, &lockspec, &made, opts, &base);
                }
                if let Some(mount) = &made.mount {
                    unmount_under(mount);
                }
                remove_scaffolding(fs, &base);
                match result {
                    Ok(column) => {
                        println!("fs-matrix: {fs}: {}", column.summary());
                        column
                    }
                    Err(e) => {
                        unmount_under(&base);
                        guardian.finish();
                        return Err(e);
                    }
                }
            }
        };
        columns.push(column);
    }
    unmount_under(&base);
    guardian.finish();

    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| crate::root().join("docs").join("fs-matrix.md"));
    // Paths in the workspace are written relative to it: the report is committed.
    let text = render(&columns, opts).replace(&format!("{}/", crate::root().display()), "");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("fs-matrix: report written to {}", out.display());
    if !missing_packages.is_empty() {
        missing_packages.dedup();
        println!(
            "fs-matrix: to run the skipped file systems too: apt-get update && apt-get install -y {}",
            missing_packages.join(" ")
        );
    }
    Ok(())
}

/// Whether this process runs as root: its effective user ID, the second of the `Uid:` line of
/// `/proc/self/status`, is 0.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// How many times a test whose verdict differs from the default directory's is run again, on
/// both file systems, before the difference is blamed on the file system.
const RERUNS: usize = 3;

/// Runs every test whose verdict on `column` differs from `default`'s again, [`RERUNS`] times
/// on each, so that the report can tell a file system's doing from a flaky test.
fn confirm_differences(
    column: &mut Column,
    default: &Column,
    lockspec: &Path,
    made: &Made,
    opts: &Options,
    base: &Path,
) {
    let out = base.join(format!("{}-rerun-report", column.fs));
    for (name, cell) in &mut column.cells {
        let before = default.cells.iter().find(|(n, _)| n == name);
        if before.is_none_or(|(_, b)| b.verdict == cell.verdict) {
            continue;
        }
        println!(
            "fs-matrix: {}: {name} differs from the default directory; running it again",
            column.fs
        );
        let again = |dir: Option<&Path>| {
            (0..RERUNS)
                .map(|_| rerun(lockspec, dir, name, opts, &out))
                .collect::<Vec<_>>()
        };
        cell.reruns = Some((again(made.dir.as_deref()), again(None)));
    }
}

/// The verdict of one more run of the test `name`, with `--dir dir`, read from the report it
/// writes into `out`.
fn rerun(lockspec: &Path, dir: Option<&Path>, name: &str, opts: &Options, out: &Path) -> String {
    let mut cmd = Command::new(lockspec);
    if let Some(dir) = dir {
        cmd.arg("--dir").arg(dir);
    }
    if let Some((imp, _)) = name.split_once("::") {
        cmd.args(["--impl", imp]);
    }
    if let Some(s) = &opts.scale {
        cmd.args(["--timing-scale", s]);
    }
    cmd.args(["--exact", "--filter", name]);
    let _ = std::fs::remove_dir_all(out);
    cmd.arg("--out").arg(out);
    if cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return "did not run".into();
    }
    read_report(&out.join("report.json"))
        .ok()
        .and_then(|cells| cells.into_iter().find(|(n, _)| n == name))
        .map_or_else(|| "did not run".into(), |(_, c)| c.verdict)
}

/// Runs `lockspec` on the made file system, with its reports in `base/FS-report/`, and reads
/// the verdicts from its `report.json`.
fn run_suite(
    lockspec: &Path,
    made: &Made,
    opts: &Options,
    base: &Path,
    guardian: &mut Guardian,
) -> Result<Column, String> {
    let fs = made
        .dir
        .as_deref()
        .and_then(|d| d.file_name())
        .map_or("default".to_owned(), |n| n.to_string_lossy().into_owned());
    let reports = base.join(format!("{fs}-report"));
    // A report left by an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&reports);
    let mut cmd = Command::new(lockspec);
    if let Some(dir) = &made.dir {
        cmd.arg("--dir").arg(dir);
    }
    if let Some(i) = &opts.impls {
        cmd.args(["--impl", i]);
    }
    if let Some(s) = &opts.scale {
        cmd.args(["--timing-scale", s]);
    }
    if let Some(f) = &opts.filter {
        cmd.args(["--filter", f]);
    }
    cmd.arg("--out").arg(&reports);
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", lockspec.display()))?;
    guardian.watch(child.id());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for {}: {e}", lockspec.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = base.join(format!("{fs}.log"));
    let _ = std::fs::write(&log, format!("{stdout}\n--- stderr ---\n{stderr}"));
    // No exit code: a signal ended it (this runs on Linux only).
    if out.status.code().is_none() {
        return Err(format!(
            "the runner was stopped on {fs} ({}); everything is unmounted",
            out.status
        ));
    }
    let (cells, problem) = match read_report(&reports.join("report.json")) {
        Ok(cells) if !cells.is_empty() => (cells, None),
        Ok(_) => (
            Vec::new(),
            Some(format!("no trials in {}", reports.display())),
        ),
        Err(e) => {
            let said = stderr.trim();
            let problem = if said.is_empty() {
                format!("{e} ({}); see {}", out.status, log.display())
            } else {
                said.to_owned()
            };
            (Vec::new(), Some(problem))
        }
    };
    Ok(Column {
        fs,
        how: made.how.clone(),
        skipped: false,
        cells,
        seconds,
        problem,
        boundary: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_and_mistakes_named() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: Options,
        }
        let parse = |s: &str| {
            let words = std::iter::once("fs-matrix").chain(s.split_whitespace());
            <Cli as clap::Parser>::try_parse_from(words).map(|c| c.options)
        };
        let o = parse("--impl reference,std --only tmpfs,fuse --timing-scale=2").unwrap();
        assert_eq!(o.impls.as_deref(), Some("reference,std"));
        assert_eq!(o.only, Some(vec!["tmpfs".to_owned(), "fuse".to_owned()]));
        assert_eq!(o.scale.as_deref(), Some("2"));
        for (args, error) in [
            ("--bogus", "unexpected argument '--bogus'"),
            ("--only nfs", "invalid value 'nfs'"),
            ("--impl", "a value is required for '--impl"),
            ("--impl=", "a value is required for '--impl"),
        ] {
            let said = parse(args).unwrap_err().to_string();
            assert!(said.contains(error), "{args}: {said}");
        }
    }
}
