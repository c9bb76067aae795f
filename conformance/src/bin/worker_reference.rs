//! The reference worker: `lockspec_reference::FileLock` served over the worker protocol.

use std::path::Path;
use std::time::Duration;

use lockspec_reference::{Error, FileLock};
use lockspec_worker::{Backend, CAPABILITY_CALLBACK, Callback, Info, LockObject, Outcome};

/// Creates one [`FileLock`] per `open`.
struct Reference;

/// A [`FileLock`] as a lock object of the protocol.
struct Object(FileLock);

impl Backend for Reference {
    fn info(&self) -> Info {
        Info {
            implementation: "reference".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            language: "rust".into(),
            capabilities: vec![CAPABILITY_CALLBACK.into()],
        }
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        let mut lock = FileLock::open(path).map_err(outcome)?.with_timeout(timeout);
        if let Some(callback) = callback {
            lock = lock.on_contention(callback);
        }
        Ok(Box::new(Object(lock)))
    }
}

impl LockObject for Object {
    fn acquire(&self) -> Outcome {
        self.0
            .acquire()
            .map_or_else(outcome, |()| Outcome::Acquired)
    }

    fn release(&self) -> Outcome {
        self.0
            .release()
            .map_or_else(outcome, |()| Outcome::Released)
    }
}

/// The protocol's outcome for an error of the reference: a timeout of zero is a single attempt.
fn outcome(error: Error) -> Outcome {
    match &error {
        Error::TimedOut { timeout, .. } if timeout.is_zero() => Outcome::WouldBlock,
        Error::TimedOut { .. } => Outcome::TimedOut,
        Error::NotHeld { .. } => Outcome::NotHeld,
        _ => Outcome::IoError(error.to_string()),
    }
}

fn main() {
    lockspec_worker::serve(Reference)
}
