//! The model lock: the reference's design in a few hundred lines, with one switch per [`Flaw`].
//!
//! Within a process, objects on one file share an [`Entry`] (found in a registry by the file's
//! device and inode) holding one OS handle and the state of the lock in this process: an acquire
//! first *claims* the entry (waiting on a condition variable while another object has claimed
//! it), then takes the OS lock (`flock`) on the shared handle, polling every few milliseconds
//! while another process holds it. Without a flaw this passes every scenario of the suite
//! (`tests/mutants/` checks it); each mutant built on it differs from it by one flaw, tested
//! with [`Model::has`] at the place where the model does the right thing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use lockspec_worker::{Callback, LockObject, Outcome};

use super::sys::{flock, inheritable, open_rw, record_lock};
use crate::mutants::Flaw;

/// The pause between two attempts on a lock that another process holds.
const POLL: Duration = Duration::from_millis(5);

/// The longest the in-process wait sleeps before it looks again (it is woken at every release).
const SLICE: Duration = Duration::from_millis(20);

/// The interval of the polling flaws, the delay of the slow ones, and the callback's.
const FLAWED_INTERVAL: Duration = Duration::from_millis(500);

/// How long a [`Flaw::RacyClaim`] acquire leaves between seeing the lock free and claiming it.
const RACE_WINDOW: Duration = Duration::from_millis(10);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What identifies a lock in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A file's device and inode.
    File(u64, u64),
    /// A file name alone ([`Flaw::BasenameKey`]).
    Name(OsString),
}

/// Every entry of this process, by key; an entry lives as long as an object uses it.
fn registry() -> &'static Mutex<HashMap<Key, Weak<Entry>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Weak<Entry>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// One lock file as this process sees it: the shared handle, and the lock's state here.
struct Entry {
    file: File,
    /// The file the OS lock is taken on (the lock file, unless a flaw derives another).
    path: PathBuf,
    state: Mutex<State>,
    /// Notified whenever the entry is unclaimed.
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The object that has claimed the lock (and holds it once `held`).
    owner: Option<u64>,
    held: bool,
    /// The thread of the owner's acquire.
    thread: Option<ThreadId>,
    /// The timeout of the owner's acquire.
    timeout: Option<Option<Duration>>,
    /// Objects that a flaw let in beside the holder.
    guests: Vec<u64>,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Clears the claim and wakes the waiters of this process.
    fn unclaim(&self, state: &mut State) {
        state.owner = None;
        state.held = false;
        state.thread = None;
        state.timeout = None;
        self.freed.notify_all();
    }
}

/// Where this object stands, for the flaws that remember.
#[derive(Debug, Default)]
struct Mine {
    /// It has held the lock and released it since.
    released: bool,
    /// The lock was taken when the object was created ([`Flaw::LockOnOpen`]).
    from_open: bool,
    /// An acquire through it has called the callback ([`Flaw::CallbackOncePerObject`]).
    called_back: bool,
}

/// One acquire in progress: its timing, and what it has told the callback.
struct Attempt {
    start: Instant,
    single: bool,
    timed: bool,
    deadline: Option<Instant>,
    /// It has found the lock held.
    waited: bool,
    /// When it last called the callback.
    called: Option<Instant>,
    /// Its ticket, while it waits ([`Flaw::WaiterTickets`]).
    ticket: Option<PathBuf>,
}

impl Attempt {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// A lock object of the model.
pub(crate) struct Model {
    flaw: Option<Flaw>,
    path: PathBuf,
    timeout: Option<Duration>,
    callback: Option<Callback>,
    id: u64,
    /// The entry, once the file could be opened (a flaw may put off a failed open).
    entry: Mutex<Option<Arc<Entry>>>,
    mine: Mutex<Mine>,
}

impl Model {
    /// Creates a lock object on `path`, with `flaw` if any.
    ///
    /// # Errors
    ///
    /// `io_error` when the file cannot be opened (unless the flaw reads that as contention).
    pub(crate) fn open(
        flaw: Option<Flaw>,
        path: &Path,
        timeout: Option<Duration>,
        callback: Option<Callback>,
    ) -> Result<Model, Outcome> {
        let model = Model {
            flaw,
            path: path.to_owned(),
            timeout,
            callback,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            entry: Mutex::new(None),
            mine: Mutex::default(),
        };
        match model.open_entry() {
            Ok(entry) => *lock(&model.entry) = Some(entry),
            Err(error) if model.contention(&error) => {}
            Err(error) => return Err(io_error(path, &error)),
        }
        if model.has(Flaw::LockOnOpen) {
            model.lock_on_open();
        }
        Ok(model)
    }

    fn has(&self, flaw: Flaw) -> bool {
        self.flaw == Some(flaw)
    }

    /// Whether a failure to open is read as a held lock, by a flaw.
    fn contention(&self, error: &io::Error) -> bool {
        match error.kind() {
            io::ErrorKind::NotFound => self.has(Flaw::MissingDirectoryIsContention),
            io::ErrorKind::PermissionDenied => self.has(Flaw::PermissionIsContention),
            _ => false,
        }
    }

    /// Finds or makes the entry of this object's file.
    fn open_entry(&self) -> io::Result<Arc<Entry>> {
        let path = self.lock_path()?;
        let name = || path.file_name().unwrap_or_default().to_owned();
        let key = |file: &fs::Metadata| {
            if self.has(Flaw::BasenameKey) {
                Key::Name(name())
            } else {
                Key::File(file.dev(), file.ino())
            }
        };
        let mut registry = lock(registry());
        // An entry that exists is found without opening the file again: closing a second
        // descriptor would drop a process's `fcntl` locks.
        if let Ok(metadata) = fs::metadata(&path)
            && let Some(entry) = registry.get(&key(&metadata)).and_then(Weak::upgrade)
        {
            return Ok(entry);
        }
        let file = self.open_file(&path)?;
        if self.has(Flaw::LeakedHandle) {
            inheritable(file.as_raw_fd())?;
        }
        let key = key(&file.metadata()?);
        if let Some(entry) = registry.get(&key).and_then(Weak::upgrade) {
            return Ok(entry);
        }
        let entry = Arc::new(Entry {
            file,
            path,
            state: Mutex::default(),
            freed: Condvar::new(),
        });
        registry.insert(key, Arc::downgrade(&entry));
        Ok(entry)
    }

    /// Opens the file the OS lock is taken on, creating it, never truncating it; read-only when
    /// permissions refuse writing, as the reference does.
    fn open_file(&self, path: &Path) -> io::Result<File> {
        match open_rw(path) {
            Ok(file) => Ok(file),
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                File::open(path).map_err(|_| error)
            }
            Err(error) if self.has(Flaw::DirectoryOpenedReadOnly) && path.is_dir() => {
                File::open(path).map_err(|_| error)
            }
            Err(error) => Err(error),
        }
    }

    /// The file the OS lock is taken on: the lock file, or one the flaw derives from the path.
    fn lock_path(&self) -> io::Result<PathBuf> {
        let spelled = match self.flaw {
            Some(Flaw::PathStringIdentity) => self.path.clone(),
            Some(Flaw::LexicalPathIdentity) => lexical(&std::env::current_dir()?.join(&self.path)),
            Some(Flaw::CanonicalPathIdentity) => {
                drop(self.open_file(&self.path)?);
                fs::canonicalize(&self.path)?
            }
            Some(Flaw::SiblingFile) if !self.path.exists() => {
                let mut sibling = self.path.clone().into_os_string();
                sibling.push(".lck");
                return Ok(sibling.into());
            }
            _ => return Ok(self.path.clone()),
        };
        // The lock file itself is created too, as any lock creates it.
        drop(self.open_file(&self.path)?);
        let mut hasher = std::hash::DefaultHasher::new();
        spelled.hash(&mut hasher);
        let name = format!(".lockspec-mutant-{:016x}", hasher.finish());
        Ok(self.path.with_file_name(name))
    }

    /// The entry, opening it now if a flaw put off the first failure; `Ok(None)` while the
    /// flaw reads the failure as contention.
    fn entry(&self) -> io::Result<Option<Arc<Entry>>> {
        let mut entry = lock(&self.entry);
        if entry.is_none() {
            match self.open_entry() {
                Ok(opened) => *entry = Some(opened),
                Err(error) if self.contention(&error) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        Ok(entry.clone())
    }

    /// The timeout an acquire uses: the object's, unless a flaw substitutes another.
    fn timeout(&self) -> Option<Duration> {
        match (self.flaw, self.timeout) {
            (Some(Flaw::NoneIsTimeout(ms)), None) => Some(Duration::from_millis(ms)),
            (Some(Flaw::ZeroWaits), Some(t)) if t.is_zero() => None,
            (_, timeout) => timeout,
        }
    }

    /// When an acquire that started at `start` with `timeout` gives up.
    fn deadline(&self, start: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let t = timeout?;
        let t = match self.flaw {
            _ if t.is_zero() => t,
            Some(Flaw::GivesUpAtDouble) => t * 2,
            Some(Flaw::GivesUp100msLate) => t + Duration::from_millis(100),
            Some(Flaw::GivesUpAtHalf) => t / 2,
            _ => t,
        };
        start.checked_add(t)
    }

    fn call_back(&self) {
        if let Some(callback) = &self.callback {
            callback();
        }
    }

    /// The acquire `a` is about to wait (again): the callback is called once per acquire, when it
    /// starts to wait; `in_process` says that it waits for another object of this process.
    fn contend(&self, a: &mut Attempt, in_process: bool) {
        let first = !a.waited;
        a.waited = true;
        let call = match self.flaw {
            Some(Flaw::CallbackEveryAttempt) => true,
            Some(Flaw::CallbackOsOnly) => a.called.is_none() && !in_process,
            Some(Flaw::CallbackAfterWait | Flaw::CallbackEveryAcquire) => false,
            Some(Flaw::CallbackAfter500ms) => {
                a.called.is_none() && a.start.elapsed() >= FLAWED_INTERVAL
            }
            Some(Flaw::CallbackReminder500ms) => {
                a.called.is_none_or(|at| at.elapsed() >= FLAWED_INTERVAL)
            }
            Some(Flaw::CallbackOncePerObject) => {
                first && !std::mem::replace(&mut lock(&self.mine).called_back, true)
            }
            _ => first,
        };
        if call {
            a.called = Some(Instant::now());
            self.call_back();
        }
    }

    /// How long a waiting acquire sleeps before it looks again, when a flaw makes it poll or
    /// sleep instead of being woken; `None` for the model's own waiting.
    fn flawed_pause(&self, a: &Attempt) -> Option<Duration> {
        let polls = match self.flaw {
            Some(Flaw::Poll500ms) => true,
            Some(Flaw::UntimedPoll500ms) => a.deadline.is_none(),
            Some(Flaw::SleepsOutTimeout) if a.timed => return a.left(),
            _ => false,
        };
        polls.then(|| {
            let since = a.start.elapsed();
            let ticks = since.as_nanos() / FLAWED_INTERVAL.as_nanos() + 1;
            let next = FLAWED_INTERVAL * u32::try_from(ticks).unwrap_or(u32::MAX) - since;
            a.left().map_or(next, |left| left.min(next))
        })
    }

    /// A lock file taken when the object is created: one attempt, kept if it succeeds.
    fn lock_on_open(&self) {
        let Ok(Some(entry)) = self.entry() else {
            return;
        };
        let mut state = entry.state();
        if state.owner.is_none() && self.try_lock(&entry, None, true).unwrap_or(false) {
            state.owner = Some(self.id);
            state.held = true;
            state.thread = Some(thread::current().id());
            lock(&self.mine).from_open = true;
        }
    }

    /// One attempt at the OS lock through the shared handle.
    fn try_lock(&self, entry: &Entry, a: Option<&mut Attempt>, single: bool) -> io::Result<bool> {
        let fd = entry.file.as_raw_fd();
        match self.flaw {
            Some(Flaw::ProcessLocal) => Ok(true),
            Some(Flaw::FcntlLock) => record_lock(fd, libc::F_WRLCK, false),
            Some(Flaw::PidFile) => {
                match File::options()
                    .write(true)
                    .create_new(true)
                    .open(pid_file(entry)?)
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(Flaw::WaiterTickets) => {
                let mut none = None;
                let ticket = a.map_or(&mut none, |a| &mut a.ticket);
                let queue = tickets(&entry.path)?;
                let first = queue.first().is_none_or(|t| Some(t) == ticket.as_ref());
                if first && flock(fd, libc::LOCK_EX | libc::LOCK_NB)? {
                    if let Some(mine) = ticket.take() {
                        fs::remove_file(mine)?;
                    }
                    return Ok(true);
                }
                if !single && ticket.is_none() {
                    *ticket = Some(new_ticket(&entry.path)?);
                }
                Ok(false)
            }
            _ => flock(fd, libc::LOCK_EX | libc::LOCK_NB),
        }
    }

    /// Unlocks the OS lock of the shared handle.
    fn unlock(&self, entry: &Entry) -> io::Result<()> {
        let fd = entry.file.as_raw_fd();
        match self.flaw {
            Some(Flaw::ProcessLocal) => Ok(()),
            Some(Flaw::FcntlLock) => record_lock(fd, libc::F_UNLCK, false).map(drop),
            Some(Flaw::PidFile) => fs::remove_file(pid_file(entry)?),
            _ => flock(fd, libc::LOCK_UN).map(drop),
        }
    }

    /// Acquires as the model does, and as the flaw says where it differs.
    fn take(&self) -> Outcome {
        let start = Instant::now();
        if self.has(Flaw::CallbackEveryAcquire) {
            self.call_back();
        }
        if self.has(Flaw::ClosedAfterRelease) && lock(&self.mine).released {
            return Outcome::IoError("the lock file was closed by the release".into());
        }
        let timeout = self.timeout();
        let single = timeout == Some(Duration::ZERO);
        let mut a = Attempt {
            start,
            single,
            timed: timeout.is_some_and(|t| !t.is_zero()),
            deadline: self.deadline(start, timeout),
            waited: false,
            called: None,
            ticket: None,
        };
        let entry = loop {
            match self.entry() {
                Ok(Some(entry)) => break entry,
                Ok(None) => {}
                Err(error) => return io_error(&self.path, &error),
            }
            // A flaw reads the failure to open as a lock someone holds.
            if single || a.expired() {
                return self.failed(None, &mut a);
            }
            self.contend(&mut a, false);
            thread::sleep(a.left().map_or(POLL, |left| left.min(POLL)));
        };
        let me = thread::current().id();
        let mut state = entry.state();
        if state.owner == Some(self.id) && std::mem::take(&mut lock(&self.mine).from_open) {
            return Outcome::Acquired;
        }
        // First the claim, which another object of this process may have.
        while let Some(owner) = state.owner {
            let guest = state.held
                && match self.flaw {
                    Some(Flaw::OtherThreadPasses) => owner != self.id && state.thread != Some(me),
                    Some(Flaw::HoldingThreadPasses) => owner != self.id && state.thread == Some(me),
                    Some(Flaw::SharedObjectPasses) => owner == self.id && state.thread != Some(me),
                    _ => false,
                };
            if guest {
                state.guests.push(self.id);
                return Outcome::Acquired;
            }
            if self.has(Flaw::FirstWaiterTimeout)
                && let Some(theirs) = state.timeout
            {
                a.deadline = self.deadline(a.start, theirs);
            }
            if single || a.expired() {
                drop(state);
                return self.failed(Some(&entry), &mut a);
            }
            // The callback runs with nothing locked, as the reference's does.
            drop(state);
            self.contend(&mut a, true);
            state = entry.state();
            if state.owner.is_none() {
                continue;
            }
            state = match self.flawed_pause(&a) {
                Some(pause) => {
                    drop(state);
                    thread::sleep(pause);
                    entry.state()
                }
                None => {
                    let slice = a.left().map_or(SLICE, |left| left.min(SLICE));
                    let woken = entry.freed.wait_timeout(state, slice);
                    woken.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        if self.has(Flaw::RacyClaim) {
            drop(state);
            thread::sleep(RACE_WINDOW);
            state = entry.state();
        }
        if self.has(Flaw::DeadlineRestartsAfterInProcessWait) && a.waited {
            a.deadline = self.deadline(Instant::now(), timeout);
        }
        state.owner = Some(self.id);
        state.thread = Some(me);
        state.timeout = Some(timeout);
        drop(state);
        // Then the OS lock, which another process may hold.
        loop {
            match self.try_lock(&entry, Some(&mut a), single) {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    self.abandon(&entry, &mut a);
                    return io_error(&entry.path, &error);
                }
            }
            if single || a.expired() {
                self.abandon(&entry, &mut a);
                return self.failed(Some(&entry), &mut a);
            }
            self.contend(&mut a, false);
            let pause = self.flawed_pause(&a);
            thread::sleep(pause.unwrap_or_else(|| a.left().map_or(POLL, |l| l.min(POLL))));
        }
        entry.state().held = true;
        self.acquired(&a)
    }

    /// Gives up the claim of an acquire that failed.
    fn abandon(&self, entry: &Entry, a: &mut Attempt) {
        if let Some(ticket) = a.ticket.take() {
            let _ = fs::remove_file(ticket);
        }
        let mut state = entry.state();
        if state.owner == Some(self.id) {
            entry.unclaim(&mut state);
        }
    }

    /// The end of an acquire that took the lock.
    fn acquired(&self, a: &Attempt) -> Outcome {
        if self.has(Flaw::CallbackAfterWait) && a.waited {
            self.call_back();
        }
        let slow = match self.flaw {
            Some(Flaw::FreeAcquireSleeps) => !a.waited && !a.single,
            Some(Flaw::ZeroFreeSlow) => a.single,
            _ => false,
        };
        if slow {
            thread::sleep(FLAWED_INTERVAL);
        }
        if self.has(Flaw::TruncateOnAcquire) {
            let _ = File::options().write(true).truncate(true).open(&self.path);
        }
        Outcome::Acquired
    }

    /// The end of an acquire that found the lock held for its whole timeout.
    fn failed(&self, entry: Option<&Entry>, a: &mut Attempt) -> Outcome {
        if self.has(Flaw::CallbackAfterWait) && a.waited {
            self.call_back();
        }
        match self.flaw {
            Some(Flaw::CallbackOnSingleAttempt) if a.single => self.call_back(),
            Some(Flaw::ZeroSleepsThenFails) if a.single => thread::sleep(FLAWED_INTERVAL),
            Some(Flaw::FailedAcquireFrees) => {
                // A clean-up that resets the process's state of the lock, the holder's included.
                if let Some(entry) = entry {
                    let mut state = entry.state();
                    let _ = self.unlock(entry);
                    entry.unclaim(&mut state);
                }
            }
            Some(Flaw::FailedAcquireReplacesFile) => replace(&self.path),
            Some(Flaw::FailedAcquireTruncates) => truncate(&self.path),
            _ => {}
        }
        if a.single {
            Outcome::WouldBlock
        } else {
            Outcome::TimedOut
        }
    }

    /// Releases as the model does, and as the flaw says where it differs.
    fn give(&self) -> Outcome {
        let entry = match self.entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => return Outcome::NotHeld,
            Err(error) => return io_error(&self.path, &error),
        };
        let me = thread::current().id();
        let mut state = entry.state();
        if let Some(i) = state.guests.iter().position(|g| *g == self.id) {
            state.guests.remove(i);
            return Outcome::Released;
        }
        if state.owner != Some(self.id) || !state.held {
            return self.refused(&entry, &mut state);
        }
        let other_thread = state.thread != Some(me);
        if self.has(Flaw::OtherThreadReleaseIgnored) && other_thread {
            return Outcome::Released;
        }
        if let Err(error) = self.unlock(&entry) {
            return io_error(&entry.path, &error);
        }
        if !(self.has(Flaw::OtherThreadReleaseKeepsMark) && other_thread) {
            entry.unclaim(&mut state);
        }
        lock(&self.mine).released = true;
        Outcome::Released
    }

    /// A release through an object that does not hold the lock: not held, and nothing changes.
    fn refused(&self, entry: &Entry, state: &mut State) -> Outcome {
        let released_before = lock(&self.mine).released;
        let process_holds = state.owner.is_some() && state.held;
        match self.flaw {
            Some(Flaw::NeverHeldReleaseOk) if !released_before && !process_holds => {
                return Outcome::Released;
            }
            Some(Flaw::SecondReleaseOk) if released_before => return Outcome::Released,
            Some(Flaw::ProcessHolderReleaseOk) if !released_before && process_holds => {
                return Outcome::Released;
            }
            Some(Flaw::UnheldReleaseLeaksProbe) if state.owner.is_none() => {
                // Whether anyone holds the lock, asked by locking it through a new descriptor
                // that is never closed.
                if let Ok(probe) = open_rw(&entry.path)
                    && flock(probe.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB).unwrap_or(false)
                {
                    std::mem::forget(probe);
                }
            }
            Some(Flaw::SecondReleaseUnlocks) if released_before => {
                let _ = self.unlock(entry);
            }
            Some(Flaw::NeverHeldReleaseUnlocks) if !released_before => {
                let _ = self.unlock(entry);
            }
            Some(Flaw::RefusedReleaseReplacesFile) => replace(&self.path),
            Some(Flaw::RefusedReleaseTruncates) => truncate(&self.path),
            _ => {}
        }
        Outcome::NotHeld
    }
}

impl LockObject for Model {
    fn acquire(&self) -> Outcome {
        self.take()
    }

    fn release(&self) -> Outcome {
        self.give()
    }
}

impl Drop for Model {
    /// Closing a holding object releases it; closing another changes nothing.
    fn drop(&mut self) {
        let Some(entry) = lock(&self.entry).clone() else {
            return;
        };
        let mut state = entry.state();
        state.guests.retain(|g| *g != self.id);
        if state.owner == Some(self.id) {
            if state.held {
                let _ = self.unlock(&entry);
            }
            entry.unclaim(&mut state);
        } else if self.has(Flaw::CloseUnlocks) {
            let _ = self.unlock(&entry);
        }
    }
}

/// The protocol's outcome for an error of the file system.
fn io_error(path: &Path, error: &io::Error) -> Outcome {
    Outcome::IoError(format!("{}: {error}", path.display()))
}

/// `path` with `.` and `..` resolved as text, without asking the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Deletes the file and writes it again with the same contents: the same name and contents,
/// another file.
fn replace(path: &Path) {
    let Ok(contents) = fs::read(path) else {
        return;
    };
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(".new");
    if fs::write(&fresh, contents).is_ok() {
        let _ = fs::rename(&fresh, path);
    }
}

fn truncate(path: &Path) {
    if let Ok(file) = File::options().write(true).open(path) {
        let _ = file.set_len(0);
    }
}

/// The file whose existence is the lock ([`Flaw::PidFile`]), beside the lock file and named by
/// its identity, so that every name of the lock file leads to it.
fn pid_file(entry: &Entry) -> io::Result<PathBuf> {
    let file = entry.file.metadata()?;
    let name = format!(".lockspec-mutant-{}-{}.pid", file.dev(), file.ino());
    Ok(entry.path.with_file_name(name))
}

/// The tickets of the waiters for the lock on `path`, oldest first.
fn tickets(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let prefix = ticket_prefix(path);
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| dir.join(e.file_name()))
        .collect();
    found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(found)
}

/// A new ticket, after every existing one.
fn new_ticket(path: &Path) -> io::Result<PathBuf> {
    let name = format!(
        "{}{:020}.{}",
        ticket_prefix(path),
        lockspec_worker::monotonic_ns(),
        std::process::id()
    );
    let ticket = path.with_file_name(name);
    File::create(&ticket)?;
    Ok(ticket)
}

fn ticket_prefix(path: &Path) -> String {
    format!(
        "{}.ticket.",
        path.file_name().unwrap_or_default().to_string_lossy()
    )
}
