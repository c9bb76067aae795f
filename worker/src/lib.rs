//! The worker side of the lockspec protocol.
