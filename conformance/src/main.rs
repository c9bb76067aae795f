//! `lockspec`: runs the conformance suite against lock implementations and prints a per-rule
//! table. `cargo xtask conformance` builds the workers and calls this. A front end of the one
//! pipeline: its arguments become a plan (`plan`), which is run (`runner`), judged (`judge`) and
//! reported (`report`), and the judge decides the exit status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use lockspec_conformance::expectations::Expectations;
use lockspec_conformance::implementations::{self as builtins, Locations};
use lockspec_conformance::judge;
use lockspec_conformance::plan::{self, Rerun, Selection, Tiers};
use lockspec_conformance::report::{self, Environment, Margins, Recorder, terminal};
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, Settings, Suite, calibrate, runner, suite};

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
        help = builtins::impl_help()
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
    #[arg(long, value_enum, default_value_t = Tiers::All)]
    tier: Tiers,

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

fn main() -> ExitCode {
    let result = real_main(Cli::parse());
    lockspec_conformance::cleanup::finish();
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn real_main(cli: Cli) -> Result<ExitCode, String> {
    let root = cli.root.clone().unwrap_or_else(suite::default_root);
    let suite = suite::load_or_explain(&root)?;
    let timing = Timing::scaled(cli.timing_scale)?;
    if let Some(dir) = &cli.dir
        && !dir.is_dir()
    {
        return Err(format!("--dir {}: not a directory", dir.display()));
    }
    let at = Locations::of_this_program(&root)?;
    let selection = selection(&cli, &at)?;
    let names = selection.implementations.iter().map(|i| i.name.as_str());
    let mut expected = Expectations::load_all(&root, names).map_err(|e| e.to_string())?;
    let rerun = Rerun::Xtask {
        worker: cli.worker.clone().map(|w| (w, cli.name.clone())),
        timing_scale: cli.timing_scale,
        dir: cli.dir.clone(),
    };
    let tests = plan::plan(&suite, &selection, &expected, &rerun);
    if cli.list {
        print!("{}", plan::listing(&tests));
        return Ok(ExitCode::SUCCESS);
    } else if tests.is_empty() {
        return Err(plan::nothing_to_run(&selection));
    }
    let out_dir = cli.out.clone().map_or_else(report::default_dir, Ok)?;
    let settings = calibrate::settings(builtins::reference(&at)?, cli.dir.clone(), timing)?;
    let mut recorder = recorder(&cli, &suite, &selection, &settings);

    let started = Instant::now();
    let results = runner::run(&tests, &settings, usize::from(cli.jobs), |f| {
        let j = judge::judge(f.test, f.report);
        let line = terminal::progress(f.done, f.total, f.test, &j, f.report.elapsed, true);
        // Like the margins line, it may find its output gone (an interrupted `cargo xtask`).
        let _ = writeln!(anstream::stdout().lock(), "{line}");
    });
    let wall = started.elapsed();

    let titles = suite.rule_titles();
    for (t, r) in tests.iter().zip(&results) {
        let judgement = judge::judge(t, r);
        if judgement.fails_run() {
            println!("\n{}", terminal::explain(t, r, &judgement, &titles));
        }
        recorder.record(t, r, &judgement);
    }
    let report = recorder.finish(Some(wall));
    anstream::println!("{}", terminal::tables(&report, true));
    let written =
        report::write(&report, &out_dir).map_err(|e| format!("cannot write the reports: {e}"))?;
    println!("reports: {written}");
    if cli.bless {
        for file in judge::bless(&root, &tests, &results, &mut expected)? {
            println!("{file}");
        }
    }
    if let Some(path) = &cli.results {
        std::fs::write(path, report::results_markdown(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results: {}", path.display());
    }
    Ok(judge::exit_code(&report))
}

/// What the command line selects.
fn selection(cli: &Cli, at: &Locations) -> Result<Selection, String> {
    let implementations = match &cli.worker {
        Some(cmd) => vec![Implementation::from_command_line(&cli.name, cmd)?],
        None => builtins::resolve_named(&cli.implementations, at, |missing| {
            eprintln!("warning: {missing}");
        })?,
    };
    Ok(Selection {
        implementations,
        interop: cli.interop,
        filter: cli.filter.clone(),
        exact: cli.exact,
        tiers: cli.tier,
    })
}

/// The report's recorder: the environment, with the margins (printed), the built-ins' notes and
/// the interop scenarios.
fn recorder(cli: &Cli, suite: &Suite, selection: &Selection, settings: &Settings) -> Recorder {
    let command = plan::xtask_command(std::env::args().skip(1));
    let (dir, scale) = (cli.dir.as_deref(), settings.timing.scale());
    let mut environment = Environment::detect(dir, scale, usize::from(cli.jobs), &command);
    let margins = Margins::of(&settings.timing);
    let _ = writeln!(std::io::stdout(), "margins: {}", margins.line());
    environment.margins = Some(margins);
    let lock_base = cli.dir.clone().unwrap_or_else(std::env::temp_dir);
    let builtins = cli.worker.is_none();
    Recorder::of_selection(environment, suite, selection, &lock_base, builtins)
}
