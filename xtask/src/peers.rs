//! `cargo xtask peers`: installs the Python and Node peers under `target/lockspec/`, once.
//!
//! Each Python peer gets its own virtual environment, `target/lockspec/python/NAME/`, with the
//! pinned packages of `adapters/python/requirements/NAME.txt` (installed with `--no-deps`, so
//! that every package is pinned there). The Node peers share `target/lockspec/node/`, installed
//! with `npm ci` from `adapters/node/package.json` and its lock file. A stamp file records what
//! was installed; while it matches, nothing is done again. A failure is reported for the peers
//! it concerns, and the others are still installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file written last into a finished environment: the pinned set it holds. The runner's
/// registry (`conformance/src/implementations.rs`) looks for the same name.
const STAMP: &str = "lockspec-stamp.txt";

/// What installing one peer (or the Node packages) came to.
#[derive(Debug)]
pub struct Outcome {
    /// The peers concerned.
    pub names: Vec<String>,
    /// `Ok(true)`: installed now; `Ok(false)`: already up to date; `Err`: why it failed.
    pub result: Result<bool, String>,
}

/// `cargo xtask peers [NAME...]`: installs the named peers (default: all of them) and fails if
/// any could not be installed.
pub fn run(args: &[String]) -> Result<(), String> {
    let wanted: Vec<String> = args.to_vec();
    let known = all_names();
    if let Some(unknown) = wanted.iter().find(|w| !known.contains(w)) {
        return Err(format!(
            "`{unknown}` is not a Python or Node peer; they are: {}",
            known.join(", ")
        ));
    }
    let outcomes = install(if wanted.is_empty() {
        None
    } else {
        Some(&wanted)
    });
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        let names: Vec<&str> = failed
            .iter()
            .flat_map(|o| &o.names)
            .map(String::as_str)
            .collect();
        Err(format!(
            "not installed (see above): {}; the other peers are",
            names.join(", ")
        ))
    }
}

/// The names of the Python peers (one requirements file each) and the Node peers (one adapter
/// script each, `proper_lockfile.js` naming `proper-lockfile`).
pub fn all_names() -> Vec<String> {
    let mut names = python_names();
    names.extend(node_names());
    names
}

fn python_names() -> Vec<String> {
    stems(&crate::root().join("adapters/python/requirements"), "txt")
}

fn node_names() -> Vec<String> {
    stems(&crate::root().join("adapters/node"), "js")
        .into_iter()
        .map(|s| s.replace('_', "-"))
        .collect()
}

/// The sorted stems of the files in `dir` that end in `.ext`.
fn stems(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    names
}

/// Installs the peers in `only` (all when `None`), printing one line per peer, and returns what
/// happened to each. Never fails as a whole: a failure is an [`Outcome`] of its own.
pub fn install(only: Option<&[String]>) -> Vec<Outcome> {
    let wanted = |name: &str| only.is_none_or(|names| names.iter().any(|n| n == name));
    let dir = crate::target_dir().join("lockspec");
    let mut outcomes = Vec::new();
    let python = python_names();
    if python.iter().any(|n| wanted(n)) {
        let interpreter = find_python();
        for name in python.iter().filter(|n| wanted(n)) {
            let result = match &interpreter {
                Ok((program, version)) => {
                    install_python(name, program, version, &dir.join("python").join(name))
                }
                Err(e) => Err(e.clone()),
            };
            outcomes.push(report(vec![name.clone()], result));
        }
    }
    let node: Vec<String> = node_names().into_iter().filter(|n| wanted(n)).collect();
    if !node.is_empty() {
        let result = install_node(&dir.join("node"));
        outcomes.push(report(node, result));
    }
    outcomes
}

fn report(names: Vec<String>, result: Result<bool, String>) -> Outcome {
    let what = names.join(", ");
    match &result {
        Ok(true) => eprintln!("peers: {what}: installed"),
        Ok(false) => eprintln!("peers: {what}: up to date"),
        Err(e) => eprintln!("peers: {what}: NOT INSTALLED: {e}"),
    }
    Outcome { names, result }
}

/// The Python interpreter that creates the environments and its version line:
/// `LOCKSPEC_PYTHON` if set, else the first `python3` (`python` on Windows) on the `PATH` that
/// every user can run, else the first one. The environments' interpreter is a link to it, and
/// scenarios that need enforced file permissions run their workers as an unprivileged user when
/// the runner is root: an interpreter under a private home directory would make them not
/// applicable.
fn find_python() -> Result<(String, String), String> {
    let program = match std::env::var("LOCKSPEC_PYTHON") {
        Ok(program) => program,
        Err(_) => {
            let name = if cfg!(windows) {
                "python.exe"
            } else {
                "python3"
            };
            let candidates: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).map(|d| d.join(name)).collect())
                .unwrap_or_default();
            let found = candidates.iter().filter(|c| c.is_file());
            let mut usable = found.clone().filter(|c| runnable_by_all(c));
            match usable.next().or_else(|| found.clone().next()) {
                Some(path) => path.display().to_string(),
                None => name.trim_end_matches(".exe").to_owned(),
            }
        }
    };
    let output = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| {
            format!("cannot run `{program}` ({e}): install Python 3 or set LOCKSPEC_PYTHON")
        })?;
    if !output.status.success() {
        return Err(format!("`{program} --version` failed ({})", output.status));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((program, version))
}

/// Whether every user can reach and run `program`: the file it leads to is executable by others
/// and so is every directory above it.
#[cfg(unix)]
fn runnable_by_all(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(real) = fs::canonicalize(program) else {
        return false;
    };
    real.ancestors()
        .all(|p| fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

#[cfg(not(unix))]
fn runnable_by_all(_program: &Path) -> bool {
    true
}

/// Creates the environment `env` with the pinned packages of peer `name`, unless its stamp says
/// it already has them.
fn install_python(name: &str, python: &str, version: &str, env: &Path) -> Result<bool, String> {
    let requirements = crate::root()
        .join("adapters/python/requirements")
        .join(format!("{name}.txt"));
    let pins = fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = format!("{version}\n{pins}");
    if fs::read_to_string(env.join(STAMP)).is_ok_and(|s| s == stamp) {
        return Ok(false);
    }
    if env.exists() {
        fs::remove_dir_all(env).map_err(|e| format!("cannot remove {}: {e}", env.display()))?;
    }
    quiet(
        Command::new(python)
            .args(["-m", "venv", "--without-pip"])
            .arg(env),
    )?;
    let interpreter = if cfg!(windows) {
        env.join("Scripts").join("python.exe")
    } else {
        env.join("bin").join("python")
    };
    // The outer pip installs into the environment (pip 22.3 or later), so that the environment
    // needs no pip of its own.
    quiet(
        Command::new(python)
            .args(["-m", "pip", "--disable-pip-version-check", "--python"])
            .arg(&interpreter)
            .args(["install", "--quiet", "--no-deps", "--requirement"])
            .arg(&requirements),
    )?;
    write_stamp(env, &stamp)
}

/// Installs the Node packages into `dir` with `npm ci`, unless its stamp says they are there.
fn install_node(dir: &Path) -> Result<bool, String> {
    let source = crate::root().join("adapters/node");
    let read = |file: &str| {
        fs::read_to_string(source.join(file))
            .map_err(|e| format!("cannot read adapters/node/{file}: {e}"))
    };
    let (manifest, lock) = (read("package.json")?, read("package-lock.json")?);
    let stamp = format!("{manifest}{lock}");
    if fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == stamp) {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (file, text) in [("package.json", &manifest), ("package-lock.json", &lock)] {
        fs::write(dir.join(file), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))?;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    quiet(
        Command::new(npm)
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .current_dir(dir),
    )
    .map_err(|e| format!("{e} (is Node.js with npm installed?)"))?;
    write_stamp(dir, &stamp)
}

fn write_stamp(dir: &Path, stamp: &str) -> Result<bool, String> {
    let path: PathBuf = dir.join(STAMP);
    fs::write(&path, stamp).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

/// Runs a command, keeping its output unless it fails, when the error carries its last lines.
fn quiet(cmd: &mut Command) -> Result<(), String> {
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{cmd:?} failed with {}:\n    {}",
        output.status,
        tail.join("\n    ")
    ))
}

/// The peers that the runner arguments `args` name with `--impl` (`all` names every one).
pub fn named_in(args: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--impl" {
            values.extend(iter.next().cloned());
        } else if let Some(value) = arg.strip_prefix("--impl=") {
            values.push(value.to_owned());
        }
    }
    let known = all_names();
    let mut named = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if name == "all" {
            return known;
        }
        if known.iter().any(|k| k == name) && !named.iter().any(|n| n == name) {
            named.push(name.to_owned());
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn impl_arguments_name_the_peers_to_install() {
        assert!(named_in(&args(&["--impl", "reference,std"])).is_empty());
        assert_eq!(
            named_in(&args(&["--impl", "std,locket", "--impl=proper-lockfile"])),
            ["locket", "proper-lockfile"]
        );
        assert_eq!(named_in(&args(&["--impl", "all"])), all_names());
        assert!(named_in(&args(&["--worker", "python3 x.py"])).is_empty());
    }

    #[test]
    fn the_peers_are_found_in_the_source_tree() {
        let names = all_names();
        for expected in ["locket", "locket-0.2", "locks", "proper-lockfile"] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
    }
}
