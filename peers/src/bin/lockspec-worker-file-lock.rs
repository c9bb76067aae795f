//! The `file-lock` peer: `file_lock::FileLock::lock`, a POSIX record lock (`fcntl`) that comes
//! back locked and unlocks when dropped, served over the worker protocol. Unix only.
//!
//! file-lock has no unlocked lock object: `FileLock::lock(path, is_blocking, options)` opens the
//! file and locks it. A protocol lock object is therefore the path and the options (write,
//! create, no truncation); every acquire calls `FileLock::lock`, and a release drops the newest
//! `FileLock` it returned. With no `FileLock` there is nothing to release (`no_release_unheld`).
//! A non-blocking attempt that finds the lock taken fails with `EAGAIN` on Linux (`EACCES` on
//! some systems, which here stays an I/O error). file-lock has no timed lock, so a timeout is the
//! adapter's polling of non-blocking attempts (`timeout_emulated`).

#[cfg(unix)]
mod peer;

#[cfg(unix)]
mod unix {
    use std::io::ErrorKind;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::time::Duration;

    use file_lock::{FileLock, FileOptions};
    use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};

    use crate::peer;

    /// The file-lock version that Cargo.toml pins.
    const VERSION: &str = "2.1.11";

    /// Remembers a path per `open`.
    pub struct FileLockPeer;

    /// A path, the timeout of its acquires, and the `FileLock`s they returned, newest last.
    struct Object {
        path: PathBuf,
        timeout: Option<Duration>,
        held: Mutex<Vec<FileLock>>,
    }

    impl Backend for FileLockPeer {
        fn info(&self) -> Info {
            peer::info(
                "file-lock",
                VERSION,
                &[peer::TIMEOUT_EMULATED, peer::NO_RELEASE_UNHELD],
            )
        }

        fn open(
            &self,
            path: &Path,
            timeout: Option<Duration>,
            _callback: Option<Callback>,
        ) -> Result<Box<dyn LockObject>, Outcome> {
            Ok(Box::new(Object {
                path: path.to_owned(),
                timeout,
                held: Mutex::new(Vec::new()),
            }))
        }
    }

    impl Object {
        fn lock(&self, is_blocking: bool) -> std::io::Result<FileLock> {
            let options = FileOptions::new().write(true).create(true).truncate(false);
            FileLock::lock(&self.path, is_blocking, options)
        }

        fn held(&self) -> MutexGuard<'_, Vec<FileLock>> {
            self.held.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl LockObject for Object {
        fn acquire(&self) -> Outcome {
            let attempt = || match self.lock(false) {
                Ok(lock) => {
                    self.held().push(lock);
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e.into()),
            };
            let block = || match self.lock(true) {
                Ok(lock) => {
                    self.held().push(lock);
                    Outcome::Acquired
                }
                Err(e) => e.into(),
            };
            peer::acquire(self.timeout, attempt, block)
        }

        fn release(&self) -> Outcome {
            let newest = self.held().pop();
            match newest {
                // Dropping unlocks (`F_UNLCK`) and closes the file.
                Some(lock) => {
                    drop(lock);
                    Outcome::Released
                }
                None => Outcome::Unsupported(
                    "file-lock releases a FileLock that `FileLock::lock` returned, and there is none"
                        .into(),
                ),
            }
        }
    }
}

#[cfg(unix)]
fn main() {
    lockspec_worker::serve(unix::FileLockPeer)
}

#[cfg(not(unix))]
fn main() {
    eprintln!("lockspec-worker-file-lock: file-lock supports Unix only");
    std::process::exit(2)
}
