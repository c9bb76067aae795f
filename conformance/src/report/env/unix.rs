//! The environment on Unix: `/etc/os-release`, `/proc` and `statfs` on Linux; `sw_vers` and
//! `uname` elsewhere, where the file system's type is not looked up.

#[cfg(target_os = "linux")]
pub use linux::{filesystem, kernel, os_name};
#[cfg(not(target_os = "linux"))]
pub use other::{filesystem, kernel, os_name};

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::mem::MaybeUninit;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    pub fn os_name() -> Option<String> {
        let text = std::fs::read_to_string("/etc/os-release").ok()?;
        let value = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
        let value = value.trim().trim_matches('"').trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    pub fn kernel() -> Option<String> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let release = release.trim();
        (!release.is_empty()).then(|| release.to_owned())
    }

    pub fn filesystem(dir: &Path) -> Option<String> {
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut buf = MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `path` is a NUL-terminated string and `buf` has room for one `statfs`, which
        // the call fills in completely when it returns 0.
        if unsafe { libc::statfs(path.as_ptr(), buf.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: the call succeeded, so `buf` is initialised.
        let stat = unsafe { buf.assume_init() };
        // `f_type` is signed on some targets and unsigned on others; every magic number fits in
        // 32 bits.
        let magic = u64::try_from(i128::from(stat.f_type) & 0xFFFF_FFFF).unwrap_or(0);
        Some(
            super::super::linux_filesystem_name(magic)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{magic:x}")),
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::path::Path;
    use std::process::Command;

    fn output(program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(program).args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let text = text.trim();
        (out.status.success() && !text.is_empty()).then(|| text.to_owned())
    }

    pub fn os_name() -> Option<String> {
        match output("sw_vers", &["-productVersion"]) {
            Some(v) => Some(format!("macOS {v}")),
            None => output("uname", &["-s"]),
        }
    }

    pub fn kernel() -> Option<String> {
        output("uname", &["-r"])
    }

    pub fn filesystem(_dir: &Path) -> Option<String> {
        None
    }
}
