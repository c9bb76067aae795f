//! Deliberately broken locks, each correct but for one bug: the suite's test of itself.
//!
//! [`CATALOGUE`] lists every mutant with the sentences of `spec/SPEC.md` its bug breaks and the
//! scenarios that must reject it; `tests/mutants/` plays those scenarios against the mutant,
//! checks that every MUST and MUST NOT of the spec is broken by some mutant, and renders the
//! table `docs/mutants.md` from this catalogue.
//!
//! Most mutants are the *model* lock (`unix/model.rs`: the reference's design, small enough to read,
//! which passes the whole suite unbroken) with one [`Flaw`] switched on; the older ones are the
//! reference lock or a hand-made lock with one bug (`unix/handmade.rs`). `lockspec-worker-mutants
//! --mutant NAME` serves one of them as the implementation `mutant-NAME`, and `--unbroken` serves
//! the model without a flaw.

mod catalogue;
#[cfg(unix)]
mod unix;

use std::fmt;

pub use catalogue::CATALOGUE;

/// One deliberately broken lock.
#[derive(Debug, Clone, Copy)]
pub struct Mutant {
    /// Its name on the command line (`--mutant NAME`) and in reports (`mutant-NAME`).
    pub name: &'static str,
    /// What it does wrong, as a lowercase fragment ("a timed acquire gives up at twice its
    /// timeout").
    pub bug: &'static str,
    /// The sentences of the spec that the bug breaks: one, but for a few older mutants with a bug
    /// that breaks two rules at once.
    pub breaks: &'static [Break],
    /// How the lock is built.
    pub(crate) kind: Kind,
}

impl Mutant {
    /// Whether it is the model lock with one flaw (rather than an older, hand-made mutant).
    pub fn built_on_the_model(&self) -> bool {
        matches!(self.kind, Kind::Model(_))
    }
}

/// A sentence of `spec/SPEC.md` that a mutant breaks, and the scenarios that must reject it.
#[derive(Debug, Clone, Copy)]
pub struct Break {
    /// The rule, such as `REL-2`.
    pub rule: &'static str,
    /// The words of the rule that state what the mutant breaks: a quote of the rule's text
    /// (before its rationale) that occurs there once and holds exactly one MUST or MUST NOT.
    pub clause: &'static str,
    /// The IDs of the scenarios that must each fail the mutant at a step that checks `rule`.
    pub caught_by: &'static [&'static str],
}

/// How a mutant's lock is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// The model lock with one flaw.
    Model(Flaw),
    /// The reference lock, re-entrant for the thread that holds it.
    Reentrant,
    /// Per-process `fcntl` record locks on a descriptor per object, with no in-process table.
    PerProcessRecordLock,
    /// The reference lock, waiting forever whatever the timeout.
    TimeoutIgnored,
    /// The reference lock, making a single attempt whatever the timeout.
    TimeoutImmediate,
    /// The reference lock, answering every refused release `released`.
    ReleaseUnheldOk,
    /// The reference lock, deleting its file at every release.
    DeleteOnRelease,
    /// The reference lock, refusing a release from another thread than the acquiring one.
    ReleaseOtherThreadRefused,
    /// A lock whose descriptor leaks into children and whose release closes it.
    LeakToChild,
    /// A lock that is a word written in the lock file.
    LockInContents,
}

/// The one thing a mutant of the model lock does wrong. `unix/model.rs` tests each at the place where
/// the model would do the right thing; [`CATALOGUE`] says what each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Flaw {
    // Identity.
    OtherThreadPasses,
    ProcessLocal,
    BasenameKey,
    PathStringIdentity,
    LexicalPathIdentity,
    CanonicalPathIdentity,
    // Acquire.
    FreeAcquireSleeps,
    Poll500ms,
    UntimedPoll500ms,
    LockOnOpen,
    ClosedAfterRelease,
    // Timeouts.
    NoneIsTimeout(u64),
    ZeroFreeSlow,
    ZeroWaits,
    ZeroSleepsThenFails,
    GivesUpAtDouble,
    GivesUp100msLate,
    GivesUpAtHalf,
    DeadlineRestartsAfterInProcessWait,
    SleepsOutTimeout,
    FirstWaiterTimeout,
    FailedAcquireFrees,
    // Re-entrancy.
    HoldingThreadPasses,
    SharedObjectPasses,
    // Release.
    OtherThreadReleaseIgnored,
    OtherThreadReleaseKeepsMark,
    NeverHeldReleaseOk,
    UnheldReleaseLeaksProbe,
    SecondReleaseOk,
    SecondReleaseUnlocks,
    ProcessHolderReleaseOk,
    NeverHeldReleaseUnlocks,
    // Death.
    PidFile,
    WaiterTickets,
    // Lock file.
    FailedAcquireReplacesFile,
    RefusedReleaseReplacesFile,
    TruncateOnAcquire,
    FailedAcquireTruncates,
    RefusedReleaseTruncates,
    FcntlLock,
    SiblingFile,
    CloseUnlocks,
    // Inheritance.
    LeakedHandle,
    // Paths.
    MissingDirectoryIsContention,
    DirectoryOpenedReadOnly,
    PermissionIsContention,
    // Contention callback.
    CallbackEveryAttempt,
    CallbackOsOnly,
    CallbackAfterWait,
    CallbackOncePerObject,
    CallbackAfter500ms,
    CallbackReminder500ms,
    CallbackEveryAcquire,
    CallbackOnSingleAttempt,
    // Stress.
    RacyClaim,
}

/// The mutant called `name`.
pub fn find(name: &str) -> Option<&'static Mutant> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// What a worker serves: a mutant, or the model lock without a flaw.
#[derive(Debug, Clone, Copy)]
pub enum Served {
    /// A mutant of the catalogue.
    Mutant(&'static Mutant),
    /// The model lock with no flaw, which passes the suite: the base of the model's mutants.
    Unbroken,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Served::Mutant(m) => write!(f, "mutant-{}", m.name),
            Served::Unbroken => f.write_str("model-unbroken"),
        }
    }
}

/// How to call the worker.
pub fn usage() -> String {
    let names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
    format!(
        "usage: lockspec-worker-mutants --mutant NAME | --unbroken\nmutants: {}",
        names.join(", ")
    )
}

/// Parses `--mutant NAME`, `--mutant=NAME` or `--unbroken`.
///
/// # Errors
///
/// Returns a message when the arguments are anything else or name no mutant.
pub fn from_args(args: &[String]) -> Result<Served, String> {
    let name = match args {
        [flag] if flag == "--unbroken" => return Ok(Served::Unbroken),
        [flag, name] if flag == "--mutant" => name.as_str(),
        [arg] if arg.starts_with("--mutant=") => &arg["--mutant=".len()..],
        _ => {
            return Err(format!(
                "expected `--mutant NAME` or `--unbroken`, got {args:?}"
            ));
        }
    };
    find(name)
        .map(Served::Mutant)
        .ok_or_else(|| format!("no mutant is called {name:?}"))
}

#[cfg(unix)]
pub use unix::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(args: &[&str]) -> Vec<String> {
        args.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn every_name_parses_back_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for mutant in CATALOGUE {
            assert!(seen.insert(mutant.name), "{} twice", mutant.name);
            let parsed = from_args(&args(&["--mutant", mutant.name])).unwrap();
            assert!(matches!(parsed, Served::Mutant(m) if m.name == mutant.name));
            let joined = format!("--mutant={}", mutant.name);
            assert!(matches!(
                from_args(&args(&[&joined])),
                Ok(Served::Mutant(_))
            ));
        }
        assert!(matches!(
            from_args(&args(&["--unbroken"])),
            Ok(Served::Unbroken)
        ));
    }

    #[test]
    fn every_flaw_makes_one_mutant() {
        let mut seen = std::collections::HashSet::new();
        for mutant in CATALOGUE {
            assert!(seen.insert(mutant.kind), "{} repeats a bug", mutant.name);
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(from_args(&args(&[])).is_err());
        assert!(from_args(&args(&["--mutant"])).is_err());
        assert!(from_args(&args(&["--mutant", "nope"])).is_err());
        assert!(from_args(&args(&["reentrant"])).is_err());
    }
}
