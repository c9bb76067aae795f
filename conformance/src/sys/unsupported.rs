//! Platforms that are neither Unix nor Windows: workers are only started and killed, and every
//! file operation that needs the OS is `Unsupported`.

use std::io;
use std::path::Path;
use std::process::{Child, Command};

pub(crate) fn prepare(_cmd: &mut Command, _unprivileged: bool) {}

pub(crate) fn adopt(_child: &Child) {}

pub(crate) fn kill_tree(child: &mut Child, _children: &[u32]) {
    let _ = child.kill();
}

pub(crate) fn is_privileged() -> bool {
    false
}

pub(crate) fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Unix permission bits",
    ))
}

pub(crate) fn make_world_writable(_path: &Path) -> io::Result<()> {
    Ok(())
}

pub(crate) fn symlink_dir(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "symbolic links"))
}

pub(crate) fn file_identity(_path: &Path) -> io::Result<(u64, u64)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "device and inode numbers",
    ))
}
