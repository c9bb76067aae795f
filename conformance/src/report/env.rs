//! The environment a run happened in: operating system, kernel, the file system that holds the
//! lock files, and the date.

use std::path::Path;
use std::time::SystemTime;

/// The operating system's name and release, such as `Debian GNU/Linux 13 (trixie)`, if it says.
pub fn os_name() -> Option<String> {
    imp::os_name()
}

/// The kernel's release, such as `6.1.0-18-amd64`, if it says.
pub fn kernel() -> Option<String> {
    imp::kernel()
}

/// The type of the file system that holds `dir`, such as `ext2/ext3/ext4` or `tmpfs`, or its
/// magic number in hexadecimal when the name is not known; `None` where it cannot be found.
pub fn filesystem(dir: &Path) -> Option<String> {
    imp::filesystem(dir)
}

/// `t` as a UTC date and time in ISO 8601, to the second: `2024-05-01T12:34:56Z`. Times before
/// 1970 are written as 1970.
pub fn iso8601(t: SystemTime) -> String {
    let t = jiff::Timestamp::try_from(t)
        .ok()
        .filter(|t| *t >= jiff::Timestamp::UNIX_EPOCH)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The name of a Linux file system from its `statfs` magic number (the table of `statfs(2)`).
pub fn linux_filesystem_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext2/ext3/ext4",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x9123_683E => "btrfs",
        0x5846_5342 => "xfs",
        0x2FC1_2FC1 => "zfs",
        0xCA45_1A4E => "bcachefs",
        0xF2F5_2010 => "f2fs",
        0x3153_464A => "jfs",
        0x5265_4973 => "reiserfs",
        0x794C_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x517B => "smb",
        0x00C3_6400 => "ceph",
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x4D44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x5346_544E => "ntfs",
        0x7371_7368 => "squashfs",
        0x9660 => "isofs",
        0x0001_1954 => "ufs",
        _ => return None,
    })
}

#[cfg(target_os = "linux")]
mod imp {
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
            super::linux_filesystem_name(magic)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{magic:x}")),
        )
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod imp {
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

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    pub fn os_name() -> Option<String> {
        None
    }

    pub fn kernel() -> Option<String> {
        None
    }

    pub fn filesystem(_dir: &Path) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn dates_are_iso8601_in_utc() {
        let at = |secs| iso8601(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn known_magic_numbers_have_names() {
        assert_eq!(linux_filesystem_name(0xEF53), Some("ext2/ext3/ext4"));
        assert_eq!(linux_filesystem_name(0x0102_1994), Some("tmpfs"));
        assert_eq!(linux_filesystem_name(0x1234), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_temporary_directory_has_a_file_system() {
        let fs = filesystem(&std::env::temp_dir()).expect("statfs works on the temp dir");
        assert!(!fs.is_empty());
        assert_eq!(filesystem(Path::new("/no/such/dir/at/all")), None);
    }
}
