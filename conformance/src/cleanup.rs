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
//!   environment escapes this, but not the cgroup below.
//! - [`install`] (called by [`crate::run::run`] on first use) handles SIGINT, SIGTERM and SIGHUP
//!   with `signal-hook`: a thread woken by its self-pipe kills the process group of every live
//!   worker (the registry of this module), sweeps the tokens of this runner, removes every live
//!   trial directory, and then lets the signal end the process, so that the parent sees a death by
//!   that signal (exit status 130 for SIGINT and 143 for SIGTERM in a shell). SIGKILL cannot be
//!   handled: workers then die of `PR_SET_PDEATHSIG`, but what they started and the trial
//!   directories stay, until the next run sweeps them ([`sweep_dead_runs`]): their tokens and
//!   their directories (`lockspec-PID-...`) name a runner that is no longer alive.
//! - Where the machine lets the runner make one (cgroup v2, usually as root), every worker joins
//!   the run's cgroup (`lockspec-PID`), so that even a descendant that clears its environment and
//!   leaves its process group dies with `cgroup.kill`: at the end of the run ([`finish`]), on a
//!   signal, or at the next run's sweep after a SIGKILL.
//!
//! The Unix half is `cleanup/unix.rs`; elsewhere (`cleanup/unsupported.rs`) there is nothing to
//! sweep and no signal to handle: Windows job objects kill a worker's tree (`process.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
use unsupported as sys;

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

/// Installs the handlers of SIGINT, SIGTERM and SIGHUP, once per process, and sweeps what runs
/// killed with SIGKILL left behind ([`sweep_dead_runs`] in the system's temporary directory);
/// later calls do nothing. A signal that was ignored when the process started stays ignored.
/// Not available on Windows, where this does nothing.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        sys::install();
        sweep_dead_runs(&std::env::temp_dir());
    });
}

/// The prefix of every directory a run makes for its trials: `lockspec-PID-`, so that a later run
/// can tell the directories of a dead run from those of a live one.
pub fn dir_prefix() -> String {
    format!("lockspec-{}-", std::process::id())
}

/// What runs killed with SIGKILL left behind, swept by any later run: the processes that carry a
/// token of a dead runner (a child started by a worker outlives it), the cgroups of dead runs
/// with everything in them, and the trial directories of dead runs under `parent`. Returns how
/// many things it removed. Each `parent` is swept once per process.
pub fn sweep_dead_runs(parent: &Path) -> usize {
    static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut swept = SWEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if swept.iter().any(|p| p == parent) {
        return 0;
    }
    swept.push(parent.to_owned());
    let own = std::process::id();
    let mut removed = sys::sweep(&|token| {
        token
            .split_once(':')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != own && !sys::alive(pid))
    });
    removed += sys::sweep_dead_groups();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let dead = name
            .to_str()
            .and_then(|n| n.strip_prefix("lockspec-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && !sys::alive(pid));
        if dead && entry.path().is_dir() && remove_dir_forcefully(&entry.path()) {
            removed += 1;
        }
    }
    removed
}

/// Removes `dir` with everything in it, giving back first the permissions a scenario may have
/// taken from its subdirectories. Returns whether it is gone.
fn remove_dir_forcefully(dir: &Path) -> bool {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return true;
    }
    sys::restore_permissions(dir);
    std::fs::remove_dir_all(dir).is_ok()
}

/// Ends the run's clean-up: kills whatever is left in its cgroup and removes the group. Front ends
/// call it once every trial has ended.
pub fn finish() {
    sys::remove_run_group();
}

/// Puts a worker just started in this run's cgroup, where the machine allows one: then nothing
/// it starts can escape the sweep, however it leaves its process group or environment.
pub(crate) fn adopt(pid: u32) {
    sys::adopt(pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_carry_this_process() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}:", std::process::id())));
    }

    #[test]
    fn entries_leave_the_registry_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let entry = DirEntry::new(dir.path());
        assert!(registry().dirs.values().any(|d| d == dir.path()));
        drop(entry);
        assert!(!registry().dirs.values().any(|d| d == dir.path()));
    }
}
