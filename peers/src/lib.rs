//! The library side of `lockspec-peers`: the deliberately broken locks that
//! `lockspec-worker-mutants` serves, with their catalogue, so that the tests that judge them
//! (`tests/mutants/`) read the same catalogue as the worker.

pub mod mutants;
