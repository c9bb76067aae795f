//! The `fslock` peer: `fslock::LockFile`'s `lock`, `try_lock` and `unlock`, served over the
//! worker protocol.
//!
//! A lock object is one `LockFile`. Its methods take `&mut self`, so the object sits behind a
//! mutex, the only way Rust code can share it between threads; a blocking `lock` keeps the object
//! to itself until it returns. fslock panics on a `lock` of a `LockFile` that owns the lock and on
//! an `unlock` of one that does not: the panic ends the worker, as it would end the user's thread,
//! and the runner reports it. fslock has no timed lock, so a timeout is the adapter's polling of
//! `try_lock` (`timeout_emulated`).

mod peer;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fslock::LockFile;
use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};

/// The fslock version that Cargo.toml pins.
const VERSION: &str = "0.2.1";

/// Opens one `LockFile` per `open`.
struct Fslock;

/// A `LockFile` and the timeout of its acquires.
struct Object {
    file: Mutex<LockFile>,
    timeout: Option<Duration>,
}

impl Backend for Fslock {
    fn info(&self) -> Info {
        peer::info("fslock", VERSION, &[peer::TIMEOUT_EMULATED])
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        _callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        let file = LockFile::open(path).map_err(|e| io_error(path, &e))?;
        Ok(Box::new(Object {
            file: Mutex::new(file),
            timeout,
        }))
    }
}

fn io_error(path: &Path, error: &fslock::Error) -> Outcome {
    Outcome::IoError(format!("{}: {error}", path.display()))
}

impl Object {
    fn file(&self) -> MutexGuard<'_, LockFile> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LockObject for Object {
    fn acquire(&self) -> Outcome {
        let attempt = || {
            self.file()
                .try_lock()
                .map_err(|e| Outcome::IoError(e.to_string()))
        };
        let block = || {
            self.file()
                .lock()
                .map_or_else(|e| Outcome::IoError(e.to_string()), |()| Outcome::Acquired)
        };
        peer::acquire(self.timeout, attempt, block)
    }

    fn release(&self) -> Outcome {
        self.file()
            .unlock()
            .map_or_else(|e| Outcome::IoError(e.to_string()), |()| Outcome::Released)
    }
}

fn main() {
    lockspec_worker::serve(Fslock)
}
