//! The system calls the hand-made locks and the model lock make: `flock`, `fcntl` record locks,
//! and opening a lock file the way each lock needs.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use lockspec_worker::Outcome;

/// Opens (and creates) a lock file for reading and writing, as the hand-made locks need.
pub(crate) fn open_lock_file(path: &Path) -> Result<File, Outcome> {
    open_rw(path).map_err(|e| Outcome::IoError(format!("cannot open {}: {e}", path.display())))
}

/// Opens (and creates, never truncating) a file for reading and writing.
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Opens the lock file without close-on-exec, so that child processes inherit the descriptor.
pub(crate) fn open_inheritable(path: &Path) -> io::Result<OwnedFd> {
    let fd = OwnedFd::from(open_rw(path)?);
    inheritable(fd.as_raw_fd())?;
    Ok(fd)
}

/// Clears close-on-exec on `fd`, so that child processes inherit it.
pub(crate) fn inheritable(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor of the caller; F_GETFD and F_SETFD only change its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `flock(fd, operation)`, retried on EINTR; `Ok(false)` when a non-blocking lock is taken.
pub(crate) fn flock(fd: RawFd, operation: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: `fd` is an open descriptor that the caller owns for the duration of the call.
        if unsafe { libc::flock(fd, operation) } == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) if operation & libc::LOCK_NB != 0 => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// Sets a whole-file `fcntl` record lock of `kind` (`F_WRLCK` or `F_UNLCK`), waiting for it if
/// `wait`; `Ok(false)` when a lock that must not wait is taken.
pub(crate) fn record_lock(fd: RawFd, kind: libc::c_int, wait: bool) -> io::Result<bool> {
    // SAFETY: `flock` is a plain C struct, for which all zeroes is a valid value.
    let mut region: libc::flock = unsafe { std::mem::zeroed() };
    region.l_type = kind as libc::c_short;
    region.l_whence = libc::SEEK_SET as libc::c_short;
    region.l_start = 0;
    region.l_len = 0; // To the end of the file, however long it grows.
    let command = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    loop {
        // SAFETY: `fd` is an open descriptor owned by the caller, and `region` outlives the call.
        if unsafe { libc::fcntl(fd, command, &region) } == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN | libc::EACCES) if !wait => return Ok(false),
            _ => return Err(error),
        }
    }
}
