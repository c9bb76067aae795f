//! Platforms with neither Unix nor Windows file locks: every operation is `Unsupported`.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;
use std::time::Instant;

use super::FileId;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "file locks are not supported on this platform",
    )
}

/// Always fails: there is no file lock to open on this platform.
pub(crate) fn open(_path: &Path) -> io::Result<File> {
    Err(unsupported())
}

/// Always fails: there is no file identity on this platform.
pub(crate) fn file_id(_file: &File) -> io::Result<FileId> {
    Err(unsupported())
}

/// Always fails: there is no file lock on this platform.
pub(crate) fn lock_until(_file: &File, _deadline: Option<Instant>) -> io::Result<bool> {
    Err(unsupported())
}

/// Always fails: there is no file lock on this platform.
pub(crate) fn try_lock(_file: &File) -> Result<(), TryLockError> {
    Err(TryLockError::Error(unsupported()))
}

/// Always fails: there is no file lock on this platform.
pub(crate) fn unlock(_file: &File) -> io::Result<()> {
    Err(unsupported())
}
