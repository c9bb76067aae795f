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
//!
//! # Waiting
//!
//! An acquire without a timeout is the OS's own blocking call (`flock`, `LockFileEx`): the kernel
//! wakes the waiter when the lock is released, and it uses no CPU meanwhile. A timed acquire is
//! harder, since `flock` has no timeout and the kernel reports no event when a flock is released:
//!
//! - **Linux** (`inotify.rs`): the waiter watches the lock file for inotify close events and
//!   sleeps in `ppoll` until one comes, its next retry or its deadline. Every release of the
//!   reference (`unlock`) then opens and closes the file once more through `/proc/self/fd`, which
//!   is that event; a holder that dies closes its handle, which is one too. Holders that unlock
//!   without closing (other libraries) are noticed by retries on a bounded backoff, 1 ms doubling
//!   to 20 ms.
//! - **Windows** (`windows.rs`): an overlapped `LockFileEx`, waited on with a timeout.
//! - **Other Unixes** ([`poll_lock_until`]): retries on an exponential backoff, 0.5 ms doubling
//!   to 10 ms. (macOS's kqueue reports flock releases with `NOTE_FUNLOCK`, which could replace it;
//!   it is not done because it cannot be tested here.)
//!
//! The Linux design, measured with `cargo xtask bench` (figures in `docs/bench.md`), costs and
//! buys this:
//!
//! - every release pays one more `openat` + `close` (about 1 µs on a warm cache), whether or not
//!   anyone waits, because a process cannot tell whether another one waits;
//! - a timed waiter learns of a reference release in tens of microseconds, a blocking one in
//!   microseconds: on the machine measured, the kernel delivers the inotify event 20–30 µs after
//!   the close, where `flock(LOCK_UN)` wakes a blocked `flock` in under 10 µs. Of a release by
//!   another library, a timed waiter learns within 20 ms;
//! - while waiting, it wakes up about 50 times a second for its retries: a fraction of a percent
//!   of a core. Its deadline is a `ppoll` timeout, so it times out within the timer's slack;
//! - each waiting thread borrows an inotify instance from a per-process pool that keeps up to two
//!   idle ones, which count against the per-user limit (128 by default); without one a waiter
//!   falls back to the backoff alone. A watch lasts only as long as its wait.
//!
//! Rejected: interrupting a blocking `flock` at the deadline needs a signal, and a library must not
//! install signal handlers. A helper thread blocked in `flock` (on the shared handle or a second
//! one) cannot be called off, so after a timeout it would still take the lock when the holder
//! releases it: a ghost holder, during which another process's single attempt fails although
//! nobody wants the lock (a failed acquire must change nothing). A wake-up channel other than the
//! file itself (a FIFO beside it, an abstract socket) would be delivered faster than inotify, but
//! leaves files behind or needs a rendezvous between unrelated processes. Plain polling either
//! answers late or burns a core.

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

/// How a waiter paces its retries when no event wakes it.
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// The first pause.
    pub(crate) first: std::time::Duration,
    /// The longest pause; each pause doubles the previous one up to this.
    pub(crate) max: std::time::Duration,
}

/// Retries with nothing to wake the waiter: the only way to notice a release.
#[cfg(unix)]
pub(crate) const POLLING: Backoff = Backoff {
    first: std::time::Duration::from_micros(500),
    max: std::time::Duration::from_millis(10),
};

/// The waiting loop: retry `File::try_lock`, then `pause` (which may return early, on an event)
/// until the next retry or the deadline, whichever is first. Always makes at least one attempt,
/// even when the deadline has already passed, and never returns `Ok(false)` before the deadline.
#[cfg(unix)]
pub(crate) fn retry_until(
    file: &std::fs::File,
    deadline: std::time::Instant,
    backoff: Backoff,
    mut pause: impl FnMut(std::time::Duration) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    use std::fs::TryLockError;
    use std::io::ErrorKind;

    let mut next = backoff.first;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) if err.kind() == ErrorKind::Interrupted => {}
            Err(TryLockError::Error(err)) => return Err(err),
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        pause(next.min(deadline - now))?;
        next = (next * 2).min(backoff.max);
    }
}

/// Takes the OS lock on `file`, waiting at most until `deadline` (forever for `None`).
///
/// Without a deadline this is the blocking `File::lock`. With one it polls `File::try_lock`
/// ([`retry_until`] with [`POLLING`]), never sleeping past the deadline. Linux replaces the
/// polling with a wait for inotify events (`inotify.rs`); other Unixes have nothing better here.
#[cfg(unix)]
fn poll_lock_until(
    file: &std::fs::File,
    deadline: Option<std::time::Instant>,
) -> std::io::Result<bool> {
    use std::io::ErrorKind;

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
    retry_until(file, deadline, POLLING, |pause| {
        std::thread::sleep(pause);
        Ok(())
    })
}
