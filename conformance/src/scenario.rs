//! Scenario files: their strict data model, loading, and the checks that run before any worker.
//!
//! The format is specified in `spec/SCENARIOS.md`; `spec/scenario.schema.json` says the same in
//! JSON Schema. Every error names the file, the line and the column.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::locate::locate;
use crate::timing::{Timeout, Window};

mod check;

use check::check;

/// One scenario, loaded and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Permanent ID, `area::name`, derived from the file's place under `scenarios/`.
    pub id: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The statement the scenario demonstrates.
    pub description: String,
    /// IDs of the rules it checks; the first is its primary rule.
    pub rules: Vec<String>,
    /// Capabilities and environment conditions it needs.
    pub requires: Vec<Requirement>,
    /// Names of its worker processes.
    pub processes: Vec<String>,
    /// What happens, in order.
    pub steps: Vec<Step>,
    /// The rule each step checks, in the order of `steps`: the step's own `rule`, else the
    /// primary rule.
    pub step_rules: Vec<String>,
    /// Whether it belongs to the quick tier or the slow one.
    pub tier: Tier,
}

/// The tier of a scenario: `slow` ones wait for tens of seconds (`--tier` selects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Seconds at most.
    #[default]
    Fast,
    /// Tens of seconds: waits that outlast the default timeouts of libraries.
    Slow,
}

impl Tier {
    /// The name used in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Slow => "slow",
        }
    }
}

impl Scenario {
    /// The primary rule: the first of `rules`, checked by every step that names no other.
    pub fn primary(&self) -> &str {
        &self.rules[0]
    }

    /// The rule that step `i` (counting from 0) checks.
    pub fn rule_of(&self, i: usize) -> &str {
        self.step_rules
            .get(i)
            .map_or_else(|| self.primary(), String::as_str)
    }

    /// The steps (counting from 0) that check `rule`.
    pub fn steps_checking<'a>(&'a self, rule: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.step_rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| *r == rule)
            .map(|(i, _)| i)
    }
}

/// The top level of a scenario file, exactly as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: String,
    rules: Vec<String>,
    #[serde(default)]
    requires: Vec<Requirement>,
    processes: Vec<String>,
    steps: Vec<StepFile>,
    #[serde(default)]
    tier: Tier,
}

/// One step as written: what happens, and the rule it checks if it names one. The rule is a
/// field of every kind of step, so it is kept here rather than in each variant of [`Step`],
/// whose own fields stay strict (`deny_unknown_fields`).
#[derive(Debug, Deserialize)]
struct StepFile {
    #[serde(default)]
    rule: Option<String>,
    #[serde(flatten)]
    step: Step,
}

/// Something a scenario needs from the worker or the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// The worker declares the `callback` capability.
    Callback,
    /// File permissions are enforced for the workers (they do not run as root).
    Unprivileged,
    /// An acquire can be made through an object that holds the lock: met unless the worker
    /// declares `no_acquire_held` (a guard borrowed mutably from the object forbids it).
    AcquireHeld,
    /// A release can be made through an object that does not hold the lock: met unless the
    /// worker declares `no_release_unheld` (releasing is dropping a guard, and there is none).
    ReleaseUnheld,
    /// A release can be made on another thread than the acquire: met unless the worker declares
    /// `no_release_any_thread` (the guard cannot leave the thread that acquired).
    ReleaseAnyThread,
}

impl Requirement {
    /// The name used in scenario files and in the protocol's capability list.
    pub fn name(self) -> &'static str {
        match self {
            Requirement::Callback => "callback",
            Requirement::Unprivileged => "unprivileged",
            Requirement::AcquireHeld => "acquire_held",
            Requirement::ReleaseUnheld => "release_unheld",
            Requirement::ReleaseAnyThread => "release_any_thread",
        }
    }

    /// The capability by which a worker declares that its library's API cannot express this
    /// (`no_` and the name), for the requirements that hold unless declared absent.
    pub fn absence(self) -> Option<&'static str> {
        match self {
            Requirement::Callback | Requirement::Unprivileged => None,
            Requirement::AcquireHeld => Some("no_acquire_held"),
            Requirement::ReleaseUnheld => Some("no_release_unheld"),
            Requirement::ReleaseAnyThread => Some("no_release_any_thread"),
        }
    }

    /// Whether a worker whose `hello` declared `capabilities` meets this requirement. The
    /// environment's condition (`unprivileged`) is the runner's business and always counts as met.
    pub fn met_by(self, capabilities: &[&str]) -> bool {
        match self {
            Requirement::Unprivileged => true,
            Requirement::Callback => capabilities.contains(&self.name()),
            _ => self
                .absence()
                .is_none_or(|absent| !capabilities.contains(&absent)),
        }
    }

    /// Why a scenario with this requirement is skipped when it is not met.
    pub fn unmet(self) -> String {
        match self.absence() {
            Some(absent) => {
                format!("the implementation declares `{absent}`: its API cannot express this use")
            }
            None => format!(
                "the implementation does not declare the capability `{}`",
                self.name()
            ),
        }
    }
}

/// An outcome kind of the protocol.
pub use lockspec_protocol::Kind;

/// What a step expects: a set of allowed outcome kinds, or that the operation blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No reply within the settle window; the operation stays pending until an `await`.
    Blocks,
    /// The reply's outcome is one of these.
    OneOf(BTreeSet<Kind>),
}

impl Expect {
    fn ok() -> Expect {
        Expect::OneOf(BTreeSet::from([Kind::Ok]))
    }

    /// Whether `kind` is an allowed outcome.
    pub fn allows(&self, kind: Kind) -> bool {
        matches!(self, Expect::OneOf(set) if set.contains(&kind))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Blocks => f.write_str("blocks"),
            Expect::OneOf(set) => {
                let names: Vec<_> = set.iter().map(|k| k.as_str()).collect();
                f.write_str(&names.join(" or "))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Expect, D::Error> {
        struct ExpectVisitor;

        const EXPECTED: &str = "an outcome kind, \"blocks\", or a non-empty list of outcome kinds";

        fn kind<E: de::Error>(s: &str) -> Result<Kind, E> {
            Kind::parse(s).filter(|k| *k != Kind::Hello).ok_or_else(|| {
                let names: Vec<_> = Kind::OPERATION_OUTCOMES
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                E::custom(format!(
                    "unknown outcome kind `{s}`, expected one of: blocks, {}",
                    names.join(", ")
                ))
            })
        }

        impl<'de> Visitor<'de> for ExpectVisitor {
            type Value = Expect;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Expect, E> {
                if s == "blocks" {
                    return Ok(Expect::Blocks);
                }
                Ok(Expect::OneOf(BTreeSet::from([kind(s)?])))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Expect, A::Error> {
                let mut set = BTreeSet::new();
                while let Some(s) = seq.next_element::<String>()? {
                    if s == "blocks" {
                        return Err(de::Error::custom("\"blocks\" cannot be part of a list"));
                    }
                    set.insert(kind(&s)?);
                }
                if set.is_empty() {
                    return Err(de::Error::custom(format!(
                        "empty list, expected {EXPECTED}"
                    )));
                }
                Ok(Expect::OneOf(set))
            }
        }

        deserializer.deserialize_any(ExpectVisitor)
    }
}

fn main_thread() -> String {
    "main".to_owned()
}

/// One step of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// The worker creates a lock object.
    Open {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        handle: String,
        path: String,
        #[serde(default)]
        timeout: Timeout,
        #[serde(default)]
        callback: bool,
        #[serde(default = "Expect::ok")]
        expect: Expect,
    },
    /// The worker acquires through a lock object.
    Acquire {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        handle: String,
        expect: Expect,
        within: Option<Window>,
    },
    /// The worker releases through a lock object.
    Release {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        handle: String,
        expect: Expect,
        within: Option<Window>,
    },
    /// The worker drops a lock object.
    Close {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        handle: String,
    },
    /// The worker opens a plain handle on a file.
    FileOpen {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        file: String,
        path: String,
    },
    /// The worker closes a plain handle.
    FileClose {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        file: String,
    },
    /// The worker starts an idle child process.
    SpawnChild {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        child: String,
    },
    /// The runner waits for the reply to a pending operation.
    Await {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        expect: Expect,
        within: Option<Window>,
    },
    /// The pending operation must still be unanswered after a window.
    ExpectBlocked {
        process: String,
        #[serde(default = "main_thread")]
        thread: String,
        #[serde(rename = "for")]
        window: Window,
    },
    /// The contention callback of a handle has been called exactly `count` times.
    ExpectCallbacks {
        process: String,
        handle: String,
        count: u32,
    },
    /// The runner kills a worker.
    Kill { process: String },
    /// The runner writes a file.
    WriteFile { path: String, content: String },
    /// The runner checks a file.
    CheckFile {
        path: String,
        exists: bool,
        content: Option<String>,
        /// A name for the file's identity (device and inode): the first check that gives the
        /// name records it, and every later one asserts the file is still that same file.
        identity: Option<String>,
    },
    /// The runner creates a hard link `path` to the file `target`: a second name for one file.
    HardLink { path: String, target: String },
    /// The runner creates a directory.
    Mkdir { path: String, mode: Option<String> },
    /// The runner creates a symbolic link to a directory.
    Symlink { path: String, target: String },
    /// The runner plays a randomized stress run with fresh workers, one per process of the
    /// scenario, and checks that there were never two holders at once.
    Stress {
        duration: StressDuration,
        /// The seed of every random choice of the run.
        seed: u64,
    },
}

/// How long a `stress` step starts new operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StressDuration {
    /// About a second and a half: [`crate::stress::SHORT`].
    Short,
}

impl StressDuration {
    /// The name used in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            StressDuration::Short => "short",
        }
    }

    /// How long it is.
    pub fn length(self) -> std::time::Duration {
        match self {
            StressDuration::Short => crate::stress::SHORT,
        }
    }
}

impl Step {
    /// The worker process a step concerns, if any.
    pub fn process(&self) -> Option<&str> {
        match self {
            Step::Open { process, .. }
            | Step::Acquire { process, .. }
            | Step::Release { process, .. }
            | Step::Close { process, .. }
            | Step::FileOpen { process, .. }
            | Step::FileClose { process, .. }
            | Step::SpawnChild { process, .. }
            | Step::Await { process, .. }
            | Step::ExpectBlocked { process, .. }
            | Step::ExpectCallbacks { process, .. }
            | Step::Kill { process } => Some(process),
            Step::WriteFile { .. }
            | Step::CheckFile { .. }
            | Step::HardLink { .. }
            | Step::Mkdir { .. }
            | Step::Symlink { .. }
            | Step::Stress { .. } => None,
        }
    }

    /// The thread a step concerns, if it concerns one.
    pub fn thread(&self) -> Option<&str> {
        match self {
            Step::Open { thread, .. }
            | Step::Acquire { thread, .. }
            | Step::Release { thread, .. }
            | Step::Close { thread, .. }
            | Step::FileOpen { thread, .. }
            | Step::FileClose { thread, .. }
            | Step::SpawnChild { thread, .. }
            | Step::Await { thread, .. }
            | Step::ExpectBlocked { thread, .. } => Some(thread),
            _ => None,
        }
    }

    /// A short human-readable form, for reports: `acquire p2/main a`.
    pub fn summary(&self) -> String {
        let at = |p: &str, t: &str| format!("{p}/{t}");
        match self {
            Step::Open {
                process,
                thread,
                handle,
                path,
                timeout,
                ..
            } => format!(
                "open {} {handle} on {path:?} (timeout {})",
                at(process, thread),
                timeout.name()
            ),
            Step::Acquire {
                process,
                thread,
                handle,
                ..
            } => format!("acquire {} {handle}", at(process, thread)),
            Step::Release {
                process,
                thread,
                handle,
                ..
            } => format!("release {} {handle}", at(process, thread)),
            Step::Close {
                process,
                thread,
                handle,
            } => format!("close {} {handle}", at(process, thread)),
            Step::FileOpen {
                process,
                thread,
                file,
                path,
            } => format!("file_open {} {file} on {path:?}", at(process, thread)),
            Step::FileClose {
                process,
                thread,
                file,
            } => format!("file_close {} {file}", at(process, thread)),
            Step::SpawnChild {
                process,
                thread,
                child,
            } => format!("spawn_child {} {child}", at(process, thread)),
            Step::Await {
                process, thread, ..
            } => format!("await {}", at(process, thread)),
            Step::ExpectBlocked {
                process,
                thread,
                window,
            } => format!(
                "expect_blocked {} for {}",
                at(process, thread),
                window.name()
            ),
            Step::ExpectCallbacks {
                process,
                handle,
                count,
            } => format!("expect_callbacks {process} {handle} = {count}"),
            Step::Kill { process } => format!("kill {process}"),
            Step::WriteFile { path, .. } => format!("write_file {path:?}"),
            Step::CheckFile { path, exists, .. } => {
                format!("check_file {path:?} (exists: {exists})")
            }
            Step::Mkdir { path, .. } => format!("mkdir {path:?}"),
            Step::Symlink { path, target } => format!("symlink {path:?} -> {target:?}"),
            Step::HardLink { path, target } => format!("hard_link {path:?} -> {target:?}"),
            Step::Stress { duration, seed } => {
                format!("stress ({}, seed {seed})", duration.name())
            }
        }
    }
}

/// A scenario file that cannot be used, with the place that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for LoadError {}

/// A piece of a JSON pointer: an object key or an array index.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Parses and checks one scenario file's text. `known_rules` are the rule IDs of the spec.
///
/// # Errors
///
/// Returns the first problem found: JSON syntax, the data model (unknown field, wrong type), or a
/// step that cannot happen (unknown process, handle or rule, an expectation no implementation
/// could meet).
pub fn parse(
    id: &str,
    file: &Path,
    text: &str,
    known_rules: &HashSet<String>,
) -> Result<Scenario, LoadError> {
    let raw: ScenarioFile = serde_json::from_str(text).map_err(|e| {
        let message = e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        let (line, column) = if e.is_data() {
            refine(text, &message).unwrap_or((e.line(), e.column()))
        } else {
            // serde_json counts a position before the first character of a line (an empty
            // file) as column 0, which here means "unknown".
            (e.line(), e.column().max(1))
        };
        LoadError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })?;
    let primary = raw.rules.first().cloned().unwrap_or_default();
    let (steps, step_rules) = raw
        .steps
        .into_iter()
        .map(|s| (s.step, s.rule.unwrap_or_else(|| primary.clone())))
        .unzip();
    let scenario = Scenario {
        id: id.to_owned(),
        file: file.to_owned(),
        description: raw.description,
        rules: raw.rules,
        requires: raw.requires,
        processes: raw.processes,
        steps,
        step_rules,
        tier: raw.tier,
    };
    check(&scenario, known_rules).map_err(|(pointer, message)| {
        let (line, column) = locate(text, &pointer).unwrap_or((0, 0));
        LoadError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })?;
    Ok(scenario)
}

/// Finds a better place for a data error than serde's, which points at the end of a step for
/// errors inside it: the step that fails on its own, and the field the message names.
fn refine(text: &str, message: &str) -> Option<(usize, usize)> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let steps = value.get("steps")?.as_array()?;
    let i = steps
        .iter()
        .position(|step| StepFile::deserialize(step).is_err())?;
    let mut path = vec![Seg::Key("steps".into()), Seg::Index(i)];
    let named = message.split('`').nth(1).unwrap_or_default();
    if message.starts_with("unknown field") && steps[i].get(named).is_some() {
        path.push(Seg::Key(named.to_owned()));
    } else if message.starts_with("unknown outcome kind") || message.contains("list") {
        path.push(Seg::Key("expect".into()));
    }
    locate(text, &path)
}

/// Parses an octal permission string such as `"0555"`.
pub fn parse_mode(mode: &str) -> Option<u32> {
    if mode.is_empty() || mode.len() > 4 {
        return None;
    }
    u32::from_str_radix(mode, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn rules() -> HashSet<String> {
        ["IDN-1", "IDN-2"].iter().map(|s| s.to_string()).collect()
    }

    /// A scenario that loads, and that the cases below break one way each.
    const GOOD: &str = include_str!("../tests/fixtures/good_scenario.json");

    #[test]
    fn a_good_scenario_parses() {
        let s = parse("identity::x", Path::new("x.json"), GOOD, &rules()).unwrap();
        assert_eq!(s.steps.len(), 7);
        assert!(
            matches!(&s.steps[3], Step::Acquire { expect: Expect::Blocks, thread, .. } if thread == "main")
        );
        assert_eq!(
            s.step_rules, ["IDN-2"; 7],
            "every step checks the primary rule"
        );
    }

    #[test]
    fn a_step_checks_the_rule_it_names_else_the_primary() {
        let text = GOOD
            .replacen(r#"["IDN-2"]"#, r#"["IDN-2", "IDN-1"]"#, 1)
            .replacen(
                r#""expect": "released"}"#,
                r#""expect": "released", "rule": "IDN-1"}"#,
                1,
            );
        let s = parse("identity::x", Path::new("x.json"), &text, &rules()).unwrap();
        assert_eq!(s.primary(), "IDN-2");
        assert_eq!(s.rule_of(3), "IDN-2");
        assert_eq!(s.rule_of(4), "IDN-1");
        assert_eq!(s.steps_checking("IDN-1").collect::<Vec<_>>(), [4]);
        assert_eq!(s.steps_checking("IDN-2").count(), 6);
    }

    #[rstest]
    #[case::syntax(r#""rules": ["IDN-2"],"#, r#""rules": ["IDN-2"]"#, 4, "expected")]
    #[case::unknown_field(r#""processes""#, r#""procs""#, 4, "unknown field `procs`")]
    #[case::unknown_rule(r#"["IDN-2"]"#, r#"["IDN-9"]"#, 3, "rule `IDN-9` is not defined")]
    #[case::unknown_process(
        r#""process": "p2", "handle": "a", "path""#,
        r#""process": "p3", "handle": "a", "path""#,
        8,
        "unknown process `p3`"
    )]
    #[case::unknown_handle(
        r#""process": "p1", "handle": "a", "expect": "released""#,
        r#""process": "p1", "handle": "b", "expect": "released""#,
        10,
        "handle `b` is not open"
    )]
    #[case::unknown_kind(
        r#""expect": "acquired"}"#,
        r#""expect": "aquired"}"#,
        7,
        "unknown outcome kind `aquired`"
    )]
    #[case::impossible_timeout(
        r#""handle": "a", "expect": "acquired"}"#,
        r#""handle": "a", "expect": "timed_out"}"#,
        7,
        "can never time out"
    )]
    #[case::await_nothing(
        r#""await", "process": "p2""#,
        r#""await", "process": "p1""#,
        11,
        "nothing is pending"
    )]
    #[case::release_blocks(
        r#""expect": "released""#,
        r#""expect": "blocks""#,
        10,
        "only `acquire` can be expected to block"
    )]
    #[case::step_rule_not_cited(
        r#""expect": "blocks"}"#,
        r#""expect": "blocks", "rule": "IDN-1"}"#,
        9,
        "the step checks rule `IDN-1`, which the scenario does not cite"
    )]
    #[case::rule_checked_by_no_step(
        r#"["IDN-2"]"#,
        r#"["IDN-2", "IDN-1"]"#,
        3,
        "no step checks rule `IDN-1`"
    )]
    #[case::step_rule_misspelt(
        r#""expect": "blocks"}"#,
        r#""expect": "blocks", "rules": "IDN-2"}"#,
        9,
        "unknown field `rules`"
    )]
    fn a_bad_scenario_names_the_line(
        #[case] from: &str,
        #[case] to: &str,
        #[case] line: usize,
        #[case] message: &str,
    ) {
        assert!(GOOD.contains(from), "test case does not apply: {from}");
        let text = GOOD.replacen(from, to, 1);
        let err = parse("identity::x", Path::new("x.json"), &text, &rules()).unwrap_err();
        assert_eq!(err.line, line, "{err}");
        assert!(err.column > 0, "{err}");
        assert!(err.message.contains(message), "{err}");
        assert!(
            err.to_string().starts_with(&format!("x.json:{line}:")),
            "{err}"
        );
    }
}
