//! The verdicts of `cargo xtask fs-matrix`: read from each run's `report.json`, and rendered as
//! the Markdown report.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::{Options, RERUNS};

/// One test's verdict on one file system, and the evidence of a failure.
#[derive(Debug, Clone, Default)]
pub(super) struct Cell {
    pub(super) verdict: String,
    rules: Vec<String>,
    step: String,
    expected: String,
    observed: String,
    /// For a verdict that differs from the default directory's: the verdicts of reruns here and
    /// in the default directory.
    pub(super) reruns: Option<(Vec<String>, Vec<String>)>,
}

impl Cell {
    /// Whether a difference from the default directory held in every rerun, here and there;
    /// true when there were no reruns.
    fn reproduced(&self, default_verdict: Option<&str>) -> bool {
        self.reruns.as_ref().is_none_or(|(here, there)| {
            here.iter().all(|v| *v == self.verdict)
                && there.iter().all(|v| Some(v.as_str()) == default_verdict)
        })
    }

    /// Whether the implementation did not pass: a failure, an error, or a failure its
    /// expectation file predicts.
    pub(super) fn failed(&self) -> bool {
        matches!(self.verdict.as_str(), "FAIL" | "ERROR" | "XFAIL")
    }
}

/// One file system's column.
#[derive(Debug)]
pub(super) struct Column {
    pub(super) fs: String,
    /// How it was made, or why it was skipped.
    pub(super) how: String,
    pub(super) skipped: bool,
    /// (test name, cell), in the runner's order.
    pub(super) cells: Vec<(String, Cell)>,
    pub(super) seconds: f64,
    /// What the runner said when it could not run at all.
    pub(super) problem: Option<String>,
    /// Whether a lock taken through the mount excludes one taken through the directory below.
    pub(super) boundary: Option<String>,
}

impl Column {
    pub(super) fn skipped(fs: &str, reason: String) -> Column {
        Column {
            fs: fs.to_owned(),
            how: reason,
            skipped: true,
            cells: Vec::new(),
            seconds: 0.0,
            problem: None,
            boundary: None,
        }
    }

    pub(super) fn count(&self, verdict: &str) -> usize {
        self.cells
            .iter()
            .filter(|(_, c)| c.verdict == verdict)
            .count()
    }

    pub(super) fn summary(&self) -> String {
        if self.skipped {
            return format!("skipped: {}", self.how);
        }
        if let Some(p) = &self.problem {
            return format!("the runner could not run: {p}");
        }
        let mut parts = Vec::new();
        for verdict in ["PASS", "FAIL", "ERROR", "XFAIL", "XPASS", "XSKIP", "N/A"] {
            let n = self.count(verdict);
            if n > 0 || verdict == "PASS" {
                parts.push(format!("{n} {}", verdict.to_lowercase()));
            }
        }
        format!("{} ({:.1} s)", parts.join(", "), self.seconds)
    }
}

/// The part of `report.json` (spec/REPORT.md, format 2) that the matrix reads; the other fields
/// are ignored, as the format allows.
#[derive(Debug, Deserialize)]
struct ReportFile {
    format: u32,
    trials: Vec<TrialEntry>,
}

/// One trial of `report.json`.
#[derive(Debug, Deserialize)]
struct TrialEntry {
    test: String,
    rules: Vec<String>,
    /// `pass`, `fail`, `not_applicable` or `error`.
    verdict: String,
    expectation: Option<ExpectationEntry>,
    evidence: Option<EvidenceEntry>,
}

/// What the expectation file says about a trial: only whether it held.
#[derive(Debug, Deserialize)]
struct ExpectationEntry {
    held: bool,
}

/// The evidence of a failed trial.
#[derive(Debug, Deserialize)]
struct EvidenceEntry {
    step: Option<usize>,
    rule: Option<String>,
    steps: usize,
    summary: String,
    expected: String,
    observed: String,
}

/// The report format this module reads.
const REPORT_FORMAT: u32 = 2;

/// Reads the verdicts and the evidence of every trial from a `report.json`.
pub(super) fn read_report(path: &Path) -> Result<Vec<(String, Cell)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no report: cannot read {}: {e}", path.display()))?;
    cells_of(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The cells of the trials of a `report.json`'s text, in its order. Each verdict is named as the
/// runner's progress lines name it: `PASS`, `FAIL`, `ERROR`, `N/A`, and with an expectation
/// `XFAIL` (it held), `XPASS` or `XSKIP` (it did not: the trial passed or was not applicable).
fn cells_of(text: &str) -> Result<Vec<(String, Cell)>, String> {
    let report: ReportFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if report.format != REPORT_FORMAT {
        return Err(format!(
            "report format {}, but this reads format {REPORT_FORMAT} (spec/REPORT.md)",
            report.format
        ));
    }
    let cells = report.trials.into_iter().map(|trial| {
        let held = trial.expectation.as_ref().map(|e| e.held);
        let verdict = match (held, trial.verdict.as_str()) {
            (Some(true), _) => "XFAIL",
            (Some(false), "pass") => "XPASS",
            (Some(false), "not_applicable") => "XSKIP",
            (_, "pass") => "PASS",
            (_, "fail") => "FAIL",
            (_, "error") => "ERROR",
            (_, "not_applicable") => "N/A",
            (_, other) => other,
        };
        let mut cell = Cell {
            verdict: verdict.to_owned(),
            ..Cell::default()
        };
        if let Some(e) = trial.evidence {
            // The failure is charged to its step's rule; before the first step, to every rule.
            cell.rules = match e.rule {
                Some(rule) => vec![rule],
                None => trial.rules,
            };
            cell.step = match e.step {
                Some(step) => format!("{step} of {}: {}", e.steps, e.summary),
                None => e.summary,
            };
            cell.expected = e.expected;
            cell.observed = e.observed;
        }
        (trial.test, cell)
    });
    Ok(cells.collect())
}

/// The Markdown report.
pub(super) fn render(columns: &[Column], opts: &Options) -> String {
    let mut md = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut command = String::from("sudo -E cargo xtask fs-matrix");
    for (flag, value) in [
        ("--impl", &opts.impls),
        ("--timing-scale", &opts.scale),
        ("--filter", &opts.filter),
    ] {
        if let Some(v) = value {
            let _ = write!(command, " {flag} {v}");
        }
    }
    if let Some(only) = &opts.only {
        let _ = write!(command, " --only {}", only.join(","));
    }
    // The implementations that ran, in the runner's order.
    let mut implementations: Vec<&str> = Vec::new();
    for (name, _) in columns.iter().flat_map(|c| &c.cells) {
        let imp = name.split_once("::").map_or(name.as_str(), |(i, _)| i);
        if !implementations.contains(&imp) {
            implementations.push(imp);
        }
    }
    let implementations = if implementations.is_empty() {
        opts.impls.clone().unwrap_or_else(|| "reference".into())
    } else {
        implementations.join(", ")
    };
    let _ = writeln!(md, "# lockspec on different file systems\n");
    let _ = writeln!(
        md,
        "Generated by `{command}` (Linux, as root) on {}, kernel {}; do not edit by hand, \
         regenerate it. Implementations: {}. Each column is one run of the whole suite with \
         `lockspec --dir` on a fresh file system mounted under `target/lockspec/fs/`; `default` \
         is the system's temporary directory, for comparison.\n",
        today(),
        kernel.trim(),
        implementations
    );
    let _ = writeln!(md, "## File systems\n");
    let _ = writeln!(md, "| file system | how it was made | result |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for c in columns {
        let how = if c.skipped {
            "—".to_owned()
        } else {
            c.how.clone()
        };
        let _ = writeln!(md, "| {} | {} | {} |", c.fs, how, escape(&c.summary()));
    }

    let ran: Vec<&Column> = columns
        .iter()
        .filter(|c| !c.skipped && c.problem.is_none())
        .collect();
    let default = ran.iter().find(|c| c.fs == "default").copied();
    let verdict_in = |c: &Column, name: &str| {
        c.cells
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, cell)| cell.clone())
    };

    let _ = writeln!(
        md,
        "\n## Rules that a file system breaks for every implementation\n"
    );
    let mut any = false;
    for c in ran.iter().filter(|c| c.fs != "default") {
        // scenario ID -> (test name, cell) of every implementation on it.
        let mut by_scenario: Vec<(String, Vec<(&String, &Cell)>)> = Vec::new();
        for (name, cell) in &c.cells {
            let scenario = name
                .split_once("::")
                .map_or(name.as_str(), |(_, s)| s)
                .to_owned();
            match by_scenario.iter_mut().find(|(s, _)| *s == scenario) {
                Some((_, v)) => v.push((name, cell)),
                None => by_scenario.push((scenario, vec![(name, cell)])),
            }
        }
        for (scenario, cells) in by_scenario {
            // Failing for every implementation, and (where the default directory is known)
            // failing again in every rerun while passing there.
            let all_fail = cells.iter().all(|(n, cell)| {
                cell.failed()
                    && cell.reproduced(
                        default
                            .and_then(|d| verdict_in(d, n))
                            .as_ref()
                            .map(|c| c.verdict.as_str()),
                    )
            });
            // Not the file system's doing if the same happens in the default directory.
            let fails_anyway = default.is_some_and(|d| {
                cells
                    .iter()
                    .all(|(n, _)| verdict_in(d, n).is_none_or(|cell| cell.failed()))
            });
            if !all_fail || fails_anyway {
                continue;
            }
            any = true;
            let (_, evidence) = cells
                .iter()
                .find(|(_, cell)| !cell.observed.is_empty())
                .copied()
                .unwrap_or(cells[0]);
            let _ = writeln!(
                md,
                "- **{}** breaks {} for every implementation: `{scenario}` fails \
                 (step {}: expected {}; observed {}).",
                c.fs,
                if evidence.rules.is_empty() {
                    "a rule".to_owned()
                } else {
                    evidence.rules.join(", ")
                },
                escape(&evidence.step),
                escape(&evidence.expected),
                escape(&evidence.observed)
            );
        }
    }
    if !any {
        let _ = writeln!(
            md,
            "None: on every file system that could be mounted, each scenario passes for at least \
             one implementation, or fails in the default directory as well."
        );
    }

    if let Some(d) = default {
        let _ = writeln!(md, "\n## Differences from the default directory\n");
        let mut differences = 0;
        for c in ran.iter().filter(|c| c.fs != "default") {
            for (name, cell) in &c.cells {
                let before = verdict_in(d, name).map(|b| b.verdict);
                if before.as_deref() == Some(cell.verdict.as_str()) {
                    continue;
                }
                differences += 1;
                let why = if cell.observed.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": step {}; expected {}; observed {}",
                        escape(&cell.step),
                        escape(&cell.expected),
                        escape(&cell.observed)
                    )
                };
                let reruns = match &cell.reruns {
                    Some((here, there)) => {
                        let list = |v: &[String]| {
                            v.iter()
                                .map(|x| x.to_lowercase())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let judged = if cell.reproduced(before.as_deref()) {
                            "the difference held every time"
                        } else {
                            "**not reproduced: a flaky test, not the file system**"
                        };
                        format!(
                            ". Run {RERUNS} more times on each: {} here, {} in the default \
                             directory; {judged}",
                            list(here),
                            list(there)
                        )
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    md,
                    "- {} `{name}`: {} in the default directory, {} here{why}{reruns}.",
                    c.fs,
                    before.map_or("not run".to_owned(), |v| v.to_lowercase()),
                    cell.verdict.to_lowercase()
                );
            }
        }
        if differences == 0 {
            let _ = writeln!(
                md,
                "None: every test has the same verdict on every file system as in the default \
                 directory. (Where an implementation fails a scenario everywhere, that is the \
                 implementation's doing, not the file system's.)"
            );
        }
    }

    let boundaries: Vec<&Column> = ran
        .iter()
        .copied()
        .filter(|c| c.boundary.is_some())
        .collect();
    if !boundaries.is_empty() {
        let _ = writeln!(md, "\n## Locks across the mount's boundary\n");
        let _ = writeln!(
            md,
            "Stacked file systems show files that also exist in a directory below them. Checked \
             with the reference worker, outside the scenarios (no rule says what should happen):\n"
        );
        for c in boundaries {
            let _ = writeln!(
                md,
                "- **{}**: {}.",
                c.fs,
                c.boundary.as_deref().unwrap_or_default()
            );
        }
    }

    let _ = writeln!(md, "\n## Every test\n");
    let _ = write!(md, "| test |");
    for c in &ran {
        let _ = write!(md, " {} |", c.fs);
    }
    let _ = write!(md, "\n| --- |");
    for _ in &ran {
        let _ = write!(md, " --- |");
    }
    let _ = writeln!(md);
    let mut names: Vec<&str> = Vec::new();
    for c in &ran {
        for (n, _) in &c.cells {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    names.sort_unstable();
    for name in names {
        let _ = write!(md, "| `{name}` |");
        for c in &ran {
            let cell = c.cells.iter().find(|(n, _)| n == name).map(|(_, c)| c);
            let text = match cell.map(|c| c.verdict.as_str()) {
                None => "—".to_owned(),
                Some("PASS") => "pass".to_owned(),
                Some(v @ ("FAIL" | "ERROR" | "XPASS" | "XSKIP")) => {
                    format!("**{}**", v.to_lowercase())
                }
                Some(v) => v.to_lowercase(),
            };
            let _ = write!(md, " {text} |");
        }
        let _ = writeln!(md);
    }

    md
}

/// Text safe inside a Markdown table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_evidence_are_read_from_the_report() {
        // Abridged, as spec/REPORT.md allows: a field this reader does not know is ignored.
        let report = r#"{"format": 2, "lockspec_version": "0.1.0", "unknown": [1], "trials": [
            {"test": "reference::acquire::free_lock_at_once", "rules": ["ACQ-1"],
             "verdict": "pass", "expectation": null, "evidence": null},
            {"test": "reference::identity::two_processes", "rules": ["IDN-2", "ACQ-2"],
             "verdict": "fail", "expectation": null, "evidence": {"step": 4, "rule": "IDN-2",
             "steps": 9, "summary": "acquire p2/main a", "expected": "blocks",
             "observed": "acquired after 0.3 ms", "timeline": [], "stderr": []}},
            {"test": "std::file::kept", "rules": ["FIL-1"], "verdict": "fail",
             "expectation": {"outcome": "fail", "step": null, "rule": null, "reason": "r",
             "held": true}, "evidence": {"step": null, "rule": null, "steps": 3,
             "summary": "starting the workers", "expected": "e", "observed": "o"}},
            {"test": "std::file::gone", "rules": ["FIL-2"], "verdict": "pass",
             "expectation": {"held": false}, "evidence": null},
            {"test": "std::callback::once", "rules": ["CBK-1"], "verdict": "not_applicable",
             "expectation": null, "evidence": null}
        ]}"#;
        let cells = cells_of(report).unwrap();
        let verdicts: Vec<&str> = cells.iter().map(|(_, c)| c.verdict.as_str()).collect();
        assert_eq!(verdicts, ["PASS", "FAIL", "XFAIL", "XPASS", "N/A"]);
        let (name, failed) = &cells[1];
        assert_eq!(name, "reference::identity::two_processes");
        assert_eq!(
            failed.rules,
            ["IDN-2"],
            "charged to the failing step's rule"
        );
        assert_eq!(failed.step, "4 of 9: acquire p2/main a");
        assert_eq!(failed.expected, "blocks");
        assert_eq!(failed.observed, "acquired after 0.3 ms");
        let before_the_first_step = &cells[2].1;
        assert_eq!(before_the_first_step.rules, ["FIL-1"]);
        assert_eq!(before_the_first_step.step, "starting the workers");

        let newer = report.replace("\"format\": 2", "\"format\": 3");
        assert!(cells_of(&newer).unwrap_err().contains("report format 3"));
        assert!(cells_of("[  1/2] PASS  reference::acquire::free").is_err());
    }

    fn cell(verdict: &str) -> Cell {
        Cell {
            verdict: verdict.into(),
            rules: vec!["IDN-2".into()],
            step: "4 of 9".into(),
            expected: "blocks".into(),
            observed: "acquired".into(),
            reruns: None,
        }
    }

    fn column(fs: &str, cells: &[(&str, &str)]) -> Column {
        Column {
            fs: fs.into(),
            how: "made".into(),
            skipped: false,
            cells: cells
                .iter()
                .map(|(n, v)| ((*n).to_owned(), cell(v)))
                .collect(),
            seconds: 1.0,
            problem: None,
            boundary: None,
        }
    }

    #[test]
    fn a_rule_broken_for_every_implementation_is_said_plainly() {
        let default = column(
            "default",
            &[
                ("reference::identity::two_processes", "PASS"),
                ("std::identity::two_processes", "PASS"),
                ("reference::acquire::free", "PASS"),
                ("std::acquire::free", "FAIL"),
                ("reference::file::kept", "FAIL"),
                ("std::file::kept", "XFAIL"),
            ],
        );
        let fuse = column(
            "fuse",
            &[
                ("reference::identity::two_processes", "FAIL"),
                ("std::identity::two_processes", "ERROR"),
                ("reference::acquire::free", "PASS"),
                ("std::acquire::free", "FAIL"),
                ("reference::file::kept", "FAIL"),
                ("std::file::kept", "XFAIL"),
            ],
        );
        let skipped = Column::skipped("xfs", "no mkfs.xfs".into());
        let md = render(&[default, fuse, skipped], &Options::default());
        assert!(
            md.contains(
                "**fuse** breaks IDN-2 for every implementation: `identity::two_processes`"
            ),
            "{md}"
        );
        // Failing for one implementation only, or failing in the default directory too, is
        // not the file system's doing.
        assert!(!md.contains("`acquire::free` fails"), "{md}");
        assert!(!md.contains("`file::kept` fails"), "{md}");
        assert!(
            md.contains(
                "- fuse `std::identity::two_processes`: pass in the default directory, error here"
            ),
            "{md}"
        );
        assert!(!md.contains("- fuse `std::acquire::free`"), "{md}");
        assert!(md.contains("| xfs | — | skipped: no mkfs.xfs |"), "{md}");
    }

    #[test]
    fn a_difference_that_reruns_do_not_reproduce_is_called_flaky() {
        let default = column(
            "default",
            &[
                ("reference::timeout::short", "PASS"),
                ("std::timeout::short", "PASS"),
            ],
        );
        let mut tmpfs = column(
            "tmpfs",
            &[
                ("reference::timeout::short", "FAIL"),
                ("std::timeout::short", "FAIL"),
            ],
        );
        let pass = || vec!["PASS".to_owned(); RERUNS];
        let fail = || vec!["FAIL".to_owned(); RERUNS];
        tmpfs.cells[0].1.reruns = Some((pass(), pass()));
        tmpfs.cells[1].1.reruns = Some((fail(), pass()));
        let md = render(&[default, tmpfs], &Options::default());
        assert!(
            md.contains(
                "- tmpfs `reference::timeout::short`: pass in the default directory, fail here"
            ) && md.contains("**not reproduced: a flaky test, not the file system**"),
            "{md}"
        );
        assert!(md.contains("the difference held every time"), "{md}");
        // One implementation's difference was flaky, so not every implementation fails here.
        assert!(!md.contains("**tmpfs** breaks"), "{md}");
    }
}
