//! Linux: a timed wait for the flock that wakes when the lock file is closed, through inotify.
//!
//! flock has no timed wait and the kernel reports no event when a flock is released, so a timed
//! acquire has to learn of the release some other way. This module makes releases visible as
//! inotify close events on the lock file:
//!
//! - the waiter watches the file (through `/proc/self/fd/N`, so the watch is on the inode it has
//!   open, whatever became of the path) for `IN_CLOSE_WRITE | IN_CLOSE_NOWRITE`, then retries
//!   the lock and sleeps in `ppoll` on the inotify descriptor until an event, its next retry, or
//!   its deadline, whichever is first. The watch is in place before the first retry, so a release
//!   that happens after it is never missed.
//! - [`announce_release`], called by every release of the reference after `LOCK_UN`, opens and
//!   closes the file once more (again through `/proc/self/fd/N`), which costs about 1 µs and
//!   produces the close event. A holder that dies closes its handle, which produces one too.
//! - A holder that is not the reference and unlocks without closing produces no event. For it
//!   the waiter retries on a bounded backoff (1 ms, doubling, at most 20 ms), which also covers
//!   file systems whose remote changes inotify does not see (NFS).
//!
//! Creating an inotify instance is cheap, but closing one waits for an SRCU grace period (about
//! 2 ms here), which would delay every contended acquire that much after it got the lock. So
//! instances are kept in a small process-wide pool: a waiter takes one, adds its watch, removes it
//! when done, drains the queue and gives the instance back. The pool keeps at most
//! [`IDLE_INSTANCES`] idle instances, because each one counts against the per-user limit of
//! inotify instances (128 by default) that every program of the user shares; only a process with
//! more waiting threads at once than that pays the closing delay, on its extra instances. When
//! inotify is unavailable (the limit is reached, no `/proc`), the waiter falls back to the backoff
//! alone, starting at 0.5 ms and capped at 10 ms.

use std::fs::File;
use std::io::{self, ErrorKind};

use super::{Backoff, POLLING, retry_until};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Retries while a watch reports closes: only holders that are not the reference need them.
const WATCHED: Backoff = Backoff {
    first: Duration::from_millis(1),
    max: Duration::from_millis(20),
};

/// How many idle inotify instances the pool keeps for the next waiters: enough for the usual
/// one or two threads waiting at a time, few enough not to eat into the per-user limit.
const IDLE_INSTANCES: usize = 2;

/// Idle inotify instances, each with no watch and an empty queue.
static POOL: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Takes the flock on `file`, waiting until `deadline` at most; `Ok(false)` if it passed first.
///
/// Always makes at least one attempt, even when the deadline has already passed, and never
/// returns `Ok(false)` before the deadline.
pub(crate) fn lock_until(file: &File, deadline: Instant) -> io::Result<bool> {
    match Watch::new(file) {
        Some(watch) => retry_until(file, deadline, WATCHED, |pause| watch.wait(pause)),
        None => retry_until(file, deadline, POLLING, |pause| {
            std::thread::sleep(pause);
            Ok(())
        }),
    }
}

/// Lets the waiters of other processes know that the lock on `file` was just released: opens
/// the file once more and closes it, which they see as an inotify close event.
///
/// The file is reopened through this process's `/proc/self/fd`, so it is always the same inode,
/// whatever became of its path since. Best effort: if `/proc` is missing or the file can no
/// longer be opened, the waiters notice the release at their next retry instead.
pub(crate) fn announce_release(file: &File) {
    // No controlling terminal, no blocking, nothing inherited: the open has no effect but the
    // event.
    const FLAGS: libc::c_int = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let path = ProcPath::of(file);
    let fd = match fd_directory() {
        // SAFETY: the directory is open and the name NUL-terminated.
        Some(dir) => unsafe { libc::openat(dir, path.name(), FLAGS) },
        // SAFETY: the path is NUL-terminated.
        None => unsafe { libc::open(path.as_ptr(), FLAGS) },
    };
    if fd >= 0 {
        // SAFETY: `fd` was just opened here and nothing else knows it.
        unsafe { libc::close(fd) };
    }
}

/// This process's `/proc/self/fd` directory, opened once: reopening a descriptor relative to it
/// looks up one name instead of walking four. `None` without `/proc`, and in a child forked from
/// the process that opened it (where it names the parent's descriptors).
fn fd_directory() -> Option<RawFd> {
    static DIRECTORY: OnceLock<Option<OwnedFd>> = OnceLock::new();
    /// Set in a forked child, by the handler that `pthread_atfork` runs there.
    static FORKED: AtomicBool = AtomicBool::new(false);
    extern "C" fn forked() {
        FORKED.store(true, Ordering::Relaxed);
    }
    let dir = DIRECTORY
        .get_or_init(|| {
            // SAFETY: registering a handler that only stores to an atomic, which is
            // async-signal-safe as a child handler must be.
            if unsafe { libc::pthread_atfork(None, None, Some(forked)) } != 0 {
                return None;
            }
            // SAFETY: the path is NUL-terminated; the descriptor returned, if any, is ours.
            let fd = unsafe {
                libc::open(
                    c"/proc/self/fd".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            // SAFETY: a non-negative return is a new descriptor that nothing else owns.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .as_ref()?;
    (!FORKED.load(Ordering::Relaxed)).then(|| dir.as_raw_fd())
}

/// `/proc/self/fd/N` for a descriptor, NUL-terminated, without allocating.
struct ProcPath {
    bytes: [u8; 32],
}

impl ProcPath {
    /// Where the number starts in `bytes`.
    const NUMBER: usize = b"/proc/self/fd/".len();

    fn of(file: &File) -> ProcPath {
        let mut bytes = [0u8; 32];
        bytes[..Self::NUMBER].copy_from_slice(b"/proc/self/fd/");
        // A descriptor is non-negative and has at most 10 decimal digits: 14 + 10 + NUL fits.
        let mut digits = [0u8; 10];
        let mut n = u32::try_from(file.as_raw_fd()).unwrap_or(0);
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (slot, digit) in bytes[Self::NUMBER..]
            .iter_mut()
            .zip(digits[..len].iter().rev())
        {
            *slot = *digit;
        }
        ProcPath { bytes }
    }

    /// The whole path.
    fn as_ptr(&self) -> *const libc::c_char {
        self.bytes.as_ptr().cast()
    }

    /// The number alone: a name in `/proc/self/fd`.
    fn name(&self) -> *const libc::c_char {
        self.bytes[Self::NUMBER..].as_ptr().cast()
    }
}

/// An inotify watch for closes of one open file, on an instance borrowed from the pool.
struct Watch {
    inotify: Option<OwnedFd>,
    descriptor: libc::c_int,
}

impl Watch {
    /// Watches `file` for closes; `None` when inotify is unavailable.
    fn new(file: &File) -> Option<Watch> {
        let inotify = take_instance()?;
        let path = ProcPath::of(file);
        // SAFETY: the instance is open and `path` is NUL-terminated.
        let descriptor = unsafe {
            libc::inotify_add_watch(
                inotify.as_raw_fd(),
                path.as_ptr(),
                libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE,
            )
        };
        if descriptor < 0 {
            give_back(inotify);
            return None;
        }
        Some(Watch {
            inotify: Some(inotify),
            descriptor,
        })
    }

    /// Sleeps until a close of the file is reported or `timeout` passes, and empties the queue.
    fn wait(&self, timeout: Duration) -> io::Result<()> {
        let fd = self.fd();
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: one valid pollfd, a valid timespec, and no signal mask.
        let ready = unsafe { libc::ppoll(&raw mut poll, 1, &raw const timeout, std::ptr::null()) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            // A signal: the caller retries and recomputes the pause.
            return if err.kind() == ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        if ready > 0 {
            drain(fd);
        }
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.inotify
            .as_ref()
            .map_or(-1, std::os::fd::AsRawFd::as_raw_fd)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(inotify) = self.inotify.take() else {
            return;
        };
        // SAFETY: the instance is open; removing a watch the kernel already dropped (the file
        // was deleted and closed) fails harmlessly with EINVAL.
        unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), self.descriptor) };
        // The removal queues IN_IGNORED; leave the instance empty for the next waiter.
        drain(inotify.as_raw_fd());
        give_back(inotify);
    }
}

/// An idle instance from the pool, or a new one; `None` when none can be had.
fn take_instance() -> Option<OwnedFd> {
    let idle = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
    if idle.is_some() {
        return idle;
    }
    // SAFETY: no pointers; the descriptor returned, if any, is ours.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    // SAFETY: a non-negative return is a new descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Returns an instance, with no watch and an empty queue, to the pool.
fn give_back(inotify: OwnedFd) {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.len() < IDLE_INSTANCES {
        pool.push(inotify);
    } else {
        // Closing takes milliseconds; do it without the pool locked.
        drop(pool);
        drop(inotify);
    }
}

/// Reads and discards every queued event of a non-blocking inotify instance.
fn drain(fd: RawFd) {
    // Aligned for `struct inotify_event`; large enough for many events at once.
    let mut buffer = [0u64; 512];
    loop {
        // SAFETY: the buffer is writable for its whole size.
        let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), size_of_val(&buffer)) };
        if read <= 0 {
            // 0 cannot happen; -1 is EAGAIN once empty (or EINTR, after which a later drain
            // finishes the job).
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// Long enough that a test relying on it would time out instead of passing by luck.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A backoff so slow that only an inotify event can wake the waiter within `PATIENCE`.
    const EVENTS_ONLY: Backoff = Backoff {
        first: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };

    fn handle(path: &std::path::Path) -> File {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    /// Two handles (two open file descriptions, so two flock holders) on one fresh file.
    fn two_handles() -> (tempfile::TempDir, File, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let (first, second) = (handle(&path), handle(&path));
        (dir, first, second)
    }

    /// Waits for `file` with [`EVENTS_ONLY`]: once it has found the lock held, only an event can
    /// make it succeed. Sends on `sleeping` each time it is about to sleep.
    fn wait_for_events(
        file: &File,
        deadline: Instant,
        sleeping: &mpsc::Sender<()>,
    ) -> io::Result<bool> {
        let watch = Watch::new(file).expect("inotify is available");
        retry_until(file, deadline, EVENTS_ONLY, |pause| {
            // The test may have stopped listening.
            let _ = sleeping.send(());
            watch.wait(pause)
        })
    }

    #[test]
    fn proc_path_names_the_descriptor() {
        let (_dir, file, _) = two_handles();
        let path = ProcPath::of(&file);
        // SAFETY: both pointers point into `path.bytes`, which is NUL-terminated.
        let (whole, name) = unsafe {
            (
                std::ffi::CStr::from_ptr(path.as_ptr()),
                std::ffi::CStr::from_ptr(path.name()),
            )
        };
        let fd = file.as_raw_fd();
        assert_eq!(whole.to_str().unwrap(), format!("/proc/self/fd/{fd}"));
        assert_eq!(name.to_str().unwrap(), fd.to_string());
        assert!(fd_directory().is_some());
    }

    #[test]
    fn an_announced_release_wakes_the_waiter() {
        let (_dir, holder, waiter) = two_handles();
        holder.try_lock().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let (tx, sleeping) = mpsc::channel();
        thread::scope(|scope| {
            let waiting = scope.spawn(|| wait_for_events(&waiter, deadline, &tx));
            // The waiter found the lock held; it may or may not be in ppoll yet, and the event
            // wakes it either way.
            sleeping.recv_timeout(PATIENCE).expect("the waiter sleeps");
            holder.unlock().unwrap();
            announce_release(&holder);
            assert!(waiting.join().unwrap().unwrap(), "timed out");
        });
        assert!(Instant::now() < deadline);
    }

    #[test]
    fn a_holder_that_closes_its_handle_wakes_the_waiter() {
        // The case of a holder that dies: the kernel closes its handle, which releases the lock.
        let (_dir, holder, waiter) = two_handles();
        holder.try_lock().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let (tx, sleeping) = mpsc::channel();
        thread::scope(|scope| {
            let waiting = scope.spawn(|| wait_for_events(&waiter, deadline, &tx));
            sleeping.recv_timeout(PATIENCE).expect("the waiter sleeps");
            drop(holder);
            assert!(waiting.join().unwrap().unwrap(), "timed out");
        });
    }

    #[test]
    fn a_silent_release_is_found_by_the_backoff() {
        // A holder that unlocks without closing anything produces no event.
        let (_dir, holder, waiter) = two_handles();
        holder.try_lock().unwrap();
        thread::scope(|scope| {
            let waiting = scope.spawn(|| lock_until(&waiter, Instant::now() + PATIENCE));
            holder.unlock().unwrap();
            assert!(waiting.join().unwrap().unwrap(), "timed out");
        });
    }

    #[test]
    fn events_that_are_not_releases_do_not_end_the_wait_early() {
        let (dir, holder, waiter) = two_handles();
        holder.try_lock().unwrap();
        let timeout = Duration::from_millis(100);
        let done = AtomicBool::new(false);
        thread::scope(|scope| {
            // Other handles opened and closed while the lock stays held: a stream of events.
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    drop(handle(&dir.path().join("a.lock")));
                    thread::yield_now();
                }
            });
            let start = Instant::now();
            let (tx, _sleeping) = mpsc::channel();
            let locked = wait_for_events(&waiter, start + timeout, &tx);
            let elapsed = start.elapsed();
            done.store(true, Ordering::SeqCst);
            assert!(!locked.unwrap(), "acquired a held lock");
            assert!(elapsed >= timeout, "gave up after {elapsed:?}");
        });
    }

    #[test]
    fn a_past_deadline_still_makes_one_attempt() {
        let (_dir, _, waiter) = two_handles();
        assert!(lock_until(&waiter, Instant::now() - Duration::from_millis(1)).unwrap());
    }

    #[test]
    fn watches_leave_the_pool_clean_for_the_next_waiter() {
        let (_dir, holder, waiter) = two_handles();
        for _ in 0..3 {
            let watch = Watch::new(&waiter).unwrap();
            // An event queued and left unread when the watch goes.
            announce_release(&holder);
            drop(watch);
        }
        // A fresh watch on a held lock sees no stale event: it sleeps its whole pause.
        holder.try_lock().unwrap();
        let watch = Watch::new(&waiter).unwrap();
        let mut poll = libc::pollfd {
            fd: watch.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let ready = unsafe { libc::poll(&raw mut poll, 1, 0) };
        assert_eq!(ready, 0, "a stale event was left in the queue");
    }
}
