//! Clean-up on Unix: killing process groups, the `/proc` sweep of worker tokens (Linux), and the
//! SIGINT/SIGTERM/SIGHUP handler, through `signal-hook`'s self-pipe and a thread that cleans up.

use std::io::Write as _;
use std::path::Path;
use std::sync::MutexGuard;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Registry;

/// How long [`sweep`] waits for the processes it killed to die.
const SWEEP_LIMIT: Duration = Duration::from_secs(2);

/// The signals that end a run.
const SIGNALS: [libc::c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Kills the process group that the worker `pid` leads, the worker itself, and the `children`
/// it reported starting.
pub fn kill_group(pid: u32, children: &[u32]) {
    // SAFETY: plain system calls on process IDs this runner started and has not reaped.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
        for &child in children {
            libc::kill(child as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Kills every process whose token `matches`, until none is left or [`SWEEP_LIMIT`] has passed,
/// and returns how many it killed.
#[cfg(target_os = "linux")]
pub fn sweep(matches: &dyn Fn(&str) -> bool) -> usize {
    use std::time::Instant;

    let own = std::process::id();
    let key = format!("{}=", super::TOKEN_ENV);
    let end = Instant::now() + SWEEP_LIMIT;
    let mut killed = std::collections::BTreeSet::new();
    loop {
        let mut found = 0;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return killed.len();
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == own {
                continue;
            }
            // A process that has exited (a zombie) has no environment any more.
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let marked = environ.split(|b| *b == 0).any(|var| {
                var.strip_prefix(key.as_bytes())
                    .and_then(|token| std::str::from_utf8(token).ok())
                    .is_some_and(matches)
            });
            if marked {
                found += 1;
                killed.insert(pid);
                // SAFETY: a plain system call; the process carries a token of this runner.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        if found == 0 || Instant::now() >= end {
            return killed.len();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether the process `pid` may be alive: it exists, or exists and is not ours to signal. A
/// reused process ID counts as alive, so a sweep never touches what may not be a dead run's.
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The cgroup v2 hierarchy, where the machine mounts one (`/sys/fs/cgroup` or, in the hybrid
/// layout, `/sys/fs/cgroup/unified`).
#[cfg(target_os = "linux")]
fn cgroup_root() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        // Fields: ... mount-point ... ` - ` fstype source options.
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

#[cfg(not(target_os = "linux"))]
fn cgroup_root() -> Option<std::path::PathBuf> {
    None
}

/// This run's cgroup, `lockspec-PID` under the cgroup v2 hierarchy, made on first use where the
/// machine lets the runner make one (as root, usually); `None` elsewhere.
pub fn run_group() -> Option<&'static Path> {
    static GROUP: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    GROUP
        .get_or_init(|| {
            let group = cgroup_root()?.join(format!("lockspec-{}", std::process::id()));
            let made = std::fs::create_dir(&group).is_ok() || group.join("cgroup.kill").exists();
            (made && group.join("cgroup.kill").exists()).then_some(group)
        })
        .as_deref()
}

/// Moves the process `pid` (a worker just started, before it starts anything) into this run's
/// cgroup, where there is one; its descendants are born in it, whatever they do to their
/// environment or process group.
pub fn adopt(pid: u32) {
    if let Some(group) = run_group() {
        let _ = std::fs::write(group.join("cgroup.procs"), pid.to_string());
    }
}

/// Kills every process left in this run's cgroup.
pub fn kill_run_group() {
    if let Some(group) = run_group() {
        let _ = std::fs::write(group.join("cgroup.kill"), "1");
    }
}

/// Kills whatever is left in this run's cgroup and removes the group, at the end of a run.
pub fn remove_run_group() {
    if let Some(group) = run_group() {
        let _ = std::fs::write(group.join("cgroup.kill"), "1");
        for _ in 0..200 {
            if std::fs::remove_dir(group).is_ok() || !group.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The cgroups of runs that died without cleaning up (killed with SIGKILL): everything in them is
/// killed and the groups removed. Returns how many groups there were.
pub fn sweep_dead_groups() -> usize {
    let Some(root) = cgroup_root() else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lockspec-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let group = entry.path();
        let _ = std::fs::write(group.join("cgroup.kill"), "1");
        // The group can be removed once its last process is gone.
        for _ in 0..200 {
            if std::fs::remove_dir(&group).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        swept += 1;
    }
    swept
}

/// No process table to search outside Linux: kills nothing.
#[cfg(not(target_os = "linux"))]
pub fn sweep(_matches: &dyn Fn(&str) -> bool) -> usize {
    let _ = SWEEP_LIMIT;
    0
}

/// Handles SIGINT, SIGTERM and SIGHUP, except those ignored since the process started (as under
/// `nohup`), which stay ignored: `signal-hook` writes each to its self-pipe, and a thread reads
/// it and cleans up.
pub fn install() {
    let wanted: Vec<libc::c_int> = SIGNALS.into_iter().filter(|&s| !is_ignored(s)).collect();
    let Ok(mut signals) = Signals::new(&wanted) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("lockspec-cleanup".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                clean_up_and_die(signal);
            }
        });
}

/// Whether `signal` is ignored: the one question about a signal's action that `signal-hook`
/// does not answer.
fn is_ignored(signal: libc::c_int) -> bool {
    // SAFETY: only reads the current action into a zeroed struct; changes nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Cleans up everything, then ends the process by `signal` as its default action would.
fn clean_up_and_die(signal: libc::c_int) -> ! {
    // Whatever happens here, the process must end: a panic would leave it running.
    let cleaned = std::panic::catch_unwind(|| {
        let (workers, removed, registry) = clean_up_everything();
        // Not eprintln!, which panics when stderr is gone (a parent that died first).
        let _ = writeln!(
            std::io::stderr(),
            "lockspec: interrupted by signal {signal}: killed {workers} worker(s) and what they started, removed {removed} trial directory(ies)"
        );
        registry
    });
    let _registry = cleaned.ok();
    // Restores the default action and raises the signal again, so that the parent sees a death
    // by it; exits with the shell's status for it if that fails.
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::thread::sleep(Duration::from_secs(1));
    signal_hook::low_level::exit(128 + signal)
}

/// Kills every registered worker and everything that carries a token of this runner, and
/// removes every registered directory. Returns the number of workers and of directories, for a
/// message. The registry stays locked, so that nothing new registers while the process ends.
fn clean_up_everything() -> (usize, usize, MutexGuard<'static, Registry>) {
    let reg = super::registry();
    for (pid, children) in reg.workers.values() {
        kill_group(*pid, children);
    }
    let prefix = format!("{}:", std::process::id());
    sweep(&|token| token.starts_with(&prefix));
    kill_run_group();
    let mut removed = 0;
    for dir in reg.dirs.values() {
        if super::remove_dir_forcefully(dir) {
            removed += 1;
        }
    }
    (reg.workers.len(), removed, reg)
}

/// Gives `dir` and every directory under it back the permissions to be removed.
pub fn restore_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                restore_permissions(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ID of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_dead_run_s_directories_and_processes_are_swept_and_a_live_one_s_kept() {
        let dead = dead_pid();
        assert!(!alive(dead));
        let parent = tempfile::tempdir().unwrap();
        let theirs = parent.path().join(format!("lockspec-{dead}-abc"));
        let ours = parent
            .path()
            .join(format!("{}xyz", crate::cleanup::dir_prefix()));
        let other = parent.path().join("lockspec-notapid-1");
        for dir in [&theirs, &ours, &other] {
            std::fs::create_dir_all(dir.join("sub")).unwrap();
        }
        // A child left behind by a worker of the dead run: it carries the dead runner's token.
        let mut orphan = std::process::Command::new("sleep")
            .arg("100")
            .env(crate::cleanup::TOKEN_ENV, format!("{dead}:7"))
            .spawn()
            .unwrap();
        crate::cleanup::sweep_dead_runs(parent.path());
        assert!(!theirs.exists(), "a dead run's directory stays");
        assert!(
            ours.exists() && other.exists(),
            "a live run's directory went"
        );
        if !cfg!(target_os = "linux") {
            let _ = orphan.kill();
        }
        let status = orphan.wait().unwrap();
        assert!(!status.success(), "the orphan was not killed: {status}");
    }

    #[test]
    fn a_directory_without_permissions_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("a/b");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        assert!(crate::cleanup::remove_dir_forcefully(dir.path()));
        assert!(!dir.path().exists());
    }
}
