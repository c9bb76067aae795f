//! The baseline every figure is compared with: the bare OS lock, with nothing around it.
//!
//! `raw-flock` is a worker (this same binary, started with [`SERVE_FLAG`]) whose acquire is
//! `open` + `flock(LOCK_EX)` and whose release is `flock(LOCK_UN)` + `close`, so that it is
//! measured exactly as the implementations are, through the protocol and in its own process: a
//! blocking acquire is a process blocked in `flock`, woken by the kernel. It has no timed wait;
//! its timed acquire sleeps until the deadline and tries once more, so its timeout overshoot is
//! the operating system's timer overshoot. [`in_process`] times the same calls in a tight loop
//! inside the benchmark's own process, for orientation.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};
use serde::Serialize;

/// The argument that makes this binary the `raw-flock` worker.
pub const SERVE_FLAG: &str = "--serve-raw-flock";

/// The baseline's name in tables.
pub const NAME: &str = "raw-flock";

/// The `raw-flock` backend.
struct RawFlock;

/// One lock object: a path, and the handle while it is held.
struct RawObject {
    path: PathBuf,
    timeout: Option<Duration>,
    held: Mutex<Option<File>>,
}

impl Backend for RawFlock {
    fn info(&self) -> Info {
        Info {
            implementation: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            language: "rust (std flock)".into(),
            capabilities: Vec::new(),
        }
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        _callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        Ok(Box::new(RawObject {
            path: path.to_owned(),
            timeout,
            held: Mutex::new(None),
        }))
    }
}

impl LockObject for RawObject {
    fn acquire(&self) -> Outcome {
        let file = match open(&self.path) {
            Ok(file) => file,
            Err(error) => return error.into(),
        };
        let locked = match self.timeout {
            None => file.lock().map(|()| true),
            Some(timeout) => {
                let deadline = Instant::now() + timeout;
                match try_lock(&file) {
                    Ok(true) => Ok(true),
                    Ok(false) if timeout.is_zero() => return Outcome::WouldBlock,
                    Ok(false) => {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                        try_lock(&file)
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match locked {
            Ok(true) => {
                *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
                Outcome::Acquired
            }
            Ok(false) => Outcome::TimedOut,
            Err(error) => error.into(),
        }
    }

    fn release(&self) -> Outcome {
        let file = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        match file {
            // Closing would release it too; unlock first, as a careful program does.
            Some(file) => file
                .unlock()
                .map_or_else(Outcome::from, |()| Outcome::Released),
            None => Outcome::NotHeld,
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn try_lock(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

/// Serves the `raw-flock` worker on stdin and stdout; never returns.
pub fn serve() -> ! {
    lockspec_worker::serve(RawFlock)
}

/// The bare calls timed in a tight loop in this process, in nanoseconds per iteration (the
/// median of batches).
#[derive(Debug, Clone, Serialize)]
pub struct InProcess {
    /// `open` + `flock(LOCK_EX)` + `flock(LOCK_UN)` + `close`.
    pub open_lock_unlock_close_ns: f64,
    /// `flock(LOCK_EX)` + `flock(LOCK_UN)` on a handle kept open.
    pub lock_unlock_ns: f64,
}

/// Times the bare calls on a file in `dir`.
///
/// # Errors
///
/// When the file cannot be opened or locked.
pub fn in_process(dir: &Path, batches: usize, per_batch: usize) -> std::io::Result<InProcess> {
    let path = dir.join("in-process.lock");
    let kept = open(&path)?;
    let open_lock_unlock_close_ns = median_batch(batches, per_batch, || {
        let file = open(&path)?;
        file.lock()?;
        file.unlock()
    })?;
    let lock_unlock_ns = median_batch(batches, per_batch, || {
        kept.lock()?;
        kept.unlock()
    })?;
    Ok(InProcess {
        open_lock_unlock_close_ns,
        lock_unlock_ns,
    })
}

/// The median over `batches` of the mean time of one call of `f` in a batch of `per_batch`.
fn median_batch(
    batches: usize,
    per_batch: usize,
    mut f: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<f64> {
    // Warm up caches and the file system's structures first.
    for _ in 0..per_batch {
        f()?;
    }
    let mut means = Vec::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            f()?;
        }
        means.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    means.sort_by(f64::total_cmp);
    Ok(means[means.len() / 2])
}
