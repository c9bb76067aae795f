//! Making sure that no worker process and no trial directory outlives the runner, even when the
//! runner is interrupted.
//!
//! Three layers, from the ordinary end of a trial to an interrupted run:
//!
//! - Every worker runs in its own process group, which the runner kills at the end of the trial
//!   (`process.rs`); that covers the worker and every process it starts in the ordinary way.
//! - Every worker is started with [`TOKEN_ENV`] set to a token unique to it, which its
//!   descendants inherit. On Linux, [`sweep`] finds the processes that carry a token in the
//!   process table (`/proc/PID/environ`) and kills them, so that a descendant that left the
//!   process group (`setsid`, a double fork) is still found. A process that clears its own
//!   environment escapes this; only a cgroup could hold it.
//! - [`install`] (called by [`crate::run::run`] on first use) handles SIGINT, SIGTERM and SIGHUP:
//!   a thread woken by the handler kills the process group of every live worker (the registry
//!   of this module), sweeps the tokens of this runner, removes every live trial directory, and
//!   then lets the signal end the process, so that the parent sees a death by that signal
//!   (exit status 130 for SIGINT and 143 for SIGTERM in a shell). SIGKILL cannot be handled:
//!   workers then die of `PR_SET_PDEATHSIG`, but what they started and the trial directories stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The environment variable that marks a worker and everything it starts: `RUNNER_PID:SERIAL`.
pub const TOKEN_ENV: &str = "LOCKSPEC_WORKER_TOKEN";

/// What is alive now and must not outlive the runner.
struct Registry {
    /// Worker process IDs (each the ID of its process group) and the children they reported.
    workers: BTreeMap<u64, (u32, Vec<u32>)>,
    /// Trial directories.
    dirs: BTreeMap<u64, PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    workers: BTreeMap::new(),
    dirs: BTreeMap::new(),
});

static SERIAL: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serial() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// A fresh token for one worker: this process's ID and a serial number.
pub(crate) fn new_token() -> String {
    format!("{}:{}", std::process::id(), serial())
}

/// The prefix of every token this process hands out.
#[cfg(any(unix, test))]
fn own_prefix() -> String {
    format!("{}:", std::process::id())
}

/// A live worker, known to the signal handler until dropped.
#[derive(Debug)]
pub(crate) struct WorkerEntry(u64);

impl WorkerEntry {
    /// Registers the worker `pid`, which leads its own process group.
    pub(crate) fn new(pid: u32) -> WorkerEntry {
        let id = serial();
        registry().workers.insert(id, (pid, Vec::new()));
        WorkerEntry(id)
    }

    /// Records a process the worker reported starting.
    pub(crate) fn add_child(&self, pid: u32) {
        if let Some((_, children)) = registry().workers.get_mut(&self.0) {
            children.push(pid);
        }
    }
}

impl Drop for WorkerEntry {
    fn drop(&mut self) {
        registry().workers.remove(&self.0);
    }
}

/// A live trial directory, removed by the signal handler until dropped.
#[derive(Debug)]
pub(crate) struct DirEntry(u64);

impl DirEntry {
    /// Registers `dir`.
    pub(crate) fn new(dir: &Path) -> DirEntry {
        let id = serial();
        registry().dirs.insert(id, dir.to_owned());
        DirEntry(id)
    }
}

impl Drop for DirEntry {
    fn drop(&mut self) {
        registry().dirs.remove(&self.0);
    }
}

/// Kills every process that carries one of `tokens` in [`TOKEN_ENV`], and waits (up to two
/// seconds) until none is left running. Returns how many were killed. Linux only; elsewhere it
/// does nothing and returns 0.
pub(crate) fn sweep(tokens: &[&str]) -> usize {
    sys::sweep(&|token| tokens.contains(&token))
}

/// Installs the handlers of SIGINT, SIGTERM and SIGHUP, once per process; later calls do
/// nothing. A signal that was ignored when the process started stays ignored. Not available on
/// Windows, where this does nothing.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sys::install);
}

/// Kills every registered worker and everything that carries a token of this runner, and
/// removes every registered directory. Returns the number of workers and of directories, for a
/// message. The registry stays locked, so that nothing new registers
/// while the process ends.
#[cfg(unix)]
fn clean_up_everything() -> (usize, usize, MutexGuard<'static, Registry>) {
    let reg = registry();
    for (pid, children) in reg.workers.values() {
        sys::kill_group(*pid, children);
    }
    let prefix = own_prefix();
    sys::sweep(&|token| token.starts_with(&prefix));
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
#[cfg(unix)]
fn remove_dir_forcefully(dir: &Path) -> bool {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return true;
    }
    restore_permissions(dir);
    std::fs::remove_dir_all(dir).is_ok()
}

#[cfg(unix)]
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

/// How long [`sweep`] waits for the processes it killed to die.
#[cfg(unix)]
const SWEEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(unix)]
mod sys {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The write end of the pipe that wakes the clean-up thread.
    static WAKE: AtomicI32 = AtomicI32::new(-1);

    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

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

    #[cfg(target_os = "linux")]
    pub fn sweep(matches: &dyn Fn(&str) -> bool) -> usize {
        use std::time::Instant;

        let own = std::process::id();
        let key = format!("{}=", super::TOKEN_ENV);
        let end = Instant::now() + super::SWEEP_LIMIT;
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
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn sweep(_matches: &dyn Fn(&str) -> bool) -> usize {
        0
    }

    /// The signal handler: writes the signal's number to the pipe. Only async-signal-safe calls.
    extern "C" fn on_signal(signal: libc::c_int) {
        let fd = WAKE.load(Ordering::Relaxed);
        if fd >= 0 {
            let byte = signal as u8;
            // SAFETY: write is async-signal-safe; it changes errno only when it fails, and a
            // pipe that is full already holds a wake-up.
            unsafe {
                libc::write(fd, (&raw const byte).cast(), 1);
            }
        }
    }

    pub fn install() {
        let Some(fds) = cloexec_pipe() else {
            return;
        };
        let [read, write] = fds;
        WAKE.store(write, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("lockspec-cleanup".into())
            .spawn(move || wait_and_clean_up(read));
        if spawned.is_err() {
            return;
        }
        for signal in SIGNALS {
            // SAFETY: sigaction with a zeroed, then filled, struct; the handler only writes
            // to a pipe.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }

    /// A pipe whose ends are not inherited by workers.
    fn cloexec_pipe() -> Option<[libc::c_int; 2]> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills the array.
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let ok = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == 0 };
        // SAFETY: pipe fills the array; both ends are marked close-on-exec at once. A worker
        // started by another thread in between would inherit them, which costs it two idle
        // file descriptors and nothing else.
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let ok = unsafe {
            let ok = libc::pipe(fds.as_mut_ptr()) == 0;
            if ok {
                for fd in fds {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            ok
        };
        ok.then_some(fds)
    }

    fn wait_and_clean_up(read: libc::c_int) {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads one byte into a local.
            let n = unsafe { libc::read(read, (&raw mut byte).cast(), 1) };
            if n == 1 {
                break;
            }
            if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        }
        let signal = libc::c_int::from(byte);
        // Whatever happens here, the process must end: a panic would leave it running.
        let cleaned = std::panic::catch_unwind(|| {
            let (workers, removed, registry) = super::clean_up_everything();
            // Not eprintln!, which panics when stderr is gone (a parent that died first).
            let _ = writeln!(
                std::io::stderr(),
                "lockspec: interrupted by signal {signal}: killed {workers} worker(s) and what they started, removed {removed} trial directory(ies)"
            );
            registry
        });
        let _registry = cleaned.ok();
        // SAFETY: restores the default action and sends the signal again, so that the process
        // dies of it; `_exit` is the fallback if it does not.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            std::thread::sleep(std::time::Duration::from_secs(1));
            libc::_exit(128 + signal);
        }
    }
}

#[cfg(not(unix))]
mod sys {

    pub fn sweep(_matches: &dyn Fn(&str) -> bool) -> usize {
        0
    }

    pub fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_carry_this_process() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(&own_prefix()));
    }

    #[test]
    fn entries_leave_the_registry_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let entry = DirEntry::new(dir.path());
        assert!(registry().dirs.values().any(|d| d == dir.path()));
        drop(entry);
        assert!(!registry().dirs.values().any(|d| d == dir.path()));
    }

    #[cfg(unix)]
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
