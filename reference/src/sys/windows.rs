//! Windows: `LockFileEx` through std's `File::lock`, and identity from the volume serial number
//! and file index that `GetFileInformationByHandle` reports.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::time::Instant;

use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle,
};

use super::FileId;

/// Opens (creating if missing, never truncating) the lock file at `path`, non-inheritable.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    super::open_read_write_or_read_only(path)
}

/// The volume serial number and file index of `file`.
pub(crate) fn file_id(file: &File) -> io::Result<FileId> {
    let mut info = MaybeUninit::<BY_HANDLE_FILE_INFORMATION>::uninit();
    // SAFETY: the handle is open for as long as `file` is borrowed, and `info` points to writable
    // memory the size of the structure the call fills in.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle(), info.as_mut_ptr()) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it filled in the whole structure.
    let info = unsafe { info.assume_init() };
    Ok(FileId {
        device: u64::from(info.dwVolumeSerialNumber),
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    })
}

/// Takes the lock on `file`, waiting at most until `deadline`; `Ok(false)` if it passed first.
pub(crate) fn lock_until(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    super::poll_lock_until(file, deadline)
}
