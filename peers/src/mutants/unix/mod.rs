//! The mutants' locks, which are broken `flock` and `fcntl` locks and so exist on Unix only: the
//! model lock with its flaws (`model.rs`), the older hand-made mutants (`handmade.rs`), the system
//! calls they share (`sys.rs`), and the worker's backend that opens them.

mod handmade;
mod model;
mod sys;

use std::path::Path;
use std::time::Duration;

use lockspec_worker::{Backend, CAPABILITY_CALLBACK, Callback, Info, LockObject, Outcome};

use super::{Kind, Served};

/// The worker's backend: every lock object it opens has the bug of the mutant it serves.
#[derive(Debug, Clone, Copy)]
pub struct Mutants(pub Served);

impl Backend for Mutants {
    fn info(&self) -> Info {
        Info {
            implementation: self.0.to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            language: "rust".into(),
            capabilities: vec![CAPABILITY_CALLBACK.into()],
        }
    }

    fn open(
        &self,
        path: &Path,
        timeout: Option<Duration>,
        callback: Option<Callback>,
    ) -> Result<Box<dyn LockObject>, Outcome> {
        match self.0 {
            Served::Unbroken => Ok(Box::new(model::Model::open(None, path, timeout, callback)?)),
            Served::Mutant(mutant) => match mutant.kind {
                Kind::Model(flaw) => Ok(Box::new(model::Model::open(
                    Some(flaw),
                    path,
                    timeout,
                    callback,
                )?)),
                kind => handmade::open(kind, path, timeout, callback),
            },
        }
    }
}
