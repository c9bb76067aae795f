//! `cargo xtask`: lockspec tasks.
fn main() {}
