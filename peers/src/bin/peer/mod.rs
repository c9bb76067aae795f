//! What the Rust peer workers share: the capability names they declare, the `hello` they give, the
//! way they open a lock file whose library takes an open `File`, and the polling loop an adapter
//! supplies when its library has no timed acquire.
//!
//! Each peer binary includes this module (`mod peer;`). Nothing here adds to a library's
//! semantics: the loop only repeats the library's own single attempt until the timeout expires,
//! and says so in `hello` with [`TIMEOUT_EMULATED`].

// Every binary compiles this module on its own and uses only part of it.
#![expect(dead_code, reason = "each peer binary uses only some of these items")]

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lockspec_worker::{Info, Outcome};

/// Informational capability: the library has no timed acquire, so the adapter polls.
pub const TIMEOUT_EMULATED: &str = "timeout_emulated";

/// The library's API cannot acquire through an object that holds the lock (or is acquiring it).
pub const NO_ACQUIRE_HELD: &str = "no_acquire_held";

/// The library's API cannot release through an object that does not hold the lock.
pub const NO_RELEASE_UNHELD: &str = "no_release_unheld";

/// The library's API cannot release on another thread than the one that acquired.
pub const NO_RELEASE_ANY_THREAD: &str = "no_release_any_thread";

/// The pause between two attempts of an emulated timeout: short next to the suite's margins, long
/// enough that a waiting worker does not take a core.
pub const POLL: Duration = Duration::from_millis(5);

/// The `hello` of a Rust peer.
pub fn info(implementation: &str, version: &str, capabilities: &[&str]) -> Info {
    Info {
        implementation: implementation.into(),
        version: version.into(),
        language: "rust".into(),
        capabilities: capabilities.iter().map(|&c| c.to_owned()).collect(),
    }
}

/// Opens (and creates) a lock file for the libraries that lock a `File` the user opened: for
/// reading and writing, without truncating it, as a careful user of those APIs would.
///
/// # Errors
///
/// Returns [`Outcome::IoError`] naming the path when it cannot be opened.
pub fn open_file(path: &Path) -> Result<File, Outcome> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Outcome::IoError(format!("cannot open {}: {e}", path.display())))
}

/// Acquires with `timeout` through a library that offers only a single attempt and a blocking
/// call: no timeout calls `block`; a zero timeout makes one `attempt` (`Ok(true)`: it took the
/// lock); a timeout T repeats `attempt` every [`POLL`] until it succeeds or T has passed.
pub fn acquire(
    timeout: Option<Duration>,
    mut attempt: impl FnMut() -> Result<bool, Outcome>,
    block: impl FnOnce() -> Outcome,
) -> Outcome {
    let Some(timeout) = timeout else {
        return block();
    };
    // A deadline too far away to represent is no deadline.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match attempt() {
            Ok(true) => return Outcome::Acquired,
            Ok(false) => {}
            Err(outcome) => return outcome,
        }
        if timeout.is_zero() {
            return Outcome::WouldBlock;
        }
        let now = Instant::now();
        match deadline {
            Some(deadline) if now >= deadline => return Outcome::TimedOut,
            Some(deadline) => thread::sleep(POLL.min(deadline - now)),
            None => thread::sleep(POLL),
        }
    }
}
