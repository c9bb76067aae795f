//! The older mutants: the reference lock with one bug, and hand-made locks (`fcntl` record
//! locks, a descriptor leaked to children, a word in the file) with one bug each.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use lockspec_reference::{Error, FileLock};
use lockspec_worker::{Callback, LockObject, Outcome};

use super::sys::{flock, open_inheritable, open_lock_file, record_lock};
use crate::mutants::Kind;

/// Opens a lock object of the hand-made mutant `kind`.
pub(crate) fn open(
    kind: Kind,
    path: &Path,
    timeout: Option<Duration>,
    callback: Option<Callback>,
) -> Result<Box<dyn LockObject>, Outcome> {
    Ok(match kind {
        Kind::Model(_) => unreachable!("the model opens its own objects"),
        Kind::Reentrant => Box::new(Reentrant {
            lock: reference(path, timeout, callback)?,
            depth: Mutex::new((0, None)),
        }),
        Kind::PerProcessRecordLock => Box::new(RecordLock {
            file: open_lock_file(path)?,
            gate: Gate::new(timeout, callback),
        }),
        Kind::TimeoutIgnored => Box::new(Retimed {
            lock: reference(path, None, callback)?,
            asked: timeout,
        }),
        Kind::TimeoutImmediate => Box::new(Retimed {
            lock: reference(path, timeout.map(|_| Duration::ZERO), callback)?,
            asked: timeout,
        }),
        Kind::ReleaseUnheldOk => Box::new(ReleaseUnheldOk {
            lock: reference(path, timeout, callback)?,
        }),
        Kind::DeleteOnRelease => Box::new(DeleteOnRelease {
            lock: reference(path, timeout, callback)?,
            path: path.to_owned(),
        }),
        Kind::ReleaseOtherThreadRefused => Box::new(ReleaseOtherThreadRefused {
            lock: reference(path, timeout, callback)?,
            holder: Mutex::new(None),
        }),
        Kind::LeakToChild => {
            // The file is opened anew by every acquire; this only reports a bad path now.
            drop(open_lock_file(path)?);
            Box::new(LeakToChild {
                path: path.to_owned(),
                gate: Gate::new(timeout, callback),
                fd: Mutex::new(None),
            })
        }
        Kind::LockInContents => Box::new(LockInContents {
            file: open_lock_file(path)?,
            gate: Gate::new(timeout, callback),
        }),
    })
}

/// A reference lock with the object's timeout and callback.
fn reference(
    path: &Path,
    timeout: Option<Duration>,
    callback: Option<Callback>,
) -> Result<FileLock, Outcome> {
    let mut lock = FileLock::open(path).map_err(outcome)?.with_timeout(timeout);
    if let Some(callback) = callback {
        lock = lock.on_contention(callback);
    }
    Ok(lock)
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

/// The outcome of a reference acquire.
fn acquired(result: Result<(), Error>) -> Outcome {
    result.map_or_else(outcome, |()| Outcome::Acquired)
}

/// The outcome of a reference release.
fn released(result: Result<(), Error>) -> Outcome {
    result.map_or_else(outcome, |()| Outcome::Released)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Breaks "the holding object cannot acquire again" (REE-1): the thread that holds the lock
/// through an object acquires it again at once, and only as many releases free it.
struct Reentrant {
    lock: FileLock,
    /// How many acquires the lock is held for, and by which thread.
    depth: Mutex<(u32, Option<ThreadId>)>,
}

impl LockObject for Reentrant {
    fn acquire(&self) -> Outcome {
        let me = thread::current().id();
        {
            let mut depth = lock(&self.depth);
            if depth.0 > 0 && depth.1 == Some(me) {
                depth.0 += 1;
                return Outcome::Acquired;
            }
        }
        // Any other thread is excluded as by the reference, this object's holder included.
        let result = acquired(self.lock.acquire());
        if result == Outcome::Acquired {
            *lock(&self.depth) = (1, Some(me));
        }
        result
    }

    fn release(&self) -> Outcome {
        let mut depth = lock(&self.depth);
        if depth.0 > 1 {
            depth.0 -= 1;
            return Outcome::Released;
        }
        let result = released(self.lock.release());
        if result == Outcome::Released {
            *depth = (0, None);
        }
        result
    }
}

/// Breaks "a zero timeout makes a single attempt" and "a timed acquire fails no later than
/// its timeout" (`timeout-ignored`: waits forever), or "a timed acquire fails no earlier than
/// its timeout" (`timeout-immediate`: makes one attempt): a reference lock opened with another
/// timeout than the one asked for (TMO-2, TMO-3, TMO-4).
struct Retimed {
    lock: FileLock,
    /// The timeout the runner asked for, which decides how a failed acquire is reported.
    asked: Option<Duration>,
}

impl LockObject for Retimed {
    fn acquire(&self) -> Outcome {
        match acquired(self.lock.acquire()) {
            Outcome::WouldBlock if self.asked != Some(Duration::ZERO) => Outcome::TimedOut,
            other => other,
        }
    }

    fn release(&self) -> Outcome {
        released(self.lock.release())
    }
}

/// Breaks "releasing a lock the object does not hold is an error" (REL-2, REL-3, REL-4): it
/// is reported as released, and changes nothing.
struct ReleaseUnheldOk {
    lock: FileLock,
}

impl LockObject for ReleaseUnheldOk {
    fn acquire(&self) -> Outcome {
        acquired(self.lock.acquire())
    }

    fn release(&self) -> Outcome {
        match released(self.lock.release()) {
            Outcome::NotHeld => Outcome::Released,
            other => other,
        }
    }
}

/// Breaks "lock operations never delete the lock file" (FIL-1): releasing unlinks it before
/// unlocking, so a waiter on the old file and a newcomer that creates a new one both hold it.
struct DeleteOnRelease {
    lock: FileLock,
    path: PathBuf,
}

impl LockObject for DeleteOnRelease {
    fn acquire(&self) -> Outcome {
        acquired(self.lock.acquire())
    }

    fn release(&self) -> Outcome {
        if self.lock.is_held() {
            // Like the libraries that tidy up after themselves, a failure to delete is ignored.
            let _ = std::fs::remove_file(&self.path);
        }
        released(self.lock.release())
    }
}

/// Breaks "any thread of the holding process may release" (REL-1): a release from another
/// thread than the acquiring one is refused as not held.
struct ReleaseOtherThreadRefused {
    lock: FileLock,
    holder: Mutex<Option<ThreadId>>,
}

impl LockObject for ReleaseOtherThreadRefused {
    fn acquire(&self) -> Outcome {
        let result = acquired(self.lock.acquire());
        if result == Outcome::Acquired {
            *lock(&self.holder) = Some(thread::current().id());
        }
        result
    }

    fn release(&self) -> Outcome {
        let mut holder = lock(&self.holder);
        if holder.is_some_and(|id| id != thread::current().id()) {
            return Outcome::NotHeld;
        }
        let result = released(self.lock.release());
        if result == Outcome::Released {
            *holder = None;
        }
        result
    }
}

/// Breaks "two lock objects in one process exclude each other" (IDN-1) and "other handles on
/// the lock file do not affect the lock" (FIL-3, FIL-5): whole-file `fcntl` record locks, which
/// belong to the process, on a descriptor per object, with no table of locks in the process.
struct RecordLock {
    file: File,
    gate: Gate,
}

impl LockObject for RecordLock {
    fn acquire(&self) -> Outcome {
        let fd = self.file.as_raw_fd();
        let attempt = || record_lock(fd, libc::F_WRLCK, false);
        let block = || record_lock(fd, libc::F_WRLCK, true).map(drop);
        self.gate.acquire(attempt, Some(&block), || {})
    }

    fn release(&self) -> Outcome {
        let fd = self.file.as_raw_fd();
        self.gate
            .release(|| record_lock(fd, libc::F_UNLCK, false).map(drop))
    }
}

/// Breaks "a child does not keep the lock" (INH-1, INH-2): every acquire opens the file
/// without close-on-exec and every release closes it instead of unlocking, so a child started
/// while the lock is held keeps it.
struct LeakToChild {
    path: PathBuf,
    gate: Gate,
    /// The descriptor that holds the lock, while it is held.
    fd: Mutex<Option<OwnedFd>>,
}

impl LockObject for LeakToChild {
    fn acquire(&self) -> Outcome {
        let fd = match open_inheritable(&self.path) {
            Ok(fd) => fd,
            Err(error) => return error.into(),
        };
        // Separate descriptions of one file exclude each other, in this process too.
        let raw = fd.as_raw_fd();
        let attempt = || flock(raw, libc::LOCK_EX | libc::LOCK_NB);
        let block = || flock(raw, libc::LOCK_EX).map(drop);
        // If the acquire fails, `fd` is dropped with the closure, which closes it.
        self.gate
            .acquire(attempt, Some(&block), || *lock(&self.fd) = Some(fd))
    }

    fn release(&self) -> Outcome {
        self.gate.release(|| {
            // Closing drops the lock only if no child holds a copy of the descriptor.
            drop(lock(&self.fd).take());
            Ok(())
        })
    }
}

/// Breaks "a killed holder's lock is freed promptly" (DTH-1) and "lock operations never
/// change the lock file's contents" (FIL-2): the lock is the word `locked` in the file, written
/// and erased under a short `flock`, and nobody erases it for a dead process.
struct LockInContents {
    file: File,
    gate: Gate,
}

/// What the file holds while it is locked.
const LOCKED: &[u8] = b"locked";

impl LockInContents {
    /// Runs `f` under an exclusive `flock` of the file, which no one holds for long.
    fn exclusively<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let fd = self.file.as_raw_fd();
        flock(fd, libc::LOCK_EX)?;
        let result = f(&self.file);
        flock(fd, libc::LOCK_UN)?;
        result
    }

    /// Writes `locked` unless the file already says so; whether it wrote.
    fn mark(&self) -> io::Result<bool> {
        self.exclusively(|file| {
            let mut contents = [0; 64];
            let read = file.read_at(&mut contents, 0)?;
            if &contents[..read] == LOCKED {
                return Ok(false);
            }
            file.set_len(0)?;
            file.write_all_at(LOCKED, 0)?;
            Ok(true)
        })
    }

    fn erase(&self) -> io::Result<()> {
        self.exclusively(|file| file.set_len(0))
    }
}

impl LockObject for LockInContents {
    fn acquire(&self) -> Outcome {
        self.gate.acquire(|| self.mark(), None, || {})
    }

    fn release(&self) -> Outcome {
        self.gate.release(|| self.erase())
    }
}

impl Drop for LockInContents {
    /// Closing a held object releases it, as closing a lock file does.
    fn drop(&mut self) {
        if self.gate.is_held() {
            let _ = self.erase();
        }
    }
}

/// Where an object of a hand-made lock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// The object does not hold the lock, and no acquire through it is taking it.
    Free,
    /// An acquire through the object is taking the OS-level lock.
    Claimed,
    /// The object holds the lock.
    Held,
}

/// The object side of a hand-made lock: its timeout, its contention callback, and its turn,
/// which makes threads sharing the object (and a second acquire through the holding object)
/// wait as for any held lock.
struct Gate {
    timeout: Option<Duration>,
    callback: Option<Callback>,
    turn: Mutex<Turn>,
    /// Notified whenever `turn` becomes `Free`.
    freed: Condvar,
}

/// The longest pause between two attempts while polling.
const MAX_PAUSE: Duration = Duration::from_millis(10);

impl Gate {
    fn new(timeout: Option<Duration>, callback: Option<Callback>) -> Gate {
        Gate {
            timeout,
            callback,
            turn: Mutex::new(Turn::Free),
            freed: Condvar::new(),
        }
    }

    fn is_held(&self) -> bool {
        *lock(&self.turn) == Turn::Held
    }

    /// Acquires: waits until no other acquire through this object has the lock, then takes
    /// the lock with `attempt`s, one at once and then, if it is taken, either by `block`ing
    /// (no timeout and a blocking call exists) or by retrying with a growing pause until the
    /// timeout expires. The callback is called once, when the acquire starts to wait; a
    /// single attempt never waits. `held` runs when the lock is taken, before anyone can
    /// release it.
    fn acquire(
        &self,
        attempt: impl FnMut() -> io::Result<bool>,
        block: Option<&dyn Fn() -> io::Result<()>>,
        held: impl FnOnce(),
    ) -> Outcome {
        let single = self.timeout == Some(Duration::ZERO);
        // A deadline too far away to represent is no deadline.
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let mut contended = false;
        let mut turn = lock(&self.turn);
        while *turn != Turn::Free {
            if single {
                return Outcome::WouldBlock;
            }
            if !contended {
                drop(turn);
                self.contend(&mut contended);
                turn = lock(&self.turn);
                continue;
            }
            turn = match deadline {
                None => self
                    .freed
                    .wait(turn)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Outcome::TimedOut;
                    }
                    let waited = self.freed.wait_timeout(turn, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        *turn = Turn::Claimed;
        drop(turn);
        let outcome = self.take(single, deadline, &mut contended, attempt, block);
        let mut turn = lock(&self.turn);
        if outcome == Outcome::Acquired {
            held();
            *turn = Turn::Held;
        } else {
            *turn = Turn::Free;
            self.freed.notify_all();
        }
        outcome
    }

    /// Takes the lock outside the object, as [`Gate::acquire`] says.
    fn take(
        &self,
        single: bool,
        deadline: Option<Instant>,
        contended: &mut bool,
        mut attempt: impl FnMut() -> io::Result<bool>,
        block: Option<&dyn Fn() -> io::Result<()>>,
    ) -> Outcome {
        match attempt() {
            Ok(true) => return Outcome::Acquired,
            Ok(false) => {}
            Err(error) => return error.into(),
        }
        if single {
            return Outcome::WouldBlock;
        }
        self.contend(contended);
        if let (None, Some(block)) = (deadline, block) {
            return block().map_or_else(Outcome::from, |()| Outcome::Acquired);
        }
        let mut pause = Duration::from_millis(1);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                return Outcome::TimedOut;
            }
            thread::sleep(left.map_or(pause, |left| left.min(pause)));
            match attempt() {
                Ok(true) => return Outcome::Acquired,
                Ok(false) => {}
                Err(error) => return error.into(),
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Calls the contention callback, unless this acquire has already called it.
    fn contend(&self, contended: &mut bool) {
        if !*contended {
            *contended = true;
            if let Some(callback) = &self.callback {
                callback();
            }
        }
    }

    /// Releases with `unlock` if this object holds the lock; not held otherwise.
    fn release(&self, unlock: impl FnOnce() -> io::Result<()>) -> Outcome {
        let mut turn = lock(&self.turn);
        if *turn != Turn::Held {
            return Outcome::NotHeld;
        }
        if let Err(error) = unlock() {
            return error.into();
        }
        *turn = Turn::Free;
        self.freed.notify_all();
        Outcome::Released
    }
}
