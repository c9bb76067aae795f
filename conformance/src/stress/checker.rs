//! The history checker: a pure function from a merged stress history to a verdict, with the
//! operations that prove each finding.
//!
//! Every instant is known only within bounds, so every check is conservative. An operation's
//! effect happened somewhere in its *span*: the worker's library call (`start_ns..t_ns`) when
//! the worker's clock is the shared one, else the runner's send and receive instants. Then:
//!
//! - a hold *definitely* covers the time from the end of its acquire's span to the start of its
//!   release's span, and *possibly* covers the start of the acquire's span to the end of the
//!   release's span (to the kill, plus the `prompt` margin, for a killed holder);
//! - two definite holds of one lock that overlap are two holders, and so is a witness that
//!   found the sentinel of another or read a counter value that another witness read too;
//! - a lock error is suspicious only if no other acquire of the lock was even in progress, and
//!   no hold possible, during its whole span; a waiter only if the lock was free for longer
//!   than `prompt` while it waited.
//!
//! Operations in flight when their worker was killed, and holds of killed workers, are never
//! violations themselves: they only widen what was possible.

use std::collections::BTreeMap;
use std::fmt;

use super::history::{History, Op, OpKind, Outcome, thread_name};
use crate::timing::{Timing, Window};

/// The margins of the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How late a timed acquire may return after its timeout.
    pub overshoot_ns: u64,
    /// The `prompt` timing class: how soon things that happen "at once" must happen.
    pub prompt_ns: u64,
    /// A waiter that other acquires overtook this many times is reported as starved.
    pub starve_after: u32,
    /// How many findings of each kind are kept with their evidence (all are counted).
    pub per_kind: usize,
}

impl Config {
    /// The margins of `timing`.
    pub fn new(timing: &Timing) -> Config {
        Config {
            overshoot_ns: timing.stress_overshoot().as_nanos() as u64,
            prompt_ns: timing.window(Window::Prompt).as_nanos() as u64,
            starve_after: 40,
            per_kind: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new(&Timing::default())
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The implementation broke a rule.
    Violation,
    /// Allowed by the spec, but worth knowing (fairness is unspecified).
    Warning,
    /// Something limited what could be checked.
    Note,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Two holds of one lock definitely overlap.
    Overlap,
    /// A witness found the sentinel of another critical section.
    Collision,
    /// Witnesses of one lock read the same counter value, or the counter skipped or went back.
    LostUpdate,
    /// A timed acquire failed before its timeout, or one without a timeout failed at all.
    EarlyTimeout,
    /// An acquire returned long after its timeout (or a single attempt took long).
    LateReturn,
    /// A lock error while no one held, or was even acquiring, the lock.
    LockErrorWhileFree,
    /// A waiter kept waiting while the lock was free for longer than `prompt`.
    WaiterNotWoken,
    /// A release through the holding object failed.
    ReleaseRefused,
    /// A waiter was overtaken by many other acquires.
    Starvation,
    /// A witness failed or was lost, so the counter of that lock could not be checked.
    WitnessBroken,
    /// A worker's timestamps are not on the shared clock; the runner's instants were used.
    ClockNotShared,
}

impl Kind {
    /// How bad it is.
    pub fn severity(self) -> Severity {
        match self {
            Kind::Starvation => Severity::Warning,
            Kind::WitnessBroken | Kind::ClockNotShared => Severity::Note,
            _ => Severity::Violation,
        }
    }

    /// The rule of `spec/SPEC.md` it breaks, or the section it concerns.
    pub fn rule(self) -> &'static str {
        match self {
            Kind::Overlap | Kind::Collision | Kind::LostUpdate => "STR-1",
            Kind::EarlyTimeout | Kind::LateReturn => "TMO-3",
            Kind::LockErrorWhileFree => "TMO-2",
            Kind::WaiterNotWoken => "ACQ-2",
            Kind::ReleaseRefused => "REL-1",
            Kind::Starvation => "unspecified (fairness)",
            Kind::WitnessBroken | Kind::ClockNotShared => "-",
        }
    }

    /// Whether it shows two holders at once (the findings of STR-1).
    pub fn is_two_holders(self) -> bool {
        matches!(self, Kind::Overlap | Kind::Collision | Kind::LostUpdate)
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Overlap => "overlapping holders",
            Kind::Collision => "sentinel collision",
            Kind::LostUpdate => "lost update",
            Kind::EarlyTimeout => "early timeout",
            Kind::LateReturn => "late return",
            Kind::LockErrorWhileFree => "lock error while free",
            Kind::WaiterNotWoken => "waiter not woken",
            Kind::ReleaseRefused => "release refused",
            Kind::Starvation => "starvation",
            Kind::WitnessBroken => "witness broken",
            Kind::ClockNotShared => "clock not shared",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding and its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// The lock concerned, if one is.
    pub lock: Option<u32>,
    /// What was found, in words, with times in milliseconds from the start of the run.
    pub summary: String,
    /// The operations that prove it (indices into the history).
    pub ops: Vec<u32>,
    /// The window of the history to show.
    pub from_ns: u64,
    /// See `from_ns`.
    pub to_ns: u64,
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No violation, and the history shows contention.
    Ok,
    /// At least one violation.
    Violation,
    /// No violation, but the history cannot show one either (the reason).
    Unknown(String),
}

impl Verdict {
    /// `ok`, `violation` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Violation => "violation",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

/// Counts that say how much the history tested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub ops: usize,
    pub acquired: usize,
    pub lock_errors: usize,
    /// Acquires that waited more than a millisecond, or failed with a lock error.
    pub contended: usize,
    pub witnesses: usize,
    pub kills: usize,
    /// Operations whose worker was killed before answering, or that had no answer at the end.
    pub indeterminate: usize,
    /// Workers whose own timestamps were used (the others' were not on the shared clock).
    pub shared_clock_workers: usize,
    /// Workers in the history.
    pub workers: usize,
}

/// What the checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// The findings kept (at most [`Config::per_kind`] of each kind), in order of kind.
    pub findings: Vec<Finding>,
    /// How many findings of each kind there were.
    pub counts: BTreeMap<Kind, usize>,
    pub stats: Stats,
}

impl Report {
    /// The findings that are violations.
    pub fn violations(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.kind.severity() == Severity::Violation)
    }

    /// A summary: the verdict, the counts, and every finding kept.
    pub fn summary(&self) -> String {
        let mut out = format!("verdict: {}", self.verdict.name());
        if let Verdict::Unknown(reason) = &self.verdict {
            out.push_str(&format!(" ({reason})"));
        }
        let s = &self.stats;
        out.push_str(&format!(
            "\nhistory: {} operations, {} acquired, {} lock errors, {} contended acquires, {} witnesses, {} kills, {} indeterminate; {} of {} workers on the shared clock",
            s.ops, s.acquired, s.lock_errors, s.contended, s.witnesses, s.kills, s.indeterminate,
            s.shared_clock_workers, s.workers
        ));
        for (kind, count) in &self.counts {
            out.push_str(&format!(
                "\n{:?} {kind} ({}): {count}",
                kind.severity(),
                kind.rule()
            ));
        }
        for f in &self.findings {
            out.push_str(&format!("\n- [{}] {}", f.kind, f.summary));
        }
        out
    }
}

/// The hold of each successful acquire, by the acquire's index.
struct HoldOf<'a> {
    holds: &'a [Hold],
    index: &'a [u32],
}

impl HoldOf<'_> {
    fn get(&self, acquire: &u32) -> Option<&Hold> {
        let k = *self.index.get(*acquire as usize)?;
        self.holds.get(k as usize)
    }
}

/// When an operation's effect happened: somewhere in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    lo: u64,
    hi: u64,
}

/// A successful acquire and what followed it.
#[derive(Debug, Clone, Copy)]
struct Hold {
    acquire: u32,
    /// Surely held in between, if the bounds leave any time.
    definite: Option<Span>,
    /// Possibly held in between.
    possible: Span,
    /// The release that ended it, if one did.
    release: Option<u32>,
}

/// Timestamps a little outside the runner's bounds (the two clocks are read at different
/// moments) are clamped into them; further outside, the worker's clock is not the shared one.
const CLOCK_TOLERANCE_NS: u64 = 200_000;

/// An acquire counts as contended when its call took longer than this.
const CONTENDED_NS: u64 = 1_000_000;

/// Checks `history`.
pub fn check(history: &History, config: &Config) -> Report {
    Checker::new(history, config).run()
}

struct Checker<'a> {
    h: &'a History,
    config: &'a Config,
    spans: Vec<Span>,
    /// Per incarnation: its kill (sent, reaped), if it was killed.
    kills: Vec<Option<(u64, u64)>>,
    /// Per incarnation: whether its timestamps were used.
    trusted: Vec<bool>,
    /// Per incarnation: whether it answered anything.
    answered: Vec<bool>,
    findings: Vec<Finding>,
    counts: BTreeMap<Kind, usize>,
}

impl<'a> Checker<'a> {
    fn new(h: &'a History, config: &'a Config) -> Checker<'a> {
        let incarnations = h
            .ops
            .iter()
            .map(|o| o.incarnation)
            .chain(h.kills.iter().map(|k| k.incarnation))
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut kills = vec![None; incarnations];
        for k in &h.kills {
            kills[k.incarnation as usize] = Some((k.sent_ns, k.reaped_ns));
        }
        // A worker's timestamps are used when every answer it gave has them, inside the
        // runner's bounds.
        let mut trusted = vec![true; incarnations];
        let mut answered = vec![false; incarnations];
        for op in &h.ops {
            let Some(complete) = op.complete_ns else {
                continue;
            };
            let i = op.incarnation as usize;
            answered[i] = true;
            let fits = op.end_ns.is_some_and(|end| {
                let start = op.start_ns.unwrap_or(op.invoke_ns);
                start + CLOCK_TOLERANCE_NS >= op.invoke_ns
                    && start <= end
                    && end <= complete + CLOCK_TOLERANCE_NS
            });
            trusted[i] &= fits;
        }
        let spans = h
            .ops
            .iter()
            .map(|op| span(op, &kills, &trusted, h.meta.end_ns))
            .collect();
        Checker {
            h,
            config,
            spans,
            kills,
            trusted,
            answered,
            findings: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    fn ms(&self, ns: u64) -> String {
        format!(
            "{:.3}",
            ns.saturating_sub(self.h.meta.start_ns) as f64 / 1e6
        )
    }

    /// `#12 acquire p0#1/t0`.
    fn who(&self, i: u32) -> String {
        let op = &self.h.ops[i as usize];
        format!(
            "#{i} {} p{}#{}/{}",
            format!("{:?}", op.op).to_lowercase(),
            op.proc,
            op.incarnation,
            thread_name(op.thread)
        )
    }

    fn report(&mut self, kind: Kind, lock: Option<u32>, summary: String, ops: Vec<u32>) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count > self.config.per_kind {
            return;
        }
        let from_ns = ops
            .iter()
            .map(|&i| self.spans[i as usize].lo)
            .min()
            .unwrap_or(self.h.meta.start_ns);
        let to_ns = ops
            .iter()
            .map(|&i| self.spans[i as usize].hi)
            .max()
            .unwrap_or(self.h.meta.end_ns);
        self.findings.push(Finding {
            kind,
            lock,
            summary,
            ops,
            from_ns,
            to_ns,
        });
    }

    fn run(mut self) -> Report {
        let locks = self
            .h
            .ops
            .iter()
            .map(|o| o.lock + 1)
            .max()
            .unwrap_or(0)
            .max(self.h.meta.locks) as usize;
        let holds = self.holds();
        let mut hold_index = vec![u32::MAX; self.h.ops.len()];
        for (k, hold) in holds.iter().enumerate() {
            hold_index[hold.acquire as usize] = k as u32;
        }
        let mut holds_by_lock: Vec<Vec<Hold>> = vec![Vec::new(); locks];
        for hold in &holds {
            holds_by_lock[self.h.ops[hold.acquire as usize].lock as usize].push(*hold);
        }
        let mut acquires_by_lock: Vec<Vec<u32>> = vec![Vec::new(); locks];
        let mut witnesses_by_lock: Vec<Vec<u32>> = vec![Vec::new(); locks];
        for (i, op) in self.h.ops.iter().enumerate() {
            match op.op {
                OpKind::Acquire => acquires_by_lock[op.lock as usize].push(i as u32),
                OpKind::Witness => witnesses_by_lock[op.lock as usize].push(i as u32),
                _ => {}
            }
        }
        self.releases(&holds);
        self.timeouts();
        for lock in 0..locks {
            self.overlaps(lock as u32, &holds_by_lock[lock]);
            self.witnesses(lock as u32, &witnesses_by_lock[lock]);
            let hold_of = HoldOf {
                holds: &holds,
                index: &hold_index,
            };
            self.lock_errors_while_free(lock as u32, &acquires_by_lock[lock], &hold_of);
            self.waiters(lock as u32, &acquires_by_lock[lock], &hold_of);
            self.starvation(lock as u32, &acquires_by_lock[lock]);
        }
        let untrusted: Vec<String> = (0..self.trusted.len())
            .filter(|&i| self.answered[i] && !self.trusted[i])
            .map(|i| i.to_string())
            .collect();
        if !untrusted.is_empty() {
            let summary = format!(
                "the timestamps of worker(s) #{} are not on the runner's monotonic clock (or are missing); the runner's own send and receive instants bound their operations instead",
                untrusted.join(", #")
            );
            self.report(Kind::ClockNotShared, None, summary, Vec::new());
        }
        self.finish(holds.len())
    }

    fn finish(self, acquired: usize) -> Report {
        let ops = &self.h.ops;
        let lock_errors = ops
            .iter()
            .filter(|o| o.op == OpKind::Acquire && o.outcome.is_lock_error())
            .count();
        let contended = ops
            .iter()
            .zip(&self.spans)
            .filter(|(o, s)| {
                o.op == OpKind::Acquire
                    && (o.outcome.is_lock_error()
                        || (o.outcome == Outcome::Acquired && s.hi - s.lo > CONTENDED_NS))
            })
            .count();
        let stats = Stats {
            ops: ops.len(),
            acquired,
            lock_errors,
            contended,
            witnesses: ops
                .iter()
                .filter(|o| o.op == OpKind::Witness && o.outcome == Outcome::Ok)
                .count(),
            kills: self.h.kills.len(),
            indeterminate: ops.iter().filter(|o| !o.outcome.is_answered()).count(),
            shared_clock_workers: (0..self.trusted.len())
                .filter(|&i| self.answered[i] && self.trusted[i])
                .count(),
            workers: self.answered.iter().filter(|a| **a).count(),
        };
        let violation = self
            .counts
            .keys()
            .any(|k| k.severity() == Severity::Violation);
        let verdict = if violation {
            Verdict::Violation
        } else if stats.acquired == 0 {
            Verdict::Unknown("no acquire succeeded".into())
        } else if stats.contended == 0 {
            Verdict::Unknown(
                "no acquire waited or failed, so exclusion was never put to the test".into(),
            )
        } else {
            Verdict::Ok
        };
        let mut findings = self.findings;
        findings.sort_by_key(|f| (f.kind, f.from_ns));
        Report {
            verdict,
            findings,
            counts: self.counts,
            stats,
        }
    }

    /// Every successful acquire with its definite and possible hold.
    fn holds(&self) -> Vec<Hold> {
        let n = self.h.ops.len();
        let mut first_attempt = vec![u32::MAX; n];
        let mut released_by = vec![u32::MAX; n];
        for (i, op) in self.h.ops.iter().enumerate() {
            let (OpKind::Release, Some(a)) = (op.op, op.hold) else {
                continue;
            };
            let a = a as usize;
            if a >= n {
                continue;
            }
            if first_attempt[a] == u32::MAX {
                first_attempt[a] = i as u32;
            }
            if op.outcome == Outcome::Released && released_by[a] == u32::MAX {
                released_by[a] = i as u32;
            }
        }
        let prompt = self.config.prompt_ns;
        let mut holds = Vec::new();
        for (i, op) in self.h.ops.iter().enumerate() {
            if op.op != OpKind::Acquire || op.outcome != Outcome::Acquired {
                continue;
            }
            let acquired = self.spans[i];
            let attempt =
                (first_attempt[i] != u32::MAX).then(|| self.spans[first_attempt[i] as usize].lo);
            let (definite_end, possible_end, release) = if released_by[i] != u32::MAX {
                let r = released_by[i];
                (
                    attempt.unwrap_or(self.spans[r as usize].lo),
                    self.spans[r as usize].hi,
                    Some(r),
                )
            } else if let Some((sent, reaped)) = self.kills[op.incarnation as usize] {
                (attempt.unwrap_or(sent).min(sent), reaped + prompt, None)
            } else {
                (
                    attempt.unwrap_or(self.h.meta.end_ns),
                    self.h.meta.end_ns,
                    None,
                )
            };
            let definite = (acquired.hi < definite_end).then_some(Span {
                lo: acquired.hi,
                hi: definite_end,
            });
            holds.push(Hold {
                acquire: i as u32,
                definite,
                possible: Span {
                    lo: acquired.lo,
                    hi: possible_end.max(acquired.hi),
                },
                release,
            });
        }
        holds
    }

    /// Two definite holds of one lock that overlap.
    fn overlaps(&mut self, lock: u32, holds: &[Hold]) {
        let mut definite: Vec<(Span, u32, Option<u32>)> = holds
            .iter()
            .filter_map(|h| h.definite.map(|d| (d, h.acquire, h.release)))
            .collect();
        definite.sort_unstable_by_key(|(d, _, _)| (d.lo, d.hi));
        let mut widest: Option<(Span, u32, Option<u32>)> = None;
        for &(span, acquire, release) in &definite {
            if let Some((w, wa, wr)) = widest {
                if span.lo < w.hi {
                    let overlap = w.hi.min(span.hi) - span.lo;
                    let summary = format!(
                        "two holders of lock {lock} at once for {:.3} ms: {} holds it from {} (acquire returned) to {} (release began), and {} from {} to {}",
                        overlap as f64 / 1e6,
                        self.who(wa),
                        self.ms(w.lo),
                        self.ms(w.hi),
                        self.who(acquire),
                        self.ms(span.lo),
                        self.ms(span.hi),
                    );
                    let ops = [Some(wa), wr, Some(acquire), release]
                        .into_iter()
                        .flatten()
                        .collect();
                    self.report(Kind::Overlap, Some(lock), summary, ops);
                }
                if span.hi > w.hi {
                    widest = Some((span, acquire, release));
                }
            } else {
                widest = Some((span, acquire, release));
            }
        }
    }

    /// Collisions, lost updates, and witnesses that failed.
    fn witnesses(&mut self, lock: u32, witnesses: &[u32]) {
        let mut good: Vec<u32> = Vec::new();
        let mut broken = Vec::new();
        for &w in witnesses {
            let op = &self.h.ops[w as usize];
            match (op.outcome, op.value) {
                (Outcome::Ok, Some(_)) => good.push(w),
                (Outcome::Unsupported, _) => {}
                _ => broken.push(w),
            }
        }
        // Collisions, with the witnesses whose spans overlap as evidence.
        let mut by_time = good.clone();
        by_time.sort_unstable_by_key(|&w| self.spans[w as usize].lo);
        for (k, &w) in by_time.iter().enumerate() {
            if self.h.ops[w as usize].collision != Some(true) {
                continue;
            }
            let span = self.spans[w as usize];
            let mut ops = vec![w];
            ops.extend(self.h.ops[w as usize].hold);
            for &other in by_time[..k].iter().rev().take(64) {
                if self.spans[other as usize].hi >= span.lo {
                    ops.push(other);
                }
            }
            for &other in by_time[k + 1..].iter().take(64) {
                if self.spans[other as usize].lo > span.hi {
                    break;
                }
                ops.push(other);
            }
            let summary = format!(
                "{} on lock {lock} found the sentinel of another critical section ({} .. {}): two holders at once",
                self.who(w),
                self.ms(span.lo),
                self.ms(span.hi)
            );
            self.report(Kind::Collision, Some(lock), summary, ops);
        }
        // Values: each witness reads the number of witnesses before it.
        let mut by_value = good;
        by_value
            .sort_unstable_by_key(|&w| (self.h.ops[w as usize].value, self.spans[w as usize].lo));
        let complete = broken.is_empty();
        for pair in by_value.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (va, vb) = (
                self.h.ops[a as usize].value.unwrap_or(0),
                self.h.ops[b as usize].value.unwrap_or(0),
            );
            let (sa, sb) = (self.spans[a as usize], self.spans[b as usize]);
            if va == vb {
                let summary = format!(
                    "lost update on lock {lock}: {} ({} .. {}) and {} ({} .. {}) both read the counter as {va}: their critical sections overlapped",
                    self.who(a),
                    self.ms(sa.lo),
                    self.ms(sa.hi),
                    self.who(b),
                    self.ms(sb.lo),
                    self.ms(sb.hi)
                );
                self.report(Kind::LostUpdate, Some(lock), summary, vec![a, b]);
            } else if complete && vb != va + 1 {
                let summary = format!(
                    "lost update on lock {lock}: the counter went from {va} ({}) to {vb} ({}) with no witness in between, so a write was lost or torn",
                    self.who(a),
                    self.who(b)
                );
                self.report(Kind::LostUpdate, Some(lock), summary, vec![a, b]);
            } else if sb.hi < sa.lo {
                let summary = format!(
                    "lost update on lock {lock}: {} read {vb} and returned at {}, before {} began at {} and read {va}, a smaller value",
                    self.who(b),
                    self.ms(sb.hi),
                    self.who(a),
                    self.ms(sa.lo)
                );
                self.report(Kind::LostUpdate, Some(lock), summary, vec![a, b]);
            }
        }
        if complete
            && let Some(&first) = by_value.first()
            && self.h.ops[first as usize].value != Some(0)
        {
            let summary = format!(
                "lost update on lock {lock}: the first witness, {}, read {} instead of 0",
                self.who(first),
                self.h.ops[first as usize].value.unwrap_or(0)
            );
            self.report(Kind::LostUpdate, Some(lock), summary, vec![first]);
        }
        if let Some(&first) = broken.first() {
            let summary = format!(
                "{} witness(es) of lock {lock} failed or were cut short (first: {} -> {}); gaps in its counter are not checked",
                broken.len(),
                self.who(first),
                self.h.ops[first as usize].outcome.name()
            );
            self.report(Kind::WitnessBroken, Some(lock), summary, vec![first]);
        }
    }

    /// A release through the holding object that failed.
    fn releases(&mut self, holds: &[Hold]) {
        let mut held = vec![false; self.h.ops.len()];
        for hold in holds {
            held[hold.acquire as usize] = true;
        }
        for (i, op) in self.h.ops.iter().enumerate() {
            let (OpKind::Release, Some(a)) = (op.op, op.hold) else {
                continue;
            };
            if !held.get(a as usize).copied().unwrap_or(false)
                || !matches!(
                    op.outcome,
                    Outcome::NotHeld | Outcome::IoError | Outcome::Unsupported
                )
            {
                continue;
            }
            let summary = format!(
                "{} answered {} for the hold of {}, which its object held",
                self.who(i as u32),
                op.outcome.name(),
                self.who(a)
            );
            self.report(
                Kind::ReleaseRefused,
                Some(op.lock),
                summary,
                vec![a, i as u32],
            );
        }
    }

    /// Lock errors before the timeout, and acquires that return long after it.
    fn timeouts(&mut self) {
        let overshoot = self.config.overshoot_ns;
        let prompt = self.config.prompt_ns;
        for (i, op) in self.h.ops.iter().enumerate() {
            if op.op != OpKind::Acquire || !op.outcome.is_answered() {
                continue;
            }
            let span = self.spans[i];
            let inner = span.hi - span.lo;
            let outer = op.complete_ns.unwrap_or(span.hi) - op.invoke_ns;
            let lock_error = op.outcome.is_lock_error();
            match op.timeout_ms {
                None if lock_error => {
                    let summary = format!(
                        "{} on lock {} has no timeout but answered {} after {:.3} ms",
                        self.who(i as u32),
                        op.lock,
                        op.outcome.name(),
                        inner as f64 / 1e6
                    );
                    self.report(Kind::EarlyTimeout, Some(op.lock), summary, vec![i as u32]);
                }
                Some(t) if t > 0 && lock_error && outer < t * 1_000_000 => {
                    let summary = format!(
                        "{} on lock {} with a timeout of {t} ms answered {} {:.3} ms after the runner sent it",
                        self.who(i as u32),
                        op.lock,
                        op.outcome.name(),
                        outer as f64 / 1e6
                    );
                    self.report(Kind::EarlyTimeout, Some(op.lock), summary, vec![i as u32]);
                }
                Some(t) => {
                    let limit = if t == 0 {
                        prompt
                    } else {
                        t * 1_000_000 + overshoot
                    };
                    let answered = matches!(op.outcome, Outcome::Acquired) || lock_error;
                    if answered && inner > limit {
                        let summary = format!(
                            "{} on lock {} with a timeout of {t} ms took {:.3} ms to answer {} (limit {:.3} ms)",
                            self.who(i as u32),
                            op.lock,
                            inner as f64 / 1e6,
                            op.outcome.name(),
                            limit as f64 / 1e6
                        );
                        self.report(Kind::LateReturn, Some(op.lock), summary, vec![i as u32]);
                    }
                }
                None => {}
            }
        }
    }

    /// When an acquire of `lock` could be holding the lock, or be in the middle of taking it.
    fn busy(&self, acquire: u32, hold_of: &HoldOf<'_>) -> Span {
        let span = self.spans[acquire as usize];
        match hold_of.get(&acquire) {
            Some(hold) => hold.possible,
            None if self.h.ops[acquire as usize].outcome == Outcome::Killed => Span {
                lo: span.lo,
                hi: span.hi + self.config.prompt_ns,
            },
            None => span,
        }
    }

    /// A lock error while no other acquire of the lock was in progress and no hold possible.
    fn lock_errors_while_free(&mut self, lock: u32, acquires: &[u32], hold_of: &HoldOf<'_>) {
        let busy: Vec<Span> = acquires.iter().map(|&a| self.busy(a, hold_of)).collect();
        let mut starts: Vec<u64> = busy.iter().map(|s| s.lo).collect();
        let mut ends: Vec<u64> = busy.iter().map(|s| s.hi).collect();
        starts.sort_unstable();
        ends.sort_unstable();
        for (k, &a) in acquires.iter().enumerate() {
            let op = &self.h.ops[a as usize];
            if !op.outcome.is_lock_error() {
                continue;
            }
            let span = busy[k];
            // Intervals that intersect the span: those starting by its end minus those ending
            // before its start. The failed acquire itself is one of them.
            let intersecting =
                starts.partition_point(|&s| s <= span.hi) - ends.partition_point(|&e| e < span.lo);
            if intersecting <= 1 {
                let summary = format!(
                    "{} on lock {lock} answered {} ({} .. {}) while no one held the lock, nor was even acquiring it",
                    self.who(a),
                    op.outcome.name(),
                    self.ms(span.lo),
                    self.ms(span.hi)
                );
                self.report(Kind::LockErrorWhileFree, Some(lock), summary, vec![a]);
            }
        }
    }

    /// Waiters that kept waiting while the lock was free for longer than `prompt`.
    fn waiters(&mut self, lock: u32, acquires: &[u32], hold_of: &HoldOf<'_>) {
        let prompt = self.config.prompt_ns;
        let end = self.h.meta.end_ns;
        // When someone could hold the lock. An acquire that succeeded is assumed to have taken
        // the lock no earlier than `prompt` before its call returned; one still pending at the
        // end, no earlier than `prompt` before the end (else its answer would have come).
        let mut taken: Vec<Span> = Vec::new();
        for &a in acquires {
            let span = self.spans[a as usize];
            match (hold_of.get(&a), self.h.ops[a as usize].outcome) {
                (Some(hold), _) => taken.push(Span {
                    lo: span.lo.max(span.hi.saturating_sub(prompt)),
                    hi: hold.possible.hi,
                }),
                (None, Outcome::Killed) => taken.push(Span {
                    lo: span.lo,
                    hi: span.hi + prompt,
                }),
                (None, Outcome::Pending) => taken.push(Span {
                    lo: span.lo.max(end.saturating_sub(prompt)),
                    hi: end,
                }),
                _ => {}
            }
        }
        let gaps = Gaps::new(taken, self.h.meta.start_ns, end);
        for &a in acquires {
            let op = &self.h.ops[a as usize];
            let span = self.spans[a as usize];
            let until = match op.outcome {
                Outcome::Acquired | Outcome::Pending => span.hi.saturating_sub(prompt),
                o if o.is_lock_error() => span.hi,
                _ => continue,
            };
            if until <= span.lo + prompt {
                continue;
            }
            if let Some(gap) = gaps.longest_within(span.lo, until)
                && gap.hi - gap.lo > prompt
            {
                let summary = format!(
                    "{} on lock {lock} was still waiting ({} .. {}, {}) while the lock was free from {} to {}, longer than the prompt margin of {:.0} ms",
                    self.who(a),
                    self.ms(span.lo),
                    self.ms(span.hi),
                    op.outcome.name(),
                    self.ms(gap.lo),
                    self.ms(gap.hi),
                    prompt as f64 / 1e6
                );
                self.report(Kind::WaiterNotWoken, Some(lock), summary, vec![a]);
            }
        }
    }

    /// Waiters overtaken by many acquires that began after them and succeeded before them.
    fn starvation(&mut self, lock: u32, acquires: &[u32]) {
        let waiters: Vec<u32> = acquires
            .iter()
            .copied()
            .filter(|&a| {
                let op = &self.h.ops[a as usize];
                op.timeout_ms != Some(0)
                    && (matches!(op.outcome, Outcome::Acquired | Outcome::Pending)
                        || op.outcome.is_lock_error())
            })
            .collect();
        let mut winners: Vec<Span> = acquires
            .iter()
            .filter(|&&a| self.h.ops[a as usize].outcome == Outcome::Acquired)
            .map(|&a| self.spans[a as usize])
            .collect();
        if waiters.is_empty() || winners.len() < self.config.starve_after as usize {
            return;
        }
        // Offline dominance count: for each waiter W, the winners A with lo(A) > lo(W) and
        // hi(A) < hi(W), with a Fenwick tree over the ranks of lo(A), sweeping by hi.
        winners.sort_unstable_by_key(|s| s.hi);
        let mut los: Vec<u64> = winners.iter().map(|s| s.lo).collect();
        los.sort_unstable();
        let mut queries: Vec<(u64, u64, u32)> = waiters
            .iter()
            .map(|&w| {
                let s = self.spans[w as usize];
                (s.hi, s.lo, w)
            })
            .collect();
        queries.sort_unstable();
        let mut tree = Fenwick::new(los.len());
        let mut added = 0;
        let mut starved = Vec::new();
        for (hi, lo, w) in queries {
            while added < winners.len() && winners[added].hi < hi {
                tree.add(los.partition_point(|&x| x < winners[added].lo));
                added += 1;
            }
            let not_after = tree.prefix(los.partition_point(|&x| x <= lo));
            let overtakers = added - not_after;
            if overtakers >= self.config.starve_after as usize {
                starved.push((w, overtakers));
            }
        }
        for (w, overtakers) in starved {
            let span = self.spans[w as usize];
            let summary = format!(
                "{} on lock {lock} waited {:.3} ms ({} .. {}, {}) while {overtakers} acquires that began after it succeeded before it (fairness is unspecified: a warning, not a violation)",
                self.who(w),
                (span.hi - span.lo) as f64 / 1e6,
                self.ms(span.lo),
                self.ms(span.hi),
                self.h.ops[w as usize].outcome.name()
            );
            self.report(Kind::Starvation, Some(lock), summary, vec![w]);
        }
    }
}

/// The span of an operation: the worker's call if its clock is trusted, else the runner's
/// bounds; a killed operation lasts until its worker was reaped, a pending one until the end.
fn span(op: &Op, kills: &[Option<(u64, u64)>], trusted: &[bool], end: u64) -> Span {
    match (op.outcome, op.complete_ns) {
        (Outcome::Killed, _) => Span {
            lo: op.invoke_ns,
            hi: kills[op.incarnation as usize]
                .map_or(end, |(_, reaped)| reaped)
                .max(op.invoke_ns),
        },
        (Outcome::Pending, _) | (_, None) => Span {
            lo: op.invoke_ns,
            hi: end.max(op.invoke_ns),
        },
        (_, Some(complete)) => {
            let complete = complete.max(op.invoke_ns);
            if trusted[op.incarnation as usize]
                && let Some(end) = op.end_ns
            {
                let start = op.start_ns.unwrap_or(op.invoke_ns);
                let lo = start.clamp(op.invoke_ns, complete);
                Span {
                    lo,
                    hi: end.clamp(lo, complete),
                }
            } else {
                Span {
                    lo: op.invoke_ns,
                    hi: complete,
                }
            }
        }
    }
}

/// The free stretches between a set of busy intervals, with the longest one in any window
/// found in logarithmic time (a sparse table over the stretches' lengths).
struct Gaps {
    gaps: Vec<Span>,
    /// `table[k][i]`: the index of the longest gap among `i .. i + 2^k`.
    table: Vec<Vec<u32>>,
}

impl Gaps {
    fn new(mut busy: Vec<Span>, start: u64, end: u64) -> Gaps {
        busy.sort_unstable_by_key(|s| s.lo);
        let mut gaps = Vec::new();
        let mut covered = start;
        for s in busy {
            if s.lo > covered {
                gaps.push(Span {
                    lo: covered,
                    hi: s.lo,
                });
            }
            covered = covered.max(s.hi);
        }
        if end > covered {
            gaps.push(Span {
                lo: covered,
                hi: end,
            });
        }
        let len = |i: u32| gaps[i as usize].hi - gaps[i as usize].lo;
        let mut table = vec![(0..gaps.len() as u32).collect::<Vec<u32>>()];
        let mut width = 1;
        while width * 2 <= gaps.len() {
            let prev = table.last().expect("the first level exists");
            let next = (0..=gaps.len() - width * 2)
                .map(|i| {
                    let (a, b) = (prev[i], prev[i + width]);
                    if len(b) > len(a) { b } else { a }
                })
                .collect();
            table.push(next);
            width *= 2;
        }
        Gaps { gaps, table }
    }

    /// The longest free stretch within `lo..hi`, clipped to it.
    fn longest_within(&self, lo: u64, hi: u64) -> Option<Span> {
        let first = self.gaps.partition_point(|g| g.hi <= lo);
        let last = self.gaps.partition_point(|g| g.lo < hi);
        if first >= last {
            return None;
        }
        let clip = |g: Span| Span {
            lo: g.lo.max(lo),
            hi: g.hi.min(hi),
        };
        let mut best = clip(self.gaps[first]);
        let mut consider = |g: Span| {
            if g.hi - g.lo > best.hi - best.lo {
                best = g;
            }
        };
        consider(clip(self.gaps[last - 1]));
        // The gaps strictly between the first and the last lie wholly inside the window.
        if last - first > 2 {
            let (a, b) = (first + 1, last - 1);
            let k = (usize::BITS - 1 - (b - a).leading_zeros()) as usize;
            let i = self.table[k][a];
            let j = self.table[k][b - (1 << k)];
            consider(self.gaps[i as usize]);
            consider(self.gaps[j as usize]);
        }
        Some(best)
    }
}

/// A Fenwick tree of counts.
struct Fenwick(Vec<usize>);

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick(vec![0; n + 1])
    }

    /// Adds one at position `i` (0-based).
    fn add(&mut self, i: usize) {
        let mut i = i + 1;
        while i < self.0.len() {
            self.0[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The count at positions `0..n`.
    fn prefix(&self, n: usize) -> usize {
        let mut i = n;
        let mut sum = 0;
        while i > 0 {
            sum += self.0[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

#[cfg(test)]
mod tests;
