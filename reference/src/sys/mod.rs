//! The platform seam: one module per OS family with identical signatures, selected once here.
//!
//! Each module provides:
//!
//! - `open(&Path) -> io::Result<File>`: opens the lock file, creating it if missing, never
//!   truncating it, and never letting a child process inherit the handle;
//! - `file_id(&File) -> io::Result<FileId>`: the identity of the open file, the same for every
//!   path that names it;
//! - `lock_until(&File, Option<Instant>) -> io::Result<bool>`: takes the OS lock, waiting at most
//!   until the deadline (forever for `None`); `Ok(false)` when the deadline passed first;
//! - `try_lock(&File) -> Result<(), TryLockError>`: one attempt at the OS lock, as std's
//!   `File::try_lock`;
//! - `unlock(&File) -> io::Result<()>`: releases the OS lock that `lock_until` or `try_lock` took.
//!
//! Every lock call on the shared handle goes through this seam, never through std's `File` lock
//! methods directly: on Windows the lock is a byte range of the backend's choosing.

#[cfg(target_os = "linux")]
mod inotify;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(unix, windows)))]
mod unsupported;
#[cfg(not(any(unix, windows)))]
use unsupported as imp;

pub(crate) use imp::{file_id, lock_until, open, try_lock, unlock};

/// The identity of a file: the same for every path (and every handle) that reaches it.
///
/// On Unix this is the device and inode number, on Windows the volume serial number and the
/// file index. The lock file is kept open while any `FileLock` uses it, so its identity cannot be
/// reused by another file meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct FileId {
    /// The device (Unix) or volume serial number (Windows).
    pub(crate) device: u64,
    /// The inode number (Unix) or file index (Windows).
    pub(crate) index: u64,
}

/// Opens `path` for reading and writing, creating it if missing and never truncating it, and
/// falls back to a read-only open of an existing file when writing is refused.
///
/// std opens every file close-on-exec (`O_CLOEXEC`), so a child process never inherits the lock.
/// flock works on read-only descriptors too, hence the fallback. (Windows opens its own way, for
/// overlapped I/O: see `windows.rs`.)
#[cfg(unix)]
fn open_read_write_or_read_only(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::fs::{File, OpenOptions};
    use std::io::ErrorKind;

    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(file) => file,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            File::open(path).map_err(|_| err)?
        }
        Err(err) => return Err(err),
    };
    // A read-only open succeeds on a directory on Unix; a directory is never a lock file.
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            ErrorKind::IsADirectory,
            "the lock file is a directory",
        ));
    }
    Ok(file)
}

/// Takes the OS lock on `file`, waiting at most until `deadline` (forever for `None`).
///
/// Without a deadline this is the blocking `File::lock`. With one it polls `File::try_lock`,
/// sleeping with exponential backoff between attempts and never past the deadline; it always
/// makes at least one attempt, even when the deadline has already passed. Polling is the
/// stand-in for a wake-on-release mechanism, and lives behind this one function so that it can
/// be replaced without touching the callers.
#[cfg(unix)]
fn poll_lock_until(
    file: &std::fs::File,
    deadline: Option<std::time::Instant>,
) -> std::io::Result<bool> {
    use std::fs::TryLockError;
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};

    const FIRST_BACKOFF: Duration = Duration::from_micros(500);
    const MAX_BACKOFF: Duration = Duration::from_millis(10);

    let Some(deadline) = deadline else {
        loop {
            match file.lock() {
                Ok(()) => return Ok(true),
                // A signal handler interrupted the wait: keep waiting.
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) if err.kind() == ErrorKind::Interrupted => {}
            Err(TryLockError::Error(err)) => return Err(err),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(backoff.min(deadline - now));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
