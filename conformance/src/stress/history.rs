//! The history of a stress run: every operation with its invoke and completion instants, every
//! kill, and the run's parameters; saved as JSON and shown as a readable timeline.
//!
//! All instants are nanoseconds of the machine's monotonic clock (`CLOCK_MONOTONIC`), which
//! the runner and the workers share: the runner's own send and receive instants bound each
//! operation from outside, the worker's `start_ns` and `t_ns` from inside.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The protocol thread that sends releases "from another thread" of a process.
pub const AUX_THREAD: u32 = u32::MAX;

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// What ran, and how.
    pub meta: Meta,
    /// The workers the runner killed, in order.
    pub kills: Vec<Kill>,
    /// Every operation, in the order the runner sent them; an operation's index is its ID.
    pub ops: Vec<Op>,
}

/// The parameters of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The implementation's name.
    pub implementation: String,
    /// The seed of every random choice.
    pub seed: u64,
    /// Worker processes running at once.
    pub procs: u32,
    /// Threads per worker (besides the one that only releases).
    pub threads: u32,
    /// Lock files.
    pub locks: u32,
    /// How long operations were started for, in milliseconds.
    pub duration_ms: u64,
    /// The timing scale of the margins.
    pub timing_scale: f64,
    /// The command that replays this run.
    pub replay: String,
    /// When the run started and ended (every worker killed).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
}

/// What an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Creates a lock object (`object`) with the timeout `timeout_ms`.
    Open,
    /// Drops a lock object.
    Close,
    /// Acquires through a lock object, with its timeout.
    Acquire,
    /// Releases through a lock object; `hold` is the acquire it ends.
    Release,
    /// The data witness of the critical section begun by the acquire `hold`.
    Witness,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Acquired,
    Released,
    TimedOut,
    WouldBlock,
    NotHeld,
    IoError,
    Unsupported,
    /// The worker was killed before it answered: whether the operation took effect is unknown.
    Killed,
    /// No answer by the end of the run.
    Pending,
}

impl Outcome {
    /// The protocol's name, or `killed` and `pending`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Acquired => "acquired",
            Outcome::Released => "released",
            Outcome::TimedOut => "timed_out",
            Outcome::WouldBlock => "would_block",
            Outcome::NotHeld => "not_held",
            Outcome::IoError => "io_error",
            Outcome::Unsupported => "unsupported",
            Outcome::Killed => "killed",
            Outcome::Pending => "pending",
        }
    }

    /// Parses an outcome of the protocol (not `killed` or `pending`).
    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Acquired,
            Outcome::Released,
            Outcome::TimedOut,
            Outcome::WouldBlock,
            Outcome::NotHeld,
            Outcome::IoError,
            Outcome::Unsupported,
        ]
        .into_iter()
        .find(|o| o.name() == text)
    }

    /// A lock error: the lock was held for the whole timeout.
    pub fn is_lock_error(self) -> bool {
        matches!(self, Outcome::TimedOut | Outcome::WouldBlock)
    }

    /// The worker answered.
    pub fn is_answered(self) -> bool {
        !matches!(self, Outcome::Killed | Outcome::Pending)
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    pub op: OpKind,
    /// The process slot (0..procs); a replaced worker keeps its slot.
    pub proc: u32,
    /// The worker process that ran it: a number unique in the run, one per worker started.
    pub incarnation: u32,
    /// The protocol thread: `tN`, or [`AUX_THREAD`] for the thread that only releases.
    pub thread: u32,
    /// The lock file, 0..locks.
    pub lock: u32,
    /// The lock object (unique in the run); none for a witness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<u32>,
    /// The object's timeout (open and acquire): `None` waits forever, 0 is a single attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When the runner sent the command.
    pub invoke_ns: u64,
    /// When the runner received the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_ns: Option<u64>,
    /// The worker's `start_ns`: when the library call began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    /// The worker's `t_ns`: when the library call returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    pub outcome: Outcome,
    /// For a release or a witness: the index of the acquire whose hold it ends or witnesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<u32>,
    /// For a witness: the counter value read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    /// For a witness: whether the sentinel already existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision: Option<bool>,
}

impl Op {
    /// An operation sent at `invoke_ns` and not answered yet.
    pub fn new(op: OpKind, proc: u32, incarnation: u32, thread: u32, lock: u32) -> Op {
        Op {
            op,
            proc,
            incarnation,
            thread,
            lock,
            object: None,
            timeout_ms: None,
            invoke_ns: 0,
            complete_ns: None,
            start_ns: None,
            end_ns: None,
            outcome: Outcome::Pending,
            hold: None,
            value: None,
            collision: None,
        }
    }
}

/// A worker killed by the runner (SIGKILL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    pub proc: u32,
    pub incarnation: u32,
    /// When the runner sent the signal.
    pub sent_ns: u64,
    /// When the runner had reaped the process: the operating system had released what it held.
    pub reaped_ns: u64,
}

/// The protocol name of a thread number.
pub fn thread_name(thread: u32) -> String {
    if thread == AUX_THREAD {
        "aux".to_owned()
    } else {
        format!("t{thread}")
    }
}

/// The path of lock file `lock`, relative to the run's directory.
pub fn lock_path(lock: u32) -> String {
    format!("stress{lock}.lock")
}

/// The path of the witness counter of lock `lock`; its sentinel is this path plus `.sentinel`.
pub fn counter_path(lock: u32) -> String {
    format!("stress{lock}.count")
}

impl History {
    /// The history as JSON: the meta and the kills first, then one operation per line, so that
    /// a long history stays readable and greppable.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n\"meta\": ");
        out.push_str(&serde_json::to_string(&self.meta).expect("meta serialises"));
        out.push_str(",\n\"kills\": [");
        for (i, kill) in self.kills.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&serde_json::to_string(kill).expect("a kill serialises"));
        }
        out.push_str("\n],\n\"ops\": [");
        for (i, op) in self.ops.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&serde_json::to_string(op).expect("an op serialises"));
        }
        out.push_str("\n]\n}\n");
        out
    }

    /// Reads a history written by [`History::to_json`] (or any JSON of the same shape).
    ///
    /// # Errors
    ///
    /// Returns the file's name with the line and column of the first problem.
    pub fn load(path: &Path) -> Result<History, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: not a stress history: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })
    }

    /// Writes [`History::to_json`] to `path`.
    ///
    /// # Errors
    ///
    /// The I/O error of writing the file.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_json())
    }

    /// A readable timeline of the operations on `lock` (every lock if `None`) that overlap
    /// `from_ns..=to_ns`, and of the kills in that window, sorted by when they were sent.
    /// Operations listed in `marked` are flagged with `>>`.
    pub fn timeline(&self, lock: Option<u32>, from_ns: u64, to_ns: u64, marked: &[u32]) -> String {
        enum Line<'a> {
            Op(usize, &'a Op),
            Kill(&'a Kill),
        }
        let mut lines: Vec<(u64, Line<'_>)> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if lock.is_some_and(|l| l != op.lock) {
                continue;
            }
            let end = op.complete_ns.unwrap_or(self.meta.end_ns);
            if op.invoke_ns <= to_ns && end >= from_ns {
                lines.push((op.invoke_ns, Line::Op(i, op)));
            }
        }
        for kill in &self.kills {
            if kill.sent_ns <= to_ns && kill.reaped_ns >= from_ns {
                lines.push((kill.sent_ns, Line::Kill(kill)));
            }
        }
        lines.sort_by_key(|(at, _)| *at);
        let ms = |ns: u64| ns.saturating_sub(self.meta.start_ns) as f64 / 1e6;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "   {:>11}  {:<13} {:>7}  what (runner: sent..received; worker: call began..returned), ms from the start",
            "sent", "process", "op"
        );
        for (_, line) in lines {
            match line {
                Line::Kill(kill) => {
                    let _ = writeln!(
                        out,
                        "   {:>11.3}  p{}#{:<10} KILLED with SIGKILL, reaped at {:.3}",
                        ms(kill.sent_ns),
                        kill.proc,
                        kill.incarnation,
                        ms(kill.reaped_ns)
                    );
                }
                Line::Op(i, op) => {
                    let flag = if marked.contains(&(i as u32)) {
                        ">>"
                    } else {
                        "  "
                    };
                    let who = format!("p{}#{}/{}", op.proc, op.incarnation, thread_name(op.thread));
                    let mut what = format!("{:?} lock {}", op.op, op.lock).to_lowercase();
                    if let Some(object) = op.object {
                        let _ = write!(what, " obj {object}");
                    }
                    if matches!(op.op, OpKind::Open | OpKind::Acquire) {
                        match op.timeout_ms {
                            None => what.push_str(" (no timeout)"),
                            Some(t) => {
                                let _ = write!(what, " (timeout {t} ms)");
                            }
                        }
                    }
                    if let Some(hold) = op.hold {
                        let _ = write!(what, " of hold #{hold}");
                    }
                    let _ = write!(what, " -> {}", op.outcome.name());
                    if let Some(value) = op.value {
                        let _ = write!(what, " value {value}");
                    }
                    if op.collision == Some(true) {
                        what.push_str(" COLLISION");
                    }
                    let runner = match op.complete_ns {
                        Some(c) => format!("{:.3}", ms(c)),
                        None => "-".into(),
                    };
                    let worker = match (op.start_ns, op.end_ns) {
                        (Some(s), Some(e)) => format!("; worker {:.3}..{:.3}", ms(s), ms(e)),
                        (None, Some(e)) => format!("; worker ..{:.3}", ms(e)),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "{flag} {:>11.3}  {who:<13} #{i:<6} {what} [runner ..{runner}{worker}]",
                        ms(op.invoke_ns),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut acquire = Op::new(OpKind::Acquire, 0, 0, 1, 0);
        acquire.object = Some(3);
        acquire.timeout_ms = Some(0);
        acquire.invoke_ns = 1_000_000;
        acquire.complete_ns = Some(1_500_000);
        acquire.start_ns = Some(1_100_000);
        acquire.end_ns = Some(1_200_000);
        acquire.outcome = Outcome::Acquired;
        let mut witness = Op::new(OpKind::Witness, 0, 0, 1, 0);
        witness.invoke_ns = 2_000_000;
        witness.outcome = Outcome::Killed;
        witness.hold = Some(0);
        witness.value = Some(4);
        witness.collision = Some(true);
        History {
            meta: Meta {
                implementation: "x".into(),
                seed: 9,
                procs: 1,
                threads: 2,
                locks: 1,
                duration_ms: 10,
                timing_scale: 1.0,
                replay: "cargo xtask stress --seed 9".into(),
                start_ns: 0,
                end_ns: 5_000_000,
            },
            kills: vec![Kill {
                proc: 0,
                incarnation: 0,
                sent_ns: 2_500_000,
                reaped_ns: 2_600_000,
            }],
            ops: vec![acquire, witness],
        }
    }

    #[test]
    fn json_round_trips_with_one_op_per_line() {
        let history = sample();
        let json = history.to_json();
        assert_eq!(serde_json::from_str::<History>(&json).unwrap(), history);
        let op_lines = json.lines().filter(|l| l.starts_with("{\"op\"")).count();
        assert_eq!(op_lines, 2, "{json}");
        assert!(!json.contains("\"complete_ns\":null"), "{json}");
    }

    #[test]
    fn timeline_lists_the_window_and_flags_the_evidence() {
        let history = sample();
        let text = history.timeline(Some(0), 0, 3_000_000, &[1]);
        assert!(
            text.contains("acquire lock 0 obj 3 (timeout 0 ms) -> acquired"),
            "{text}"
        );
        assert!(text.contains(">>       2.000  p0#0/t1"), "{text}");
        assert!(text.contains("value 4 COLLISION"), "{text}");
        assert!(
            text.contains("KILLED with SIGKILL, reaped at 2.600"),
            "{text}"
        );
        let late = history.timeline(Some(0), 4_000_000, 4_500_000, &[]);
        assert!(!late.contains("acquire lock"), "{late}");
        let other_lock = history.timeline(Some(1), 0, 5_000_000, &[]);
        assert!(!other_lock.contains("lock 0"), "{other_lock}");
    }

    #[test]
    fn outcomes_parse_only_protocol_names() {
        assert_eq!(Outcome::parse("would_block"), Some(Outcome::WouldBlock));
        assert_eq!(Outcome::parse("killed"), None);
        assert!(Outcome::TimedOut.is_lock_error());
        assert!(!Outcome::Pending.is_answered());
    }
}
