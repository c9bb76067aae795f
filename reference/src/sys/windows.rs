//! Windows: `LockFileEx` on one byte far past the end of any real file, waited for through an
//! overlapped request, and identity from the volume serial number and file index.
//!
//! **The locked range.** Byte-range locks on Windows are mandatory: while a handle holds a range,
//! reads and writes of that range through every other handle fail with `ERROR_LOCK_VIOLATION`.
//! std's `File::lock` takes the whole file, so an application could no longer read its own lock
//! file (a configuration file, a database) while the lock is held. The lock here is the single
//! byte at [`LOCK_OFFSET`] (2^62): far beyond the end of any real file, and positive whether a
//! file system reads offsets as signed or unsigned. A lock on a range past the end of the file is
//! allowed and does not extend it.
//!
//! **Waiting.** The lock handle is opened for overlapped I/O. A blocking or timed acquire queues
//! one `LockFileEx` request and waits on its event, with a timeout: the kernel wakes the waiter
//! when it grants the lock, with no polling. At the deadline the request is withdrawn with
//! `CancelIoEx`, and its final status says whether it was granted in the meantime.
//!
//! **Wine.** Wine (8.0 at least) does not implement waiting lock requests on overlapped handles:
//! `LockFileEx` reports `ERROR_IO_PENDING` and the request never completes, so its event is never
//! set. Under Wine, which is detected once by ntdll's `wine_get_version` export, the handle is
//! opened for synchronous I/O, a blocking acquire blocks in `LockFileEx` (which Wine wakes on
//! release), and a timed acquire polls with exponential backoff.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    BOOL, ERROR_IO_PENDING, ERROR_LOCK_VIOLATION, ERROR_OPERATION_ABORTED, HANDLE, TRUE,
    WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_OVERLAPPED, GetFileInformationByHandle,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, UnlockFileEx,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{CreateEventW, INFINITE, WaitForSingleObject};

use super::FileId;

/// The offset of the one byte that is locked: 2^62, past the end of any real file.
const LOCK_OFFSET: u64 = 1 << 62;

/// The length of the locked range, in bytes.
const LOCK_LENGTH: u32 = 1;

/// Under Wine, the first pause between two attempts of a timed acquire.
const FIRST_BACKOFF: Duration = Duration::from_micros(500);

/// Under Wine, the longest pause between two attempts of a timed acquire.
const MAX_BACKOFF: Duration = Duration::from_millis(10);

/// Opens (creating if missing, never truncating) the lock file at `path`, non-inheritable, for
/// overlapped I/O (synchronous I/O under Wine), falling back to a read-only open of an existing
/// file when writing is refused.
///
/// std opens every handle non-inheritable, so a child process never inherits the lock.
/// `LockFileEx` needs only read or write access, hence the fallback. A directory cannot be opened
/// this way at all (that needs `FILE_FLAG_BACKUP_SEMANTICS`): the error is `PermissionDenied`.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    let flags = if under_wine() {
        0
    } else {
        FILE_FLAG_OVERLAPPED
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => file,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
                .map_err(|_| err)?
        }
        Err(err) => return Err(err),
    };
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(
            ErrorKind::IsADirectory,
            "the lock file is a directory",
        ));
    }
    Ok(file)
}

/// The volume serial number and file index of `file`.
pub(crate) fn file_id(file: &File) -> io::Result<FileId> {
    let mut info = MaybeUninit::<BY_HANDLE_FILE_INFORMATION>::uninit();
    // SAFETY: the handle is open for as long as `file` is borrowed, and `info` points to writable
    // memory the size of the structure the call fills in.
    let ok = unsafe { GetFileInformationByHandle(raw(file), info.as_mut_ptr()) };
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

/// One attempt at the lock on `file`; `WouldBlock` when another handle holds it.
pub(crate) fn try_lock(file: &File) -> Result<(), TryLockError> {
    match lock_now(file, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY) {
        Ok(()) => Ok(()),
        Err(err) if is(&err, ERROR_LOCK_VIOLATION) => Err(TryLockError::WouldBlock),
        Err(err) => Err(TryLockError::Error(err)),
    }
}

/// Releases the lock on `file` with one `UnlockFileEx` of the locked byte.
///
/// std's `File::unlock` calls `UnlockFile` twice, in case the handle holds both a shared and an
/// exclusive lock, and accepts `ERROR_NOT_LOCKED` from the second call. Wine reports that case as
/// `ERROR_LOCK_VIOLATION` instead, so std's unlock fails there although it did unlock. This
/// backend only ever takes one exclusive lock, so one call is exact, and its error is real.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    let handle = raw(file);
    let mut overlapped = overlapped(ptr::null_mut());
    // SAFETY: the handle is open while `file` is borrowed; `overlapped` outlives the request,
    // which `finish` waits for if it is pending.
    let ok = unsafe { UnlockFileEx(handle, 0, LOCK_LENGTH, 0, &mut overlapped) };
    // SAFETY: `overlapped` is the structure just given to the request on `handle`.
    unsafe { finish(handle, &overlapped, ok) }
}

/// Takes the lock on `file`, waiting at most until `deadline` (forever for `None`); `Ok(false)`
/// if the deadline passed first. It always makes one attempt, even past the deadline.
pub(crate) fn lock_until(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    if under_wine() {
        block_or_poll(file, deadline)
    } else {
        wait_overlapped(file, deadline)
    }
}

/// Queues one lock request on the overlapped handle and waits for it on an event, until
/// `deadline`; then cancels it, and reports whether it was granted all the same.
fn wait_overlapped(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    let handle = raw(file);
    let event = manual_reset_event()?;
    let mut overlapped = overlapped(event.as_raw_handle());
    // SAFETY: the handle is open while `file` is borrowed. `overlapped` and `event` stay in place
    // until the request has finished: every path below either sees it complete or cancels it
    // and waits for its final status.
    let ok = unsafe {
        LockFileEx(
            handle,
            LOCKFILE_EXCLUSIVE_LOCK,
            0,
            LOCK_LENGTH,
            0,
            &mut overlapped,
        )
    };
    if ok != 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if !is(&err, ERROR_IO_PENDING) {
        return Err(err);
    }
    loop {
        let millis = deadline.map_or(INFINITE, millis_until);
        // SAFETY: `event` is a valid event handle.
        match unsafe { WaitForSingleObject(event.as_raw_handle(), millis) } {
            WAIT_OBJECT_0 => {
                // SAFETY: the request on `handle` with `overlapped` has completed.
                return unsafe { overlapped_result(handle, &overlapped) }.map(|()| true);
            }
            // Waits may end a little before their time: wait out what is left.
            WAIT_TIMEOUT if deadline.is_some_and(|deadline| Instant::now() < deadline) => {}
            WAIT_TIMEOUT => break,
            _ => {
                let err = io::Error::last_os_error();
                // SAFETY: the request on `handle` with `overlapped` may still be pending.
                let _ = unsafe { cancel(handle, &overlapped) };
                return Err(err);
            }
        }
    }
    // SAFETY: the request on `handle` with `overlapped` may still be pending.
    match unsafe { cancel(handle, &overlapped) } {
        // The lock was granted between the end of the wait and the cancellation.
        Ok(()) => Ok(true),
        Err(err) if is(&err, ERROR_OPERATION_ABORTED) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Under Wine: blocks in `LockFileEx` on the synchronous handle without a deadline, and polls
/// with exponential backoff, never sleeping past the deadline, with one.
fn block_or_poll(file: &File, deadline: Option<Instant>) -> io::Result<bool> {
    let Some(deadline) = deadline else {
        lock_now(file, LOCKFILE_EXCLUSIVE_LOCK)?;
        return Ok(true);
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        match try_lock(file) {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => {}
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

/// One `LockFileEx` request with `flags` on the locked byte, waited for to the end: at once with
/// `LOCKFILE_FAIL_IMMEDIATELY`, else until granted (on a synchronous handle).
fn lock_now(file: &File, flags: u32) -> io::Result<()> {
    let handle = raw(file);
    let mut overlapped = overlapped(ptr::null_mut());
    // SAFETY: the handle is open while `file` is borrowed; `overlapped` outlives the request,
    // which `finish` waits for if it is pending.
    let ok = unsafe { LockFileEx(handle, flags, 0, LOCK_LENGTH, 0, &mut overlapped) };
    // SAFETY: `overlapped` is the structure just given to the request on `handle`.
    unsafe { finish(handle, &overlapped, ok) }
}

/// The outcome of a lock or unlock request that returned `ok`: on an overlapped handle even an
/// immediate answer may come as `ERROR_IO_PENDING`, and is then waited for on the handle.
///
/// # Safety
///
/// `overlapped` is the structure given to the request on `handle` that returned `ok`, and the
/// handle has no other request in flight.
unsafe fn finish(handle: HANDLE, overlapped: &OVERLAPPED, ok: BOOL) -> io::Result<()> {
    if ok != 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !is(&err, ERROR_IO_PENDING) {
        return Err(err);
    }
    // SAFETY: as the caller promises.
    unsafe { overlapped_result(handle, overlapped) }
}

/// Cancels the request, if it is still pending, and returns its final status:
/// `ERROR_OPERATION_ABORTED` if the cancellation came first.
///
/// # Safety
///
/// `overlapped` is the structure of a request on `handle`.
unsafe fn cancel(handle: HANDLE, overlapped: &OVERLAPPED) -> io::Result<()> {
    // SAFETY: as the caller promises. It fails with `ERROR_NOT_FOUND` when the request has
    // already completed, which the final status below reports.
    unsafe { CancelIoEx(handle, overlapped) };
    // SAFETY: as the caller promises.
    unsafe { overlapped_result(handle, overlapped) }
}

/// The final status of the request, waiting for it to finish.
///
/// # Safety
///
/// `overlapped` is the structure of a request on `handle`.
unsafe fn overlapped_result(handle: HANDLE, overlapped: &OVERLAPPED) -> io::Result<()> {
    let mut transferred = 0;
    // SAFETY: as the caller promises; it waits until the request has finished, so the kernel
    // no longer uses `overlapped` afterwards.
    if unsafe { GetOverlappedResult(handle, overlapped, &mut transferred, TRUE) } != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An `OVERLAPPED` for the locked byte, signalling `event` (or the handle, if null).
fn overlapped(event: HANDLE) -> OVERLAPPED {
    // SAFETY: `OVERLAPPED` is plain data, and all zeros is its documented initial state.
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    overlapped.Anonymous.Anonymous.Offset = (LOCK_OFFSET & u64::from(u32::MAX)) as u32;
    overlapped.Anonymous.Anonymous.OffsetHigh = (LOCK_OFFSET >> 32) as u32;
    overlapped.hEvent = event;
    overlapped
}

/// A new unnamed, unset, manual-reset event, closed when dropped.
fn manual_reset_event() -> io::Result<OwnedHandle> {
    // SAFETY: no security attributes and no name: plain arguments.
    let event = unsafe { CreateEventW(ptr::null(), TRUE, 0, ptr::null()) };
    if event.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `event` is a new handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(event) })
}

/// The milliseconds from now to `deadline`, rounded up so that a wait never ends early on their
/// account, and below `INFINITE`.
fn millis_until(deadline: Instant) -> u32 {
    let left = deadline.saturating_duration_since(Instant::now());
    let millis = left.as_nanos().div_ceil(1_000_000);
    u32::try_from(millis).map_or(INFINITE - 1, |millis| millis.min(INFINITE - 1))
}

/// Whether `err` is the Windows error `code`.
fn is(err: &io::Error, code: u32) -> bool {
    err.raw_os_error()
        .is_some_and(|raw| u32::try_from(raw) == Ok(code))
}

fn raw(file: &File) -> HANDLE {
    file.as_raw_handle()
}

/// Whether this process runs under Wine: its ntdll exports `wine_get_version`.
fn under_wine() -> bool {
    static UNDER_WINE: OnceLock<bool> = OnceLock::new();
    *UNDER_WINE.get_or_init(|| {
        let ntdll: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
        // SAFETY: a NUL-terminated module name; ntdll is loaded in every process and never
        // unloaded, so the module handle stays valid.
        let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
        // SAFETY: a valid module handle (checked) and a NUL-terminated export name.
        !module.is_null()
            && unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A lock file in a new temporary directory, and a second handle on it, as another process
    /// would have.
    fn two_handles() -> (tempfile::TempDir, File, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "keep me\n").unwrap();
        let first = open(&path).unwrap();
        let second = open(&path).unwrap();
        (dir, first, second)
    }

    #[test]
    fn a_second_handle_waits_until_the_first_unlocks() {
        let (_dir, first, second) = two_handles();
        try_lock(&first).unwrap();
        assert!(matches!(try_lock(&second), Err(TryLockError::WouldBlock)));
        unlock(&first).unwrap();
        try_lock(&second).unwrap();
        assert!(matches!(try_lock(&first), Err(TryLockError::WouldBlock)));
        unlock(&second).unwrap();
    }

    #[test]
    fn the_lock_leaves_the_contents_readable_and_writable_through_other_handles() {
        let (dir, first, _second) = two_handles();
        try_lock(&first).unwrap();
        let path = dir.path().join("x.lock");
        let mut text = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "keep me\n");
        let mut other = OpenOptions::new().append(true).open(&path).unwrap();
        other.write_all(b"more\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 13);
        unlock(&first).unwrap();
    }

    #[test]
    fn unlocking_what_is_not_locked_is_an_error() {
        let (_dir, first, _second) = two_handles();
        assert!(unlock(&first).is_err());
        try_lock(&first).unwrap();
        unlock(&first).unwrap();
        assert!(unlock(&first).is_err());
    }

    #[test]
    fn a_timed_wait_fails_no_earlier_than_its_deadline() {
        let (_dir, first, second) = two_handles();
        try_lock(&first).unwrap();
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        assert!(!lock_until(&second, Some(start + timeout)).unwrap());
        assert!(start.elapsed() >= timeout);
        // The withdrawn request left nothing behind: the holder still holds, then hands over.
        assert!(matches!(try_lock(&second), Err(TryLockError::WouldBlock)));
        unlock(&first).unwrap();
        try_lock(&second).unwrap();
        unlock(&second).unwrap();
    }

    #[test]
    fn a_past_deadline_still_makes_one_attempt() {
        let (_dir, first, _second) = two_handles();
        assert!(lock_until(&first, Some(Instant::now())).unwrap());
        unlock(&first).unwrap();
    }

    #[rstest::rstest]
    #[case::timed(Some(Duration::from_secs(60)))]
    #[case::forever(None)]
    fn a_waiter_acquires_when_the_holder_unlocks(#[case] timeout: Option<Duration>) {
        let (_dir, first, second) = two_handles();
        try_lock(&first).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let result = lock_until(&second, timeout.map(|t| Instant::now() + t));
            tx.send(()).unwrap();
            (result.unwrap(), second)
        });
        // Whether the waiter is already waiting or not, it gets the lock once it is free.
        unlock(&first).unwrap();
        rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let (acquired, second) = waiter.join().unwrap();
        assert!(acquired);
        assert!(matches!(try_lock(&first), Err(TryLockError::WouldBlock)));
        unlock(&second).unwrap();
    }

    #[test]
    fn identity_is_the_file_not_the_handle() {
        let (dir, first, second) = two_handles();
        assert_eq!(file_id(&first).unwrap(), file_id(&second).unwrap());
        let other = open(&dir.path().join("y.lock")).unwrap();
        assert_ne!(file_id(&first).unwrap(), file_id(&other).unwrap());
    }

    #[test]
    fn a_directory_is_not_a_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open(dir.path()).is_err());
    }
}
