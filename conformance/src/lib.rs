//! The lockspec conformance runner.
