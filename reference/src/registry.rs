//! The process-wide table that makes every `FileLock` on one file share one open file and one
//! in-process state, whatever path each was opened by.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use crate::sys::{self, FileId};

/// Every file that some `FileLock` in this process has open, by identity.
///
/// An entry lives as long as its `Shared` does, that is, until the last `FileLock` on the file
/// is dropped.
static REGISTRY: Mutex<BTreeMap<FileId, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// What every `FileLock` on one file shares.
pub(crate) struct Shared {
    id: FileId,
    /// The one handle on which this process takes the OS lock for this file.
    ///
    /// OS locks conflict between handles even within one process, so every object must use the
    /// same handle; the in-process `state` decides which object may use it.
    pub(crate) file: File,
    state: Mutex<State>,
    /// Notified whenever `state.owner` becomes `None` and `waiters` is not zero.
    released: Condvar,
    /// How many threads wait on `released`; changed only with `state` locked, so that a release
    /// can skip the notification (a system call) when nobody waits.
    waiters: AtomicUsize,
}

/// The in-process side of the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The object that holds the lock, or has claimed it and is taking the OS lock; `None` when
    /// no object in this process has it.
    pub(crate) owner: Option<u64>,
    /// Whether `owner` holds the OS lock, rather than only claiming it.
    pub(crate) held: bool,
}

impl Shared {
    /// The `Shared` for the file that `file` is open on: the existing one if some `FileLock`
    /// already uses that file (and then `file` is closed), else a new one that keeps `file`.
    ///
    /// # Errors
    ///
    /// When the file's identity cannot be read.
    pub(crate) fn for_file(file: File) -> io::Result<Arc<Shared>> {
        let id = sys::file_id(&file)?;
        let mut registry = lock(&REGISTRY);
        if let Some(shared) = registry.get(&id).and_then(Weak::upgrade) {
            return Ok(shared);
        }
        let shared = Arc::new(Shared {
            id,
            file,
            state: Mutex::default(),
            released: Condvar::new(),
            waiters: AtomicUsize::new(0),
        });
        registry.insert(id, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Locks the in-process state.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Waits for a notification of release, until `deadline` if there is one, and returns the
    /// state locked again. It may return early; callers check the state in a loop.
    pub(crate) fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        // Counted with the state locked: a release, which sets `owner` with the state locked,
        // either comes before this wait (and the caller's check saw it) or sees the count.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let state = match deadline {
            None => self
                .released
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.released
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        state
    }

    /// Wakes one object waiting for the lock, if any waits; call after setting `owner` to
    /// `None` with the state locked.
    pub(crate) fn notify_released(&self) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.released.notify_one();
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("file", &self.file)
            .field("state", &*self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut registry = lock(&REGISTRY);
        // Another `Shared` for the same file may have been registered after this one's last
        // strong reference went away and before this ran: leave that one alone.
        if registry
            .get(&self.id)
            .is_some_and(|entry| entry.strong_count() == 0)
        {
            registry.remove(&self.id);
        }
    }
}

/// Locks `mutex`, ignoring poison: every critical section leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the registry has an entry, live or not, for `id`.
#[cfg(test)]
pub(crate) fn is_registered(id: FileId) -> bool {
    lock(&REGISTRY).contains_key(&id)
}

#[cfg(test)]
impl Shared {
    /// The identity of the file this is for.
    pub(crate) fn id(&self) -> FileId {
        self.id
    }
}
