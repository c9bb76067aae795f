//! `lockspec-stress`: runs a randomized, reproducible stress mix against a lock implementation
//! and checks the merged history; `cargo xtask stress` builds the workers and calls this.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lockspec_conformance::Implementation;
use lockspec_conformance::implementations::{self, Locations};
use lockspec_conformance::stress::{self, Config, History, Verdict, checker};
use lockspec_conformance::timing::Timing;

/// Runs several worker processes of one lock implementation against each other on a few lock
/// files, with random acquires, releases, re-opened objects and killed holders, and checks that
/// there were never two holders at once (and more).
#[derive(Debug, Parser)]
#[command(name = "lockspec-stress", version)]
struct Cli {
    /// The implementation: a built-in name (`reference`, ...), `mutant:NAME` for a deliberately
    /// broken lock, or names joined with `+` to give the worker slots different implementations.
    #[arg(long = "impl", default_value = "reference")]
    implementation: String,

    /// Run an external worker instead: its command line, split into words as a shell would
    /// (quotes group words).
    #[arg(long, value_name = "CMD")]
    worker: Option<String>,

    /// The name of the external worker in reports.
    #[arg(long, default_value = "worker", requires = "worker")]
    name: String,

    /// Worker processes running at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    procs: u32,

    /// Threads per worker that acquire (each worker has one more that only releases).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,

    /// Lock files.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    locks: u32,

    /// How long to start new operations, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    duration: f64,

    /// The seed of every random choice (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,

    /// Run this many times, with seeds SEED, SEED+1, ..., and report how many found a violation.
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: u64,

    /// The mean time between two kills of a worker, in milliseconds.
    #[arg(long, value_name = "MS", conflicts_with = "no_kills")]
    kill_every_ms: Option<u64>,

    /// Never kill a worker.
    #[arg(long)]
    no_kills: bool,

    /// Multiply every timing margin by this factor (default: LOCKSPEC_TIMING_SCALE or 1).
    #[arg(long, value_name = "FACTOR")]
    timing_scale: Option<f64>,

    /// Put the lock files under this directory instead of the system's temporary directory.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,

    /// Where to write the history and timeline of a run with findings (default:
    /// target/lockspec/stress).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Write the history and timeline of every run, not only of runs with a violation.
    #[arg(long)]
    save: bool,

    /// Check a saved history (history.json) instead of running anything.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["worker", "repeat"])]
    check: Option<PathBuf>,
}

/// Exit statuses: 0 ok, 1 a violation, 2 the run could not be made, 3 unknown.
const VIOLATION: u8 = 1;
const ERROR: u8 = 2;
const UNKNOWN: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(ERROR)
        }
    }
}

fn real_main(cli: &Cli) -> Result<ExitCode, String> {
    lockspec_conformance::cleanup::install();
    let timing = match cli.timing_scale {
        Some(s) => Timing::new(s)?,
        None => Timing::from_env()?,
    };
    let out = cli.out.clone().unwrap_or_else(stress::default_out_dir);
    if let Some(file) = &cli.check {
        return check_saved(file, &timing, &out);
    }
    if !cli.duration.is_finite() || cli.duration <= 0.0 || cli.duration > 86_400.0 {
        return Err(format!(
            "--duration {}: expected seconds, more than 0",
            cli.duration
        ));
    }
    if let Some(dir) = &cli.dir
        && !dir.is_dir()
    {
        return Err(format!("--dir {}: not a directory", dir.display()));
    }
    let imps = implementations(cli)?;
    let first_seed = cli.seed.unwrap_or_else(random_seed);
    let mut tally = [0u64; 4];
    for seed in (0..cli.repeat.max(1)).map(|k| first_seed.wrapping_add(k)) {
        let config = Config {
            procs: cli.procs,
            threads: cli.threads,
            locks: cli.locks,
            duration: Duration::from_secs_f64(cli.duration),
            seed,
            kill_every: match (cli.no_kills, cli.kill_every_ms) {
                (true, _) => None,
                (false, Some(ms)) => Some(Duration::from_millis(ms.max(1))),
                (false, None) => Config::new(seed).kill_every,
            },
            timing,
            ..Config::new(seed)
        };
        let code = run_one(cli, &imps, &config, &out)?;
        tally[usize::from(code)] += 1;
    }
    if cli.repeat > 1 {
        println!(
            "\n{} runs from seed {first_seed}: {} ok, {} with a violation, {} unknown, {} could not run",
            cli.repeat.max(1),
            tally[0],
            tally[usize::from(VIOLATION)],
            tally[usize::from(UNKNOWN)],
            tally[usize::from(ERROR)]
        );
    }
    let worst = if tally[usize::from(ERROR)] > 0 {
        ERROR
    } else if tally[usize::from(VIOLATION)] > 0 {
        VIOLATION
    } else if tally[usize::from(UNKNOWN)] > 0 {
        UNKNOWN
    } else {
        0
    };
    Ok(ExitCode::from(worst))
}

/// One run: prints what it found, writes the evidence of a violation; its exit status.
fn run_one(cli: &Cli, imps: &[Implementation], config: &Config, out: &Path) -> Result<u8, String> {
    let replay = stress::replay_command(imps, config);
    println!(
        "stress: {} with seed {}: {} procs x {} threads, {} lock file(s), {:.1} s",
        imps.iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        config.seed,
        config.procs,
        config.threads,
        config.locks,
        config.duration.as_secs_f64()
    );
    let started = Instant::now();
    let run = match stress::run(imps, config, cli.dir.as_deref(), &replay) {
        Ok(run) => run,
        Err(e) => {
            println!("ERROR: the run could not be completed: {e}");
            println!("replay: {replay}");
            return Ok(ERROR);
        }
    };
    let elapsed = started.elapsed();
    let report = &run.report;
    println!("{}", report.summary());
    for note in &run.recorded.notes {
        println!("note: {note}");
    }
    let code = match report.verdict {
        Verdict::Ok => 0,
        Verdict::Violation => VIOLATION,
        Verdict::Unknown(_) => UNKNOWN,
    };
    if code != 0 || cli.save {
        let evidence = stress::save_evidence(&run.recorded.history, report, out)
            .map_err(|e| format!("cannot write the evidence under {}: {e}", out.display()))?;
        println!("history:  {}", evidence.history.display());
        println!("timeline: {}", evidence.timeline.display());
    }
    if code != 0 {
        println!("seed:     {}", config.seed);
        println!("replay:   {replay}");
    }
    println!(
        "{} in {:.1} s\n",
        report.verdict.name().to_uppercase(),
        elapsed.as_secs_f64()
    );
    Ok(code)
}

/// `--check FILE`: judges a saved history again.
fn check_saved(file: &Path, timing: &Timing, out: &Path) -> Result<ExitCode, String> {
    let history = History::load(file)?;
    let timing = if history.meta.timing_scale != 1.0 && *timing == Timing::default() {
        Timing::new(history.meta.timing_scale)?
    } else {
        *timing
    };
    let started = Instant::now();
    let report = checker::check(&history, &checker::Config::new(&timing));
    println!(
        "checked {} operations in {:.3} s",
        history.ops.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.summary());
    if report.verdict != Verdict::Ok {
        let timeline = out.join("checked-timeline.txt");
        std::fs::create_dir_all(out)
            .and_then(|()| std::fs::write(&timeline, stress::timelines(&history, &report)))
            .map_err(|e| format!("cannot write {}: {e}", timeline.display()))?;
        println!("timeline: {}", timeline.display());
    }
    Ok(ExitCode::from(match report.verdict {
        Verdict::Ok => 0,
        Verdict::Violation => VIOLATION,
        Verdict::Unknown(_) => UNKNOWN,
    }))
}

/// The implementations the command line names, one per `+`-separated name.
fn implementations(cli: &Cli) -> Result<Vec<Implementation>, String> {
    if let Some(cmd) = &cli.worker {
        return Ok(vec![Implementation::from_command_line(&cli.name, cmd)?]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bin_dir = exe.parent().ok_or("this program has no directory")?;
    let locations = Locations::new(bin_dir, lockspec_conformance::suite::default_root());
    cli.implementation
        .split('+')
        .map(|name| resolve(name.trim(), &locations))
        .collect()
}

fn resolve(name: &str, at: &Locations) -> Result<Implementation, String> {
    if let Some(mutant) = name.strip_prefix("mutant:") {
        let exe = at.bin_dir.join(format!(
            "lockspec-worker-mutants{}",
            std::env::consts::EXE_SUFFIX
        ));
        if !exe.is_file() {
            return Err(format!(
                "the mutants worker is missing at {} (build it: {})",
                exe.display(),
                implementations::BUILD_WORKERS
            ));
        }
        return Ok(Implementation::new(
            format!("mutant-{mutant}"),
            exe,
            &["--mutant", mutant],
        ));
    }
    let builtin = implementations::find(name).ok_or_else(|| {
        format!(
            "unknown implementation {name:?}; built in: {}, or mutant:NAME (or use --worker 'CMD')",
            implementations::names()
        )
    })?;
    builtin.resolve(at).map_err(|e| e.to_string())
}

/// A seed from the clock and the process ID, for runs that name none.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = stress::generator::Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    // Small enough to type.
    rng.next_u64() % 1_000_000_000
}
