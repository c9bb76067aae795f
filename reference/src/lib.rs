//! The lockspec reference implementation: exclusive, file-based inter-process locks with the
//! semantics of Python's `locket`.
//!
//! A lock is identified by the file it locks, both within one process and across processes:
//! every [`FileLock`] whose path leads to the same file (through `./`, `..`, symbolic or hard
//! links) is the same lock. A lock is either locked or unlocked:
//!
//! - acquiring an unlocked lock returns at once and locks it;
//! - acquiring a locked lock waits until it is unlocked, or fails with [`Error::TimedOut`] when
//!   the timeout expires (no timeout waits forever; a zero timeout is a single attempt);
//! - the lock is not re-entrant: acquiring it again while holding it, through the same object or
//!   another, waits like anyone else and never succeeds;
//! - the object holds the lock, not the thread: any thread may release it, and two threads
//!   sharing one object do not both hold it;
//! - releasing a lock that the object does not hold is [`Error::NotHeld`] and changes nothing;
//! - a process that dies releases its locks, and so does dropping a [`FileLock`] that holds one.
//!
//! The lock file is created if missing and is never truncated or deleted. Children never inherit
//! it, and opening and closing other handles to it elsewhere in the process does not release it.
//!
//! ```
//! use std::time::Duration;
//!
//! use lockspec_reference::{Error, FileLock};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("app.lock");
//! let lock = FileLock::open(&path)?;
//! let other = FileLock::open(&path)?.with_timeout(Some(Duration::from_millis(10)));
//! {
//!     let _guard = lock.lock()?;
//!     // Another object on the same file, here or in another process, has to wait.
//!     assert!(matches!(other.acquire(), Err(Error::TimedOut { .. })));
//! }
//! // The guard released the lock when it was dropped.
//! other.acquire()?;
//! other.release()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod lock;
mod registry;
mod sys;

pub use error::Error;
pub use lock::{FileLock, Guard};
