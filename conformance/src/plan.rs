//! The plan of a run: the tests that a [`Selection`] asks for, each with who plays it, what its
//! expectation file expects and the command that reruns it alone.
//!
//! Every front end plans through [`plan`]: the `lockspec` binary from its options, the
//! libtest-mimic harness (`peers/tests/conformance.rs`), and the tests that run many trials.
//! [`crate::runner`] runs the plan, [`crate::judge`] judges its results.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::expectations::{Expectations, Expected};
use crate::process::Implementation;
use crate::scenario::{Scenario, Tier};
use crate::suite::Suite;

/// The area of the interop scenarios, played by every ordered pair of implementations.
pub const INTEROP_AREA: &str = "interop";

/// Which tiers of scenarios run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Tiers {
    /// Only `fast` scenarios (seconds at most).
    Fast,
    /// Only `slow` scenarios (waits of tens of seconds).
    Slow,
    /// Every scenario.
    #[default]
    All,
}

impl Tiers {
    /// Whether a scenario of `tier` runs.
    pub fn includes(self, tier: Tier) -> bool {
        match self {
            Tiers::All => true,
            Tiers::Fast => tier == Tier::Fast,
            Tiers::Slow => tier == Tier::Slow,
        }
    }
}

/// What to run: each implementation against each scenario of the chosen tiers and, with
/// `interop`, each ordered pair of them against each interop scenario; only the tests whose name
/// passes the filter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The implementations to judge, in order.
    pub implementations: Vec<Implementation>,
    /// Whether every ordered pair of the implementations also plays the interop scenarios.
    pub interop: bool,
    /// Only tests whose name contains this (or, with `exact`, is this).
    pub filter: Option<String>,
    /// Whether the filter must match the whole name.
    pub exact: bool,
    /// The tiers of scenarios that run.
    pub tiers: Tiers,
}

impl Selection {
    /// Every scenario of every tier against each of `implementations`, without the interop pairs.
    pub fn all(implementations: Vec<Implementation>) -> Selection {
        Selection {
            implementations,
            ..Selection::default()
        }
    }

    /// Whether a test of this name is selected.
    fn keeps(&self, name: &str) -> bool {
        match &self.filter {
            None => true,
            Some(f) if self.exact => name == f,
            Some(f) => name.contains(f.as_str()),
        }
    }
}

/// How a test's rerun command is written: by the front end that runs it.
#[derive(Debug, Clone)]
pub enum Rerun {
    /// `cargo xtask conformance`, with the implementations the test needs, the options that
    /// change verdicts, and `--exact --filter NAME`.
    Xtask {
        /// The external worker's command line and name (`--worker`, `--name`), if it is one.
        worker: Option<(String, String)>,
        /// `--timing-scale`, if given.
        timing_scale: Option<f64>,
        /// `--dir`, if given.
        dir: Option<PathBuf>,
    },
    /// A libtest-mimic test binary of `package` run by nextest:
    /// `cargo nextest run -p PACKAGE --test TEST -E 'test(=NAME)'`.
    Nextest {
        /// The package of the test binary.
        package: String,
        /// The name of the test binary.
        test: String,
    },
}

impl Default for Rerun {
    /// `cargo xtask conformance` with the built-in implementations and default options.
    fn default() -> Rerun {
        Rerun::Xtask {
            worker: None,
            timing_scale: None,
            dir: None,
        }
    }
}

impl Rerun {
    /// The command that reruns the test `name` played by `players` (a pair: the interop check).
    fn command(&self, players: &[&str], name: &str) -> String {
        let (worker, timing_scale, dir) = match self {
            Rerun::Nextest { package, test } => {
                return format!("cargo nextest run -p {package} --test {test} -E 'test(={name})'");
            }
            Rerun::Xtask {
                worker,
                timing_scale,
                dir,
            } => (worker, timing_scale, dir),
        };
        let mut cmd = String::from("cargo xtask conformance");
        if let Some((command, name)) = worker {
            cmd.push_str(&format!(
                " --worker {} --name {}",
                shell_word(command),
                shell_word(name)
            ));
        } else {
            let mut names = players.to_vec();
            names.dedup();
            if names != ["reference"] {
                cmd.push_str(&format!(" --impl {}", shell_word(&names.join(","))));
            }
        }
        if players.len() > 1 {
            cmd.push_str(" --interop");
        }
        if let Some(s) = timing_scale {
            cmd.push_str(&format!(" --timing-scale {s}"));
        }
        if let Some(d) = dir {
            cmd.push_str(&format!(" --dir {}", shell_word(&d.display().to_string())));
        }
        cmd.push_str(&format!(" --exact --filter {}", shell_word(name)));
        cmd
    }
}

/// One test: a scenario played by one implementation or, in the interop check, by an ordered
/// pair.
#[derive(Debug, Clone)]
pub struct Test {
    /// `IMPL::AREA::NAME`, or `FIRST+SECOND::AREA::NAME` for a pair.
    pub name: String,
    /// Who plays the processes, in order (see `run::run_mixed`): one implementation, or the pair.
    pub players: Vec<Implementation>,
    /// The scenario.
    pub scenario: Scenario,
    /// The failure the implementation's expectation file lists for the scenario; never for a
    /// pair of two different implementations.
    pub expected: Option<Expected>,
    /// The command that reruns it alone.
    pub rerun: String,
}

impl Test {
    /// The implementation (of the first process, for a pair).
    pub fn implementation(&self) -> &str {
        &self.players[0].name
    }

    /// For a pair of the interop check: the implementation of the other processes.
    pub fn second(&self) -> Option<&str> {
        self.players.get(1).map(|p| p.name.as_str())
    }
}

/// Whether a scenario is one of the interop check's.
pub fn is_interop(s: &Scenario) -> bool {
    s.id.split("::").next() == Some(INTEROP_AREA)
}

/// The tests that `selection` asks for: each implementation against each scenario of `suite` (in
/// the suite's order), then each ordered pair against each interop scenario, judged against the
/// expectation files of `expectations` (by implementation), with their rerun commands written as
/// `rerun` says.
pub fn plan(
    suite: &Suite,
    selection: &Selection,
    expectations: &BTreeMap<String, Expectations>,
    rerun: &Rerun,
) -> Vec<Test> {
    let expected = |imp: &Implementation, s: &Scenario| -> Option<Expected> {
        expectations.get(&imp.name)?.get(&s.id).cloned()
    };
    let scenarios: Vec<&Scenario> = suite
        .scenarios
        .iter()
        .filter(|s| selection.tiers.includes(s.tier))
        .collect();
    let mut tests = Vec::new();
    let mut add = |players: &[&Implementation], s: &Scenario, expected: Option<Expected>| {
        let names: Vec<&str> = players.iter().map(|p| p.name.as_str()).collect();
        let name = format!("{}::{}", names.join("+"), s.id);
        if selection.keeps(&name) {
            tests.push(Test {
                rerun: rerun.command(&names, &name),
                name,
                players: players.iter().map(|&p| p.clone()).collect(),
                scenario: s.clone(),
                expected,
            });
        }
    };
    for imp in &selection.implementations {
        for &s in &scenarios {
            add(&[imp], s, expected(imp, s));
        }
    }
    if selection.interop {
        for a in &selection.implementations {
            for b in &selection.implementations {
                for &s in scenarios.iter().filter(|s| is_interop(s)) {
                    let same = a.name == b.name;
                    add(&[a, b], s, expected(a, s).filter(|_| same));
                }
            }
        }
    }
    tests
}

/// Why a plan without tests cannot run (zero tests found is an error, not a pass).
pub fn nothing_to_run(selection: &Selection) -> String {
    match &selection.filter {
        Some(f) => format!("no test matches the filter {f:?} (try --list)"),
        None => "no tests to run".into(),
    }
}

/// The tests as `--list` shows them: `NAME: DESCRIPTION`, a line each.
pub fn listing(tests: &[Test]) -> String {
    tests
        .iter()
        .map(|t| format!("{}: {}\n", t.name, t.scenario.description))
        .collect()
}

/// A word as a POSIX shell reads it: bare when it is safe, else in single quotes.
pub fn shell_word(word: &str) -> String {
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

/// A run of `lockspec` with `args` as a command a person can repeat:
/// `cargo xtask conformance ARGS`.
pub fn xtask_command(args: impl IntoIterator<Item = String>) -> String {
    let mut cmd = String::from("cargo xtask conformance");
    for arg in args {
        cmd.push(' ');
        cmd.push_str(&shell_word(&arg));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(id: &str, tier: Tier) -> Scenario {
        Scenario {
            id: id.to_owned(),
            file: PathBuf::from(format!("scenarios/{}.json", id.replace("::", "/"))),
            description: format!("the statement of {id}"),
            rules: vec!["IDN-1".into()],
            requires: Vec::new(),
            processes: vec!["p1".into(), "p2".into()],
            steps: Vec::new(),
            step_rules: Vec::new(),
            tier,
        }
    }

    fn suite() -> Suite {
        Suite {
            root: PathBuf::from("/root"),
            rules: Vec::new(),
            scenarios: vec![
                scenario("identity::two", Tier::Fast),
                scenario("timeout::long", Tier::Slow),
                scenario("interop::waits", Tier::Fast),
            ],
        }
    }

    fn expectations() -> BTreeMap<String, Expectations> {
        let file: Expectations = serde_json::from_str(
            r#"{"implementation": "a", "failures": {
                "identity::two": {"outcome": "fail", "step": 2, "rule": "IDN-1", "reason": "IDN-1"},
                "interop::waits": {"outcome": "crash", "rule": "IOP-1", "reason": "IOP-1"}}}"#,
        )
        .unwrap();
        BTreeMap::from([("a".to_owned(), file)])
    }

    fn selection() -> Selection {
        Selection {
            implementations: vec![
                Implementation::new("a", "worker-a", &[]),
                Implementation::new("reference", "worker-r", &[]),
            ],
            interop: true,
            filter: None,
            exact: false,
            tiers: Tiers::Fast,
        }
    }

    #[test]
    fn each_implementation_then_each_ordered_pair() {
        let tests = plan(&suite(), &selection(), &expectations(), &Rerun::default());
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a::identity::two",
                "a::interop::waits",
                "reference::identity::two",
                "reference::interop::waits",
                "a+a::interop::waits",
                "a+reference::interop::waits",
                "reference+a::interop::waits",
                "reference+reference::interop::waits",
            ]
        );
        let expected: Vec<bool> = tests.iter().map(|t| t.expected.is_some()).collect();
        assert_eq!(
            expected,
            [true, true, false, false, true, false, false, false],
            "a pair of two implementations has no expectation"
        );
        assert_eq!(tests[5].second(), Some("reference"));
        assert_eq!(tests[0].second(), None);
    }

    #[test]
    fn filters_and_tiers_select() {
        let mut s = selection();
        s.filter = Some("a::identity::two".into());
        let names = |s: &Selection| -> Vec<String> {
            plan(&suite(), s, &BTreeMap::new(), &Rerun::default())
                .into_iter()
                .map(|t| t.name)
                .collect()
        };
        assert_eq!(names(&s), ["a::identity::two"]);
        s.filter = Some("a::identity".into());
        s.exact = true;
        assert!(names(&s).is_empty());
        s.filter = None;
        s.interop = false;
        s.tiers = Tiers::Slow;
        assert_eq!(names(&s), ["a::timeout::long", "reference::timeout::long"]);
        assert_eq!(names(&Selection::all(s.implementations.clone())).len(), 6);
    }

    #[test]
    fn rerun_commands_name_what_the_test_needs() {
        let tests = plan(&suite(), &selection(), &BTreeMap::new(), &Rerun::default());
        let rerun = |name: &str| &tests.iter().find(|t| t.name == name).unwrap().rerun;
        assert_eq!(
            rerun("reference::identity::two"),
            "cargo xtask conformance --exact --filter reference::identity::two"
        );
        assert_eq!(
            rerun("a+a::interop::waits"),
            "cargo xtask conformance --impl a --interop --exact --filter a+a::interop::waits"
        );
        assert_eq!(
            rerun("reference+a::interop::waits"),
            "cargo xtask conformance --impl reference,a --interop --exact --filter \
             reference+a::interop::waits"
        );
        let worker = Rerun::Xtask {
            worker: Some(("python3 my adapter.py".into(), "mine".into())),
            timing_scale: Some(2.5),
            dir: Some(PathBuf::from("/mnt/it's")),
        };
        let mut s = selection();
        s.interop = false;
        let tests = plan(&suite(), &s, &BTreeMap::new(), &worker);
        assert_eq!(
            tests[0].rerun,
            "cargo xtask conformance --worker 'python3 my adapter.py' --name mine \
             --timing-scale 2.5 --dir '/mnt/it'\\''s' --exact --filter a::identity::two"
        );
        let nextest = Rerun::Nextest {
            package: "p".into(),
            test: "t".into(),
        };
        let tests = plan(&suite(), &s, &BTreeMap::new(), &nextest);
        assert_eq!(
            tests[0].rerun,
            "cargo nextest run -p p --test t -E 'test(=a::identity::two)'"
        );
    }

    #[test]
    fn the_command_of_a_run_quotes_what_needs_it() {
        let args = ["--filter", "a b", "--impl", "all"].map(String::from);
        assert_eq!(
            xtask_command(args),
            "cargo xtask conformance --filter 'a b' --impl all"
        );
    }
}
