//! Windows: job objects for a worker's tree, directory symbolic links; no permission bits and no
//! inodes.

use std::collections::BTreeMap;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};
use std::{io, mem, ptr};

use windows_sys::Win32::Foundation::CloseHandle;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};

/// The job object of each worker, by the worker's process ID.
///
/// An entry goes when the worker's tree is killed, before the worker is reaped, so its
/// process ID is not reused meanwhile. Entries left at exit are closed by the system, which
/// kills what is left in them, as `PR_SET_PDEATHSIG` does on Linux.
static JOBS: Mutex<BTreeMap<u32, OwnedHandle>> = Mutex::new(BTreeMap::new());

pub(crate) fn prepare(_cmd: &mut Command, _unprivileged: bool) {}

/// Puts the worker just started in a job object of its own, which kills every process in it
/// when its last handle is closed: the worker and all its descendants, including those it
/// did not report, since a process's children join its job. Only the runner has a handle.
///
/// A worker starts children only when told to, after the handshake, so none escapes between
/// the start and the assignment. Best effort: where jobs are refused, `kill_tree` still kills
/// the worker and the children it reported.
pub(crate) fn adopt(child: &Child) {
    let Some(job) = new_job() else { return };
    // SAFETY: both handles are open: the job is owned here, the process by `child`.
    if unsafe { AssignProcessToJobObject(job.as_raw_handle(), child.as_raw_handle()) } != 0 {
        JOBS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(child.id(), job);
    }
}

/// A new, unnamed, non-inheritable job object that kills its processes when closed.
fn new_job() -> Option<OwnedHandle> {
    // SAFETY: no security attributes (so the handle is not inherited) and no name.
    let job = unsafe { CreateJobObjectW(ptr::null(), ptr::null()) };
    if job.is_null() {
        return None;
    }
    // SAFETY: a new handle that nothing else owns.
    let job = unsafe { OwnedHandle::from_raw_handle(job) };
    // SAFETY: plain data, for which all zeros means "no limits".
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { mem::zeroed() };
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    let size = u32::try_from(mem::size_of_val(&info)).expect("a small structure");
    // SAFETY: `info` is the structure that this information class reads, of `size` bytes.
    let ok = unsafe {
        SetInformationJobObject(
            job.as_raw_handle(),
            JobObjectExtendedLimitInformation,
            (&raw const info).cast(),
            size,
        )
    };
    (ok != 0).then_some(job)
}

/// Kills the worker's job (the worker and every descendant), the worker, and the children it
/// reported, each with `TerminateProcess`.
pub(crate) fn kill_tree(child: &mut Child, children: &[u32]) {
    let job = JOBS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&child.id());
    if let Some(job) = job {
        // SAFETY: an open job handle owned here.
        unsafe { TerminateJobObject(job.as_raw_handle(), 1) };
    }
    let _ = child.kill();
    for &pid in children {
        // SAFETY: plain calls; the process handle is closed before returning.
        unsafe {
            let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
            if !process.is_null() {
                TerminateProcess(process, 1);
                CloseHandle(process);
            }
        }
    }
}

/// File permissions cannot be taken away from the runner's user with mode bits on Windows;
/// the scenarios that need it are skipped.
pub(crate) fn is_privileged() -> bool {
    false
}

pub(crate) fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Unix permission bits",
    ))
}

/// Nothing to do: the runner's user and the worker's are the same.
pub(crate) fn make_world_writable(_path: &Path) -> io::Result<()> {
    Ok(())
}

pub(crate) fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)?;
    // Wine (8.0 at least) reports success from `CreateSymbolicLinkW` and creates nothing.
    match std::fs::symlink_metadata(link) {
        Ok(metadata) if metadata.file_type().is_symlink() => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the system reported the link created, but there is none (Wine does this)",
        )),
    }
}

pub(crate) fn file_identity(_path: &Path) -> io::Result<(u64, u64)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "device and inode numbers",
    ))
}
