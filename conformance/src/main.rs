//! `lockspec`: runs the conformance suite against lock implementations and prints a per-rule
//! table. `cargo xtask conformance` builds the workers and calls this.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use lockspec_conformance::calibrate;
use lockspec_conformance::expectations::{self, Cell, Expectations, Expected};
use lockspec_conformance::implementations as builtins;
use lockspec_conformance::report::{
    self, Environment, ExpectationNote, Finished, Margins, Recorder,
};
use lockspec_conformance::run::{self, TrialReport, Verdict};
use lockspec_conformance::scenario::{Scenario, Tier};
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, Settings, suite};

/// Runs the lockspec conformance suite against a lock implementation.
#[derive(Debug, Parser)]
#[command(name = "lockspec", version)]
struct Cli {
    /// Built-in implementations to judge, comma-separated, or `all` (the help lists them, from the
    /// registry). Python and Node ones need `cargo xtask peers`.
    #[arg(
        long = "impl",
        value_delimiter = ',',
        default_value = "reference",
        help = impl_help()
    )]
    implementations: Vec<String>,

    /// Judge an external worker instead: its command line, split on spaces
    /// (e.g. `--worker 'python3 my_adapter.py'`).
    #[arg(long, value_name = "CMD")]
    worker: Option<String>,

    /// The name of the external worker in reports.
    #[arg(long, default_value = "worker", requires = "worker")]
    name: String,

    /// Run only tests whose name (`IMPL::AREA::SCENARIO`) contains this.
    #[arg(long)]
    filter: Option<String>,

    /// With --filter: the name must match exactly.
    #[arg(long, requires = "filter")]
    exact: bool,

    /// List the tests and exit.
    #[arg(long)]
    list: bool,

    /// Multiply every timing margin by this factor (default: LOCKSPEC_TIMING_SCALE or 1).
    #[arg(long, value_name = "FACTOR")]
    timing_scale: Option<f64>,

    /// Put the lock files under this directory instead of the system's temporary directory.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,

    /// How many scenarios run at once (slow-tier scenarios, which mostly wait, run beside them).
    #[arg(long, short = 'j', default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,

    /// Which tiers of scenarios to run: `fast`, `slow` (waits of tens of seconds) or `all`.
    #[arg(long, value_enum, default_value_t = TierChoice::All)]
    tier: TierChoice,

    /// The directory that holds spec/ and scenarios/ (default: LOCKSPEC_ROOT or the source tree).
    #[arg(long, value_name = "PATH")]
    root: Option<PathBuf>,

    /// Also play the interop scenarios (`scenarios/interop/`) for every ordered pair of the
    /// implementations, and add the matrix of who excludes whom to the reports.
    #[arg(long)]
    interop: bool,

    /// Where to write report.md, report.json and report.html (default: `lockspec/` in the
    /// target directory, beside the directory of this program).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Also write the Markdown report to this file, headed by the command that regenerates it
    /// (`--results docs/results.md`).
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,

    /// Rewrite each implementation's expectation file (`expectations/NAME.json`) from this run:
    /// passes are removed, failures recorded with their step and its rule, reasons of failures
    /// with an unchanged outcome and rule kept, new ones marked for review.
    #[arg(long)]
    bless: bool,
}

/// The tiers `--tier` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TierChoice {
    Fast,
    Slow,
    All,
}

impl TierChoice {
    fn includes(self, tier: Tier) -> bool {
        match self {
            TierChoice::All => true,
            TierChoice::Fast => tier == Tier::Fast,
            TierChoice::Slow => tier == Tier::Slow,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = real_main(cli);
    lockspec_conformance::cleanup::finish();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, String> {
    let root = cli.root.clone().unwrap_or_else(suite::default_root);
    let suite = suite::load(&root).map_err(|errors| {
        let mut msg = String::new();
        for e in &errors {
            msg.push_str(&format!("{e}\n"));
        }
        format!("{msg}the suite at {} cannot be loaded", root.display())
    })?;
    let timing = match cli.timing_scale {
        Some(s) => Timing::new(s)?,
        None => Timing::from_env()?,
    };
    if let Some(dir) = &cli.dir
        && !dir.is_dir()
    {
        return Err(format!("--dir {}: not a directory", dir.display()));
    }
    let implementations = implementations(&cli, &root)?;
    let noise = calibrate::calibrate(
        &reference(&root)?,
        cli.dir.as_deref(),
        timing,
        calibrate::DEFAULT_ROUNDS,
    )?;
    let settings = Settings {
        timing: timing.with_noise(noise),
        dir: cli.dir.clone(),
        reference: Some(reference(&root)?),
    };

    let mut expected: HashMap<String, Expectations> = HashMap::new();
    for imp in &implementations {
        let file = Expectations::load(&root, &imp.name).map_err(|e| e.to_string())?;
        expected.insert(imp.name.clone(), file);
    }
    let tests = plan(&cli, &suite.scenarios, &implementations, &expected);
    if cli.list {
        for t in &tests {
            println!("{}: {}", t.name, t.scenario.description);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if tests.is_empty() {
        return Err(match &cli.filter {
            Some(f) => format!("no test matches the filter {f:?} (try --list)"),
            None => "no tests to run".into(),
        });
    }
    let out_dir = match &cli.out {
        Some(dir) => dir.clone(),
        None => default_out_dir()?,
    };
    let jobs = usize::from(cli.jobs);
    let environment = Environment::detect(
        cli.dir.as_deref(),
        settings.timing.scale(),
        jobs,
        &command_line(),
    );
    let mut environment = environment;
    let margins = Margins::of(&settings.timing);
    // Like the progress lines, it may find its output gone (an interrupted `cargo xtask`).
    let _ = writeln!(std::io::stdout(), "margins: {}", margins.line());
    environment.margins = Some(margins);
    let lock_base = cli.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut recorder = Recorder::new(environment, &suite, &implementations, &lock_base);
    for imp in &implementations {
        if let Some(builtin) = lockspec_conformance::implementations::find(&imp.name)
            && cli.worker.is_none()
        {
            recorder.describe(&imp.name, builtin.notes);
        }
    }
    if cli.interop {
        let scenarios: Vec<&Scenario> = suite.scenarios.iter().filter(|s| is_interop(s)).collect();
        recorder.interop(&scenarios);
    }

    let start = Instant::now();
    let results = run_all(&tests, &settings, jobs);
    let wall = start.elapsed();

    let titles = suite.rule_titles();
    for (t, r) in tests.iter().zip(&results) {
        let (cell, note) = judge(t, r);
        // Two different implementations that do not exclude each other are a finding of the
        // interop matrix, not a failure of the run (IOP-1 is a SHOULD).
        let cross = t.second.as_ref().is_some_and(|second| *second != t.first);
        if !cell.is_ok() && !cross {
            println!(
                "\n{}",
                run::explain(&t.name, &t.scenario, r, &titles, &t.rerun)
            );
            if let Some(mismatch) = cell.mismatch(&r.verdict) {
                println!("  {mismatch}");
            }
        }
        let finished = Finished {
            test: &t.name,
            implementation: &t.first,
            second: t.second.as_deref(),
            scenario: &t.scenario,
            report: r,
            rerun: &t.rerun,
        };
        recorder.record(finished, note);
    }
    let report = recorder.finish(Some(wall));
    let colour = std::io::stdout().is_terminal();
    println!("\n{}", report::terminal::table(&report, colour));
    if report.interop.is_some() {
        println!("{}", report::terminal::interop_table(&report, colour));
    }
    println!("{}", report::terminal::summary(&report));
    let written =
        report::write(&report, &out_dir).map_err(|e| format!("cannot write the reports: {e}"))?;
    println!(
        "reports: {}, {}, {}",
        written.markdown.display(),
        written.json.display(),
        written.html.display()
    );
    if cli.bless {
        bless(&root, &tests, &results, &mut expected)?;
    }
    if let Some(path) = &cli.results {
        std::fs::write(path, report::results_markdown(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results: {}", path.display());
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The reference implementation's worker, which calibrates the margins.
fn reference(root: &Path) -> Result<Implementation, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().ok_or("this program has no directory")?;
    let at = builtins::Locations::new(bin_dir, root);
    let reference = builtins::find("reference").ok_or("no built-in reference")?;
    reference.resolve(&at).map_err(|e| e.to_string())
}

/// The help of `--impl`: every built-in implementation, by name.
fn impl_help() -> String {
    format!(
        "Built-in implementations to judge, comma-separated, or `all`: {}. Python and Node ones \
         need `{}`",
        builtins::names(),
        builtins::INSTALL_PEERS
    )
}

/// The implementations named on the command line, with their worker commands. A built-in one
/// that is not installed here stays in the list: its tests are error verdicts that say how to
/// install it, and the others run.
fn implementations(cli: &Cli, root: &Path) -> Result<Vec<Implementation>, String> {
    if let Some(cmd) = &cli.worker {
        return Ok(vec![Implementation::from_command_line(&cli.name, cmd)?]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().ok_or("this program has no directory")?;
    let at = builtins::Locations::new(bin_dir, root);
    let mut out = Vec::new();
    for builtin in builtins::select(&cli.implementations)? {
        match builtin.resolve(&at) {
            Ok(imp) => out.push(imp),
            Err(missing) => {
                eprintln!("warning: {missing}");
                out.push(missing.into_implementation());
            }
        }
    }
    Ok(out)
}

/// One test: a scenario played by one implementation, or (interop) by an ordered pair.
#[derive(Debug, Clone)]
struct Test {
    /// `IMPL::AREA::NAME`, or `FIRST+SECOND::AREA::NAME` for a pair.
    name: String,
    /// The implementation of the first process.
    first: String,
    /// The implementation of the other processes, for a pair.
    second: Option<String>,
    /// Who plays the processes, in order (see `run::run_mixed`).
    players: Vec<Implementation>,
    scenario: Scenario,
    rerun: String,
    /// The failure the implementation's expectation file expects; never for two different
    /// implementations.
    expected: Option<Expected>,
}

/// Whether a scenario belongs to the interop check.
fn is_interop(s: &Scenario) -> bool {
    s.id.starts_with("interop::")
}

/// Every test the command line asks for: each implementation against each scenario and, with
/// `--interop`, each ordered pair against each interop scenario.
fn plan(
    cli: &Cli,
    scenarios: &[Scenario],
    implementations: &[Implementation],
    expected: &HashMap<String, Expectations>,
) -> Vec<Test> {
    let expectation = |imp: &str, s: &Scenario| -> Option<Expected> {
        expected.get(imp).and_then(|e| e.get(&s.id)).cloned()
    };
    let keep_name = |name: &str| match &cli.filter {
        None => true,
        Some(f) if cli.exact => name == f,
        Some(f) => name.contains(f.as_str()),
    };
    let scenarios: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| cli.tier.includes(s.tier))
        .collect();
    let keep = keep_name;
    let mut tests = Vec::new();
    for imp in implementations {
        for &s in &scenarios {
            let name = format!("{}::{}", imp.name, s.id);
            if keep(&name) {
                tests.push(Test {
                    rerun: rerun_command(cli, &[&imp.name], false, &name),
                    name,
                    first: imp.name.clone(),
                    second: None,
                    players: vec![imp.clone()],
                    scenario: s.clone(),
                    expected: expectation(&imp.name, s),
                });
            }
        }
    }
    if cli.interop {
        for a in implementations {
            for b in implementations {
                for &s in scenarios.iter().filter(|s| is_interop(s)) {
                    let name = format!("{}+{}::{}", a.name, b.name, s.id);
                    if keep(&name) {
                        tests.push(Test {
                            rerun: rerun_command(cli, &[&a.name, &b.name], true, &name),
                            name,
                            first: a.name.clone(),
                            second: Some(b.name.clone()),
                            players: vec![a.clone(), b.clone()],
                            scenario: s.clone(),
                            expected: if a.name == b.name {
                                expectation(&a.name, s)
                            } else {
                                None
                            },
                        });
                    }
                }
            }
        }
    }
    tests
}

/// Judges a trial against its expectation: the cell, and what the report says about the
/// expectation (`None` when there is none, or the trial was not applicable).
fn judge(test: &Test, report: &TrialReport) -> (Cell, Option<ExpectationNote>) {
    let cell = expectations::judge(&report.verdict, test.expected.as_ref());
    let note = match &cell {
        Cell::ExpectedFail(e) => Some((e, true)),
        other => other.broken_expectation().map(|e| (e, false)),
    }
    .map(|(e, held)| ExpectationNote {
        outcome: e.outcome.name().to_owned(),
        step: e.step,
        rule: e.rule.clone(),
        reason: e.reason.clone(),
        held,
    });
    (cell, note)
}

/// Rewrites the expectation file of every implementation that ran from its trials (not the
/// interop pairs), and says what changed.
fn bless(
    root: &Path,
    tests: &[Test],
    results: &[TrialReport],
    files: &mut HashMap<String, Expectations>,
) -> Result<(), String> {
    let today = expectations::today();
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    let names: Vec<String> = names.into_iter().cloned().collect();
    for name in names {
        let ran: Vec<(&str, &Verdict)> = tests
            .iter()
            .zip(results)
            .filter(|(t, _)| t.second.is_none() && t.first == name)
            .map(|(t, r)| (t.scenario.id.as_str(), &r.verdict))
            .collect();
        if ran.is_empty() {
            continue;
        }
        let file = files.get_mut(&name).expect("a file per implementation");
        let blessed = file.bless(ran, &today);
        let path = file
            .save(root)
            .map_err(|e| format!("cannot write the expectations of {name}: {e}"))?;
        println!(
            "blessed {}: {} kept, {} to review, {} removed",
            path.display(),
            blessed.kept,
            blessed.to_review,
            blessed.removed
        );
    }
    Ok(())
}

/// The command that reruns one test: the implementations it needs, the settings that change
/// verdicts, and `--exact --filter NAME`.
fn rerun_command(cli: &Cli, implementations: &[&str], interop: bool, name: &str) -> String {
    let mut cmd = String::from("cargo xtask conformance");
    if let Some(w) = &cli.worker {
        cmd.push_str(&format!(
            " --worker {} --name {}",
            shell_word(w),
            shell_word(&cli.name)
        ));
    } else {
        let mut names: Vec<&str> = implementations.to_vec();
        names.dedup();
        if names != ["reference"] {
            cmd.push_str(&format!(" --impl {}", shell_word(&names.join(","))));
        }
    }
    if interop {
        cmd.push_str(" --interop");
    }
    if let Some(s) = cli.timing_scale {
        cmd.push_str(&format!(" --timing-scale {s}"));
    }
    if let Some(d) = &cli.dir {
        cmd.push_str(&format!(" --dir {}", shell_word(&d.display().to_string())));
    }
    cmd.push_str(&format!(" --exact --filter {}", shell_word(name)));
    cmd
}

/// A word as a POSIX shell reads it: bare when it is safe, else in single quotes.
fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,:=+@%".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// This run as a command a person can repeat: `cargo xtask conformance ARGS`.
fn command_line() -> String {
    let mut cmd = String::from("cargo xtask conformance");
    for arg in std::env::args().skip(1) {
        cmd.push(' ');
        cmd.push_str(&shell_word(&arg));
    }
    cmd
}

/// `lockspec/` in the target directory: beside the directory that holds this program.
fn default_out_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().unwrap_or(Path::new("."));
    Ok(bin_dir.parent().unwrap_or(bin_dir).join("lockspec"))
}

/// Runs every test on `jobs` threads, printing one progress line per finished test.
/// Runs the tests, `jobs` at a time; every slow-tier test starts at once on a thread of its own
/// (they wait for tens of seconds and use almost nothing meanwhile), so that the slow tier adds
/// about its longest scenario to the wall time.
fn run_all(tests: &[Test], settings: &Settings, jobs: usize) -> Vec<TrialReport> {
    let (slow, fast): (Vec<usize>, Vec<usize>) =
        (0..tests.len()).partition(|&i| tests[i].scenario.tier == Tier::Slow);
    let queue = Arc::new(Mutex::new(fast.into_iter()));
    let (tx, rx) = mpsc::channel::<(usize, TrialReport)>();
    let total = tests.len();
    let colour = std::io::stdout().is_terminal();
    std::thread::scope(|scope| {
        for i in slow {
            let tx = tx.clone();
            scope.spawn(move || {
                let t = &tests[i];
                let _ = tx.send((i, run::run_mixed(&t.players, &t.scenario, settings)));
            });
        }
        for _ in 0..jobs.min(total) {
            let (queue, tx) = (Arc::clone(&queue), tx.clone());
            scope.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(i) = next else {
                        return;
                    };
                    let t = &tests[i];
                    let report = run::run_mixed(&t.players, &t.scenario, settings);
                    if tx.send((i, report)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut results: Vec<Option<TrialReport>> = vec![None; total];
        let mut done = 0;
        let mut out = std::io::stdout().lock();
        for (i, report) in rx {
            done += 1;
            let t = &tests[i];
            let label = verdict_label(&judge(t, &report).0, colour);
            let _ = writeln!(
                out,
                "[{done:>3}/{total}] {label} {} ({:.2} s)",
                t.name,
                report.elapsed.as_secs_f64()
            );
            results[i] = Some(report);
        }
        results
            .into_iter()
            .map(|r| r.expect("every test reports"))
            .collect()
    })
}

fn verdict_label(cell: &Cell, colour: bool) -> String {
    let (word, code) = match cell {
        Cell::Pass => ("PASS ", "32"),
        Cell::ExpectedFail(_) => ("XFAIL", "33"),
        Cell::NotApplicable(_) => ("N/A  ", "2"),
        Cell::Fail { .. } => ("FAIL ", "31"),
        Cell::Error { .. } => ("ERROR", "35"),
        Cell::UnexpectedPass(_) => ("XPASS", "31"),
        Cell::UnexpectedSkip(..) => ("XSKIP", "31"),
    };
    if colour {
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_owned()
    }
}
