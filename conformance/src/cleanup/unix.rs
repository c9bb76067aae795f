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
    let mut removed = 0;
    for dir in reg.dirs.values() {
        if remove_dir_forcefully(dir) {
            removed += 1;
        }
    }
    (reg.workers.len(), removed, reg)
}

/// Removes `dir`, first giving back the permissions that a scenario may have taken from its
/// subdirectories. Returns whether it is gone.
fn remove_dir_forcefully(dir: &Path) -> bool {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return true;
    }
    restore_permissions(dir);
    std::fs::remove_dir_all(dir).is_ok()
}

fn restore_permissions(dir: &Path) {
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

    #[test]
    fn a_directory_without_permissions_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("a/b");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        assert!(remove_dir_forcefully(dir.path()));
        assert!(!dir.path().exists());
    }
}
