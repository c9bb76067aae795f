//! `cargo xtask fs-matrix`: the conformance suite on the file systems users have (tmpfs, ext4,
//! xfs and btrfs on loop images, overlayfs, and FUSE through bindfs), one column each, written
//! to `docs/fs-matrix.md`.
//!
//! Linux only, as root. Everything is mounted under `target/lockspec/fs/` and unmounted after its
//! run. A guardian shell, which ignores SIGINT, SIGTERM and SIGHUP and waits for this process's
//! end on a pipe, unmounts whatever is left (and stops the runner) even if this process is
//! interrupted or killed. A file system that cannot be made here is a column that says why.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Instant;

use clap::builder::{NonEmptyStringValueParser, PossibleValuesParser};

/// What `cargo xtask fs-matrix --help` says besides the options.
pub const ABOUT: &str = "\
As root on Linux: the suite on tmpfs, ext4, xfs, btrfs, overlayfs and FUSE.

Mounts each file system under target/lockspec/fs/, runs the conformance suite there
(`lockspec --dir MOUNT`), unmounts it, and writes one report (default: docs/fs-matrix.md). File systems: default (the system's temporary directory,
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
                    confirm_differences(column, default, &lockspec, &made, opts);
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

/// Whether this process runs as root: the owner of `/proc/self` is the effective user.
fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Why a file system cannot be made here, and the package that would help, if any.
#[derive(Debug)]
struct Skip {
    reason: String,
    package: Option<&'static str>,
}

impl Skip {
    fn because(reason: impl Into<String>) -> Skip {
        Skip {
            reason: reason.into(),
            package: None,
        }
    }
}

/// A file system made for one column.
#[derive(Debug)]
struct Made {
    /// Its directory for `--dir`, or `None` for the system's temporary directory.
    dir: Option<PathBuf>,
    /// The mount point to unmount afterwards.
    mount: Option<PathBuf>,
    /// How it was made, for the report.
    how: String,
    /// The directory below the mount that holds the same files (overlay's upper layer, bindfs's
    /// source), if any.
    below: Option<(PathBuf, &'static str)>,
}

impl Made {
    fn describe(&self) -> String {
        match &self.dir {
            Some(d) => format!("{} ({})", d.display(), fs_type(d)),
            None => format!(
                "{} ({})",
                std::env::temp_dir().display(),
                fs_type(&std::env::temp_dir())
            ),
        }
    }
}

/// The file system type of `path` as the kernel names it (`stat -f`).
fn fs_type(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    // The mount point that is the longest prefix of the path holds it.
    mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let point = PathBuf::from(fields.nth(1)?.replace("\\040", " "));
            let kind = fields.next()?;
            path.starts_with(&point)
                .then(|| (point.components().count(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, kind)| kind)
}

/// Whether a program is on the PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn need(program: &str, package: &'static str) -> Result<(), Skip> {
    if have(program) {
        Ok(())
    } else {
        Err(Skip {
            reason: format!("`{program}` is not installed (apt-get install -y {package})"),
            package: Some(package),
        })
    }
}

/// Runs a set-up command; a failure is a reason to skip, with what the command said.
fn setup(cmd: &mut Command) -> Result<(), Skip> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Skip::because(format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        Err(Skip::because(format!(
            "`{}` failed ({}): {}",
            command_text(cmd),
            out.status,
            said.trim()
        )))
    }
}

fn command_text(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn mkdir(path: &Path) -> Result<(), Skip> {
    std::fs::create_dir_all(path)
        .map_err(|e| Skip::because(format!("cannot create {}: {e}", path.display())))
}

/// A sparse file of `mib` MiB.
fn image(path: &Path, mib: u64) -> Result<(), Skip> {
    let _ = std::fs::remove_file(path);
    std::fs::File::create(path)
        .and_then(|f| f.set_len(mib << 20))
        .map_err(|e| Skip::because(format!("cannot create the image {}: {e}", path.display())))
}

/// Makes and mounts the file system `fs` under `base`.
fn make(fs: &str, base: &Path) -> Result<Made, Skip> {
    if fs == "default" {
        return Ok(Made {
            dir: None,
            mount: None,
            how: format!(
                "no `--dir`: the system's temporary directory ({})",
                fs_type(&std::env::temp_dir())
            ),
            below: None,
        });
    }
    need("mount", "mount")?;
    let mount = base.join(fs);
    mkdir(&mount)?;
    let mut below = None;
    let how = match fs {
        "tmpfs" => {
            setup(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", "size=256m,mode=1777", "lockspec-tmpfs"])
                    .arg(&mount),
            )?;
            "`mount -t tmpfs`".to_owned()
        }
        "ext4" | "xfs" | "btrfs" => {
            let (mkfs, package, mib, force) = match fs {
                "ext4" => ("mkfs.ext4", "e2fsprogs", 128, "-F"),
                // mkfs.xfs refuses file systems under 300 MiB.
                "xfs" => ("mkfs.xfs", "xfsprogs", 320, "-f"),
                _ => ("mkfs.btrfs", "btrfs-progs", 128, "-f"),
            };
            need(mkfs, package)?;
            need("losetup", "mount")?;
            if !Path::new("/dev/loop-control").exists() {
                return Err(Skip::because(
                    "no loop devices (/dev/loop-control is missing)",
                ));
            }
            let img = base.join(format!("{fs}.img"));
            image(&img, mib)?;
            setup(Command::new(mkfs).args(["-q", force]).arg(&img))?;
            setup(
                Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&img)
                    .arg(&mount),
            )?;
            format!("`{mkfs}` on a {mib} MiB image, `mount -o loop`")
        }
        "overlay" => {
            let layers = base.join("overlay-layers");
            let _ = std::fs::remove_dir_all(&layers);
            let (lower, upper, work) = (
                layers.join("lower"),
                layers.join("upper"),
                layers.join("work"),
            );
            for d in [&lower, &upper, &work] {
                mkdir(d)?;
            }
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            setup(
                Command::new("mount")
                    .args(["-t", "overlay", "lockspec-overlay", "-o", &options])
                    .arg(&mount),
            )?;
            let how = format!("`mount -t overlay`, upper layer on {}", fs_type(&upper));
            below = Some((upper, "its upper layer"));
            how
        }
        "fuse" => {
            need("bindfs", "bindfs")?;
            if !Path::new("/dev/fuse").exists() {
                return Err(Skip::because(
                    "no /dev/fuse (the fuse kernel module is not loaded)",
                ));
            }
            let source = base.join("fuse-source");
            let _ = std::fs::remove_dir_all(&source);
            mkdir(&source)?;
            // allow_other: workers of `unprivileged` scenarios run as another user.
            setup(
                Command::new("bindfs")
                    .args(["-o", "allow_other"])
                    .arg(&source)
                    .arg(&mount),
            )?;
            let how = format!("`bindfs -o allow_other` over {}", fs_type(&source));
            below = Some((source, "bindfs's source directory"));
            how
        }
        other => return Err(Skip::because(format!("unknown file system {other}"))),
    };
    Ok(Made {
        dir: Some(mount.clone()),
        mount: Some(mount),
        how,
        below,
    })
}

/// Removes what `make` created for `fs` besides the mount point: its image, its layers.
fn remove_scaffolding(fs: &str, base: &Path) {
    let _ = std::fs::remove_file(base.join(format!("{fs}.img")));
    if fs == "overlay" {
        let _ = std::fs::remove_dir_all(base.join("overlay-layers"));
    }
    if fs == "fuse" {
        let _ = std::fs::remove_dir_all(base.join("fuse-source"));
    }
}

/// Whether a lock held through `mount` excludes a process that locks the same file through
/// `below`, the directory that holds the mount's files: the reference worker holds
/// `boundary.lock` through the mount while a second one makes a single attempt from below.
fn boundary(worker: &Path, mount: &Path, below: &Path, what: &str) -> String {
    let file = "lockspec-boundary.lock";
    let start = |dir: &Path| {
        Command::new(worker)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    let talk = |child: &mut Child, path: &Path, timeout: &str| -> Result<String, String> {
        let commands = format!(
            "{{\"seq\":0,\"op\":\"hello\",\"protocol\":1}}\n\
             {{\"seq\":1,\"op\":\"open\",\"handle\":\"a\",\"path\":{path:?},\"timeout_ms\":{timeout},\"callback\":false}}\n\
             {{\"seq\":2,\"op\":\"acquire\",\"handle\":\"a\"}}\n",
            path = path.display().to_string()
        );
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        stdin
            .write_all(commands.as_bytes())
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.as_mut().ok_or("no stdout")?;
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if std::io::BufRead::read_line(&mut reader, &mut line).map_err(|e| e.to_string())? == 0
            {
                return Err("the worker ended early".into());
            }
            if line.contains("\"seq\":2") {
                return Ok(outcome(&line));
            }
        }
    };
    let result = (|| -> Result<String, String> {
        let mut holder = start(mount).map_err(|e| e.to_string())?;
        let held = talk(&mut holder, &mount.join(file), "null");
        let verdict = match held {
            Ok(o) if o == "acquired" => {
                let mut other = start(below).map_err(|e| e.to_string())?;
                let attempt = talk(&mut other, &below.join(file), "0");
                let _ = other.kill();
                let _ = other.wait();
                match attempt?.as_str() {
                    "acquired" => format!(
                        "a lock held through the mount does **not** exclude a process that locks \
                         the same file through {what}: all processes must use the mount"
                    ),
                    "would_block" | "timed_out" => format!(
                        "a lock held through the mount also excludes a process that locks the \
                         same file through {what}"
                    ),
                    other => format!("the attempt through the directory below answered `{other}`"),
                }
            }
            Ok(o) => format!("the lock could not be taken through the mount (`{o}`)"),
            Err(e) => format!("the check could not run: {e}"),
        };
        let _ = holder.kill();
        let _ = holder.wait();
        Ok(verdict)
    })();
    result.unwrap_or_else(|e| format!("the check could not run: {e}"))
}

/// The `outcome` of a reply line.
fn outcome(line: &str) -> String {
    line.split_once("\"outcome\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| line.trim().to_owned(), |(o, _)| o.to_owned())
}

/// Unmounts everything mounted at or under `path`, deepest first, and detaches the loop devices
/// of images under it.
fn unmount_under(path: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = path.to_string_lossy().into_owned();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by(|a, b| b.cmp(a));
    points.dedup();
    for point in points {
        let quiet = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !quiet(Command::new("umount").arg(&point)) {
            eprintln!("fs-matrix: {point} is busy; detaching it lazily");
            quiet(Command::new("umount").arg("-l").arg(&point));
        }
    }
    for fs in ["ext4", "xfs", "btrfs"] {
        let img = path.join(format!("{fs}.img"));
        if img.exists() {
            detach_loops(&img);
        }
    }
}

/// Detaches the loop devices backed by `img` (mount's auto-clear normally did it already).
fn detach_loops(img: &Path) {
    let Ok(out) = Command::new("losetup").arg("-j").arg(img).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((dev, _)) = line.split_once(':') {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// A shell that outlives this process to clean up: it ignores the signals that end a run,
/// reads runner process IDs from its stdin, and at the end of its stdin (when this process
/// ends, however it ends) stops those runners and unmounts everything under the base directory.
struct Guardian {
    child: Child,
    stdin: Option<ChildStdin>,
}

const GUARDIAN: &str = r#"
trap '' INT TERM HUP
base=$1
pids=
while IFS= read -r line; do
  case $line in
    pid\ *) pids="$pids ${line#pid }" ;;
    done) exit 0 ;;
  esac
done
for p in $pids; do kill -TERM "$p" 2>/dev/null; done
i=0
while [ $i -lt 50 ]; do
  alive=
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
  i=$((i + 1))
done
awk -v b="$base" '$2 == b || index($2, b "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
while IFS= read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done
for img in "$base"/*.img; do
  [ -e "$img" ] || continue
  losetup -j "$img" | cut -d: -f1 | while IFS= read -r dev; do losetup -d "$dev"; done
done
echo "fs-matrix: interrupted; the guardian unmounted everything under $base" >&2
"#;

impl Guardian {
    fn start(base: &Path) -> Result<Guardian, String> {
        let mut child = Command::new("sh")
            .args(["-c", GUARDIAN, "sh"])
            .arg(base)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the clean-up shell: {e}"))?;
        let stdin = child.stdin.take();
        Ok(Guardian { child, stdin })
    }

    /// Tells the guardian about a runner to stop if this process ends early.
    fn watch(&mut self, pid: u32) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "pid {pid}");
        }
    }

    /// Everything is cleaned up: the guardian exits without doing anything.
    fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "done");
        }
        let _ = self.child.wait();
    }
}

/// One test's verdict on one file system, and the evidence of a failure.
#[derive(Debug, Clone, Default)]
struct Cell {
    verdict: String,
    rules: Vec<String>,
    step: String,
    expected: String,
    observed: String,
    /// For a verdict that differs from the default directory's: the verdicts of reruns here and
    /// in the default directory.
    reruns: Option<(Vec<String>, Vec<String>)>,
}

impl Cell {
    /// Whether a difference from the default directory held in every rerun, here and there;
    /// true when there were no reruns.
    fn reproduced(&self, default_verdict: Option<&str>) -> bool {
        self.reruns.as_ref().is_none_or(|(here, there)| {
            here.iter().all(|v| *v == self.verdict)
                && there.iter().all(|v| Some(v.as_str()) == default_verdict)
        })
    }

    /// Whether the implementation did not pass: a failure, an error, or a failure its
    /// expectation file predicts.
    fn failed(&self) -> bool {
        matches!(self.verdict.as_str(), "FAIL" | "ERROR" | "XFAIL")
    }
}

/// One file system's column.
#[derive(Debug)]
struct Column {
    fs: String,
    /// How it was made, or why it was skipped.
    how: String,
    skipped: bool,
    /// (test name, cell), in the runner's order.
    cells: Vec<(String, Cell)>,
    seconds: f64,
    /// What the runner said when it could not run at all.
    problem: Option<String>,
    /// Whether a lock taken through the mount excludes one taken through the directory below.
    boundary: Option<String>,
}

impl Column {
    fn skipped(fs: &str, reason: String) -> Column {
        Column {
            fs: fs.to_owned(),
            how: reason,
            skipped: true,
            cells: Vec::new(),
            seconds: 0.0,
            problem: None,
            boundary: None,
        }
    }

    fn count(&self, verdict: &str) -> usize {
        self.cells
            .iter()
            .filter(|(_, c)| c.verdict == verdict)
            .count()
    }

    fn summary(&self) -> String {
        if self.skipped {
            return format!("skipped: {}", self.how);
        }
        if let Some(p) = &self.problem {
            return format!("the runner could not run: {p}");
        }
        let mut parts = Vec::new();
        for verdict in ["PASS", "FAIL", "ERROR", "XFAIL", "XPASS", "N/A", "SKIP"] {
            let n = self.count(verdict);
            if n > 0 || verdict == "PASS" {
                parts.push(format!("{n} {}", verdict.to_lowercase()));
            }
        }
        format!("{} ({:.1} s)", parts.join(", "), self.seconds)
    }
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
) {
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
                .map(|_| rerun(lockspec, dir, name, opts))
                .collect::<Vec<_>>()
        };
        cell.reruns = Some((again(made.dir.as_deref()), again(None)));
    }
}

/// The verdict of one more run of the test `name`, with `--dir dir`.
fn rerun(lockspec: &Path, dir: Option<&Path>, name: &str, opts: &Options) -> String {
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
    let Ok(out) = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() else {
        return "did not run".into();
    };
    parse_output(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or_else(|| "did not run".into(), |(_, c)| c.verdict)
}

/// Runs `lockspec` on the made file system and reads its verdicts.
fn run_suite(
    lockspec: &Path,
    made: &Made,
    opts: &Options,
    base: &Path,
    guardian: &mut Guardian,
) -> Result<Column, String> {
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
    let fs = made
        .dir
        .as_deref()
        .and_then(|d| d.file_name())
        .map_or("default".to_owned(), |n| n.to_string_lossy().into_owned());
    let log = base.join(format!("{fs}.log"));
    let _ = std::fs::write(&log, format!("{stdout}\n--- stderr ---\n{stderr}"));
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = out.status.signal() {
            return Err(format!(
                "the runner was stopped by signal {signal} on {fs}; everything is unmounted"
            ));
        }
    }
    let cells = parse_output(&stdout);
    let problem = (cells.is_empty()).then(|| {
        let said = stderr.trim();
        if said.is_empty() {
            format!("no verdicts ({}); see {}", out.status, log.display())
        } else {
            said.to_owned()
        }
    });
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

/// Reads the progress lines (`[  3/40] PASS  reference::area::name (0.01 s)`) and the
/// explanations of failures (`  rule: ID Title`, `  step: ...`, `  expected: ...`,
/// `  observed: ...`) that `lockspec` prints.
fn parse_output(stdout: &str) -> Vec<(String, Cell)> {
    let mut cells: Vec<(String, Cell)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
            continue;
        };
        let mut words = rest.1.split_whitespace();
        if let (Some(verdict), Some(name)) = (words.next(), words.next()) {
            cells.push((
                name.to_owned(),
                Cell {
                    verdict: verdict.to_owned(),
                    ..Cell::default()
                },
            ));
        }
    }
    let mut current: Option<usize> = None;
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            current = line
                .split_whitespace()
                .next()
                .and_then(|first| cells.iter().position(|(n, _)| n == first))
                .filter(|_| line.split_whitespace().count() > 1 && !line.starts_with('['));
            continue;
        }
        let Some(i) = current else { continue };
        let cell = &mut cells[i].1;
        let field = |key: &str| {
            line.trim_start()
                .strip_prefix(key)
                .map(|v| v.trim().to_owned())
        };
        if let Some(rule) = field("rule:") {
            if let Some(id) = rule.split_whitespace().next() {
                cell.rules.push(id.to_owned());
            }
        } else if let Some(v) = field("step:").or_else(|| field("while:")) {
            cell.step = v;
        } else if let Some(v) = field("expected:") {
            cell.expected = v;
        } else if let Some(v) = field("observed:") {
            cell.observed = v;
        }
    }
    cells
}

/// The Markdown report.
fn render(columns: &[Column], opts: &Options) -> String {
    let mut md = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut command = String::from("sudo -E cargo xtask fs-matrix");
    for (flag, value) in [
        ("--impl", &opts.impls),
        ("--timing-scale", &opts.scale),
        ("--filter", &opts.filter),
    ] {
        if let Some(v) = value {
            let _ = write!(command, " {flag} {v}");
        }
    }
    if let Some(only) = &opts.only {
        let _ = write!(command, " --only {}", only.join(","));
    }
    // The implementations that ran, in the runner's order.
    let mut implementations: Vec<&str> = Vec::new();
    for (name, _) in columns.iter().flat_map(|c| &c.cells) {
        let imp = name.split_once("::").map_or(name.as_str(), |(i, _)| i);
        if !implementations.contains(&imp) {
            implementations.push(imp);
        }
    }
    let implementations = if implementations.is_empty() {
        opts.impls.clone().unwrap_or_else(|| "reference".into())
    } else {
        implementations.join(", ")
    };
    let _ = writeln!(md, "# lockspec on different file systems\n");
    let _ = writeln!(
        md,
        "Generated by `{command}` (Linux, as root) on {}, kernel {}; do not edit by hand, \
         regenerate it. Implementations: {}. Each column is one run of the whole suite with \
         `lockspec --dir` on a fresh file system mounted under `target/lockspec/fs/`; `default` \
         is the system's temporary directory, for comparison.\n",
        today(),
        kernel.trim(),
        implementations
    );
    let _ = writeln!(md, "## File systems\n");
    let _ = writeln!(md, "| file system | how it was made | result |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for c in columns {
        let how = if c.skipped {
            "—".to_owned()
        } else {
            c.how.clone()
        };
        let _ = writeln!(md, "| {} | {} | {} |", c.fs, how, escape(&c.summary()));
    }

    let ran: Vec<&Column> = columns
        .iter()
        .filter(|c| !c.skipped && c.problem.is_none())
        .collect();
    let default = ran.iter().find(|c| c.fs == "default").copied();
    let verdict_in = |c: &Column, name: &str| {
        c.cells
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, cell)| cell.clone())
    };

    let _ = writeln!(
        md,
        "\n## Rules that a file system breaks for every implementation\n"
    );
    let mut any = false;
    for c in ran.iter().filter(|c| c.fs != "default") {
        // scenario ID -> (test name, cell) of every implementation on it.
        let mut by_scenario: Vec<(String, Vec<(&String, &Cell)>)> = Vec::new();
        for (name, cell) in &c.cells {
            let scenario = name
                .split_once("::")
                .map_or(name.as_str(), |(_, s)| s)
                .to_owned();
            match by_scenario.iter_mut().find(|(s, _)| *s == scenario) {
                Some((_, v)) => v.push((name, cell)),
                None => by_scenario.push((scenario, vec![(name, cell)])),
            }
        }
        for (scenario, cells) in by_scenario {
            // Failing for every implementation, and (where the default directory is known)
            // failing again in every rerun while passing there.
            let all_fail = cells.iter().all(|(n, cell)| {
                cell.failed()
                    && cell.reproduced(
                        default
                            .and_then(|d| verdict_in(d, n))
                            .as_ref()
                            .map(|c| c.verdict.as_str()),
                    )
            });
            // Not the file system's doing if the same happens in the default directory.
            let fails_anyway = default.is_some_and(|d| {
                cells
                    .iter()
                    .all(|(n, _)| verdict_in(d, n).is_none_or(|cell| cell.failed()))
            });
            if !all_fail || fails_anyway {
                continue;
            }
            any = true;
            let (_, evidence) = cells
                .iter()
                .find(|(_, cell)| !cell.observed.is_empty())
                .copied()
                .unwrap_or(cells[0]);
            let _ = writeln!(
                md,
                "- **{}** breaks {} for every implementation: `{scenario}` fails \
                 (step {}: expected {}; observed {}).",
                c.fs,
                if evidence.rules.is_empty() {
                    "a rule".to_owned()
                } else {
                    evidence.rules.join(", ")
                },
                escape(&evidence.step),
                escape(&evidence.expected),
                escape(&evidence.observed)
            );
        }
    }
    if !any {
        let _ = writeln!(
            md,
            "None: on every file system that could be mounted, each scenario passes for at least \
             one implementation, or fails in the default directory as well."
        );
    }

    if let Some(d) = default {
        let _ = writeln!(md, "\n## Differences from the default directory\n");
        let mut differences = 0;
        for c in ran.iter().filter(|c| c.fs != "default") {
            for (name, cell) in &c.cells {
                let before = verdict_in(d, name).map(|b| b.verdict);
                if before.as_deref() == Some(cell.verdict.as_str()) {
                    continue;
                }
                differences += 1;
                let why = if cell.observed.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": step {}; expected {}; observed {}",
                        escape(&cell.step),
                        escape(&cell.expected),
                        escape(&cell.observed)
                    )
                };
                let reruns = match &cell.reruns {
                    Some((here, there)) => {
                        let list = |v: &[String]| {
                            v.iter()
                                .map(|x| x.to_lowercase())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let judged = if cell.reproduced(before.as_deref()) {
                            "the difference held every time"
                        } else {
                            "**not reproduced: a flaky test, not the file system**"
                        };
                        format!(
                            ". Run {RERUNS} more times on each: {} here, {} in the default \
                             directory; {judged}",
                            list(here),
                            list(there)
                        )
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    md,
                    "- {} `{name}`: {} in the default directory, {} here{why}{reruns}.",
                    c.fs,
                    before.map_or("not run".to_owned(), |v| v.to_lowercase()),
                    cell.verdict.to_lowercase()
                );
            }
        }
        if differences == 0 {
            let _ = writeln!(
                md,
                "None: every test has the same verdict on every file system as in the default \
                 directory. (Where an implementation fails a scenario everywhere, that is the \
                 implementation's doing, not the file system's.)"
            );
        }
    }

    let boundaries: Vec<&Column> = ran
        .iter()
        .copied()
        .filter(|c| c.boundary.is_some())
        .collect();
    if !boundaries.is_empty() {
        let _ = writeln!(md, "\n## Locks across the mount's boundary\n");
        let _ = writeln!(
            md,
            "Stacked file systems show files that also exist in a directory below them. Checked \
             with the reference worker, outside the scenarios (no rule says what should happen):\n"
        );
        for c in boundaries {
            let _ = writeln!(
                md,
                "- **{}**: {}.",
                c.fs,
                c.boundary.as_deref().unwrap_or_default()
            );
        }
    }

    let _ = writeln!(md, "\n## Every test\n");
    let _ = write!(md, "| test |");
    for c in &ran {
        let _ = write!(md, " {} |", c.fs);
    }
    let _ = write!(md, "\n| --- |");
    for _ in &ran {
        let _ = write!(md, " --- |");
    }
    let _ = writeln!(md);
    let mut names: Vec<&str> = Vec::new();
    for c in &ran {
        for (n, _) in &c.cells {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    names.sort_unstable();
    for name in names {
        let _ = write!(md, "| `{name}` |");
        for c in &ran {
            let cell = c.cells.iter().find(|(n, _)| n == name).map(|(_, c)| c);
            let text = match cell.map(|c| c.verdict.as_str()) {
                None => "—".to_owned(),
                Some("PASS") => "pass".to_owned(),
                Some(v @ ("FAIL" | "ERROR" | "XPASS")) => format!("**{}**", v.to_lowercase()),
                Some(v) => v.to_lowercase(),
            };
            let _ = write!(md, " {text} |");
        }
        let _ = writeln!(md);
    }

    md
}

/// Text safe inside a Markdown table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
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

    #[test]
    fn verdicts_and_evidence_are_read_from_the_runners_output() {
        let out = "\
[  1/2] PASS  reference::acquire::free_lock_at_once (0.01 s)
[  2/2] FAIL  reference::identity::two_processes (0.30 s)

reference::identity::two_processes FAILED
  scenario: a second process blocks (scenarios/identity/two_processes.json)
  rule:     IDN-2 Lock objects in different processes exclude each other
  rule:     ACQ-2 Acquiring a held lock waits
  step:     4 of 9: acquire p2/main a
  expected: blocks (no reply within 200.0 ms)
  observed: acquired after 0.3 ms
  timeline:
";
        let cells = parse_output(out);
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].1.verdict, "PASS");
        let failed = &cells[1].1;
        assert_eq!(failed.verdict, "FAIL");
        assert_eq!(failed.rules, ["IDN-2", "ACQ-2"]);
        assert_eq!(failed.step, "4 of 9: acquire p2/main a");
        assert_eq!(failed.observed, "acquired after 0.3 ms");
    }

    fn cell(verdict: &str) -> Cell {
        Cell {
            verdict: verdict.into(),
            rules: vec!["IDN-2".into()],
            step: "4 of 9".into(),
            expected: "blocks".into(),
            observed: "acquired".into(),
            reruns: None,
        }
    }

    fn column(fs: &str, cells: &[(&str, &str)]) -> Column {
        Column {
            fs: fs.into(),
            how: "made".into(),
            skipped: false,
            cells: cells
                .iter()
                .map(|(n, v)| ((*n).to_owned(), cell(v)))
                .collect(),
            seconds: 1.0,
            problem: None,
            boundary: None,
        }
    }

    #[test]
    fn a_rule_broken_for_every_implementation_is_said_plainly() {
        let default = column(
            "default",
            &[
                ("reference::identity::two_processes", "PASS"),
                ("std::identity::two_processes", "PASS"),
                ("reference::acquire::free", "PASS"),
                ("std::acquire::free", "FAIL"),
                ("reference::file::kept", "FAIL"),
                ("std::file::kept", "XFAIL"),
            ],
        );
        let fuse = column(
            "fuse",
            &[
                ("reference::identity::two_processes", "FAIL"),
                ("std::identity::two_processes", "ERROR"),
                ("reference::acquire::free", "PASS"),
                ("std::acquire::free", "FAIL"),
                ("reference::file::kept", "FAIL"),
                ("std::file::kept", "XFAIL"),
            ],
        );
        let skipped = Column::skipped("xfs", "no mkfs.xfs".into());
        let md = render(&[default, fuse, skipped], &Options::default());
        assert!(
            md.contains(
                "**fuse** breaks IDN-2 for every implementation: `identity::two_processes`"
            ),
            "{md}"
        );
        // Failing for one implementation only, or failing in the default directory too, is
        // not the file system's doing.
        assert!(!md.contains("`acquire::free` fails"), "{md}");
        assert!(!md.contains("`file::kept` fails"), "{md}");
        assert!(
            md.contains(
                "- fuse `std::identity::two_processes`: pass in the default directory, error here"
            ),
            "{md}"
        );
        assert!(!md.contains("- fuse `std::acquire::free`"), "{md}");
        assert!(md.contains("| xfs | — | skipped: no mkfs.xfs |"), "{md}");
    }

    #[test]
    fn a_difference_that_reruns_do_not_reproduce_is_called_flaky() {
        let default = column(
            "default",
            &[
                ("reference::timeout::short", "PASS"),
                ("std::timeout::short", "PASS"),
            ],
        );
        let mut tmpfs = column(
            "tmpfs",
            &[
                ("reference::timeout::short", "FAIL"),
                ("std::timeout::short", "FAIL"),
            ],
        );
        let pass = || vec!["PASS".to_owned(); RERUNS];
        let fail = || vec!["FAIL".to_owned(); RERUNS];
        tmpfs.cells[0].1.reruns = Some((pass(), pass()));
        tmpfs.cells[1].1.reruns = Some((fail(), pass()));
        let md = render(&[default, tmpfs], &Options::default());
        assert!(
            md.contains(
                "- tmpfs `reference::timeout::short`: pass in the default directory, fail here"
            ) && md.contains("**not reproduced: a flaky test, not the file system**"),
            "{md}"
        );
        assert!(md.contains("the difference held every time"), "{md}");
        // One implementation's difference was flaky, so not every implementation fails here.
        assert!(!md.contains("**tmpfs** breaks"), "{md}");
    }
}
