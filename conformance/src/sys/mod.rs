//! The runner's platform seam: one module per OS family with identical signatures, selected once
//! here.
//!
//! Each module provides:
//!
//! - `prepare(&mut Command, unprivileged: bool)`: sets up a worker's command before it starts
//!   (its own process group, the unprivileged user under root, death with the runner);
//! - `adopt(&Child)`: takes in the worker just started, so that its whole tree can be killed
//!   (a job object on Windows; nothing elsewhere, where the process group does it);
//! - `kill_tree(&mut Child, children: &[u32])`: kills the worker, what it started and the
//!   children it reported;
//! - `is_privileged() -> bool`: whether the runner runs with root privileges (file permissions
//!   not enforced);
//! - `set_mode(&Path, u32) -> io::Result<()>`: sets a file's Unix permission bits;
//! - `make_world_writable(&Path) -> io::Result<()>`: lets an unprivileged worker write in a
//!   directory (nothing to do where permissions are not Unix bits);
//! - `symlink_dir(target: &Path, link: &Path) -> io::Result<()>`: creates a symbolic link to a
//!   directory, and fails where none was made;
//! - `file_identity(&Path) -> io::Result<(u64, u64)>`: the device and inode of a file, its
//!   identity across names.
//!
//! What a platform cannot do fails with `ErrorKind::Unsupported`.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(unix, windows)))]
mod unsupported;
#[cfg(not(any(unix, windows)))]
use unsupported as imp;

pub(crate) use imp::{
    adopt, file_identity, is_privileged, kill_tree, make_world_writable, prepare, set_mode,
    symlink_dir,
};
