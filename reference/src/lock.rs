//! `FileLock`, the lock object, and `Guard`, which releases it when dropped.

use std::fmt;
use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::registry::Shared;
use crate::sys;

/// The source of object ids; 0 is never handed out.
static NEXT_OBJECT_ID: AtomicU64 = AtomicU64::new(1);

/// An exclusive lock on a file, shared with every other process and every other `FileLock` in
/// this process whose path leads to the same file.
///
/// The lock belongs to the object, not to a thread: share it (`&FileLock`, `Arc<FileLock>`) and
/// any thread may release what another acquired. Dropping an object that holds the lock releases
/// it.
///
/// Within this process, objects on one file queue on an in-process condition variable and then
/// take the OS lock (`flock` on Unix, `LockFileEx` on Windows) on one handle they all share, so
/// that opening and closing other handles to the file never releases it.
pub struct FileLock {
    /// The path as given to [`FileLock::open`].
    path: PathBuf,
    timeout: Option<Duration>,
    on_contention: Option<Box<dyn Fn() + Send + Sync>>,
    /// This object's id in `Shared`'s state.
    id: u64,
    shared: Arc<Shared>,
}

impl FileLock {
    /// Opens the lock file at `path` now, creating it if missing (but never truncating it), with
    /// no timeout: [`acquire`](Self::acquire) waits forever.
    ///
    /// If the file cannot be opened for writing because of its permissions, it is opened
    /// read-only, which is enough to lock it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file system refuses: a missing parent directory, a path that is a
    /// directory, a permission.
    pub fn open(path: impl AsRef<Path>) -> Result<FileLock, Error> {
        let path = path.as_ref().to_path_buf();
        let shared = match sys::open(&path).and_then(Shared::for_file) {
            Ok(shared) => shared,
            Err(source) => return Err(Error::Io { path, source }),
        };
        Ok(FileLock {
            path,
            timeout: None,
            on_contention: None,
            id: NEXT_OBJECT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
        })
    }

    /// Sets the timeout that [`acquire`](Self::acquire) and [`lock`](Self::lock) honour: `None`
    /// waits forever, `Some(Duration::ZERO)` makes a single attempt.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> FileLock {
        self.timeout = timeout;
        self
    }

    /// Sets a callback that is called exactly once by every acquire that finds the lock held and
    /// is about to wait for it, before it waits.
    ///
    /// It is never called when the acquire succeeds at once, nor by a single attempt (a zero
    /// timeout, [`try_acquire`](Self::try_acquire)), which never waits. It is called on the
    /// acquiring thread, with no internal lock held.
    #[must_use]
    pub fn on_contention(mut self, callback: impl Fn() + Send + Sync + 'static) -> FileLock {
        self.on_contention = Some(Box::new(callback));
        self
    }

    /// The path of the lock file, as given to [`open`](Self::open).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The timeout that [`acquire`](Self::acquire) and [`lock`](Self::lock) honour.
    #[must_use]
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Acquires the lock, waiting at most this object's [`timeout`](Self::timeout).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when the lock stays held, by anyone including this object, for the
    /// whole timeout; [`Error::Io`] when the operating system fails to lock the file.
    pub fn acquire(&self) -> Result<(), Error> {
        self.acquire_timeout(self.timeout)
    }

    /// Makes a single attempt to acquire the lock, the same as a zero timeout.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] with a zero `timeout` when the lock is held, by anyone including this
    /// object; [`Error::Io`] when the operating system fails to lock the file.
    pub fn try_acquire(&self) -> Result<(), Error> {
        self.acquire_timeout(Some(Duration::ZERO))
    }

    /// Acquires the lock, waiting at most `timeout` (`None`: forever, `Some(Duration::ZERO)`: a
    /// single attempt) instead of this object's timeout.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when the lock stays held, by anyone including this object, for the
    /// whole timeout; [`Error::Io`] when the operating system fails to lock the file.
    pub fn acquire_timeout(&self, timeout: Option<Duration>) -> Result<(), Error> {
        // A deadline too far away to represent is no deadline.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let single_attempt = timeout == Some(Duration::ZERO);
        // Whether this acquire has found the lock held and called the contention callback.
        let mut contended = false;

        // First, wait until no object in this process holds or claims the lock, and claim it.
        let mut state = self.shared.state();
        while state.owner.is_some() {
            if !single_attempt && !contended {
                // The callback runs without the state locked: it may use this lock.
                drop(state);
                self.contend(&mut contended);
                state = self.shared.state();
                continue;
            }
            if single_attempt || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(self.timed_out(timeout));
            }
            state = self.shared.wait(state, deadline);
        }
        state.owner = Some(self.id);
        drop(state);
        let claim = Claim {
            shared: &self.shared,
            taken: false,
        };

        // Then take the OS lock, which another process may hold.
        let locked = match sys::try_lock(&self.shared.file) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) if single_attempt => Ok(false),
            Err(TryLockError::WouldBlock) => {
                self.contend(&mut contended);
                sys::lock_until(&self.shared.file, deadline)
            }
            Err(TryLockError::Error(source)) => Err(source),
        };
        match locked {
            Ok(true) => {
                claim.take();
                Ok(())
            }
            Ok(false) => Err(self.timed_out(timeout)),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Releases the lock that this object holds.
    ///
    /// Any thread may release it, whichever thread acquired it.
    ///
    /// # Errors
    ///
    /// [`Error::NotHeld`], changing nothing, when this object does not hold the lock (it is
    /// unlocked, or held by another object or process); [`Error::Io`] when the operating system
    /// fails to unlock the file.
    pub fn release(&self) -> Result<(), Error> {
        let mut state = self.shared.state();
        if state.owner != Some(self.id) || !state.held {
            return Err(Error::NotHeld {
                path: self.path.clone(),
            });
        }
        sys::unlock(&self.shared.file).map_err(|source| self.io(source))?;
        state.owner = None;
        state.held = false;
        drop(state);
        self.shared.notify_released();
        Ok(())
    }

    /// Acquires the lock, waiting at most this object's [`timeout`](Self::timeout), and returns
    /// a guard that releases it when dropped.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn lock(&self) -> Result<Guard<'_>, Error> {
        self.acquire()?;
        Ok(Guard { lock: self })
    }

    /// Whether this object holds the lock.
    ///
    /// Another object, in this process or another, holding it does not count.
    #[must_use]
    pub fn is_held(&self) -> bool {
        let state = self.shared.state();
        state.owner == Some(self.id) && state.held
    }

    /// Calls the contention callback, unless this acquire has already called it.
    fn contend(&self, contended: &mut bool) {
        if !*contended {
            *contended = true;
            if let Some(callback) = &self.on_contention {
                callback();
            }
        }
    }

    fn timed_out(&self, timeout: Option<Duration>) -> Error {
        Error::TimedOut {
            path: self.path.clone(),
            // Only a timed acquire times out; `MAX` stands for a timeout beyond any deadline.
            timeout: timeout.unwrap_or(Duration::MAX),
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("on_contention", &self.on_contention.as_ref().map(|_| ".."))
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Err(Error::Io { .. }) = self.release() {
            // The OS refused to unlock; the handle is closed when the last object on the file
            // goes, which unlocks it. Until then, do not leave the other objects waiting for an
            // object that no longer exists.
            let mut state = self.shared.state();
            state.owner = None;
            state.held = false;
            drop(state);
            self.shared.notify_released();
        }
    }
}

/// An object's claim on the lock while it takes the OS lock: dropped without being taken (a
/// timeout, an error, a panicking callback), it lets the next object in.
struct Claim<'a> {
    shared: &'a Shared,
    taken: bool,
}

impl Claim<'_> {
    /// The OS lock is taken: the claimant now holds the lock.
    fn take(mut self) {
        self.shared.state().held = true;
        self.taken = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.taken {
            let mut state = self.shared.state();
            state.owner = None;
            drop(state);
            self.shared.notify_released();
        }
    }
}

/// Holds a [`FileLock`] until dropped; made by [`FileLock::lock`].
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct Guard<'a> {
    lock: &'a FileLock,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // Nothing to do if the lock was released through the object meanwhile; and an OS error
        // cannot be reported from here.
        let _ = self.lock.release();
    }
}

#[cfg(test)]
mod tests;
