//! `cargo xtask conformance --target windows`: the Windows lane on a Linux machine. It cross-builds
//! the runner and the Rust workers for `x86_64-pc-windows-gnu` with the mingw-w64 linker and runs
//! them under Wine, in a prefix under `target/lockspec/wine`, so that the Windows code paths are
//! executed and judged on every change.
//!
//! It installs nothing: when a tool is missing it stops and prints the commands that install it.
//! Wine 8.0 (Debian 12) needs two workarounds, both made here:
//!
//! - Rust's standard library imports `ProcessPrng` from `bcryptprimitives.dll`, which Wine has
//!   only from 8.13: every Rust program exits with status 53 without it. A stand-in DLL
//!   (`xtask/wine/processprng.c`) is built with mingw-w64 and copied into the prefix's `system32`.
//! - The first process of a Wine session starts Wine's services, which inherit its standard
//!   output: a reader of that output (a pipe to `tee`, CI's log) would wait for them until the
//!   wineserver exits. The server and the services are started here first, with their output
//!   discarded, and the server is told to stay [`SERVER_PERSISTENCE`] seconds after the last
//!   process ends, so that the runner never starts a session.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The Rust target of the lane.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// The mingw-w64 C compiler, which is also the linker of [`TARGET`].
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// Where Debian's `wine64` package puts `wine64` and `wineserver64`; the `wine` package adds
/// `wine` and `wineserver` to `PATH`, but is not needed.
const DEBIAN_WINE_DIR: &str = "/usr/lib/wine";

/// How long, in seconds, the wineserver stays after the last Wine process has ended.
const SERVER_PERSISTENCE: u32 = 30;

/// DLLs whose installation Wine would offer when it creates the prefix (Mono and Gecko): none.
const DLL_OVERRIDES: &str = "mscoree,mshtml=";

/// The programs the lane runs.
#[derive(Debug)]
struct Tools {
    wine: PathBuf,
    wineserver: PathBuf,
    gcc: PathBuf,
}

/// Runs the Windows lane: `ARGS` go to the Windows `lockspec.exe`, with `--impl reference` unless
/// they name implementations or a worker themselves.
///
/// # Errors
///
/// A missing tool (with the commands that install it), a failed build, a prefix that cannot be
/// made, or a failed conformance run.
pub fn run(args: &[String]) -> Result<(), String> {
    if cfg!(windows) {
        // On Windows the ordinary lane is the Windows lane.
        return crate::conformance::run(args);
    }
    let lane = Instant::now();
    let tools = find_tools()?;

    section("cross-building lockspec and the Rust workers for Windows");
    let started = Instant::now();
    crate::run(
        cross_cargo(&tools)
            .args(["build", "--quiet"])
            .args(crate::RUNNER_AND_WORKERS)
            .args(["--bins", "--target", TARGET]),
    )?;
    let build_time = started.elapsed();

    let started = Instant::now();
    let prefix = Prefix::new(tools)?;
    let cold = prefix.ensure_created()?;
    prefix.install_process_prng()?;
    let exe = crate::target_dir()
        .join(TARGET)
        .join("debug")
        .join("lockspec.exe");
    prefix.start_session(&exe)?;
    let prefix_time = started.elapsed();

    let full_run = !args
        .iter()
        .any(|a| a == "--list" || a.starts_with("--filter") || a == "--help" || a == "-h");
    let mut unit_time = None;
    if full_run {
        section("the reference's unit tests under Wine");
        let started = Instant::now();
        let mut tests = cross_cargo(&prefix.tools);
        prefix
            .env(&mut tests)
            .env(
                "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER",
                &prefix.tools.wine,
            )
            .args(["test", "--quiet", "--package", "lockspec-reference"])
            .args(["--target", TARGET]);
        crate::run(&mut tests)?;
        unit_time = Some(started.elapsed());
    }

    section("the conformance suite under Wine");
    let started = Instant::now();
    let mut lockspec_args: Vec<OsString> = vec![exe.into_os_string()];
    if !args
        .iter()
        .any(|a| a.starts_with("--impl") || a.starts_with("--worker"))
    {
        lockspec_args.extend(["--impl".into(), "reference".into()]);
    }
    lockspec_args.extend(args.iter().map(OsString::from));
    let outcome = prefix.run_teed(&lockspec_args)?;
    let run_time = started.elapsed();

    if full_run {
        // lockspec.exe writes its reports beside its own directory unless told otherwise.
        let custom_out = args.iter().any(|a| a.starts_with("--out"));
        let report_dir = crate::target_dir().join(TARGET).join("lockspec");
        print_rules_summary(
            &outcome.lines,
            (!custom_out).then_some(report_dir.as_path()),
        );
    }
    println!(
        "\nWindows lane: {:.1} s in all: cross-build {:.1} s, Wine prefix {} {:.1} s, {}conformance {:.1} s",
        lane.elapsed().as_secs_f64(),
        build_time.as_secs_f64(),
        if cold { "(created)" } else { "(warm)" },
        prefix_time.as_secs_f64(),
        unit_time.map_or(String::new(), |t| format!(
            "reference unit tests {:.1} s, ",
            t.as_secs_f64()
        )),
        run_time.as_secs_f64(),
    );
    if outcome.success {
        Ok(())
    } else {
        Err(format!(
            "the conformance run under Wine failed ({})",
            outcome.status
        ))
    }
}

/// The arguments for the runner if `args` ask for the Windows lane (`--target windows` or
/// `--target=windows`, removed from them), `None` if they name no target.
///
/// # Errors
///
/// A target other than `windows`, or `--target` without a value.
pub fn lane_args(args: &[String]) -> Result<Option<Vec<String>>, String> {
    let mut rest = Vec::new();
    let mut target = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--target" {
            target = Some(
                iter.next()
                    .ok_or("--target needs a value: `--target windows`")?
                    .clone(),
            );
        } else if let Some(value) = arg.strip_prefix("--target=") {
            target = Some(value.to_owned());
        } else {
            rest.push(arg.clone());
        }
    }
    match target.as_deref() {
        None => Ok(None),
        Some("windows") => Ok(Some(rest)),
        Some(other) => Err(format!(
            "unknown target {other:?}: the only other lane is `--target windows`"
        )),
    }
}

/// Prints a heading for one stage of the lane.
fn section(title: &str) {
    println!("== {title}");
}

/// `cargo` with the mingw-w64 linker for [`TARGET`], unless the environment names one.
fn cross_cargo(tools: &Tools) -> Command {
    let mut cmd = crate::cargo();
    let key = "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER";
    if std::env::var_os(key).is_none() {
        cmd.env(key, &tools.gcc);
    }
    cmd
}

/// Finds Wine, the mingw-w64 compiler and the Rust target, or says how to install what is
/// missing.
fn find_tools() -> Result<Tools, String> {
    let wine = find_program(&["wine", "wine64"]);
    let wineserver = find_program(&["wineserver", "wineserver64"]);
    let gcc = find_program(&[MINGW_GCC]);
    let target = has_target();
    let mut missing = Vec::new();
    let mut apt = Vec::new();
    if gcc.is_none() {
        missing.push(format!("the mingw-w64 C compiler and linker ({MINGW_GCC})"));
        apt.push("gcc-mingw-w64-x86-64");
    }
    if wine.is_none() || wineserver.is_none() {
        missing.push("Wine (wine or wine64, and wineserver)".to_owned());
        apt.push("wine64");
    }
    if !target {
        missing.push(format!("the Rust standard library for {TARGET}"));
    }
    match (wine, wineserver, gcc) {
        (Some(wine), Some(wineserver), Some(gcc)) if target => Ok(Tools {
            wine,
            wineserver,
            gcc,
        }),
        _ => {
            let mut msg = String::from("the Windows lane needs what is missing here:\n");
            for m in &missing {
                msg.push_str(&format!("  - {m}\n"));
            }
            msg.push_str("install it with:\n");
            if !apt.is_empty() {
                msg.push_str(&format!("  sudo apt-get install {}\n", apt.join(" ")));
            }
            if !target {
                msg.push_str(&format!("  rustup target add {TARGET}\n"));
            }
            msg.push_str("then run `cargo xtask conformance --target windows` again");
            Err(msg)
        }
    }
}

/// The first of `names` found on `PATH`, then in [`DEBIAN_WINE_DIR`].
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from(DEBIAN_WINE_DIR)])
        .collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Whether the toolchain that runs this has the standard library for [`TARGET`].
fn has_target() -> bool {
    // `rustc` beside the `cargo` that runs us is the toolchain's own.
    let rustc = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| Some(cargo.parent()?.join("rustc")))
        .filter(|rustc| rustc.is_file())
        .unwrap_or_else(|| PathBuf::from("rustc"));
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
}

/// What a teed run saw.
#[derive(Debug)]
struct Outcome {
    success: bool,
    status: String,
    lines: Vec<String>,
}

/// The Wine prefix of the lane, under the target directory.
#[derive(Debug)]
struct Prefix {
    tools: Tools,
    dir: PathBuf,
    /// Where the stand-in DLL is built, outside the prefix.
    build_dir: PathBuf,
}

impl Prefix {
    fn new(tools: Tools) -> Result<Prefix, String> {
        let lane = crate::target_dir().join("lockspec");
        let dir = lane.join("wine");
        let build_dir = lane.join("wine-build");
        for d in [&dir, &build_dir] {
            fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        Ok(Prefix {
            tools,
            dir,
            build_dir,
        })
    }

    /// `cmd` with this prefix's environment.
    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("WINEPREFIX", &self.dir)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", DLL_OVERRIDES)
    }

    /// A Wine command in this prefix, run from the workspace root.
    fn wine(&self) -> Command {
        let mut cmd = Command::new(&self.tools.wine);
        self.env(&mut cmd).current_dir(crate::root());
        cmd
    }

    /// Creates the prefix unless it exists; whether it had to be created.
    fn ensure_created(&self) -> Result<bool, String> {
        if self.dir.join("system.reg").is_file() {
            return Ok(false);
        }
        section(&format!(
            "creating the Wine prefix {} (once; about 15 s)",
            self.dir.display()
        ));
        quiet(self.wine().args(["wineboot", "--init"]))?;
        // The registry files are written when the server exits.
        quiet(self.server().arg("-w"))?;
        if self.dir.join("system.reg").is_file() {
            Ok(true)
        } else {
            Err(format!(
                "`wineboot --init` did not create the Wine prefix in {}",
                self.dir.display()
            ))
        }
    }

    /// The wineserver of this prefix.
    fn server(&self) -> Command {
        let mut cmd = Command::new(&self.tools.wineserver);
        self.env(&mut cmd);
        cmd
    }

    /// Builds the `ProcessPrng` stand-in when its source is newer, and copies it into the
    /// prefix's `system32` when it differs from the copy there.
    fn install_process_prng(&self) -> Result<(), String> {
        let source = crate::root()
            .join("xtask")
            .join("wine")
            .join("processprng.c");
        let dll = self.build_dir.join("bcryptprimitives.dll");
        if is_older(&dll, &source) {
            crate::run(
                Command::new(&self.tools.gcc)
                    .args(["-shared", "-O2", "-Wall", "-Werror", "-o"])
                    .arg(&dll)
                    .arg(&source)
                    .arg("-ladvapi32"),
            )?;
        }
        let installed = self
            .dir
            .join("drive_c")
            .join("windows")
            .join("system32")
            .join("bcryptprimitives.dll");
        let built = fs::read(&dll).map_err(|e| format!("cannot read {}: {e}", dll.display()))?;
        if fs::read(&installed).ok().as_ref() != Some(&built) {
            fs::write(&installed, &built)
                .map_err(|e| format!("cannot write {}: {e}", installed.display()))?;
        }
        Ok(())
    }

    /// Starts the wineserver and Wine's services with their output discarded, by running
    /// `exe --version` as the session's first process.
    fn start_session(&self, exe: &Path) -> Result<(), String> {
        // Fails harmlessly when a server already runs for this prefix.
        let _ = self
            .server()
            .arg(format!("-p{SERVER_PERSISTENCE}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let status = self
            .wine()
            .arg(exe)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", self.tools.wine.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} does not start under Wine ({status}); status 53 means that Rust's \
                 standard library found no ProcessPrng: is {} in the prefix's system32?",
                exe.display(),
                self.build_dir.join("bcryptprimitives.dll").display()
            ))
        }
    }

    /// Runs `wine ARGS`, copying its standard output to ours line by line, and keeps the lines.
    fn run_teed(&self, args: &[OsString]) -> Result<Outcome, String> {
        let mut child = self
            .wine()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.tools.wine.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = Vec::new();
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let line = line.trim_end_matches('\r').to_owned();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            lines.push(line);
        }
        drop(out);
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for {}: {e}", self.tools.wine.display()))?;
        Ok(Outcome {
            success: status.success(),
            status: status.to_string(),
            lines,
        })
    }
}

/// Whether `output` is missing or older than `source`.
fn is_older(output: &Path, source: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(output), modified(source)) {
        (Some(out), Some(src)) => out < src,
        _ => true,
    }
}

/// Runs `cmd` with its input and output discarded; a failure is an error naming it.
fn quiet(cmd: &mut Command) -> Result<(), String> {
    crate::run(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Prints which rules ran under Wine and which did not, from the runner's per-rule table, and
/// why, from the "Not applicable" section of the Markdown report in `report_dir`.
fn print_rules_summary(lines: &[String], report_dir: Option<&Path>) {
    let summary = RulesSummary::parse(lines);
    if summary.ran.is_empty() && summary.skipped.is_empty() {
        return;
    }
    println!(
        "\nRules judged on Windows (under Wine): {} of {}: {}",
        summary.ran.len(),
        summary.ran.len() + summary.skipped.len(),
        summary.ran.join(" ")
    );
    if summary.skipped.is_empty() {
        return;
    }
    println!("Rules not judged: {}", summary.skipped.join(" "));
    let markdown = report_dir.and_then(|dir| fs::read_to_string(dir.join("report.md")).ok());
    for reason in not_applicable(markdown.as_deref().unwrap_or_default()) {
        println!("  {reason}");
    }
}

/// The rules of a run, from the lines `lockspec` printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct RulesSummary {
    /// Rules with at least one scenario that was judged (passed, failed or broke).
    ran: Vec<String>,
    /// Rules none of whose scenarios was judged: all not applicable here, or none selected.
    skipped: Vec<String>,
}

impl RulesSummary {
    /// Reads the per-rule table: the lines after the one that starts with `rule` and names the
    /// `title` column, each a rule ID, its title, then one cell per implementation.
    fn parse(lines: &[String]) -> RulesSummary {
        let mut summary = RulesSummary::default();
        let mut in_table = false;
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"rule") && words.get(1) == Some(&"title") {
                in_table = true;
                continue;
            }
            if !in_table {
                continue;
            }
            let Some(id) = words.first().filter(|w| is_rule_id(w)) else {
                in_table = !line.trim().is_empty();
                continue;
            };
            // Each cell is a verdict and a count, such as `pass 2/2`, `FAIL 1/3` or `n/a 1/1`.
            let ran = words
                .windows(2)
                .any(|w| matches!(w[0], "pass" | "FAIL" | "ERROR" | "xfail") && w[1].contains('/'));
            if ran {
                summary.ran.push((*id).to_owned());
            } else {
                summary.skipped.push((*id).to_owned());
            }
        }
        summary
    }
}

/// The items of the `## Not applicable` section of a Markdown report (test and reason), without
/// their Markdown.
fn not_applicable(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .skip_while(|line| line.trim() != "## Not applicable")
        .skip(1)
        .take_while(|line| !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("- "))
        .map(|item| item.replace("**", "").replace('`', ""))
        .collect()
}

/// Whether `word` looks like a rule ID: capital letters, a hyphen, digits (`IDN-1`).
fn is_rule_id(word: &str) -> bool {
    word.split_once('-').is_some_and(|(area, number)| {
        !area.is_empty()
            && area.chars().all(|c| c.is_ascii_uppercase())
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn the_summary_reads_the_rule_table() {
        let output = lines(
            "[  1/3] PASS  reference::acquire::free_lock_at_once (0.05 s)\n\
             [  2/3] N/A   reference::paths::read_only_directory (0.1 s)\n\
             \n\
             rule    title                                      reference\n\
             ACQ-1   Acquiring a free lock succeeds at once     pass 1/1\n\
             IDN-4   Every path to one file names the same lock FAIL 1/3\n\
             PTH-3   A refused permission is an I/O error       n/a 1/1\n\
             CBK-1   An acquire that waits calls the callback   -\n\
             \n\
             IDN-9   not a table row any more                   pass 1/1\n",
        );
        let summary = RulesSummary::parse(&output);
        assert_eq!(summary.ran, ["ACQ-1", "IDN-4"]);
        assert_eq!(summary.skipped, ["PTH-3", "CBK-1"]);
    }

    #[test]
    fn the_reasons_come_from_the_markdown_report() {
        let markdown = "## Rules\n\n- not this\n\n## Not applicable\n\n\
                        - **reference**: `paths::read_only_directory` — no permission bits\n\n\
                        The evidence is elsewhere.\n## Next\n- nor this\n";
        assert_eq!(
            not_applicable(markdown),
            ["reference: paths::read_only_directory — no permission bits"]
        );
        assert!(not_applicable("# nothing here\n").is_empty());
    }

    #[test]
    fn no_table_no_rules() {
        let summary = RulesSummary::parse(&lines("error: no tests to run\n"));
        assert_eq!(summary, RulesSummary::default());
    }

    #[test]
    fn the_target_argument_selects_the_lane_and_is_removed() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(lane_args(&args(&["--list"])), Ok(None));
        assert_eq!(
            lane_args(&args(&["--target", "windows", "--filter", "x"])),
            Ok(Some(args(&["--filter", "x"])))
        );
        assert_eq!(
            lane_args(&args(&["--target=windows"])),
            Ok(Some(Vec::new()))
        );
        assert!(lane_args(&args(&["--target", "plan9"])).is_err());
        assert!(lane_args(&args(&["--target"])).is_err());
    }

    #[test]
    fn rule_ids() {
        assert!(is_rule_id("IDN-1"));
        assert!(is_rule_id("TMO-12"));
        assert!(!is_rule_id("rule"));
        assert!(!is_rule_id("IDN-"));
        assert!(!is_rule_id("-1"));
        assert!(!is_rule_id("idn-1"));
        assert!(!is_rule_id("2"));
    }

    #[test]
    fn a_program_not_on_the_path_is_not_found() {
        assert_eq!(find_program(&["lockspec-no-such-program-anywhere"]), None);
    }
}
