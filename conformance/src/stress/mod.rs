//! Stress mode: random, reproducible operation mixes on a few lock files by several worker
//! processes at once, and an independent checker of the merged history.
//!
//! [`driver::drive`] plays the mix ([`generator`]) and records a [`history::History`];
//! [`checker::check`] judges it, a pure function; [`save_evidence`] writes the history and a
//! readable timeline of each finding's window. `lockspec-stress` (`cargo xtask stress`) is the
//! command-line front end, and the scenario step `stress` runs a short one in the suite.

pub mod checker;
pub mod driver;
pub mod generator;
pub mod history;

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use checker::{Report, Verdict, check};
pub use driver::{Config, DriveError, Recorded, drive};
pub use generator::synthetic;
pub use history::History;

use crate::process::Implementation;
use crate::timing::Timing;

/// A finished run: what was recorded and what the checker found.
#[derive(Debug, Clone)]
pub struct Run {
    pub recorded: Recorded,
    pub report: Report,
}

/// Runs the mix in a fresh temporary directory (under `parent`, or the system's) and checks it.
///
/// # Errors
///
/// A [`DriveError`] when a worker could not be driven, or the directory could not be created.
pub fn run(
    imps: &[Implementation],
    config: &Config,
    parent: Option<&Path>,
    replay: &str,
) -> Result<Run, DriveError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("lockspec-stress-");
    let dir = match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .map_err(|e| DriveError {
        message: format!("cannot create a temporary directory: {e}"),
        stderr: String::new(),
    })?;
    run_in(imps, config, dir.path(), replay)
}

/// Runs the mix in `dir` and checks it.
///
/// # Errors
///
/// A [`DriveError`] when a worker could not be driven.
pub fn run_in(
    imps: &[Implementation],
    config: &Config,
    dir: &Path,
    replay: &str,
) -> Result<Run, DriveError> {
    let recorded = drive(imps, dir, config, replay)?;
    let report = check(&recorded.history, &checker::Config::new(&config.timing));
    Ok(Run { recorded, report })
}

/// The command that replays a run of `imps` with `config`, as `cargo xtask stress` options.
pub fn replay_command(imps: &[Implementation], config: &Config) -> String {
    let mut cmd = String::from("cargo xtask stress");
    let names: Option<Vec<String>> = imps.iter().map(impl_argument).collect();
    match (names, imps.first()) {
        (Some(names), _) => {
            let _ = write!(cmd, " --impl {}", names.join("+"));
        }
        (None, Some(imp)) => {
            // Quoted twice: each word for the worker's command line, then that line for the
            // shell that runs `cargo xtask stress`.
            let words: Vec<String> = std::iter::once(&imp.program)
                .chain(&imp.args)
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            let line = shlex::try_join(words.iter().map(String::as_str))
                .unwrap_or_else(|_| imp.command_line());
            let quoted = shlex::try_quote(&line).map_or_else(|_| line.clone(), |q| q.into_owned());
            let _ = write!(cmd, " --worker {quoted} --name {}", imp.name);
        }
        (None, None) => {}
    }
    let _ = write!(
        cmd,
        " --procs {} --threads {} --locks {} --duration {} --seed {}",
        config.procs,
        config.threads,
        config.locks,
        config.duration.as_secs_f64(),
        config.seed
    );
    match config.kill_every {
        None => cmd.push_str(" --no-kills"),
        Some(every) if Some(every) != Config::new(0).kill_every => {
            let _ = write!(cmd, " --kill-every-ms {}", every.as_millis());
        }
        Some(_) => {}
    }
    if config.timing.scale() != 1.0 {
        let _ = write!(cmd, " --timing-scale {}", config.timing.scale());
    }
    cmd
}

/// How `--impl` names a built-in implementation (`mutant:NAME` for a mutant); `None` for a
/// worker given by its command line.
fn impl_argument(imp: &Implementation) -> Option<String> {
    let file = Path::new(&imp.program)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file == "lockspec-worker-mutants" {
        return imp
            .name
            .strip_prefix("mutant-")
            .map(|m| format!("mutant:{m}"));
    }
    file.starts_with("lockspec-worker-")
        .then(|| imp.name.clone())
}

/// Where runs write their evidence by default: `lockspec/stress/` in the target directory.
pub fn default_out_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                crate::suite::default_root().join(dir)
            }
        }
        _ => crate::suite::default_root().join("target"),
    };
    target.join("lockspec").join("stress")
}

/// The files [`save_evidence`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub history: PathBuf,
    pub timeline: PathBuf,
}

/// How far around a finding's own operations its timeline reaches.
const CONTEXT_NS: u64 = 5_000_000;

/// How many findings get a timeline.
const TIMELINES: usize = 5;

/// Writes the history (`history.json`) and the timelines of the first findings
/// (`timeline.txt`) to `out/IMPL-seedSEED/`, and returns their paths.
///
/// # Errors
///
/// The I/O error of creating the directory or writing a file.
pub fn save_evidence(history: &History, report: &Report, out: &Path) -> io::Result<Evidence> {
    let name: String = history
        .meta
        .implementation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = out.join(format!("{name}-seed{}", history.meta.seed));
    std::fs::create_dir_all(&dir)?;
    let evidence = Evidence {
        history: dir.join("history.json"),
        timeline: dir.join("timeline.txt"),
    };
    history.save(&evidence.history)?;
    std::fs::write(&evidence.timeline, timelines(history, report))?;
    Ok(evidence)
}

/// The report's summary, then for each of the first findings (violations first) its summary and
/// the timeline of its window.
pub fn timelines(history: &History, report: &Report) -> String {
    let mut out = format!(
        "stress run of {} with seed {}\nreplay: {}\n{}\n",
        history.meta.implementation,
        history.meta.seed,
        history.meta.replay,
        report.summary()
    );
    let mut findings: Vec<&checker::Finding> = report.findings.iter().collect();
    findings.sort_by_key(|f| (f.kind.severity(), f.kind, f.from_ns));
    for (k, finding) in findings.iter().take(TIMELINES).enumerate() {
        let _ = write!(
            out,
            "\n=== finding {} of {}: {} ({}) ===\n{}\n\n",
            k + 1,
            report.findings.len(),
            finding.kind,
            finding.kind.rule(),
            finding.summary
        );
        out.push_str(&history.timeline(
            finding.lock,
            finding.from_ns.saturating_sub(CONTEXT_NS),
            finding.to_ns + CONTEXT_NS,
            &finding.ops,
        ));
    }
    out
}

/// The length of the `short` stress run of the scenario step.
pub const SHORT: Duration = Duration::from_millis(1500);

/// The configuration of the scenario step: `procs` workers of two threads on one lock file, a
/// kill about every 500 ms.
pub fn step_config(procs: u32, seed: u64, duration: Duration, timing: Timing) -> Config {
    Config {
        procs,
        threads: 2,
        locks: 1,
        duration,
        kill_every: Some(Duration::from_millis(500)),
        timing,
        ..Config::new(seed)
    }
}

/// How the scenario step `stress` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// No two holders.
    Pass,
    /// Two holders at once: what the rule expects and what the run showed.
    Fail { expected: String, observed: String },
    /// The run could not show anything (no acquire succeeded, no contention): the reason.
    Unknown(String),
    /// A worker broke: the message.
    Broken(String),
}

/// The scenario step's outcome and lines for the trial's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub outcome: StepOutcome,
    pub log: Vec<String>,
}

/// The scenario step `stress`: a run of [`step_config`] in `dir`, judged on STR-1 alone (two
/// holders at once: overlapping holds, a sentinel collision, a lost update). Other findings go
/// to the log; the evidence of a failure is written under [`default_out_dir`].
pub fn scenario_step(
    imps: &[Implementation],
    dir: &Path,
    procs: u32,
    seed: u64,
    duration: Duration,
    timing: Timing,
) -> StepReport {
    let config = step_config(procs, seed, duration, timing);
    let replay = replay_command(imps, &config);
    let mut log = vec![format!("stress run: {replay}")];
    let run = match run_in(imps, &config, dir, &replay) {
        Ok(run) => run,
        Err(e) => {
            return StepReport {
                outcome: StepOutcome::Broken(format!("the stress run could not be completed: {e}")),
                log,
            };
        }
    };
    let report = &run.report;
    log.extend(report.summary().lines().map(str::to_owned));
    // Two holders at once, and a lock error while no one held or even acquired the lock: an
    // acquire that fails for nothing is as wrong under stress as anywhere (TMO-2).
    let judged =
        |kind: checker::Kind| kind.is_two_holders() || kind == checker::Kind::LockErrorWhileFree;
    let two_holders: Vec<&checker::Finding> =
        report.findings.iter().filter(|f| judged(f.kind)).collect();
    let outcome = if let Some(first) = two_holders.first() {
        let counts: Vec<String> = report
            .counts
            .iter()
            .filter(|(k, _)| judged(**k))
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let evidence = match save_evidence(&run.recorded.history, report, &default_out_dir()) {
            Ok(e) => format!(
                "history: {}; timeline: {}",
                e.history.display(),
                e.timeline.display()
            ),
            Err(e) => format!("the evidence could not be written: {e}"),
        };
        StepOutcome::Fail {
            expected: "never two holders of the lock at once (no overlapping holds, no sentinel collision, no lost update), and no lock error while the lock was free".into(),
            observed: format!(
                "{}; first: {}; seed {seed}; replay: {replay}; {evidence}",
                counts.join(", "),
                first.summary
            ),
        }
    } else {
        match &report.verdict {
            Verdict::Unknown(reason) => StepOutcome::Unknown(format!(
                "the stress run cannot judge this implementation: {reason}"
            )),
            Verdict::Ok | Verdict::Violation => StepOutcome::Pass,
        }
    };
    StepReport { outcome, log }
}
