//! The one error type of the crate: contention, releasing a lock not held, and file system errors.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a lock operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Contention: the lock stayed held by someone else for the whole timeout.
    ///
    /// `timeout` is [`Duration::ZERO`] for a single attempt ([`FileLock::try_acquire`]). This is
    /// the one kind for contention on every OS, whether the holder is another process or another
    /// object (or this same object) in this process.
    ///
    /// [`FileLock::try_acquire`]: crate::FileLock::try_acquire
    TimedOut {
        /// The lock file's path, as given to [`FileLock::open`](crate::FileLock::open).
        path: PathBuf,
        /// How long the acquire waited.
        timeout: Duration,
    },
    /// [`FileLock::release`](crate::FileLock::release) on a lock that this object does not hold.
    NotHeld {
        /// The lock file's path, as given to [`FileLock::open`](crate::FileLock::open).
        path: PathBuf,
    },
    /// The file system refused: a missing directory, a path that is a directory, a permission.
    ///
    /// The underlying error is this error's [`source`](std::error::Error::source).
    Io {
        /// The lock file's path, as given to [`FileLock::open`](crate::FileLock::open).
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut { path, timeout } if timeout.is_zero() => {
                write!(f, "lock on {} is held elsewhere", path.display())
            }
            Self::TimedOut { path, timeout } => write!(
                f,
                "timed out after {timeout:?} waiting for lock on {}",
                path.display()
            ),
            Self::NotHeld { path } => {
                write!(f, "lock on {} is not held by this object", path.display())
            }
            Self::Io { path, .. } => write!(f, "cannot use lock file {}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::TimedOut { .. } | Self::NotHeld { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::timed_out(
        Error::TimedOut { path: "a.lock".into(), timeout: Duration::from_millis(300) },
        "timed out after 300ms waiting for lock on a.lock",
    )]
    #[case::single_attempt(
        Error::TimedOut { path: "a.lock".into(), timeout: Duration::ZERO },
        "lock on a.lock is held elsewhere",
    )]
    #[case::not_held(
        Error::NotHeld { path: "a.lock".into() },
        "lock on a.lock is not held by this object",
    )]
    #[case::io(
        Error::Io { path: "a.lock".into(), source: io::ErrorKind::NotFound.into() },
        "cannot use lock file a.lock",
    )]
    fn display_is_a_lowercase_fragment(#[case] error: Error, #[case] expected: &str) {
        let shown = error.to_string();
        assert_eq!(shown, expected);
        assert!(!shown.ends_with('.'));
    }

    #[test]
    fn io_keeps_the_io_error_as_source() {
        let error = Error::Io {
            path: "a.lock".into(),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "nope"),
        };
        let source = error.source().expect("an Io error has a source");
        assert_eq!(source.to_string(), "nope");
    }

    #[rstest]
    #[case::timed_out(Error::TimedOut { path: "a.lock".into(), timeout: Duration::ZERO })]
    #[case::not_held(Error::NotHeld { path: "a.lock".into() })]
    fn other_errors_have_no_source(#[case] error: Error) {
        assert!(error.source().is_none());
    }
}
