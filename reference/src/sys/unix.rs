//! Unix: flock through std's `File::lock`, and identity from the device and inode numbers.

use std::fs::File;
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
pub(crate) fn lock_until(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    super::poll_lock_until(file, deadline)
}
