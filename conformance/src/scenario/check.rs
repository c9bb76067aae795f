//! The checks a scenario gets at load time, before any worker starts: the ones serde cannot make,
//! that names exist and that every step can happen.

use std::collections::{HashMap, HashSet};

use super::{Expect, Kind, Requirement, Scenario, Seg, Step, parse_mode};
use crate::timing::Timeout;

/// Where a check failed, as a JSON pointer, and why.
pub(super) type CheckError = (Vec<Seg>, String);

/// The checks serde cannot make: names that must exist and steps that must be possible.
pub(super) fn check(s: &Scenario, known_rules: &HashSet<String>) -> Result<(), CheckError> {
    check_rules(s, known_rules)?;
    check_processes(s)?;
    check_steps(s)?;
    check_modes(s)
}

/// A non-empty description, rules the spec defines, and every step's rule cited by the scenario
/// and every cited rule but the primary checked by some step.
fn check_rules(s: &Scenario, known_rules: &HashSet<String>) -> Result<(), CheckError> {
    let at = |segs: &[Seg], msg: String| -> CheckError { (segs.to_vec(), msg) };
    if s.description.trim().is_empty() {
        return Err(at(
            &[Seg::Key("description".into())],
            "empty description".into(),
        ));
    }
    if s.rules.is_empty() {
        return Err(at(
            &[Seg::Key("rules".into())],
            "no rules: a scenario must cite at least one rule of spec/SPEC.md".into(),
        ));
    }
    for (i, rule) in s.rules.iter().enumerate() {
        if !known_rules.contains(rule) {
            return Err(at(
                &[Seg::Key("rules".into()), Seg::Index(i)],
                format!("rule `{rule}` is not defined in spec/SPEC.md"),
            ));
        }
    }
    for (i, rule) in s.step_rules.iter().enumerate() {
        if !s.rules.contains(rule) {
            return Err(at(
                &[
                    Seg::Key("steps".into()),
                    Seg::Index(i),
                    Seg::Key("rule".into()),
                ],
                format!(
                    "the step checks rule `{rule}`, which the scenario does not cite; \
                     expected one of: {}",
                    s.rules.join(", ")
                ),
            ));
        }
    }
    for (i, rule) in s.rules.iter().enumerate().skip(1) {
        if !s.step_rules.contains(rule) {
            return Err(at(
                &[Seg::Key("rules".into()), Seg::Index(i)],
                format!(
                    "no step checks rule `{rule}`: give the steps that check it \
                     `\"rule\": \"{rule}\"` (a step without one checks `{}`, the first rule)",
                    s.rules[0]
                ),
            ));
        }
    }
    Ok(())
}

/// At least one process, each declared once.
fn check_processes(s: &Scenario) -> Result<(), CheckError> {
    if s.processes.is_empty() {
        return Err((
            vec![Seg::Key("processes".into())],
            "no processes: expected at least one".into(),
        ));
    }
    let mut procs = HashSet::new();
    for (i, p) in s.processes.iter().enumerate() {
        if !procs.insert(p.as_str()) {
            return Err((
                vec![Seg::Key("processes".into()), Seg::Index(i)],
                format!("process `{p}` is declared twice"),
            ));
        }
    }
    Ok(())
}

/// What a process has at some step of the scenario, as far as the checks follow it.
#[derive(Default)]
struct Proc {
    dead: bool,
    /// Open handles: name -> (timeout, callback).
    handles: HashMap<String, (Timeout, bool)>,
    files: HashSet<String>,
    children: HashSet<String>,
    /// Threads with a pending operation: thread -> handle.
    pending: HashMap<String, String>,
}

impl Proc {
    fn pending_on(&self, thread: &str) -> bool {
        self.pending.contains_key(thread)
    }
}

/// The step being checked: its place in the scenario and the process it runs in.
struct At<'a> {
    i: usize,
    step: &'a Step,
    pname: &'a str,
}

impl At<'_> {
    /// The pointer to a field of the step.
    fn here(&self, field: &str) -> Vec<Seg> {
        vec![
            Seg::Key("steps".into()),
            Seg::Index(self.i),
            Seg::Key(field.into()),
        ]
    }

    /// The step's thread has no blocked operation.
    fn needs_idle(&self, proc: &Proc) -> Result<(), CheckError> {
        let thread = self.step.thread().unwrap_or("main");
        if proc.pending_on(thread) {
            Err((
                self.here("thread"),
                format!(
                    "thread `{}/{thread}` still has a blocked operation; `await` it first",
                    self.pname
                ),
            ))
        } else {
            Ok(())
        }
    }

    /// The handle is open in the step's process: its timeout and whether it has a callback.
    fn known_handle(&self, proc: &Proc, handle: &str) -> Result<(Timeout, bool), CheckError> {
        proc.handles.get(handle).copied().ok_or_else(|| {
            (
                self.here("handle"),
                format!("handle `{handle}` is not open in process `{}`", self.pname),
            )
        })
    }
}

/// Follows the processes through the steps: each step's process exists and is alive, and what
/// the step uses (a handle, a file, a child, a pending operation) is there.
fn check_steps(s: &Scenario) -> Result<(), CheckError> {
    let mut state: HashMap<&str, Proc> = s
        .processes
        .iter()
        .map(|p| (p.as_str(), Proc::default()))
        .collect();
    for (i, step) in s.steps.iter().enumerate() {
        let Some(pname) = step.process() else {
            continue;
        };
        let at = At { i, step, pname };
        let Some(proc) = state.get_mut(pname) else {
            return Err((
                at.here("process"),
                format!(
                    "unknown process `{pname}`, expected one of: {}",
                    s.processes.join(", ")
                ),
            ));
        };
        if proc.dead {
            return Err((
                at.here("process"),
                format!("process `{pname}` was killed by an earlier step"),
            ));
        }
        check_step(s, &at, proc)?;
    }
    Ok(())
}

/// One step of a live process, by step family.
fn check_step(s: &Scenario, at: &At<'_>, proc: &mut Proc) -> Result<(), CheckError> {
    match at.step {
        Step::Open { .. } => check_open(s, at, proc),
        Step::Acquire { .. } | Step::Release { .. } => check_acquire_release(at, proc),
        Step::Close { handle, .. } => {
            at.needs_idle(proc)?;
            at.known_handle(proc, handle)?;
            proc.handles.remove(handle);
            Ok(())
        }
        Step::FileOpen { .. } | Step::FileClose { .. } | Step::SpawnChild { .. } => {
            check_files_and_children(at, proc)
        }
        Step::Await { .. } | Step::ExpectBlocked { .. } => check_pending(at, proc),
        Step::ExpectCallbacks { handle, .. } => {
            let (_, callback) = at.known_handle(proc, handle)?;
            if !callback {
                return Err((
                    at.here("handle"),
                    format!("handle `{handle}` was not opened with `\"callback\": true`"),
                ));
            }
            Ok(())
        }
        Step::Kill { .. } => {
            proc.dead = true;
            proc.pending.clear();
            Ok(())
        }
        Step::WriteFile { .. }
        | Step::CheckFile { .. }
        | Step::HardLink { .. }
        | Step::Mkdir { .. }
        | Step::Symlink { .. }
        | Step::Stress { .. } => Ok(()),
    }
}

/// An `open`: it cannot block, its handle is new, and a callback is required of the scenario.
fn check_open(s: &Scenario, at: &At<'_>, proc: &mut Proc) -> Result<(), CheckError> {
    let Step::Open {
        handle,
        expect,
        timeout,
        callback,
        ..
    } = at.step
    else {
        unreachable!("check_open is given `open` steps");
    };
    at.needs_idle(proc)?;
    let Expect::OneOf(kinds) = expect else {
        return Err((at.here("expect"), "`open` cannot block".into()));
    };
    if let Some(bad) = kinds
        .iter()
        .find(|k| !matches!(k, Kind::Ok | Kind::IoError | Kind::Unsupported))
    {
        return Err((
            at.here("expect"),
            format!("`open` cannot answer `{bad}`, expected ok, io_error or unsupported"),
        ));
    }
    if proc.handles.contains_key(handle) {
        return Err((
            at.here("handle"),
            format!(
                "handle `{handle}` is already open in process `{}`",
                at.pname
            ),
        ));
    }
    if *callback && !s.requires.contains(&Requirement::Callback) {
        return Err((
            at.here("callback"),
            "a callback needs `\"requires\": [\"callback\"]`".into(),
        ));
    }
    proc.handles.insert(handle.clone(), (*timeout, *callback));
    Ok(())
}

/// An `acquire` or `release`: on an idle thread, through an open handle, with outcomes it could
/// have; one expected to block leaves its thread pending.
fn check_acquire_release(at: &At<'_>, proc: &mut Proc) -> Result<(), CheckError> {
    let (Step::Acquire {
        handle,
        expect,
        thread,
        ..
    }
    | Step::Release {
        handle,
        expect,
        thread,
        ..
    }) = at.step
    else {
        unreachable!("check_acquire_release is given `acquire` and `release` steps");
    };
    at.needs_idle(proc)?;
    let (timeout, _) = at.known_handle(proc, handle)?;
    let acquire = matches!(at.step, Step::Acquire { .. });
    check_kinds(expect, acquire, timeout).map_err(|m| (at.here("expect"), m))?;
    if *expect == Expect::Blocks {
        proc.pending.insert(thread.clone(), handle.clone());
    }
    Ok(())
}

/// A `file_open`, `file_close` or `spawn_child`: a file opened once and closed once it is open, a
/// child started once.
fn check_files_and_children(at: &At<'_>, proc: &mut Proc) -> Result<(), CheckError> {
    let pname = at.pname;
    at.needs_idle(proc)?;
    match at.step {
        Step::FileOpen { file, .. } => {
            if !proc.files.insert(file.clone()) {
                return Err((
                    at.here("file"),
                    format!("file `{file}` is already open in process `{pname}`"),
                ));
            }
        }
        Step::FileClose { file, .. } => {
            if !proc.files.remove(file) {
                return Err((
                    at.here("file"),
                    format!("file `{file}` is not open in process `{pname}`"),
                ));
            }
        }
        Step::SpawnChild { child, .. } => {
            if !proc.children.insert(child.clone()) {
                return Err((at.here("child"), format!("child `{child}` started twice")));
            }
        }
        _ => unreachable!("check_files_and_children is given file and child steps"),
    }
    Ok(())
}

/// An `await` or `expect_blocked`: something is pending on the thread, and an awaited outcome is
/// one its acquire could have.
fn check_pending(at: &At<'_>, proc: &mut Proc) -> Result<(), CheckError> {
    let pname = at.pname;
    match at.step {
        Step::Await { thread, expect, .. } => {
            let Some(handle) = proc.pending.remove(thread) else {
                return Err((
                    at.here("thread"),
                    format!("nothing is pending on thread `{pname}/{thread}` to await"),
                ));
            };
            if *expect == Expect::Blocks {
                return Err((at.here("expect"), "`await` cannot expect `blocks`".into()));
            }
            let (timeout, _) = proc.handles[&handle];
            check_kinds(expect, true, timeout).map_err(|m| (at.here("expect"), m))
        }
        Step::ExpectBlocked { thread, .. } => {
            if !proc.pending_on(thread) {
                return Err((
                    at.here("thread"),
                    format!("nothing is pending on thread `{pname}/{thread}`"),
                ));
            }
            Ok(())
        }
        _ => unreachable!("check_pending is given `await` and `expect_blocked` steps"),
    }
}

/// Every `mkdir` mode is an octal permission.
fn check_modes(s: &Scenario) -> Result<(), CheckError> {
    for (i, step) in s.steps.iter().enumerate() {
        if let Step::Mkdir {
            mode: Some(mode), ..
        } = step
            && parse_mode(mode).is_none()
        {
            return Err((
                vec![
                    Seg::Key("steps".into()),
                    Seg::Index(i),
                    Seg::Key("mode".into()),
                ],
                format!("mode `{mode}` is not an octal permission such as \"0755\""),
            ));
        }
    }
    Ok(())
}

/// Whether the allowed outcomes of an acquire or release make sense.
fn check_kinds(expect: &Expect, acquire: bool, timeout: Timeout) -> Result<(), String> {
    let Expect::OneOf(kinds) = expect else {
        return if acquire {
            Ok(())
        } else {
            Err("only `acquire` can be expected to block".into())
        };
    };
    let allowed: &[Kind] = if acquire {
        &[
            Kind::Acquired,
            Kind::TimedOut,
            Kind::WouldBlock,
            Kind::IoError,
            Kind::Unsupported,
        ]
    } else {
        &[
            Kind::Released,
            Kind::NotHeld,
            Kind::IoError,
            Kind::Unsupported,
        ]
    };
    if let Some(bad) = kinds.iter().find(|k| !allowed.contains(k)) {
        let names: Vec<_> = allowed.iter().map(|k| k.as_str()).collect();
        let op = if acquire { "acquire" } else { "release" };
        return Err(format!(
            "`{op}` cannot answer `{bad}`, expected one of: {}",
            names.join(", ")
        ));
    }
    if timeout == Timeout::None
        && kinds
            .iter()
            .all(|k| matches!(k, Kind::TimedOut | Kind::WouldBlock))
    {
        return Err(
            "a handle without a timeout waits forever: it can never time out; give it a timeout or expect `blocks`"
                .into(),
        );
    }
    Ok(())
}
