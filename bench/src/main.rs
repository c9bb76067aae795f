//! `lockspec-bench`: how fast lock implementations are, measured through their workers and
//! compared with the bare OS lock measured in the same run.
//!
//! For each implementation it starts two workers on one lock file and measures, from the
//! workers' own timestamps (`start_ns`, `t_ns`): uncontended acquire + release; hand-off latency
//! from a holder's release to a waiter already blocked in a blocking or a timed acquire; how late
//! a timed acquire of a held lock returns after its timeout; and the CPU time the waiting worker
//! uses. The baseline, `raw-flock`, is this binary serving the protocol with bare `flock` calls.
//! It prints a table with every figure's ratio to the baseline, and writes `bench.json`,
//! `bench.md`, `bench.html` and one `bench-NAME.svg` latency chart per implementation to `--out`.
//! `cargo xtask bench` builds the workers in release mode and runs it.

mod client;
mod cpu;
mod measure;
mod raw;
mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use lockspec_conformance::implementations::{self, Locations};
use lockspec_conformance::process::Implementation;

use crate::measure::{Abilities, Plan};
use crate::render::{Machine, Report};

/// Measures lock implementations through their workers against a bare-flock baseline.
#[derive(Debug, Parser)]
#[command(name = "lockspec-bench", version)]
struct Cli {
    /// Built-in implementations to measure, comma-separated, or `all`.
    #[arg(long = "impl", value_name = "NAMES", default_value = "reference")]
    implementations: Vec<String>,
    /// Measure the worker started by this command line instead.
    #[arg(long, value_name = "CMD")]
    worker: Option<String>,
    /// The name of the `--worker` implementation.
    #[arg(long, default_value = "worker", requires = "worker")]
    name: String,
    /// Where to write bench.json, bench.md, bench.html and the charts.
    #[arg(long, value_name = "DIR", default_value = "target/lockspec")]
    out: PathBuf,
    /// Where to put the lock files (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A few samples of everything: a smoke test, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Hand-off samples per kind of acquire (default 200).
    #[arg(long, value_name = "N")]
    handoffs: Option<usize>,
    /// The workspace root, which holds the adapters of the Python and Node peers.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

fn main() -> ExitCode {
    lockspec_worker::idle_child_if_requested();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == raw::SERVE_FLAG)
    {
        raw::serve();
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("lockspec-bench: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark; `Ok(false)` when the baseline or the reference could not be measured.
fn run(cli: &Cli) -> Result<bool, String> {
    let mut plan = if cli.quick {
        Plan::QUICK
    } else {
        Plan::DEFAULT
    };
    if let Some(handoffs) = cli.handoffs {
        plan.handoffs = handoffs.max(1);
    }
    let mut targets = vec![(baseline()?, Abilities { timed_wait: false })];
    for imp in implementations(cli)? {
        targets.push((imp, Abilities { timed_wait: true }));
    }
    let scratch = match &cli.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let in_process = raw::in_process(scratch.path(), 21, 1000)
        .map_err(|e| eprintln!("lockspec-bench: the in-process baseline failed: {e}"))
        .ok();

    let mut progress = |step: &str| eprintln!("{step}");
    let measured = measure::measure_all(&targets, &plan, cli.dir.as_deref(), &mut progress);
    let mut report = Report {
        format: 1,
        command: command_line(),
        machine: Machine::here(),
        plan,
        baseline: raw::NAME,
        in_process,
        implementations: measured,
        targets: Vec::new(),
    };
    report.check_targets();
    println!("{}", report.terminal());
    write_outputs(&report, &cli.out)?;
    // Another library that hangs or errs is a finding of the benchmark, reported in the table;
    // the run fails only when the baseline or the reference could not be measured.
    Ok(report
        .implementations
        .iter()
        .filter(|m| m.name == raw::NAME || m.name == "reference")
        .all(|m| m.error.is_none()))
}

/// The baseline worker: this binary, serving bare flock.
fn baseline() -> Result<Implementation, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(Implementation::new(raw::NAME, exe, &[raw::SERVE_FLAG]))
}

/// The implementations the command line names.
fn implementations(cli: &Cli) -> Result<Vec<Implementation>, String> {
    if let Some(command) = &cli.worker {
        return Ok(vec![Implementation::from_command_line(&cli.name, command)?]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().ok_or("this program has no directory")?;
    let root = cli
        .root
        .clone()
        .unwrap_or_else(lockspec_conformance::suite::default_root);
    let at = Locations::new(bin_dir, root);
    let selected = implementations::select(&cli.implementations)?;
    Ok(selected
        .into_iter()
        .map(|builtin| {
            builtin
                .resolve(&at)
                .unwrap_or_else(implementations::NotInstalled::into_implementation)
        })
        .collect())
}

/// How this run was started, for the outputs: `cargo xtask bench` passes it on; otherwise the
/// arguments, after the program's file name.
fn command_line() -> String {
    std::env::var("LOCKSPEC_BENCH_COMMAND").unwrap_or_else(|_| {
        let mut args = std::env::args();
        let program = args.next().unwrap_or_default();
        let program = Path::new(&program)
            .file_name()
            .map_or(program.clone(), |name| name.to_string_lossy().into_owned());
        std::iter::once(program)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Writes bench.json, bench.md, bench.html and one chart per implementation into `out`.
fn write_outputs(report: &Report, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<PathBuf, String>(path)
    };
    let json = serde_json::to_string_pretty(report).expect("the report serialises");
    let mut written = vec![
        write("bench.json", &json)?,
        write("bench.md", &report.markdown())?,
        write("bench.html", &report.html())?,
    ];
    for m in &report.implementations {
        if let Some(svg) = report.chart(m) {
            written.push(write(&format!("bench-{}.svg", m.name), &svg)?);
        }
    }
    eprintln!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
