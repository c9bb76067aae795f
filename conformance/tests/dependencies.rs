//! The runner links no lock library but the reference: the peer libraries it judges are
//! dependencies of `peers/` alone, whose workers it starts as programs.

use std::process::Command;

/// The pinned peer libraries (`[workspace.dependencies]` of the root `Cargo.toml`).
const PEER_LIBRARIES: [&str; 5] = ["fs4", "fd-lock", "fslock", "file-lock", "named-lock"];

/// The package names in `cargo tree -p lockspec-conformance -e normal` for the host: the runner's
/// own dependencies, not those of its tests or build scripts. Offline, from `Cargo.lock` as it
/// is, so only the host's packages need to be there (CI runs this on Linux, Windows and macOS).
fn normal_dependencies() -> Vec<String> {
    let root = lockspec_conformance::suite::default_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["tree", "--offline", "--locked", "--quiet"])
        .args(["--package", "lockspec-conformance", "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}"]);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo tree: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed ({}):\n{}{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // Each line is `NAME vVERSION [(SOURCE)] [(*)]`.
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_runner_links_no_peer_library() {
    let packages = normal_dependencies();
    assert!(
        packages.iter().any(|p| p == "lockspec-conformance"),
        "cargo tree did not list the runner: {packages:?}"
    );
    assert!(
        packages.iter().any(|p| p == "lockspec-reference"),
        "the runner no longer depends on the reference: {packages:?}"
    );
    let linked: Vec<&str> = PEER_LIBRARIES
        .into_iter()
        .filter(|lib| packages.iter().any(|p| p == lib))
        .collect();
    assert!(
        linked.is_empty(),
        "the runner depends on the peer libraries {linked:?}; they belong to peers/"
    );
}
