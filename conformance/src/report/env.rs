//! The environment a run happened in: operating system, kernel, the file system that holds the
//! lock files, and the date.

use std::path::Path;
use std::time::SystemTime;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;
#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
use unsupported as imp;

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
