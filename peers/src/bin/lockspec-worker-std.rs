//! The `std` peer: the standard library's `File::lock`, `File::try_lock` and `File::unlock`
//! (stable since Rust 1.89) served over the worker protocol.
//!
//! A lock object is one `File`, opened for reading and writing without truncation. std has no
//! timed lock, so a timeout is the adapter's polling of `try_lock` (`timeout_emulated`).

mod peer;

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};

/// Opens one `File` per `open`.
struct Std;

/// A `File` and the timeout of its acquires.
struct Object {
    file: File,
    timeout: Option<Duration>,
}

impl Backend for Std {
    fn info(&self) -> Info {
        // std is versioned with the toolchain that builds this worker.
        peer::info("std", "toolchain", &[peer::TIMEOUT_EMULATED])
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        _callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        let file = peer::open_file(path)?;
        Ok(Box::new(Object { file, timeout }))
    }
}

impl LockObject for Object {
    fn acquire(&self) -> Outcome {
        let attempt = || match self.file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e.into()),
        };
        let block = || {
            self.file
                .lock()
                .map_or_else(Outcome::from, |()| Outcome::Acquired)
        };
        peer::acquire(self.timeout, attempt, block)
    }

    fn release(&self) -> Outcome {
        self.file
            .unlock()
            .map_or_else(Outcome::from, |()| Outcome::Released)
    }
}

fn main() {
    lockspec_worker::serve(Std)
}
