//! The `named-lock` peer: `named_lock::NamedLock::with_path` with `lock` and `try_lock`, whose
//! guard releases when dropped, served over the worker protocol. Unix only (on Windows a
//! `NamedLock` is a named mutex, not a file).
//!
//! A lock object is one `NamedLock`. Releasing drops the guard an acquire returned, so there is no
//! release without one (`no_release_unheld`); the guard holds a `parking_lot` mutex guard and is
//! not `Send`, so only the thread that acquired can drop it (`no_release_any_thread`). Each worker
//! thread keeps its guards in a thread-local list. named-lock has no timed lock, so a timeout is
//! the adapter's polling of `try_lock` (`timeout_emulated`).

#[cfg(unix)]
mod peer;

#[cfg(unix)]
mod unix {
    use std::cell::RefCell;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};
    use named_lock::{Error, NamedLock, NamedLockGuard};

    use crate::peer;

    /// The named-lock version that Cargo.toml pins.
    const VERSION: &str = "0.4.1";

    thread_local! {
        /// The guards this thread holds, each with the ID of the object that returned it.
        static GUARDS: RefCell<Vec<(u64, NamedLockGuard)>> = const { RefCell::new(Vec::new()) };
    }

    /// Creates one `NamedLock` per `open`.
    pub struct NamedLockPeer {
        next_id: AtomicU64,
    }

    impl NamedLockPeer {
        pub fn new() -> NamedLockPeer {
            NamedLockPeer {
                next_id: AtomicU64::new(0),
            }
        }
    }

    /// A `NamedLock`, its ID among this worker's objects, and the timeout of its acquires.
    struct Object {
        id: u64,
        lock: NamedLock,
        timeout: Option<Duration>,
    }

    impl Backend for NamedLockPeer {
        fn info(&self) -> Info {
            peer::info(
                "named-lock",
                VERSION,
                &[
                    peer::TIMEOUT_EMULATED,
                    peer::NO_RELEASE_UNHELD,
                    peer::NO_RELEASE_ANY_THREAD,
                ],
            )
        }

        fn open(
            &self,
            path: &Path,
            timeout: Option<Duration>,
            _callback: Option<Callback>,
        ) -> Result<Box<dyn LockObject>, Outcome> {
            let lock = NamedLock::with_path(path).map_err(outcome)?;
            Ok(Box::new(Object {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                lock,
                timeout,
            }))
        }
    }

    /// The protocol's outcome for an error of named-lock.
    fn outcome(error: Error) -> Outcome {
        match error {
            Error::WouldBlock => Outcome::WouldBlock,
            other => Outcome::IoError(other.to_string()),
        }
    }

    impl Object {
        fn keep(&self, guard: NamedLockGuard) {
            GUARDS.with(|guards| guards.borrow_mut().push((self.id, guard)));
        }
    }

    impl LockObject for Object {
        fn acquire(&self) -> Outcome {
            let attempt = || match self.lock.try_lock() {
                Ok(guard) => {
                    self.keep(guard);
                    Ok(true)
                }
                Err(Error::WouldBlock) => Ok(false),
                Err(other) => Err(outcome(other)),
            };
            let block = || match self.lock.lock() {
                Ok(guard) => {
                    self.keep(guard);
                    Outcome::Acquired
                }
                Err(other) => outcome(other),
            };
            peer::acquire(self.timeout, attempt, block)
        }

        fn release(&self) -> Outcome {
            let guard = GUARDS.with(|guards| {
                let mut guards = guards.borrow_mut();
                let at = guards.iter().rposition(|(id, _)| *id == self.id)?;
                Some(guards.remove(at).1)
            });
            match guard {
                Some(guard) => {
                    drop(guard);
                    Outcome::Released
                }
                None => Outcome::Unsupported(
                    "named-lock releases by dropping a guard on the thread that acquired it, and \
                     this thread has none from this lock"
                        .into(),
                ),
            }
        }
    }
}

#[cfg(unix)]
fn main() {
    lockspec_worker::serve(unix::NamedLockPeer::new())
}

#[cfg(not(unix))]
fn main() {
    eprintln!("lockspec-worker-named-lock: named-lock takes a lock file's path on Unix only");
    std::process::exit(2)
}
