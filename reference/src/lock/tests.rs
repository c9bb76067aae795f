//! Tests of `FileLock` within one process: exclusion between objects and threads, spellings of
//! one file, timeouts, the callback, and what release and drop change.

use std::fs::{self, File};
use std::path::Component;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc;
use std::thread;

use rstest::rstest;
use tempfile::TempDir;

use super::*;
use crate::registry;

/// A timeout short enough to keep the suite fast.
const SHORT: Duration = Duration::from_millis(50);
/// The margin that an operation expected to return promptly, or at its timeout, gets: wide,
/// since tests run many at a time on a small machine.
const MARGIN: Duration = Duration::from_secs(2);
/// How long a test waits for another thread to reach a point before it fails instead of
/// hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// A fresh directory and the path of a lock file in it, not yet created.
fn lock_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("a.lock");
    (dir, path)
}

/// A lock on `path` whose contention callback sends on the returned channel.
fn signalling_lock(path: &Path) -> (FileLock, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let lock = FileLock::open(path).unwrap().on_contention(move || {
        // The test may have stopped listening; that is not this callback's business.
        let _ = tx.send(());
    });
    (lock, rx)
}

/// A lock on `path` whose contention callback counts its calls.
fn counting_lock(path: &Path) -> (FileLock, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let lock = FileLock::open(path).unwrap().on_contention(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (lock, calls)
}

/// A handle of its own on `path`, outside every `FileLock`: the OS sees it as a separate
/// holder, as it would another process.
fn foreign_handle(path: &Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// Whether some handle holds the OS lock on `path`, as another process would see it.
fn os_lock_is_held(path: &Path) -> bool {
    match sys::try_lock(&foreign_handle(path)) {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(err)) => panic!("try_lock failed: {err}"),
    }
}

fn assert_timed_out(result: Result<(), Error>, path: &Path, timeout: Duration) {
    match result {
        Err(Error::TimedOut {
            path: error_path,
            timeout: error_timeout,
        }) => {
            assert_eq!(error_path, path);
            assert_eq!(error_timeout, timeout);
        }
        other => panic!("expected TimedOut after {timeout:?}, got {other:?}"),
    }
}

fn assert_not_held(result: Result<(), Error>, path: &Path) {
    match result {
        Err(Error::NotHeld { path: error_path }) => assert_eq!(error_path, path),
        other => panic!("expected NotHeld, got {other:?}"),
    }
}

/// Who holds the lock while another object tries to take it.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// Another `FileLock` in this process: the in-process wait.
    Object,
    /// A handle outside every `FileLock`: the OS lock's wait, as for another process.
    Foreign,
}

/// A held lock, released by `release` or on drop.
enum Held {
    Object(FileLock),
    Foreign(File),
}

impl Holder {
    fn take(self, path: &Path) -> Held {
        match self {
            Holder::Object => {
                let lock = FileLock::open(path).unwrap();
                lock.try_acquire().unwrap();
                Held::Object(lock)
            }
            Holder::Foreign => {
                let file = foreign_handle(path);
                sys::try_lock(&file).unwrap();
                Held::Foreign(file)
            }
        }
    }
}

impl Held {
    fn release(&self) {
        match self {
            Held::Object(lock) => lock.release().unwrap(),
            Held::Foreign(file) => sys::unlock(file).unwrap(),
        }
    }
}

#[test]
fn file_lock_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FileLock>();
    assert_send_sync::<Guard<'_>>();
}

#[test]
fn open_creates_the_file_and_keeps_the_path_as_given() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    assert!(path.is_file());
    assert_eq!(lock.path(), path);
    assert_eq!(lock.timeout(), None);
    assert!(!lock.is_held());
    let lock = lock.with_timeout(Some(SHORT));
    assert_eq!(lock.timeout(), Some(SHORT));
}

#[test]
fn acquire_and_release_an_unlocked_lock() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    lock.acquire().unwrap();
    assert!(lock.is_held());
    assert!(os_lock_is_held(&path));
    lock.release().unwrap();
    assert!(!lock.is_held());
    assert!(!os_lock_is_held(&path));
}

#[test]
fn two_objects_on_one_file_exclude_each_other_across_threads() {
    let (_dir, path) = lock_file();
    let first = FileLock::open(&path).unwrap();
    let (second, waiting) = signalling_lock(&path);
    first.acquire().unwrap();
    thread::scope(|scope| {
        let waiter = scope.spawn(|| second.acquire());
        waiting.recv_timeout(PATIENCE).expect("second object waits");
        assert!(first.is_held());
        assert!(!second.is_held());
        first.release().unwrap();
        waiter.join().unwrap().unwrap();
    });
    assert!(second.is_held());
    assert!(!first.is_held());
    assert_timed_out(first.try_acquire(), &path, Duration::ZERO);
}

/// The ways of acquiring a lock that can fail on contention.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    Try,
    ObjectTimeout,
    CallTimeout,
    Guard,
}

impl Attempt {
    /// Attempts to acquire `lock`, whose own timeout is `SHORT`; returns the timeout
    /// expected in the error.
    fn run(self, lock: &FileLock) -> (Result<(), Error>, Duration) {
        match self {
            Attempt::Try => (lock.try_acquire(), Duration::ZERO),
            Attempt::ObjectTimeout => (lock.acquire(), SHORT),
            Attempt::CallTimeout => (lock.acquire_timeout(Some(SHORT)), SHORT),
            // A guard returned by mistake would release on drop; the assertion fails anyway.
            Attempt::Guard => (lock.lock().map(drop), SHORT),
        }
    }
}

#[rstest]
fn acquiring_a_held_lock_again_times_out(
    #[values(true, false)] same_object: bool,
    #[values(
        Attempt::Try,
        Attempt::ObjectTimeout,
        Attempt::CallTimeout,
        Attempt::Guard
    )]
    attempt: Attempt,
) {
    let (_dir, path) = lock_file();
    let holder = FileLock::open(&path).unwrap().with_timeout(Some(SHORT));
    let other = FileLock::open(&path).unwrap().with_timeout(Some(SHORT));
    let contender = if same_object { &holder } else { &other };
    holder.acquire().unwrap();

    let (result, timeout) = attempt.run(contender);

    assert_timed_out(result, &path, timeout);
    assert!(holder.is_held());
    assert!(!other.is_held());
    assert!(os_lock_is_held(&path));
}

#[test]
fn one_object_shared_by_threads_is_held_once_and_any_thread_may_release() {
    let (_dir, path) = lock_file();
    let (lock, waiting) = signalling_lock(&path);
    lock.acquire().unwrap();
    thread::scope(|scope| {
        let second = scope.spawn(|| lock.acquire());
        waiting.recv_timeout(PATIENCE).expect("second thread waits");
        assert!(!second.is_finished());
        // A third thread releases what the first acquired; the second then gets it.
        scope.spawn(|| lock.release()).join().unwrap().unwrap();
        second.join().unwrap().unwrap();
    });
    assert!(lock.is_held());
    lock.release().unwrap();
    assert!(!lock.is_held());
    assert!(!os_lock_is_held(&path));
}

#[test]
fn releasing_an_unlocked_lock_is_not_held_and_changes_nothing() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    assert_not_held(lock.release(), &path);
    assert!(!lock.is_held());
    lock.try_acquire().unwrap();
    lock.release().unwrap();
    assert_not_held(lock.release(), &path);
    assert!(!os_lock_is_held(&path));
}

#[test]
fn releasing_through_an_object_that_does_not_hold_is_not_held_and_changes_nothing() {
    let (_dir, path) = lock_file();
    let holder = FileLock::open(&path).unwrap();
    let other = FileLock::open(&path).unwrap();
    holder.acquire().unwrap();
    assert_not_held(other.release(), &path);
    assert!(holder.is_held());
    assert!(!other.is_held());
    assert!(os_lock_is_held(&path));
    assert_timed_out(other.try_acquire(), &path, Duration::ZERO);
    holder.release().unwrap();
}

#[rstest]
fn try_acquire_on_a_held_lock_fails_promptly(
    #[values(Holder::Object, Holder::Foreign)] holder: Holder,
) {
    let (_dir, path) = lock_file();
    let _held = holder.take(&path);
    let lock = FileLock::open(&path).unwrap();
    let start = Instant::now();
    assert_timed_out(lock.try_acquire(), &path, Duration::ZERO);
    assert!(start.elapsed() < MARGIN, "took {:?}", start.elapsed());
    assert!(!lock.is_held());
}

#[rstest]
fn a_timed_acquire_fails_no_earlier_than_its_timeout(
    #[values(Holder::Object, Holder::Foreign)] holder: Holder,
    #[values(
        Duration::from_millis(1),
        Duration::from_millis(30),
        Duration::from_millis(300)
    )]
    timeout: Duration,
) {
    let (_dir, path) = lock_file();
    let _held = holder.take(&path);
    let lock = FileLock::open(&path).unwrap();
    let start = Instant::now();
    assert_timed_out(lock.acquire_timeout(Some(timeout)), &path, timeout);
    let elapsed = start.elapsed();
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    assert!(elapsed < timeout + MARGIN, "gave up after {elapsed:?}");
    assert!(!lock.is_held());
}

#[rstest]
fn a_waiting_acquire_succeeds_when_the_holder_releases(
    #[values(Holder::Object, Holder::Foreign)] holder: Holder,
    #[values(None, Some(PATIENCE))] timeout: Option<Duration>,
) {
    let (_dir, path) = lock_file();
    let held = holder.take(&path);
    let (lock, waiting) = signalling_lock(&path);
    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire_timeout(timeout));
        waiting.recv_timeout(PATIENCE).expect("the acquire waits");
        held.release();
        waiter.join().unwrap().unwrap();
    });
    assert!(lock.is_held());
    assert!(
        waiting.try_recv().is_err(),
        "the callback ran more than once"
    );
}

/// `path`, absolute, spelled relative to the working directory by climbing to its root;
/// `None` when the two are on different drives (Windows).
fn relative_to_working_directory(path: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap();
    let prefix = |path: &Path| match path.components().next() {
        Some(Component::Prefix(prefix)) => Some(prefix.as_os_str().to_ascii_lowercase()),
        _ => None,
    };
    if prefix(&cwd) != prefix(path) {
        return None;
    }
    let normal = |component: &Component<'_>| matches!(component, Component::Normal(_));
    let climb = cwd
        .components()
        .filter(normal)
        .map(|_| Component::ParentDir);
    Some(climb.chain(path.components().filter(normal)).collect())
}

/// Checks that `first` and `second` are two spellings of one lock.
fn assert_one_lock(first: &Path, second: &Path) {
    let one = FileLock::open(first).unwrap();
    let two = FileLock::open(second).unwrap();
    assert!(Arc::ptr_eq(&one.shared, &two.shared));
    one.acquire().unwrap();
    assert_timed_out(two.try_acquire(), second, Duration::ZERO);
    one.release().unwrap();
    two.acquire().unwrap();
    assert_timed_out(one.try_acquire(), first, Duration::ZERO);
    two.release().unwrap();
}

#[rstest]
#[case::relative(|dir: &Path| {
    let absolute = dir.join("a.lock");
    // Two drives on Windows: a verbatim path is another spelling of the same file.
    relative_to_working_directory(&absolute)
        .unwrap_or_else(|| fs::canonicalize(&absolute).unwrap())
})]
#[case::dot(|dir: &Path| dir.join(".").join("a.lock"))]
#[case::parent_dir(|dir: &Path| {
    fs::create_dir(dir.join("sub")).unwrap();
    dir.join("sub").join("..").join("a.lock")
})]
#[case::hard_link(|dir: &Path| {
    fs::hard_link(dir.join("a.lock"), dir.join("b.lock")).unwrap();
    dir.join("b.lock")
})]
fn spellings_of_one_file_are_one_lock(#[case] spell: fn(&Path) -> PathBuf) {
    let (dir, path) = lock_file();
    File::create(&path).unwrap();
    let spelling = spell(dir.path());
    assert_ne!(spelling.as_os_str(), path.as_os_str());
    assert_one_lock(&path, &spelling);
}

#[cfg(unix)]
#[rstest]
#[case::symlinked_parent(|dir: &Path| {
    std::os::unix::fs::symlink(dir, dir.join("link")).unwrap();
    dir.join("link").join("a.lock")
})]
#[case::symlink_to_the_file(|dir: &Path| {
    std::os::unix::fs::symlink(dir.join("a.lock"), dir.join("link.lock")).unwrap();
    dir.join("link.lock")
})]
fn symlinked_spellings_of_one_file_are_one_lock(#[case] spell: fn(&Path) -> PathBuf) {
    let (dir, path) = lock_file();
    File::create(&path).unwrap();
    let spelling = spell(dir.path());
    assert_one_lock(&path, &spelling);
}

#[test]
fn different_files_do_not_interfere() {
    let (dir, path) = lock_file();
    let a = FileLock::open(&path).unwrap();
    let b = FileLock::open(dir.path().join("b.lock")).unwrap();
    a.acquire().unwrap();
    b.try_acquire().unwrap();
    assert!(a.is_held() && b.is_held());
    a.release().unwrap();
    assert!(b.is_held());
    b.release().unwrap();
}

#[rstest]
#[case::missing_parent(|dir: &Path| dir.join("missing").join("a.lock"))]
#[case::a_directory(|dir: &Path| dir.to_path_buf())]
fn a_path_the_file_system_refuses_is_an_io_error(#[case] spell: fn(&Path) -> PathBuf) {
    let (dir, _) = lock_file();
    let path = spell(dir.path());
    let start = Instant::now();
    match FileLock::open(&path) {
        Err(error @ Error::Io { .. }) => {
            assert!(std::error::Error::source(&error).is_some());
            let Error::Io {
                path: error_path, ..
            } = error
            else {
                unreachable!()
            };
            assert_eq!(error_path, path);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(start.elapsed() < MARGIN, "took {:?}", start.elapsed());
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn dropping_the_guard_releases() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    let other = FileLock::open(&path).unwrap();
    {
        let guard = lock.lock().unwrap();
        assert!(format!("{guard:?}").contains("a.lock"));
        assert!(lock.is_held());
        assert_timed_out(other.try_acquire(), &path, Duration::ZERO);
    }
    assert!(!lock.is_held());
    other.try_acquire().unwrap();
}

#[test]
fn lock_honours_the_object_timeout() {
    let (_dir, path) = lock_file();
    let holder = FileLock::open(&path).unwrap();
    let lock = FileLock::open(&path).unwrap().with_timeout(Some(SHORT));
    holder.acquire().unwrap();
    let start = Instant::now();
    assert_timed_out(lock.lock().map(drop), &path, SHORT);
    assert!(start.elapsed() >= SHORT);
}

#[rstest]
fn the_callback_runs_once_for_an_acquire_that_waits(
    #[values(Holder::Object, Holder::Foreign)] holder: Holder,
) {
    let (_dir, path) = lock_file();
    let _held = holder.take(&path);
    let (lock, calls) = counting_lock(&path);
    assert_timed_out(lock.acquire_timeout(Some(SHORT)), &path, SHORT);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_timed_out(lock.acquire_timeout(Some(SHORT)), &path, SHORT);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[rstest]
fn the_callback_never_runs_for_an_acquire_that_does_not_wait(
    #[values(
        Attempt::Try,
        Attempt::ObjectTimeout,
        Attempt::CallTimeout,
        Attempt::Guard
    )]
    attempt: Attempt,
) {
    let (_dir, path) = lock_file();
    let (lock, calls) = counting_lock(&path);
    let lock = lock.with_timeout(Some(SHORT));
    let (result, _) = attempt.run(&lock);
    result.unwrap();
    lock.release().ok();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[rstest]
fn the_callback_never_runs_for_a_single_attempt(
    #[values(Holder::Object, Holder::Foreign)] holder: Holder,
) {
    let (_dir, path) = lock_file();
    let _held = holder.take(&path);
    let (lock, calls) = counting_lock(&path);
    assert_timed_out(lock.try_acquire(), &path, Duration::ZERO);
    assert_timed_out(
        lock.acquire_timeout(Some(Duration::ZERO)),
        &path,
        Duration::ZERO,
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[rstest]
fn the_callback_may_use_the_lock(#[values(Holder::Object, Holder::Foreign)] holder: Holder) {
    let (_dir, path) = lock_file();
    let _held = holder.take(&path);
    let observed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&observed);
    // Were the callback called with the in-process state locked, this would deadlock.
    let peek = FileLock::open(&path).unwrap();
    let lock = FileLock::open(&path).unwrap().on_contention(move || {
        let busy = matches!(peek.try_acquire(), Err(Error::TimedOut { .. }));
        seen.store(busy && !peek.is_held(), Ordering::SeqCst);
    });
    assert_timed_out(lock.acquire_timeout(Some(SHORT)), &path, SHORT);
    assert!(observed.load(Ordering::SeqCst));
}

#[test]
fn lock_operations_never_delete_or_truncate_the_file() {
    let (_dir, path) = lock_file();
    fs::write(&path, "precious").unwrap();
    let lock = FileLock::open(&path).unwrap();
    let other = FileLock::open(&path).unwrap();
    lock.acquire().unwrap();
    assert_timed_out(other.acquire_timeout(Some(SHORT)), &path, SHORT);
    lock.release().unwrap();
    drop(other.lock().unwrap());
    drop(lock);
    drop(other);
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[rstest]
fn dropping_a_holding_lock_releases_it(#[values(true, false)] others_remain: bool) {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    let other = others_remain.then(|| FileLock::open(&path).unwrap());
    lock.acquire().unwrap();
    drop(lock);
    assert!(!os_lock_is_held(&path));
    let next = other.unwrap_or_else(|| FileLock::open(&path).unwrap());
    next.try_acquire().unwrap();
}

#[test]
fn opening_and_closing_other_handles_keeps_the_lock() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    lock.acquire().unwrap();
    drop(File::open(&path).unwrap());
    drop(foreign_handle(&path));
    drop(FileLock::open(&path).unwrap());
    assert!(lock.is_held());
    assert!(os_lock_is_held(&path));
}

#[test]
fn the_registry_entry_goes_with_the_last_object() {
    let (_dir, path) = lock_file();
    let first = FileLock::open(&path).unwrap();
    let second = FileLock::open(&path).unwrap();
    let id = first.shared.id();
    drop(first);
    assert!(registry::is_registered(id));
    drop(second);
    assert!(!registry::is_registered(id));
    let again = FileLock::open(&path).unwrap();
    assert!(registry::is_registered(again.shared.id()));
}

#[rstest]
fn threads_never_hold_the_lock_together(#[values(true, false)] shared_object: bool) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let (_dir, path) = lock_file();
    let objects: Vec<FileLock> = (0..if shared_object { 1 } else { THREADS })
        .map(|_| FileLock::open(&path).unwrap())
        .collect();
    let inside = AtomicBool::new(false);
    let entries = AtomicUsize::new(0);
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let lock = &objects[thread % objects.len()];
            let (inside, entries) = (&inside, &entries);
            scope.spawn(move || {
                for _ in 0..ROUNDS {
                    let _guard = lock.lock().unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    entries.fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                    inside.store(false, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(entries.load(Ordering::SeqCst), THREADS * ROUNDS);
}

#[test]
fn debug_shows_the_path_and_whether_it_is_held() {
    let (_dir, path) = lock_file();
    let lock = FileLock::open(&path).unwrap();
    lock.acquire().unwrap();
    let shown = format!("{lock:?}");
    assert!(
        shown.contains("a.lock") && shown.contains("held: true"),
        "{shown}"
    );
}
