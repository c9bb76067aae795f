//! `cargo xtask test`: every test of the workspace, the way CI runs them.

/// The Python and Node peers that the conformance test (`peers/tests/conformance.rs`)
/// judges besides the Rust ones.
pub const TESTED_PEERS: &[&str] = &["locket"];

/// Installs the peers the tests judge, then runs `cargo nextest run --workspace ARGS`, then the
/// doctests (nextest does not run them). A peer that cannot be installed is not an error here:
/// its tests fail and say how to install it.
pub fn run(args: &[String]) -> Result<(), String> {
    let peers: Vec<String> = TESTED_PEERS.iter().map(|&p| p.to_owned()).collect();
    crate::peers::install(Some(&peers));
    crate::run(
        crate::cargo()
            .args(["nextest", "run", "--workspace"])
            .args(args),
    )?;
    crate::run(crate::cargo().args(["test", "--workspace", "--doc"]))
}
