//! Unix: process groups, signals, the unprivileged user, permission bits and inodes.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

/// The user and group that workers of `unprivileged` scenarios run as under root.
const NOBODY: u32 = 65534;

pub(crate) fn prepare(cmd: &mut Command, unprivileged: bool) {
    // Its own process group, so that the runner can kill everything the worker started.
    cmd.process_group(0);
    if unprivileged && is_privileged() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // Die with the runner's thread rather than linger if the runner is killed.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Nothing to do: the worker's process group holds its tree (see [`prepare`]).
pub(crate) fn adopt(_child: &Child) {}

pub(crate) fn kill_tree(child: &mut Child, children: &[u32]) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain system calls on process IDs this runner started.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
        for &pid in children {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

pub(crate) fn is_privileged() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

pub(crate) fn make_world_writable(path: &Path) -> std::io::Result<()> {
    set_mode(path, 0o777)
}

pub(crate) fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

pub(crate) fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}
