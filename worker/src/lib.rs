//! The worker side of the lockspec protocol: plug a lock implementation in, get a worker.
//!
//! A worker is a program that the conformance runner drives over newline-delimited JSON on
//! stdin and stdout, as `spec/PROTOCOL.md` describes. This crate does everything but the locking:
//! parsing commands, one real OS thread per protocol thread, the shared maps of lock objects and
//! plain files, replies and `callback` events with times on the machine's monotonic clock
//! ([`monotonic_ns`]), idle child processes and the `witness` of stress runs. An implementation
//! provides a [`Backend`] that creates [`LockObject`]s, and its `main` calls [`serve`]:
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};
//!
//! struct Unsupported;
//!
//! impl Backend for Unsupported {
//!     fn info(&self) -> Info {
//!         Info {
//!             implementation: "nothing".into(),
//!             version: "0.1.0".into(),
//!             language: "rust".into(),
//!             capabilities: Vec::new(),
//!         }
//!     }
//!
//!     fn open(
//!         &self,
//!         _path: &Path,
//!         _timeout: Option<Duration>,
//!         _callback: Option<Callback>,
//!     ) -> Result<Box<dyn LockObject>, Outcome> {
//!         Err(Outcome::Unsupported("this worker locks nothing".into()))
//!     }
//! }
//!
//! fn main() {
//!     lockspec_worker::serve(Unsupported)
//! }
//! ```

mod server;

use std::io;
use std::path::Path;
use std::time::Duration;

pub use lockspec_protocol::Kind;

/// The result of one operation, as the protocol's `outcome` string and an optional `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`: the operation (such as `open`) succeeded.
    Ok,
    /// `acquired`: the lock is now held by the object.
    Acquired,
    /// `released`: the lock was held by the object and is not any more.
    Released,
    /// `timed_out`: the object's timeout expired before the lock could be acquired.
    TimedOut,
    /// `would_block`: a single attempt (timeout zero) found the lock held.
    WouldBlock,
    /// `not_held`: the library reported that the lock was not held.
    NotHeld,
    /// `io_error`: an error of the file system, with a human-readable detail.
    IoError(String),
    /// `unsupported`: the library cannot do what was asked, with a human-readable detail.
    Unsupported(String),
}

impl Outcome {
    /// The protocol's kind of this outcome, such as [`Kind::WouldBlock`].
    pub fn kind(&self) -> Kind {
        match self {
            Outcome::Ok => Kind::Ok,
            Outcome::Acquired => Kind::Acquired,
            Outcome::Released => Kind::Released,
            Outcome::TimedOut => Kind::TimedOut,
            Outcome::WouldBlock => Kind::WouldBlock,
            Outcome::NotHeld => Kind::NotHeld,
            Outcome::IoError(_) => Kind::IoError,
            Outcome::Unsupported(_) => Kind::Unsupported,
        }
    }

    /// The human-readable detail sent with the outcome, if there is a non-empty one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::IoError(detail) | Outcome::Unsupported(detail) if !detail.is_empty() => {
                Some(detail)
            }
            _ => None,
        }
    }
}

impl From<io::Error> for Outcome {
    /// Any I/O error is reported as `io_error`, with the error's message as the detail.
    fn from(error: io::Error) -> Outcome {
        Outcome::IoError(error.to_string())
    }
}

/// What a worker says about itself in its reply to `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The implementation's name, such as `"reference"`; it names the implementation in test names.
    pub implementation: String,
    /// The implementation's version.
    pub version: String,
    /// The language the implementation is written in, such as `"rust"`.
    pub language: String,
    /// The optional features the worker supports, such as `"callback"`.
    ///
    /// Without `"callback"`, an `open` that asks for a callback is answered `unsupported` before the
    /// backend sees it.
    pub capabilities: Vec<String>,
}

/// The capability of a backend that honours the contention callback.
pub const CAPABILITY_CALLBACK: &str = lockspec_protocol::capability::CALLBACK;

/// A contention callback handed to [`Backend::open`]: calling it writes one `callback` event for the
/// handle being opened.
///
/// The library under test should call it once each time an acquire has to wait, before that
/// acquire returns. It may be called from any thread.
pub type Callback = Box<dyn Fn() + Send + Sync>;

/// A lock implementation under test: it creates lock objects.
///
/// The server calls `open` from the thread the command names, so several calls may run at once.
pub trait Backend: Send + Sync + 'static {
    /// What the worker says about itself in its reply to `hello`; called once, at start-up.
    fn info(&self) -> Info;

    /// Creates a lock object for `path` (relative to the working directory) whose every acquire
    /// uses `timeout`: `None` waits forever, `Some(Duration::ZERO)` makes a single attempt.
    /// `callback` is `Some` when the runner asked for the contention callback (only if
    /// [`Info::capabilities`] has [`CAPABILITY_CALLBACK`]).
    ///
    /// # Errors
    ///
    /// Returns the outcome to reply with when the object cannot be created: normally
    /// [`Outcome::IoError`] or [`Outcome::Unsupported`].
    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome>;
}

/// One lock object of the library under test, bound to a handle name.
///
/// The object is shared between the worker's threads: an object opened on one thread can be
/// acquired on a second and released on a third, and an acquire may block on one thread while
/// another thread releases. The server never holds a lock of its own while calling these methods.
/// Dropping the object is the protocol's `close`.
pub trait LockObject: Send + Sync {
    /// Acquires with the object's timeout: [`Outcome::Acquired`], [`Outcome::TimedOut`],
    /// [`Outcome::WouldBlock`], [`Outcome::IoError`] or [`Outcome::Unsupported`].
    fn acquire(&self) -> Outcome;

    /// Releases: [`Outcome::Released`], [`Outcome::NotHeld`] (only when the library reports it),
    /// [`Outcome::IoError`] or [`Outcome::Unsupported`].
    fn release(&self) -> Outcome;
}

/// The monotonic clock that every process of the machine shares, in nanoseconds: the clock of the
/// replies' `start_ns` and `t_ns`.
///
/// It is `CLOCK_MONOTONIC` on Unix and `QueryPerformanceCounter` on Windows; elsewhere it only
/// counts from the first reading in this process.
pub fn monotonic_ns() -> u64 {
    lockspec_protocol::now_ns()
}

/// The argument that makes a worker binary the idle child started by `spawn_child`.
pub const IDLE_CHILD_FLAG: &str = "--idle-child";

/// If the first argument is [`IDLE_CHILD_FLAG`], sleeps forever and never returns; otherwise
/// returns at once.
///
/// [`serve`] calls it first. A worker that parses its own arguments should call it before doing so,
/// because the idle child is started with this argument alone.
pub fn idle_child_if_requested() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == IDLE_CHILD_FLAG)
    {
        loop {
            std::thread::park();
        }
    }
}

/// How long a worker whose stdin has ended waits for the commands already received.
///
/// Commands that complete at once are answered (so that a worker fed by a pipe answers every
/// command), while an acquire blocked forever does not keep the process alive.
pub const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Runs the worker: serves the protocol on stdin and stdout with `backend` until stdin is closed.
///
/// It never returns, so that `main` can end with it whatever its return type. At the end of stdin
/// the process exits with status 0 as soon as the commands already received have been answered,
/// or after [`EXIT_GRACE`] if some are still blocked; on a line that cannot be parsed it writes a
/// diagnostic to stderr and exits with status 2 at once. Started with [`IDLE_CHILD_FLAG`] as the
/// first argument, it is the idle child of `spawn_child` instead, and sleeps until killed.
pub fn serve(backend: impl Backend) -> ! {
    idle_child_if_requested();
    let child_exe = std::env::current_exe();
    let server = server::Server::new(Box::new(backend), Box::new(io::stdout()), child_exe);
    match server.run(io::stdin().lock()) {
        Ok(lanes) => {
            lanes.finish(EXIT_GRACE);
            std::process::exit(0)
        }
        Err(error) => {
            eprintln!("lockspec-worker: {error}");
            std::process::exit(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(Outcome::Ok, "ok", None)]
    #[case(Outcome::Acquired, "acquired", None)]
    #[case(Outcome::Released, "released", None)]
    #[case(Outcome::TimedOut, "timed_out", None)]
    #[case(Outcome::WouldBlock, "would_block", None)]
    #[case(Outcome::NotHeld, "not_held", None)]
    #[case(Outcome::IoError("no such file".into()), "io_error", Some("no such file"))]
    #[case(Outcome::IoError(String::new()), "io_error", None)]
    #[case(Outcome::Unsupported("no callback".into()), "unsupported", Some("no callback"))]
    fn outcome_strings(#[case] outcome: Outcome, #[case] kind: &str, #[case] detail: Option<&str>) {
        assert_eq!(outcome.kind().as_str(), kind);
        assert_eq!(outcome.detail(), detail);
    }

    #[test]
    fn io_error_keeps_message() {
        let error = io::Error::new(io::ErrorKind::NotFound, "gone");
        assert_eq!(Outcome::from(error), Outcome::IoError("gone".into()));
    }
}
