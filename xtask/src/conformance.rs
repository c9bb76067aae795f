//! `cargo xtask conformance`: builds the runner and the workers, then runs the suite.

/// Builds `lockspec` and the Rust workers, then runs `lockspec` with `args`.
pub fn run(args: &[String]) -> Result<(), String> {
    // `--target windows`: the Windows lane, under Wine on Linux.
    if let Some(rest) = crate::windows::lane_args(args)? {
        return crate::windows::run(&rest);
    }
    // The Python and Node peers that --impl names; one that fails to install is reported by
    // the runner as not installed, for its own tests only.
    let peers = crate::peers::named_in(args);
    if !peers.is_empty() {
        crate::peers::install(Some(&peers));
    }
    let exe = crate::build_conformance_bin("lockspec")?;
    let status = crate::run_built(&exe, args)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the conformance run failed ({status})"))
    }
}
