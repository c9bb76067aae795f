//! Micro-benchmarks of the reference's hot paths, next to the bare `flock` calls they wrap:
//! `cargo bench -p lockspec-reference`.
//!
//! The cross-process figures (hand-off, timeouts, CPU while waiting) are `cargo xtask bench`'s.

use std::fs::{File, OpenOptions, TryLockError};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lockspec_reference::FileLock;

fn handle(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open the lock file")
}

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.lock");
    let mut group = c.benchmark_group("uncontended acquire+release");

    let lock = FileLock::open(&path).expect("open the lock");
    group.bench_function("reference, no timeout", |b| {
        b.iter(|| {
            lock.acquire().expect("acquire");
            lock.release().expect("release");
        });
    });
    let timed = FileLock::open(&path)
        .expect("open the lock")
        .with_timeout(Some(Duration::from_secs(1)));
    group.bench_function("reference, timeout", |b| {
        b.iter(|| {
            timed.acquire().expect("acquire");
            timed.release().expect("release");
        });
    });
    group.bench_function("reference, guard", |b| {
        b.iter(|| drop(black_box(lock.lock().expect("lock"))));
    });
    drop((lock, timed));

    let kept = handle(&path);
    group.bench_function("raw flock + unlock", |b| {
        b.iter(|| {
            kept.lock().expect("flock");
            kept.unlock().expect("unlock");
        });
    });
    drop(kept);
    group.bench_function("raw open + flock + unlock + close", |b| {
        b.iter(|| {
            let file = handle(&path);
            file.lock().expect("flock");
            file.unlock().expect("unlock");
        });
    });
    group.finish();
}

fn try_acquire_held(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.lock");
    let mut group = c.benchmark_group("try_acquire on a held lock");

    // Held by another object of this process: refused by the in-process state alone.
    let holder = FileLock::open(&path).expect("open the lock");
    let contender = FileLock::open(&path).expect("open the lock");
    holder.acquire().expect("acquire");
    group.bench_function("reference, held in this process", |b| {
        b.iter(|| assert!(contender.try_acquire().is_err()));
    });
    holder.release().expect("release");
    drop(holder);

    // Held through another open file description, as by another process: refused by the OS.
    let foreign = handle(&path);
    foreign.try_lock().expect("lock through the foreign handle");
    group.bench_function("reference, held by another process", |b| {
        b.iter(|| assert!(contender.try_acquire().is_err()));
    });
    let kept = handle(&path);
    group.bench_function("raw flock(LOCK_NB), held", |b| {
        b.iter(|| assert!(matches!(kept.try_lock(), Err(TryLockError::WouldBlock))));
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.lock");
    // One object stays, so each new one finds the file in the registry, as in a long-lived
    // program.
    let _first = FileLock::open(&path).expect("open the lock");
    c.bench_function("FileLock::open + drop, file already open", |b| {
        b.iter(|| drop(black_box(FileLock::open(&path).expect("open the lock"))));
    });
}

criterion_group! {
    name = benches;
    // Short: these are microsecond operations, and the defaults take minutes in all.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = uncontended, try_acquire_held, open
}
criterion_main!(benches);
