//! `cargo xtask test`: every test of the workspace, the way CI runs them.

/// Runs `cargo nextest run --workspace ARGS`, then the doctests (nextest does not run them).
pub fn run(args: &[String]) -> Result<(), String> {
    crate::run(
        crate::cargo()
            .args(["nextest", "run", "--workspace"])
            .args(args),
    )?;
    crate::run(crate::cargo().args(["test", "--workspace", "--doc"]))
}
