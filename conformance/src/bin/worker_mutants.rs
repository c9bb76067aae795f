//! Deliberately broken locks, each correct but for one bug: the suite's test of itself.
//!
//! `lockspec-worker-mutants --mutant NAME` serves the worker protocol with the mutant `NAME` as
//! implementation `mutant-NAME`. The conformance suite must fail every mutant, and the scenarios
//! that fail it say which rule the suite checks well enough to notice the bug.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    // The idle child of `spawn_child` gets `--idle-child` alone, without `--mutant`.
    lockspec_worker::idle_child_if_requested();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match mutants::Mutant::from_args(&args) {
        Ok(mutant) => lockspec_worker::serve(mutants::Mutants(mutant)),
        Err(message) => {
            eprintln!("lockspec-worker-mutants: {message}");
            eprintln!("{}", mutants::usage());
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("lockspec-worker-mutants: mutants need unix");
    std::process::ExitCode::from(2)
}

#[cfg(unix)]
mod mutants {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::thread::{self, ThreadId};
    use std::time::{Duration, Instant};

    use lockspec_reference::{Error, FileLock};
    use lockspec_worker::{Backend, CAPABILITY_CALLBACK, Callback, Info, LockObject, Outcome};

    /// Which bug the worker's locks have.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Mutant {
        /// An object that holds the lock can acquire it again, and must release it as often.
        Reentrant,
        /// Locks of one process never exclude each other, and closing any handle on the file
        /// drops the lock.
        PerProcessRecordLock,
        /// An acquire waits forever whatever the timeout.
        TimeoutIgnored,
        /// An acquire with a timeout gives up after one attempt instead of waiting.
        TimeoutImmediate,
        /// Releasing a lock that is not held is not reported.
        ReleaseUnheldOk,
        /// Releasing deletes the lock file, so that the next locker locks a different file.
        DeleteOnRelease,
        /// Only the thread that acquired may release.
        ReleaseOtherThreadRefused,
        /// A child process started while the lock is held keeps it after the parent releases.
        LeakToChild,
        /// The lock is a word in the file, so the lock of a killed holder is never freed.
        LockInContents,
    }

    /// Every mutant by its name on the command line.
    const ALL: [(&str, Mutant); 9] = [
        ("reentrant", Mutant::Reentrant),
        ("per-process-record-lock", Mutant::PerProcessRecordLock),
        ("timeout-ignored", Mutant::TimeoutIgnored),
        ("timeout-immediate", Mutant::TimeoutImmediate),
        ("release-unheld-ok", Mutant::ReleaseUnheldOk),
        ("delete-on-release", Mutant::DeleteOnRelease),
        (
            "release-other-thread-refused",
            Mutant::ReleaseOtherThreadRefused,
        ),
        ("leak-to-child", Mutant::LeakToChild),
        ("lock-in-contents", Mutant::LockInContents),
    ];

    /// How to call the program.
    pub(crate) fn usage() -> String {
        let names: Vec<&str> = ALL.iter().map(|(name, _)| *name).collect();
        format!(
            "usage: lockspec-worker-mutants --mutant NAME\nmutants: {}",
            names.join(", ")
        )
    }

    impl Mutant {
        /// Parses `--mutant NAME` or `--mutant=NAME`.
        ///
        /// # Errors
        ///
        /// Returns a message when the arguments are anything else or name no mutant.
        pub(crate) fn from_args(args: &[String]) -> Result<Mutant, String> {
            let name = match args {
                [flag, name] if flag == "--mutant" => name.as_str(),
                [arg] if arg.starts_with("--mutant=") => &arg["--mutant=".len()..],
                _ => return Err(format!("expected `--mutant NAME`, got {args:?}")),
            };
            ALL.iter()
                .find(|(known, _)| *known == name)
                .map(|(_, mutant)| *mutant)
                .ok_or_else(|| format!("no mutant is called {name:?}"))
        }

        fn name(self) -> &'static str {
            ALL.iter()
                .find(|(_, mutant)| *mutant == self)
                .map(|(name, _)| *name)
                .expect("every mutant has a name")
        }
    }

    /// The backend: every lock object has the bug of the mutant.
    pub(crate) struct Mutants(pub(crate) Mutant);

    impl Backend for Mutants {
        fn info(&self) -> Info {
            Info {
                implementation: format!("mutant-{}", self.0.name()),
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
            let waits = Waits { timeout, callback };
            Ok(match self.0 {
                Mutant::Reentrant => Box::new(Reentrant {
                    lock: reference(path, timeout, waits.callback)?,
                    depth: Mutex::new(0),
                }),
                Mutant::PerProcessRecordLock => Box::new(RecordLock {
                    file: open_lock_file(path)?,
                    waits,
                    held: Mutex::new(false),
                }),
                Mutant::TimeoutIgnored => Box::new(Retimed {
                    lock: reference(path, None, waits.callback)?,
                    asked: timeout,
                }),
                Mutant::TimeoutImmediate => Box::new(Retimed {
                    lock: reference(path, timeout.map(|_| Duration::ZERO), waits.callback)?,
                    asked: timeout,
                }),
                Mutant::ReleaseUnheldOk => Box::new(ReleaseUnheldOk {
                    lock: reference(path, timeout, waits.callback)?,
                }),
                Mutant::DeleteOnRelease => Box::new(DeleteOnRelease {
                    lock: reference(path, timeout, waits.callback)?,
                    path: path.to_owned(),
                    held: Mutex::new(false),
                }),
                Mutant::ReleaseOtherThreadRefused => Box::new(ReleaseOtherThreadRefused {
                    lock: reference(path, timeout, waits.callback)?,
                    holder: Mutex::new(None),
                }),
                Mutant::LeakToChild => {
                    // The file is opened again at every acquire; this only reports a bad path now.
                    drop(open_lock_file(path)?);
                    Box::new(LeakToChild {
                        path: path.to_owned(),
                        waits,
                        fd: Mutex::new(None),
                    })
                }
                Mutant::LockInContents => Box::new(LockInContents {
                    file: open_lock_file(path)?,
                    waits,
                    held: Mutex::new(false),
                }),
            })
        }
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

    /// Breaks "acquiring a lock the object already holds does not nest": a depth is counted, and
    /// only the release that brings it back to zero releases.
    struct Reentrant {
        lock: FileLock,
        depth: Mutex<u32>,
    }

    impl LockObject for Reentrant {
        fn acquire(&self) -> Outcome {
            {
                let mut depth = lock(&self.depth);
                if *depth > 0 {
                    *depth += 1;
                    return Outcome::Acquired;
                }
            }
            let result = acquired(self.lock.acquire());
            if result == Outcome::Acquired {
                *lock(&self.depth) += 1;
            }
            result
        }

        fn release(&self) -> Outcome {
            let mut depth = lock(&self.depth);
            if *depth > 1 {
                *depth -= 1;
                return Outcome::Released;
            }
            let result = released(self.lock.release());
            if result == Outcome::Released {
                *depth = 0;
            }
            result
        }
    }

    /// Breaks "the timeout bounds the wait" (`timeout-ignored`: waits forever) or "an acquire
    /// waits up to its timeout" (`timeout-immediate`: makes one attempt): a reference lock opened
    /// with another timeout than the one asked for.
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

    /// Breaks "releasing a lock that is not held is an error": it is reported as released.
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

    /// Breaks "the lock file stays where it is": releasing unlinks it before unlocking, so a
    /// process still waiting on the old file and one opening the path anew both get a lock.
    struct DeleteOnRelease {
        lock: FileLock,
        path: PathBuf,
        held: Mutex<bool>,
    }

    impl LockObject for DeleteOnRelease {
        fn acquire(&self) -> Outcome {
            let result = acquired(self.lock.acquire());
            if result == Outcome::Acquired {
                *lock(&self.held) = true;
            }
            result
        }

        fn release(&self) -> Outcome {
            let mut held = lock(&self.held);
            if *held {
                // Like the libraries that clean up after themselves, a failure to delete is ignored.
                let _ = std::fs::remove_file(&self.path);
            }
            let result = released(self.lock.release());
            if result == Outcome::Released {
                *held = false;
            }
            result
        }
    }

    /// Breaks "any thread may release a lock that its object holds": a release from a thread other
    /// than the acquiring one is refused as not held.
    struct ReleaseOtherThreadRefused {
        lock: FileLock,
        holder: Mutex<Option<ThreadId>>,
    }

    impl LockObject for ReleaseOtherThreadRefused {
        fn acquire(&self) -> Outcome {
            let result = acquired(self.lock.acquire());
            if result == Outcome::Acquired {
                lock(&self.holder).get_or_insert_with(|| thread::current().id());
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

    /// Breaks "locks of one process exclude each other" and "closing another handle on the file
    /// keeps the lock": whole-file `fcntl` record locks, which belong to the process, with no
    /// registry in the process.
    struct RecordLock {
        file: File,
        waits: Waits,
        held: Mutex<bool>,
    }

    impl LockObject for RecordLock {
        fn acquire(&self) -> Outcome {
            let fd = self.file.as_raw_fd();
            let attempt = || {
                let mut held = lock(&self.held);
                if !*held {
                    *held = record_lock(fd, libc::F_WRLCK, false)?;
                }
                Ok(*held)
            };
            let block = || {
                record_lock(fd, libc::F_WRLCK, true)?;
                *lock(&self.held) = true;
                Ok(())
            };
            self.waits.acquire(attempt, Some(&block))
        }

        fn release(&self) -> Outcome {
            let mut held = lock(&self.held);
            if !*held {
                return Outcome::NotHeld;
            }
            match record_lock(self.file.as_raw_fd(), libc::F_UNLCK, false) {
                Ok(_) => {
                    *held = false;
                    Outcome::Released
                }
                Err(error) => error.into(),
            }
        }
    }

    /// Breaks "a child process does not inherit the lock": every acquire opens the file without
    /// close-on-exec and every release closes it instead of unlocking, so a child started while
    /// the lock is held keeps it.
    struct LeakToChild {
        path: PathBuf,
        waits: Waits,
        /// The descriptor that holds the lock, while it is held.
        fd: Mutex<Option<OwnedFd>>,
    }

    impl LockObject for LeakToChild {
        fn acquire(&self) -> Outcome {
            if lock(&self.fd).is_some() {
                return Outcome::Acquired;
            }
            let fd = match open_inheritable(&self.path) {
                Ok(fd) => fd,
                Err(error) => return error.into(),
            };
            // Separate descriptions of the file exclude each other, in this process too.
            let raw = fd.as_raw_fd();
            let attempt = || flock(raw, libc::LOCK_EX | libc::LOCK_NB);
            let block = || flock(raw, libc::LOCK_EX).map(drop);
            let result = self.waits.acquire(attempt, Some(&block));
            if result == Outcome::Acquired {
                *lock(&self.fd) = Some(fd);
            }
            result
        }

        fn release(&self) -> Outcome {
            match lock(&self.fd).take() {
                // Closing drops the lock only if no child holds a copy of the descriptor.
                Some(fd) => {
                    drop(fd);
                    Outcome::Released
                }
                None => Outcome::NotHeld,
            }
        }
    }

    /// Breaks "the lock of a killed holder is freed": the lock is the word `locked` in the file,
    /// written and erased under a short `flock`, and nobody erases it for a dead process.
    struct LockInContents {
        file: File,
        waits: Waits,
        held: Mutex<bool>,
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

        fn erase(&self) -> io::Result<()> {
            self.exclusively(|file| file.set_len(0))
        }
    }

    impl LockObject for LockInContents {
        fn acquire(&self) -> Outcome {
            let attempt = || {
                let mut held = lock(&self.held);
                if !*held {
                    *held = self.exclusively(|file| {
                        let mut contents = [0; 64];
                        let read = file.read_at(&mut contents, 0)?;
                        if &contents[..read] == LOCKED {
                            return Ok(false);
                        }
                        file.set_len(0)?;
                        file.write_all_at(LOCKED, 0)?;
                        Ok(true)
                    })?;
                }
                Ok(*held)
            };
            self.waits.acquire(attempt, None)
        }

        fn release(&self) -> Outcome {
            let mut held = lock(&self.held);
            if !*held {
                return Outcome::NotHeld;
            }
            match self.erase() {
                Ok(()) => {
                    *held = false;
                    Outcome::Released
                }
                Err(error) => error.into(),
            }
        }
    }

    impl Drop for LockInContents {
        /// Closing a held object releases it, as closing a lock file does.
        fn drop(&mut self) {
            if *lock(&self.held) {
                let _ = self.erase();
            }
        }
    }

    /// How an acquire of a hand-made lock waits: the object's timeout and contention callback.
    struct Waits {
        timeout: Option<Duration>,
        callback: Option<Callback>,
    }

    /// The longest pause between two attempts while polling.
    const MAX_PAUSE: Duration = Duration::from_millis(20);

    impl Waits {
        /// Acquires: one `attempt` at once; if the lock is taken, calls the callback, then either
        /// `block`s (no timeout and a blocking call exists) or retries with a growing pause until
        /// an attempt succeeds or the timeout expires.
        fn acquire(
            &self,
            mut attempt: impl FnMut() -> io::Result<bool>,
            block: Option<&dyn Fn() -> io::Result<()>>,
        ) -> Outcome {
            match attempt() {
                Ok(true) => return Outcome::Acquired,
                Ok(false) => {}
                Err(error) => return error.into(),
            }
            if self.timeout == Some(Duration::ZERO) {
                return Outcome::WouldBlock;
            }
            if let Some(callback) = &self.callback {
                callback();
            }
            if let (None, Some(block)) = (self.timeout, block) {
                return block().map_or_else(Outcome::from, |()| Outcome::Acquired);
            }
            let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
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
    }

    /// Opens (and creates) a lock file for reading and writing, as the hand-made locks need.
    fn open_lock_file(path: &Path) -> Result<File, Outcome> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Outcome::IoError(format!("cannot open {}: {e}", path.display())))
    }

    /// Opens the lock file without close-on-exec, so that child processes inherit the descriptor.
    fn open_inheritable(path: &Path) -> io::Result<OwnedFd> {
        let fd = OwnedFd::from(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?,
        );
        let raw = fd.as_raw_fd();
        // SAFETY: `raw` is an open descriptor owned by `fd`; F_GETFD and F_SETFD only change
        // its flags.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// `flock(fd, operation)`, retried on EINTR; `Ok(false)` when a non-blocking lock is taken.
    fn flock(fd: RawFd, operation: libc::c_int) -> io::Result<bool> {
        loop {
            // SAFETY: `fd` is an open descriptor that the caller owns for the duration of the call.
            if unsafe { libc::flock(fd, operation) } == 0 {
                return Ok(true);
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EWOULDBLOCK) if operation & libc::LOCK_NB != 0 => return Ok(false),
                _ => return Err(error),
            }
        }
    }

    /// Sets a whole-file `fcntl` record lock of `kind` (`F_WRLCK` or `F_UNLCK`), waiting for it if
    /// `wait`; `Ok(false)` when a lock that must not wait is taken.
    fn record_lock(fd: RawFd, kind: libc::c_int, wait: bool) -> io::Result<bool> {
        // SAFETY: `flock` is a plain C struct, for which all zeroes is a valid value.
        let mut region: libc::flock = unsafe { std::mem::zeroed() };
        region.l_type = kind as libc::c_short;
        region.l_whence = libc::SEEK_SET as libc::c_short;
        region.l_start = 0;
        region.l_len = 0; // To the end of the file, however long it grows.
        let command = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        loop {
            // SAFETY: `fd` is an open descriptor owned by the caller, and `region` outlives the
            // call.
            if unsafe { libc::fcntl(fd, command, &region) } == 0 {
                return Ok(true);
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN | libc::EACCES) if !wait => return Ok(false),
                _ => return Err(error),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn args(args: &[&str]) -> Vec<String> {
            args.iter().map(|&a| a.to_owned()).collect()
        }

        #[test]
        fn every_name_parses_back() {
            for (name, mutant) in ALL {
                assert_eq!(Mutant::from_args(&args(&["--mutant", name])), Ok(mutant));
                let joined = format!("--mutant={name}");
                assert_eq!(Mutant::from_args(&args(&[&joined])), Ok(mutant));
                assert_eq!(mutant.name(), name);
            }
        }

        #[test]
        fn bad_arguments_are_refused() {
            assert!(Mutant::from_args(&args(&[])).is_err());
            assert!(Mutant::from_args(&args(&["--mutant"])).is_err());
            assert!(Mutant::from_args(&args(&["--mutant", "nope"])).is_err());
            assert!(Mutant::from_args(&args(&["reentrant"])).is_err());
        }
    }
}
