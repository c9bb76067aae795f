//! `lockspec`: runs the conformance suite against lock implementations and prints a per-rule
//! table. `cargo xtask conformance` builds the workers and calls this.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use lockspec_conformance::run::{self, TrialReport, Verdict};
use lockspec_conformance::scenario::Scenario;
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, Settings, Suite, suite};

/// Runs the lockspec conformance suite against a lock implementation.
#[derive(Debug, Parser)]
#[command(name = "lockspec", version)]
struct Cli {
    /// Built-in implementations to judge, comma-separated (`reference`).
    #[arg(long = "impl", value_delimiter = ',', default_value = "reference")]
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

    /// How many scenarios run at once.
    #[arg(long, short = 'j', default_value_t = 8)]
    jobs: usize,

    /// The directory that holds spec/ and scenarios/ (default: LOCKSPEC_ROOT or the source tree).
    #[arg(long, value_name = "PATH")]
    root: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
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
    let settings = Settings {
        timing,
        dir: cli.dir.clone(),
    };
    let implementations = implementations(&cli)?;

    let mut tests: Vec<(Implementation, Scenario)> = Vec::new();
    for imp in &implementations {
        for s in &suite.scenarios {
            let name = format!("{}::{}", imp.name, s.id);
            let keep = match &cli.filter {
                None => true,
                Some(f) if cli.exact => name == *f,
                Some(f) => name.contains(f.as_str()),
            };
            if keep {
                tests.push((imp.clone(), s.clone()));
            }
        }
    }
    if cli.list {
        for (imp, s) in &tests {
            println!("{}::{}: {}", imp.name, s.id, s.description);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if tests.is_empty() {
        return Err(match &cli.filter {
            Some(f) => format!("no test matches the filter {f:?} (try --list)"),
            None => "no tests to run".into(),
        });
    }

    let start = Instant::now();
    let results = run_all(&tests, &settings, cli.jobs.max(1));
    let wall = start.elapsed();

    let titles = suite.rule_titles();
    let mut failed = 0;
    for ((imp, s), report) in tests.iter().zip(&results) {
        if matches!(report.verdict, Verdict::Fail(_) | Verdict::Error(_)) {
            failed += 1;
            let name = format!("{}::{}", imp.name, s.id);
            let rerun = rerun_command(&cli, &name);
            println!("\n{}", run::explain(&name, s, report, &titles, &rerun));
        }
    }
    print_table(&suite, &implementations, &tests, &results);
    let count = |v: &str| results.iter().filter(|r| r.verdict.name() == v).count();
    println!(
        "\n{} passed, {} failed; {} skipped, {} errors; {} tests in {:.1} s (timing scale {})",
        count("pass"),
        count("fail"),
        count("skip"),
        count("error"),
        results.len(),
        wall.as_secs_f64(),
        settings.timing.scale()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The implementations named on the command line, with their worker commands.
fn implementations(cli: &Cli) -> Result<Vec<Implementation>, String> {
    if let Some(cmd) = &cli.worker {
        return Ok(vec![Implementation::from_command_line(&cli.name, cmd)?]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().ok_or("this program has no directory")?;
    let mut out = Vec::new();
    for name in &cli.implementations {
        match name.as_str() {
            "reference" => {
                let worker = dir.join(format!(
                    "lockspec-worker-reference{}",
                    std::env::consts::EXE_SUFFIX
                ));
                if !worker.exists() {
                    return Err(format!(
                        "the reference worker is missing at {} (build it: cargo build -p lockspec-conformance --bins)",
                        worker.display()
                    ));
                }
                out.push(Implementation::new("reference", worker, &[]));
            }
            other => {
                return Err(format!(
                    "unknown implementation {other:?}; built in: reference (or use --worker 'CMD')"
                ));
            }
        }
    }
    Ok(out)
}

fn rerun_command(cli: &Cli, name: &str) -> String {
    let mut cmd = String::from("cargo xtask conformance");
    if let Some(w) = &cli.worker {
        cmd.push_str(&format!(" --worker '{w}' --name {}", cli.name));
    }
    if let Some(s) = cli.timing_scale {
        cmd.push_str(&format!(" --timing-scale {s}"));
    }
    cmd.push_str(&format!(" --exact --filter {name}"));
    cmd
}

/// Runs every test on `jobs` threads, printing one progress line per finished test.
fn run_all(
    tests: &[(Implementation, Scenario)],
    settings: &Settings,
    jobs: usize,
) -> Vec<TrialReport> {
    let next = Arc::new(Mutex::new(0usize));
    let (tx, rx) = mpsc::channel::<(usize, TrialReport)>();
    let total = tests.len();
    let colour = std::io::stdout().is_terminal();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total) {
            let (next, tx) = (Arc::clone(&next), tx.clone());
            scope.spawn(move || {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    if i >= total {
                        return;
                    }
                    let (imp, s) = &tests[i];
                    let report = run::run(imp, s, settings);
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
            let (imp, s) = &tests[i];
            let label = verdict_label(&report.verdict, colour);
            let _ = writeln!(
                out,
                "[{done:>3}/{total}] {label} {}::{} ({:.2} s)",
                imp.name,
                s.id,
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

fn verdict_label(v: &Verdict, colour: bool) -> String {
    let (word, code) = match v {
        Verdict::Pass => ("PASS ", "32"),
        Verdict::Fail(_) => ("FAIL ", "31"),
        Verdict::Skip(_) => ("SKIP ", "33"),
        Verdict::Error(_) => ("ERROR", "35"),
    };
    if colour {
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_owned()
    }
}

/// The per-rule table: rule, title, scenarios, and per implementation pass/fail counts.
fn print_table(
    suite: &Suite,
    implementations: &[Implementation],
    tests: &[(Implementation, Scenario)],
    results: &[TrialReport],
) {
    // (rule, implementation) -> verdict names of the scenarios citing it.
    let mut cells: BTreeMap<(String, String), Vec<&'static str>> = BTreeMap::new();
    for ((imp, s), r) in tests.iter().zip(results) {
        for rule in &s.rules {
            cells
                .entry((rule.clone(), imp.name.clone()))
                .or_default()
                .push(r.verdict.name());
        }
    }
    let title_width = suite
        .rules
        .iter()
        .map(|r| r.title.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 60);
    print!("\n{:<7} {:<title_width$} ", "rule", "title");
    for imp in implementations {
        print!("{:<16}", imp.name);
    }
    println!();
    for rule in &suite.rules {
        let title: String = rule.title.chars().take(title_width).collect();
        print!("{:<7} {:<title_width$} ", rule.id, title);
        for imp in implementations {
            let cell = match cells.get(&(rule.id.clone(), imp.name.clone())) {
                None => "-".to_owned(),
                Some(v) => {
                    let n = |w: &str| v.iter().filter(|x| **x == w).count();
                    let (pass, fail, skip, err) = (n("pass"), n("fail"), n("skip"), n("error"));
                    let mut s = if fail + err == 0 && skip == 0 {
                        format!("pass {pass}/{}", v.len())
                    } else if fail + err == 0 {
                        format!("skip {skip}/{}", v.len())
                    } else {
                        format!("FAIL {}/{}", fail + err, v.len())
                    };
                    if err > 0 {
                        s.push('!');
                    }
                    s
                }
            };
            print!("{cell:<16}");
        }
        println!();
    }
}
