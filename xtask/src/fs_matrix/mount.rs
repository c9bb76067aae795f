//! Making and unmounting the file systems of `cargo xtask fs-matrix`, the lock check across a
//! stacked mount's boundary, and the guardian shell that cleans up after an interrupted run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Why a file system cannot be made here, and the package that would help, if any.
#[derive(Debug)]
pub(super) struct Skip {
    pub(super) reason: String,
    pub(super) package: Option<&'static str>,
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
pub(super) struct Made {
    /// Its directory for `--dir`, or `None` for the system's temporary directory.
    pub(super) dir: Option<PathBuf>,
    /// The mount point to unmount afterwards.
    pub(super) mount: Option<PathBuf>,
    /// How it was made, for the report.
    pub(super) how: String,
    /// The directory below the mount that holds the same files (overlay's upper layer, bindfs's
    /// source), if any.
    pub(super) below: Option<(PathBuf, &'static str)>,
}

impl Made {
    pub(super) fn describe(&self) -> String {
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
pub(super) fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub(super) fn need(program: &str, package: &'static str) -> Result<(), Skip> {
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
pub(super) fn make(fs: &str, base: &Path) -> Result<Made, Skip> {
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
pub(super) fn remove_scaffolding(fs: &str, base: &Path) {
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
pub(super) fn boundary(worker: &Path, mount: &Path, below: &Path, what: &str) -> String {
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
pub(super) fn outcome(line: &str) -> String {
    line.split_once("\"outcome\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| line.trim().to_owned(), |(o, _)| o.to_owned())
}

/// Unmounts everything mounted at or under `path`, deepest first, and detaches the loop devices
/// of images under it.
pub(super) fn unmount_under(path: &Path) {
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
pub(super) struct Guardian {
    child: Child,
    pub(super) stdin: Option<ChildStdin>,
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
    pub(super) fn start(base: &Path) -> Result<Guardian, String> {
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
    pub(super) fn watch(&mut self, pid: u32) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "pid {pid}");
        }
    }

    /// Everything is cleaned up: the guardian exits without doing anything.
    pub(super) fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "done");
        }
        let _ = self.child.wait();
    }
}
