//! Unix: flock through std's `File::lock`, and identity from the device and inode numbers.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use super::FileId;

/// Opens (creating if missing, never truncating) the lock file at `path`, close-on-exec.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    super::open_read_write_or_read_only(path)
}

/// The device and inode numbers of `file` (`fstat`).
pub(crate) fn file_id(file: &File) -> io::Result<FileId> {
    let metadata = file.metadata()?;
    Ok(FileId {
        device: metadata.dev(),
        index: metadata.ino(),
    })
}

/// Takes the flock on `file`, waiting at most until `deadline`; `Ok(false)` if it passed first.
///
/// Without a deadline this is the blocking flock: the kernel wakes the waiter. With one, on
/// Linux, the waiter sleeps until an inotify close event on the file or its next retry (see
/// `inotify.rs`); on other Unixes it retries with exponential backoff.
pub(crate) fn lock_until(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    if let Some(deadline) = deadline {
        return super::inotify::lock_until(file, deadline);
    }
    super::poll_lock_until(file, deadline)
}

/// One attempt at the flock on `file` (`LOCK_EX | LOCK_NB`).
pub(crate) fn try_lock(file: &File) -> Result<(), TryLockError> {
    file.try_lock()
}

/// Releases the flock on `file` and, on Linux, wakes the timed waiters of other processes.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    file.unlock()?;
    #[cfg(target_os = "linux")]
    super::inotify::announce_release(file);
    Ok(())
}
