//! The lockspec command-line runner.
fn main() {}
