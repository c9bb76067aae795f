//! The `fd-lock` peer: `fd_lock::RwLock<File>` taken for writing with `write` and `try_write`,
//! served over the worker protocol; releasing drops the guard they return.
//!
//! A lock object is one `RwLock` around a `File` opened for reading and writing without
//! truncation. The API has no release without a guard (`no_release_unheld`), and `write` borrows
//! the lock mutably for as long as its guard lives, so nothing can acquire through an object that
//! holds the lock or is taking it (`no_acquire_held`); such requests are answered `unsupported`.
//! fd-lock has no timed lock, so a timeout is the adapter's polling of `try_write`
//! (`timeout_emulated`).

mod peer;

use std::cell::RefCell;
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fd_lock::{RwLock, RwLockWriteGuard};
use lockspec_worker::{Backend, Callback, Info, LockObject, Outcome};

/// The fd-lock version that Cargo.toml pins.
const VERSION: &str = "4.0.4";

/// Creates one `RwLock<File>` per `open`.
struct FdLock;

/// One `RwLock<File>` and, while it is held, its guard.
///
/// The guard borrows the lock, so the two live in one object: the lock on the heap at a fixed
/// address, owned through `lock` and freed by `Drop` after the guard.
struct Object {
    lock: NonNull<RwLock<File>>,
    slot: Mutex<Slot>,
    timeout: Option<Duration>,
}

/// Where the object's lock stands.
enum Slot {
    /// Not held, and no acquire is taking it.
    Free,
    /// An acquire is taking it: that call alone uses the lock.
    Taking,
    /// Held: the guard `write` or `try_write` returned. Its `'static` is a promise that
    /// `Object`'s `Drop` keeps, by dropping the guard before the lock.
    Held(RwLockWriteGuard<'static, File>),
}

// SAFETY: `lock` is dereferenced only by the acquire that moved the slot from `Free` to `Taking`,
// so never by two threads at once; the lock and its guard are themselves `Send` and `Sync`.
unsafe impl Send for Object {}
// SAFETY: as for `Send`: shared access goes through the `slot` mutex.
unsafe impl Sync for Object {}

impl Backend for FdLock {
    fn info(&self) -> Info {
        peer::info(
            "fd-lock",
            VERSION,
            &[
                peer::TIMEOUT_EMULATED,
                peer::NO_ACQUIRE_HELD,
                peer::NO_RELEASE_UNHELD,
            ],
        )
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        _callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        let lock = Box::new(RwLock::new(peer::open_file(path)?));
        Ok(Box::new(Object {
            lock: NonNull::from(Box::leak(lock)),
            slot: Mutex::new(Slot::Free),
            timeout,
        }))
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Object {
    /// The library's lock, for the acquire that holds the slot in `Taking`.
    ///
    /// # Safety
    ///
    /// The caller must have moved the slot from `Free` to `Taking`, must not have moved it on
    /// since, and must not use an earlier result of this call again.
    unsafe fn rwlock(&self) -> &'static mut RwLock<File> {
        // SAFETY: the lock lives until `drop`, which cannot run while `&self` is borrowed, and
        // the caller's `Taking` slot makes this the only reference to it in use.
        unsafe { &mut *self.lock.as_ptr() }
    }
}

impl LockObject for Object {
    fn acquire(&self) -> Outcome {
        {
            let mut slot = lock(&self.slot);
            if !matches!(*slot, Slot::Free) {
                return Outcome::Unsupported(
                    "fd-lock's `write` borrows the lock mutably while it is held or being taken: \
                     no second acquire can be made through it"
                        .into(),
                );
            }
            *slot = Slot::Taking;
        }
        let taken = RefCell::new(None);
        let attempt = || {
            // SAFETY: the slot is `Taking`, and a failed attempt leaves no reference behind.
            match unsafe { self.rwlock() }.try_write() {
                Ok(guard) => {
                    *taken.borrow_mut() = Some(guard);
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e.into()),
            }
        };
        let block = || {
            // SAFETY: the slot is `Taking`, and this is the only call.
            match unsafe { self.rwlock() }.write() {
                Ok(guard) => {
                    *taken.borrow_mut() = Some(guard);
                    Outcome::Acquired
                }
                Err(e) => e.into(),
            }
        };
        let outcome = peer::acquire(self.timeout, attempt, block);
        *lock(&self.slot) = match taken.into_inner() {
            Some(guard) => Slot::Held(guard),
            None => Slot::Free,
        };
        outcome
    }

    fn release(&self) -> Outcome {
        let mut slot = lock(&self.slot);
        match std::mem::replace(&mut *slot, Slot::Free) {
            Slot::Held(guard) => {
                drop(guard);
                Outcome::Released
            }
            other => {
                *slot = other;
                Outcome::Unsupported(
                    "fd-lock releases by dropping the guard of an acquire, and there is none"
                        .into(),
                )
            }
        }
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // The guard borrows the lock: it goes first.
        let slot = std::mem::replace(
            self.slot.get_mut().unwrap_or_else(PoisonError::into_inner),
            Slot::Free,
        );
        drop(slot);
        // SAFETY: `lock` came from `Box::leak` in `open` and no guard borrows it any more.
        drop(unsafe { Box::from_raw(self.lock.as_ptr()) });
    }
}

fn main() {
    lockspec_worker::serve(FdLock)
}
