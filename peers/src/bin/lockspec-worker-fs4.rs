//! The `fs4` peer: `fs4::FileExt::lock`, `try_lock` and `unlock` on a `std::fs::File`, served over
//! the worker protocol.
//!
//! A lock object is one `File`, opened for reading and writing without truncation. fs4 has no
//! timed lock, so a timeout is the adapter's polling of `try_lock` (`timeout_emulated`).

mod peer;

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use fs4::{FileExt, TryLockError};
use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};

/// The fs4 version that Cargo.toml pins.
const VERSION: &str = "1.1.0";

/// Opens one `File` per `open`.
struct Fs4;

/// A `File` and the timeout of its acquires.
struct Object {
    file: File,
    timeout: Option<Duration>,
}

impl Backend for Fs4 {
    fn info(&self) -> Info {
        peer::info("fs4", VERSION, &[peer::TIMEOUT_EMULATED])
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

// The trait's methods are called by path: `File` has inherent methods of the same names (std's).
impl LockObject for Object {
    fn acquire(&self) -> Outcome {
        let attempt = || match FileExt::try_lock(&self.file) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e.into()),
        };
        let block = || FileExt::lock(&self.file).map_or_else(Outcome::from, |()| Outcome::Acquired);
        peer::acquire(self.timeout, attempt, block)
    }

    fn release(&self) -> Outcome {
        FileExt::unlock(&self.file).map_or_else(Outcome::from, |()| Outcome::Released)
    }
}

fn main() {
    lockspec_worker::serve(Fs4)
}
