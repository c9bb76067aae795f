//! The steps on files: plain handles in a worker (`file_open`, `file_close`), and what the runner
//! itself arranges or looks at in the trial's directory (`write_file`, `check_file`, `hard_link`,
//! `mkdir`, `symlink`).

use std::path::Path;

use lockspec_protocol::Op;

use super::verdict::Stop;
use super::{FailKind, Trial};
use crate::scenario::parse_mode;
use crate::sys;

impl Trial<'_> {
    /// `file_open`: a worker opens a plain handle on a file, which must answer `ok` promptly.
    pub(super) fn file_open(
        &mut self,
        process: &str,
        thread: &str,
        file: &str,
        path: &str,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let op = Op::FileOpen {
            file: file.to_owned(),
            path: self.worker_path(path).into(),
        };
        self.exchange_ok(p, thread, op)?;
        Ok(())
    }

    /// `file_close`: a worker closes a plain handle, which must answer `ok` promptly.
    pub(super) fn file_close(
        &mut self,
        process: &str,
        thread: &str,
        file: &str,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let op = Op::FileClose {
            file: file.to_owned(),
        };
        self.exchange_ok(p, thread, op)?;
        Ok(())
    }

    /// `write_file`: the runner writes a file.
    pub(super) fn write_file(&self, path: &str, content: &str) -> Result<(), Stop> {
        let path = self.path(path);
        std::fs::write(&path, content)
            .map_err(|e| Stop::Runner(format!("the runner cannot write {}: {e}", path.display())))
    }

    /// `check_file`: the file exists or not, has the content, and is still the file it was when
    /// its identity was first recorded.
    pub(super) fn check_file(
        &mut self,
        path: &str,
        exists: bool,
        content: Option<&str>,
        identity: Option<&str>,
    ) -> Result<(), Stop> {
        let full = self.path(path);
        let found = full.exists();
        if found != exists {
            return Err(Stop::failed(
                FailKind::File,
                format!(
                    "{path} {}",
                    if exists { "exists" } else { "does not exist" }
                ),
                format!("{path} {}", if found { "exists" } else { "does not exist" }),
            ));
        }
        if let Some(want) = content {
            check_content(path, &full, want)?;
        }
        if let Some(name) = identity {
            self.check_identity(path, &full, name)?;
        }
        Ok(())
    }

    /// The file `full` (`path` in the scenario) is the file recorded as `name`, or is recorded
    /// as `name` now.
    fn check_identity(&mut self, path: &str, full: &Path, name: &str) -> Result<(), Stop> {
        let now = sys::file_identity(full)
            .map_err(|e| Stop::Skip(format!("cannot read the identity of {path} here: {e}")))?;
        match self.identities.get(name) {
            None => {
                self.identities.insert(name.to_owned(), now);
            }
            Some(&first) if first != now => {
                return Err(Stop::failed(
                    FailKind::File,
                    format!("{path} is still the file `{name}` (device and inode {first:?})"),
                    format!(
                        "{path} is another file (device and inode {now:?}): it was deleted and created again"
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// `hard_link`: the runner makes `path` a second name of `target`.
    pub(super) fn hard_link(&self, path: &str, target: &str) -> Result<(), Stop> {
        let (link, target) = (self.path(path), self.path(target));
        std::fs::hard_link(&target, &link)
            .map_err(|e| Stop::Skip(format!("cannot create a hard link here: {e}")))
    }

    /// `mkdir`: the runner creates a directory, with restricted permissions if `mode` says so
    /// (given back before the trial's directory is removed).
    pub(super) fn mkdir(&mut self, path: &str, mode: Option<&str>) -> Result<(), Stop> {
        let full = self.path(path);
        std::fs::create_dir_all(&full).map_err(|e| {
            Stop::Runner(format!("the runner cannot create {}: {e}", full.display()))
        })?;
        if let Some(mode) = mode {
            sys::set_mode(&full, parse_mode(mode).expect("checked when loaded"))
                .map_err(|e| Stop::Skip(format!("cannot set permissions here: {e}")))?;
            self.restricted.push(full);
        }
        Ok(())
    }

    /// `symlink`: the runner makes `path` a symbolic link to the directory `target`.
    pub(super) fn symlink(&self, path: &str, target: &str) -> Result<(), Stop> {
        let full = self.path(path);
        sys::symlink_dir(Path::new(&self.worker_path(target)), &full)
            .map_err(|e| Stop::Skip(format!("cannot create a symbolic link here: {e}")))
    }
}

/// The file `full` (`path` in the scenario) contains exactly `want`.
fn check_content(path: &str, full: &Path, want: &str) -> Result<(), Stop> {
    let got = std::fs::read(full)
        .map_err(|e| Stop::Runner(format!("the runner cannot read {}: {e}", full.display())))?;
    if got != want.as_bytes() {
        return Err(Stop::failed(
            FailKind::File,
            format!("{path} contains {want:?}"),
            format!("{path} contains {:?}", String::from_utf8_lossy(&got)),
        ));
    }
    Ok(())
}
