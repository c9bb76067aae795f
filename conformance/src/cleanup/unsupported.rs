//! Clean-up where there are no Unix signals and no `/proc`: nothing to sweep and no handler to
//! install (on Windows a job object kills each worker's tree, `process.rs`).

/// Kills nothing: there is no process table to search here.
pub fn sweep(_matches: &dyn Fn(&str) -> bool) -> usize {
    0
}

/// Installs nothing.
pub fn install() {}

/// Says every process may be alive: nothing is swept on a guess.
pub fn alive(_pid: u32) -> bool {
    true
}

/// Nothing to give back: permission bits are Unix's.
pub fn restore_permissions(_dir: &std::path::Path) {}

/// There is no cgroup to remove.
pub fn remove_run_group() {}

/// There is no cgroup to put workers in.
pub fn adopt(_pid: u32) {}

/// There is no cgroup of dead runs to sweep.
pub fn sweep_dead_groups() -> usize {
    0
}
