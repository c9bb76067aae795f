//! The built-in implementations: every lock library lockspec judges, its language, its pinned
//! version, and how to start its worker.
//!
//! Rust workers are binaries, the reference's of this package and the other peers' of
//! `lockspec-peers` (`peers/`); every package builds into one directory, so they are found next to
//! the running executable. Python peers are adapter scripts under `adapters/python/`, run by a
//! virtual environment's interpreter under `target/lockspec/python/VENV/`; the Node peer is
//! `adapters/node/proper_lockfile.js`, run by `node` with the packages under
//! `target/lockspec/node/`. `cargo xtask peers` installs both. [`Builtin::resolve`] turns an entry
//! into an [`Implementation`], or says why it is not installed and what command fixes it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::process::Implementation;

/// The command that installs the Python and Node peers.
pub const INSTALL_PEERS: &str = "cargo xtask peers";

/// The command that builds the Rust workers: the reference's, with the runner, and the others
/// (`peers/`).
pub const BUILD_WORKERS: &str = "cargo build -p lockspec-conformance -p lockspec-peers --bins";

/// The environment variable that overrides where the Python and Node peers are installed
/// (default: `lockspec/` in the target directory, next to the directory of the executables).
pub const PEERS_DIR_ENV: &str = "LOCKSPEC_PEERS_DIR";

/// The language an implementation is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// A worker binary, `lockspec-worker-NAME`, built beside the runner.
    Rust,
    /// An adapter script run by a virtual environment's interpreter.
    Python,
    /// An adapter script run by `node`.
    Node,
}

impl Language {
    /// The language's name, as workers give it in `hello`: `rust`, `python`, `node`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Node => "node",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a built-in implementation's worker is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// The binary `lockspec-worker-NAME` next to the running executable; some libraries exist
    /// on Unix only.
    Rust {
        binary: &'static str,
        unix_only: bool,
    },
    /// `VENV/bin/python -I adapters/python/SCRIPT`, the environment under the peers directory.
    Python {
        venv: &'static str,
        script: &'static str,
    },
    /// `node adapters/node/SCRIPT PEERS/node/node_modules`.
    Node { script: &'static str },
}

/// One built-in implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name in test names, reports and `--impl`.
    pub name: &'static str,
    /// The language of the library.
    pub language: Language,
    /// The library's package name in its language's registry (`std` for Rust's standard library).
    pub package: &'static str,
    /// The pinned version (`toolchain` for std, which comes with the compiler).
    pub version: &'static str,
    /// What the adapter supplies or cannot express, in one line, for reports.
    pub notes: &'static str,
    /// Whether the library has no timed acquire, so that the adapter polls its single attempt
    /// (the worker also says so with the capability `timeout_emulated`).
    pub timeout_emulated: bool,
    launch: Launch,
}

/// Every built-in implementation, the reference first, then by language.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "reference",
        language: Language::Rust,
        package: "lockspec-reference",
        version: env!("CARGO_PKG_VERSION"),
        notes: "the reference implementation of the spec",
        timeout_emulated: false,
        launch: Launch::Rust {
            binary: "lockspec-worker-reference",
            unix_only: false,
        },
    },
    Builtin {
        name: "std",
        language: Language::Rust,
        package: "std",
        version: "toolchain",
        notes: "File::lock/try_lock/unlock; no timed lock: the adapter polls try_lock",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-std",
            unix_only: false,
        },
    },
    Builtin {
        name: "fs4",
        language: Language::Rust,
        package: "fs4",
        version: "1.1.0",
        notes: "FileExt::lock/try_lock/unlock; no timed lock: the adapter polls try_lock",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-fs4",
            unix_only: false,
        },
    },
    Builtin {
        name: "fd-lock",
        language: Language::Rust,
        package: "fd-lock",
        version: "4.0.4",
        notes: "RwLock::write/try_write guards; no timed lock: the adapter polls try_write; \
                a guard API cannot release without a guard or acquire through a held lock",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-fd-lock",
            unix_only: false,
        },
    },
    Builtin {
        name: "fslock",
        language: Language::Rust,
        package: "fslock",
        version: "0.2.1",
        notes: "LockFile::lock/try_lock/unlock; no timed lock: the adapter polls try_lock",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-fslock",
            unix_only: false,
        },
    },
    Builtin {
        name: "file-lock",
        language: Language::Rust,
        package: "file-lock",
        version: "2.1.11",
        notes: "FileLock::lock (fcntl record locks) returns the held lock, dropped to release; \
                no timed lock: the adapter polls non-blocking attempts",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-file-lock",
            unix_only: true,
        },
    },
    Builtin {
        name: "named-lock",
        language: Language::Rust,
        package: "named-lock",
        version: "0.4.1",
        notes: "NamedLock::with_path lock/try_lock guards, not Send; no timed lock: the adapter \
                polls try_lock",
        timeout_emulated: true,
        launch: Launch::Rust {
            binary: "lockspec-worker-named-lock",
            unix_only: true,
        },
    },
    Builtin {
        name: "locket",
        language: Language::Python,
        package: "locket",
        version: "1.0.0",
        notes: "locket.lock_file(path, timeout=...)",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "locket",
            script: "adapt_locket.py",
        },
    },
    Builtin {
        name: "locket-0.2",
        language: Language::Python,
        package: "locket",
        version: "0.2.0",
        notes: "locket.lock_file(path, timeout=...), an older release",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "locket-0.2",
            script: "adapt_locket.py",
        },
    },
    Builtin {
        name: "locks",
        language: Language::Python,
        package: "locks",
        version: "0.1.1",
        notes: "locks.Mutex(path, timeout=..., callback=...)",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "locks",
            script: "adapt_locks.py",
        },
    },
    Builtin {
        name: "filelock",
        language: Language::Python,
        package: "filelock",
        version: "4.2.11",
        notes: "filelock.FileLock(path, timeout=...)",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "filelock",
            script: "adapt_filelock.py",
        },
    },
    Builtin {
        name: "portalocker",
        language: Language::Python,
        package: "portalocker",
        version: "4.4.2",
        notes: "portalocker.Lock(path, timeout=...); no timeout: blocking flags",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "portalocker",
            script: "adapt_portalocker.py",
        },
    },
    Builtin {
        name: "fasteners",
        language: Language::Python,
        package: "fasteners",
        version: "0.20",
        notes: "fasteners.InterProcessLock(path).acquire(blocking=..., timeout=...)",
        timeout_emulated: false,
        launch: Launch::Python {
            venv: "fasteners",
            script: "adapt_fasteners.py",
        },
    },
    Builtin {
        name: "proper-lockfile",
        language: Language::Node,
        package: "proper-lockfile",
        version: "4.1.2",
        notes: "lock(path, {realpath: false}): a directory PATH.lock with stale detection, not \
                an OS lock; no timed lock: the adapter polls single attempts",
        timeout_emulated: true,
        launch: Launch::Node {
            script: "proper_lockfile.js",
        },
    },
];

/// The built-in implementation called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The names of every built-in implementation, comma-separated, for messages.
pub fn names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The help of `--impl`: every built-in implementation, by name, and how to install the peers.
pub fn impl_help() -> String {
    format!(
        "Built-in implementations to judge, comma-separated, or `all`: {}. Python and Node ones \
         need `{INSTALL_PEERS}`",
        names()
    )
}

/// Where the workers and the peers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    /// The directory of the Rust worker binaries.
    pub bin_dir: PathBuf,
    /// The source tree, which holds `adapters/`.
    pub root: PathBuf,
    /// The directory `cargo xtask peers` installs into (`python/`, `node/`).
    pub peers: PathBuf,
}

impl Locations {
    /// Workers in `bin_dir`, adapters under `root`, and the peers in [`PEERS_DIR_ENV`] or else in
    /// `lockspec/` beside `bin_dir` (`target/debug/` gives `target/lockspec/`).
    pub fn new(bin_dir: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Locations {
        let bin_dir = bin_dir.into();
        let peers = match std::env::var_os(PEERS_DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => bin_dir.parent().unwrap_or(&bin_dir).join("lockspec"),
        };
        Locations {
            bin_dir,
            root: root.into(),
            peers,
        }
    }

    /// The workers beside the running program (every package builds its binaries into one
    /// directory), the adapters under `root`, and the peers as [`Locations::new`] finds them.
    ///
    /// # Errors
    ///
    /// Returns a message when the running program cannot be found.
    pub fn of_this_program(root: &Path) -> Result<Locations, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let bin_dir = exe.parent().ok_or("this program has no directory")?;
        Ok(Locations::new(bin_dir, root))
    }

    /// The Python interpreter of the virtual environment `venv`.
    pub fn python(&self, venv: &str) -> PathBuf {
        let dir = self.peers.join("python").join(venv);
        if cfg!(windows) {
            dir.join("Scripts").join("python.exe")
        } else {
            dir.join("bin").join("python")
        }
    }

    /// The file that `cargo xtask peers` writes last into a finished environment or package
    /// directory: the pinned set it installed.
    pub fn stamp(dir: &Path) -> PathBuf {
        dir.join("lockspec-stamp.txt")
    }
}

/// Why a built-in implementation cannot run here, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInstalled {
    /// The implementation's name.
    pub implementation: String,
    /// What is missing.
    pub reason: String,
    /// The command that installs it.
    pub fix: &'static str,
}

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not installed: {}; run `{}`",
            self.implementation, self.reason, self.fix
        )
    }
}

impl std::error::Error for NotInstalled {}

impl NotInstalled {
    /// An implementation whose every trial is an error verdict carrying this message.
    pub fn into_implementation(self) -> Implementation {
        let message = self.to_string();
        Implementation::unavailable(self.implementation, message)
    }
}

impl Builtin {
    /// Whether `cargo xtask peers` installs this implementation (Python and Node).
    pub fn needs_peers(&self) -> bool {
        self.language != Language::Rust
    }

    /// Whether the library exists on this platform: some Rust peers are Unix-only.
    pub fn exists_here(&self) -> bool {
        let unix_only = matches!(self.launch, Launch::Rust { unix_only, .. } if unix_only);
        cfg!(unix) || !unix_only
    }

    /// The command that starts this implementation's worker.
    ///
    /// # Errors
    ///
    /// Returns [`NotInstalled`] when the worker binary, the virtual environment (or its stamp,
    /// written when the installation finished), `node` or the Node packages are missing.
    pub fn resolve(&self, at: &Locations) -> Result<Implementation, NotInstalled> {
        let missing = |reason: String, fix| NotInstalled {
            implementation: self.name.to_owned(),
            reason,
            fix,
        };
        match self.launch {
            Launch::Rust { binary, .. } => {
                if !self.exists_here() {
                    return Err(missing(
                        format!("{} exists on Unix only", self.package),
                        "run it on Linux or macOS",
                    ));
                }
                let exe = at
                    .bin_dir
                    .join(format!("{binary}{}", std::env::consts::EXE_SUFFIX));
                if !exe.is_file() {
                    return Err(missing(
                        format!("no worker binary at {}", exe.display()),
                        BUILD_WORKERS,
                    ));
                }
                Ok(Implementation::new(self.name, exe, &[]))
            }
            Launch::Python { venv, script } => {
                let python = at.python(venv);
                let env_dir = at.peers.join("python").join(venv);
                if !python.is_file() {
                    return Err(missing(
                        format!("no Python environment at {}", env_dir.display()),
                        INSTALL_PEERS,
                    ));
                }
                if !Locations::stamp(&env_dir).is_file() {
                    return Err(missing(
                        format!(
                            "the Python environment at {} was not finished",
                            env_dir.display()
                        ),
                        INSTALL_PEERS,
                    ));
                }
                let script = at.root.join("adapters").join("python").join(script);
                if !script.is_file() {
                    return Err(missing(
                        format!("no adapter at {}", script.display()),
                        "git checkout adapters/",
                    ));
                }
                // Isolated mode: no user site-packages, no PYTHON* variables, no script directory
                // on the path (the adapter adds its own directory for the shared module); and no
                // bytecode files written into the source tree.
                let mut imp = Implementation::new(self.name, python, &["-I", "-B"]);
                imp.args.push(script.into_os_string());
                Ok(imp)
            }
            Launch::Node { script } => {
                let Some(node) = find_program("node") else {
                    return Err(missing(
                        "`node` is not on the PATH (install Node.js)".into(),
                        INSTALL_PEERS,
                    ));
                };
                let packages = at.peers.join("node");
                if !Locations::stamp(&packages).is_file() {
                    return Err(missing(
                        format!("no Node packages at {}", packages.display()),
                        INSTALL_PEERS,
                    ));
                }
                let script = at.root.join("adapters").join("node").join(script);
                let mut imp = Implementation::new(self.name, node, &[]);
                imp.args.push(script.into_os_string());
                imp.args
                    .push(packages.join("node_modules").into_os_string());
                Ok(imp)
            }
        }
    }
}

/// The full path of `program` found on the `PATH`, if any.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(format!("{program}{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| candidate.is_file())
}

/// The built-in implementations that `names` names (as [`select`]), each resolved `at` its
/// location. One that is not installed here stays, as an implementation whose every test is an
/// error saying how to install it; `not_installed` hears of it first.
///
/// # Errors
///
/// As [`select`].
pub fn resolve_named(
    names: &[String],
    at: &Locations,
    mut not_installed: impl FnMut(&NotInstalled),
) -> Result<Vec<Implementation>, String> {
    let resolve = |b: &Builtin| {
        b.resolve(at).unwrap_or_else(|missing| {
            not_installed(&missing);
            missing.into_implementation()
        })
    };
    Ok(select(names)?.into_iter().map(resolve).collect())
}

/// The reference implementation's worker `at` its location: it calibrates the margins.
///
/// # Errors
///
/// Says so when the worker is not built.
pub fn reference(at: &Locations) -> Result<Implementation, String> {
    let reference = find("reference").ok_or("no built-in reference")?;
    reference.resolve(at).map_err(|e| e.to_string())
}

/// The built-in implementations that `spec` names: names separated by commas, or `all`.
///
/// # Errors
///
/// Returns a message naming the first unknown name and listing the known ones.
pub fn select(names: &[String]) -> Result<Vec<&'static Builtin>, String> {
    let mut out: Vec<&'static Builtin> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        if name == "all" {
            for b in BUILTINS {
                if !out.contains(&b) {
                    out.push(b);
                }
            }
            continue;
        }
        let found = find(name).ok_or_else(|| {
            format!(
                "unknown implementation {name:?}; built in: {}, or all (or use --worker 'CMD')",
                self::names()
            )
        })?;
        if !out.contains(&found) {
            out.push(found);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_plain() {
        let mut seen = std::collections::HashSet::new();
        for b in BUILTINS {
            assert!(seen.insert(b.name), "{} twice", b.name);
            assert!(
                b.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
                "{} is not a plain name",
                b.name
            );
        }
    }

    #[test]
    fn select_all_and_lists() {
        assert_eq!(select(&["all".into()]).unwrap().len(), BUILTINS.len());
        let two = select(&["fs4,std".into(), "fs4".into()]).unwrap();
        let names: Vec<&str> = two.iter().map(|b| b.name).collect();
        assert_eq!(names, ["fs4", "std"]);
        let error = select(&["nope".into()]).unwrap_err();
        assert!(
            error.contains("\"nope\"") && error.contains("locket"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_environment_names_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let at = Locations {
            bin_dir: tmp.path().join("debug"),
            root: tmp.path().to_owned(),
            peers: tmp.path().join("lockspec"),
        };
        for name in ["locket", "std"] {
            let error = find(name).unwrap().resolve(&at).unwrap_err();
            assert_eq!(error.implementation, name);
            let text = error.to_string();
            assert!(text.contains("not installed"), "{text}");
            assert!(text.contains(error.fix), "{text}");
            let imp = error.into_implementation();
            assert_eq!(imp.name, name);
            assert!(imp.unavailable.unwrap().contains("run `"));
        }
        assert_eq!(
            find("locket").unwrap().resolve(&at).unwrap_err().fix,
            INSTALL_PEERS
        );
    }

    #[test]
    fn peers_default_beside_the_binaries() {
        let at = Locations::new("/x/target/debug", "/x");
        if std::env::var_os(PEERS_DIR_ENV).is_none() {
            assert_eq!(at.peers, Path::new("/x/target/lockspec"));
        }
    }
}
