//! Unit tests of the report: the model's counts, the JSON shape, escaping and redaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::expectations::Class;
use crate::judge::{self, Outcome};
use crate::run::{FailKind, Failure, WorkerInfo};
use crate::suite::Rule;

/// A scenario of four steps, which check its first rule.
fn scenario(id: &str, rules: &[&str]) -> Scenario {
    scenario_with(id, rules, &[rules[0]; 4])
}

/// A scenario whose steps check `step_rules`.
fn scenario_with(id: &str, rules: &[&str], step_rules: &[&str]) -> Scenario {
    Scenario {
        id: id.to_owned(),
        file: PathBuf::from(format!("scenarios/{}.json", id.replace("::", "/"))),
        description: format!("the statement of {id}"),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        requires: Vec::new(),
        processes: vec!["p1".into(), "p2".into()],
        steps: Vec::new(),
        step_rules: step_rules.iter().map(|r| (*r).to_owned()).collect(),
        tier: Default::default(),
    }
}

fn suite(root: &Path) -> Suite {
    let rule = |id: &str, title: &str| Rule {
        id: id.to_owned(),
        title: title.to_owned(),
        tested_by: Vec::new(),
    };
    Suite {
        root: root.to_owned(),
        rules: vec![
            rule("IDN-1", "Two objects exclude each other"),
            rule("REL-2", "Releasing an unheld lock is an error"),
            rule("CBK-1", "A wait calls the callback once"),
            rule("IOP-1", "Different implementations exclude each other"),
        ],
        scenarios: Vec::new(),
    }
}

fn environment() -> Environment {
    Environment {
        os: "linux".into(),
        os_name: Some("Test OS 1".into()),
        kernel: Some("6.0.0".into()),
        arch: "x86_64".into(),
        lock_dir: None,
        filesystem: Some("tmpfs".into()),
        date: "2024-05-01T12:00:00Z".into(),
        timing_scale: 1.0,
        margins: None,
        jobs: 8,
        wall_time_s: 0.0,
        command: "cargo xtask conformance --impl a,b".into(),
    }
}

fn trial_report(verdict: run::Verdict, library: &str) -> TrialReport {
    TrialReport {
        measures: Vec::new(),
        attempts: 1,
        verdict,
        elapsed: Duration::from_millis(12),
        timeline: vec!["   +0.1ms step 1: open".into()],
        stderr: vec![("p1".into(), "line one\nline two".into())],
        workers: vec![WorkerInfo {
            process: "p1".into(),
            implementation: Some(library.into()),
            version: Some("1.2.3".into()),
            language: Some("rust".into()),
            capabilities: vec!["callback".into()],
            protocol: Some(2),
        }],
    }
}

/// A failure at step 3, which checks REL-2.
fn failure(observed: &str) -> Failure {
    Failure {
        kind: FailKind::WrongOutcome,
        step: Some(2),
        rule: Some("REL-2".into()),
        summary: "release p1 a".into(),
        expected: "not_held".into(),
        observed: observed.into(),
    }
}

/// A recorder for implementations `a` and `b` with lock files under `/base`.
fn recorder() -> Recorder {
    let imps = [
        Implementation::new("a", "/root/target/debug/worker-a", &[]),
        Implementation::new("b", "python3", &["/root/adapters/b.py"]),
    ];
    Recorder::new(
        environment(),
        &suite(Path::new("/root")),
        &imps,
        Path::new("/base"),
    )
}

fn record(
    rec: &mut Recorder,
    imp: &str,
    second: Option<&str>,
    s: &Scenario,
    r: &TrialReport,
    expectation: Option<ExpectationNote>,
) {
    let test = match second {
        Some(b) => format!("{imp}+{b}::{}", s.id),
        None => format!("{imp}::{}", s.id),
    };
    let players = std::iter::once(imp)
        .chain(second)
        .map(|name| Implementation::new(name, "worker", &[]))
        .collect();
    let test = Test {
        rerun: format!("cargo xtask conformance --exact --filter {test}"),
        name: test,
        players,
        scenario: s.clone(),
        expected: None,
    };
    let judgement = Judgement {
        verdict: Verdict::of(&r.verdict),
        expectation,
        binding: crate::judge::binds(imp, second),
    };
    rec.record(&test, r, &judgement);
}

/// A small run: `a` passes everything; `b` fails REL-2 at step 3 of a scenario whose step 4
/// checks IDN-1, fails IDN-1 as expected, lacks the callback; `a` and `b` do not exclude each
/// other.
fn sample() -> Report {
    let mut rec = recorder();
    let two = scenario("identity::two", &["IDN-1"]);
    let rel = scenario_with(
        "release::unheld",
        &["REL-2", "IDN-1"],
        &["IDN-1", "REL-2", "REL-2", "IDN-1"],
    );
    let cbk = scenario("callback::once", &["CBK-1"]);
    let iop = scenario("interop::blocks", &["IOP-1"]);
    rec.interop(&[&iop]);
    let pass = trial_report(run::Verdict::Pass, "liba");
    for s in [&two, &rel, &cbk] {
        record(&mut rec, "a", None, s, &pass, None);
    }
    let failed = trial_report(run::Verdict::Fail(failure("released after 0.1 ms")), "libb");
    record(&mut rec, "b", None, &rel, &failed, None);
    let failed_idn = trial_report(
        run::Verdict::Fail(Failure {
            rule: Some("IDN-1".into()),
            ..failure("acquired after 0.1 ms")
        }),
        "libb",
    );
    record(
        &mut rec,
        "b",
        None,
        &two,
        &failed_idn,
        Some(ExpectationNote {
            outcome: Class::Fail,
            step: Some(3),
            rule: Some("IDN-1".into()),
            reason: "IDN-1: per-process record locks".into(),
            held: true,
        }),
    );
    let skipped = trial_report(run::Verdict::Skip("no callback".into()), "libb");
    record(&mut rec, "b", None, &cbk, &skipped, None);
    let blocked = trial_report(run::Verdict::Fail(failure("acquired after 1 ms")), "liba");
    for (x, y) in [("a", "a"), ("b", "b")] {
        record(&mut rec, x, Some(y), &iop, &pass, None);
    }
    for (x, y) in [("a", "b"), ("b", "a")] {
        record(&mut rec, x, Some(y), &iop, &blocked, None);
    }
    rec.finish(Some(Duration::from_millis(2500)))
}

#[test]
fn the_matrix_charges_a_failure_to_the_rule_of_its_step() {
    let r = sample();
    assert_eq!(r.matrix.len(), 4, "one row per rule, in the spec's order");
    assert_eq!(r.matrix[0].rule, "IDN-1");
    let a_idn = r.cell("IDN-1", "a").unwrap();
    assert_eq!((a_idn.pass, a_idn.total()), (2, 2));
    assert_eq!(a_idn.worst(), Some(Outcome::Pass));
    let b_idn = r.cell("IDN-1", "b").unwrap();
    assert_eq!(
        (b_idn.fail, b_idn.expected_fail, b_idn.not_reached),
        (0, 1, 1),
        "the REL-2 failure at step 3 is not charged to IDN-1, whose step 4 never ran"
    );
    assert_eq!((b_idn.applicable(), b_idn.total()), (1, 2));
    assert_eq!(b_idn.worst(), Some(Outcome::Expected));
    let b_rel = r.cell("REL-2", "b").unwrap();
    assert_eq!((b_rel.fail, b_rel.total()), (1, 1));
    let b_cbk = r.cell("CBK-1", "b").unwrap();
    assert_eq!(b_cbk.not_applicable, 1);
    assert_eq!(b_cbk.worst(), Some(Outcome::NotApplicable));
    assert_eq!(r.cell("IOP-1", "a").unwrap().worst(), None);

    assert_eq!(r.totals.total(), 6);
    assert_eq!(
        (r.totals.pass, r.totals.fail, r.totals.expected_fail),
        (3, 1, 1)
    );
    let b = &r.implementations[1];
    assert_eq!(b.totals.total(), 3);
    assert_eq!(b.library.as_deref(), Some("libb"));
    assert_eq!(b.version.as_deref(), Some("1.2.3"));
    assert_eq!(
        b.command, "python3 adapters/b.py",
        "the root is made relative"
    );
    assert_eq!(r.environment.wall_time_s, 2.5);
}

#[test]
fn the_interop_matrix_has_one_cell_per_ordered_pair() {
    let r = sample();
    let interop = r.interop.as_ref().unwrap();
    assert_eq!(interop.trials.len(), 4);
    assert!(r.trials.iter().all(|t| t.second.is_none()));
    let pairs: Vec<(&str, &str, Option<Outcome>)> = interop
        .matrix
        .iter()
        .map(|c| (c.first.as_str(), c.second.as_str(), c.counts.worst()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a", "a", Some(Outcome::Pass)),
            ("a", "b", Some(Outcome::Fail)),
            ("b", "a", Some(Outcome::Fail)),
            ("b", "b", Some(Outcome::Pass)),
        ]
    );
}

#[test]
fn only_problems_of_one_implementation_fail_the_run() {
    let mut r = sample();
    assert!(judge::failed(&r), "b fails REL-2");
    r.trials.retain(|t| t.outcome() != Outcome::Fail);
    r.totals = Counts {
        fail: 0,
        ..r.totals
    };
    assert!(
        !judge::failed(&r),
        "an expected failure, n/a and two implementations that do not interoperate are not problems"
    );
    let interop = r.interop.as_mut().unwrap();
    let itself = interop
        .trials
        .iter_mut()
        .find(|t| t.second.as_deref() == Some(t.implementation.as_str()))
        .unwrap();
    itself.verdict = Verdict::Fail;
    assert!(
        judge::failed(&r),
        "an implementation paired with itself must pass"
    );
}

#[test]
fn another_rule_passes_if_its_steps_all_ran_before_the_failing_one() {
    let r = sample();
    let mut t = r
        .trials
        .iter()
        .find(|t| t.test == "b::release::unheld")
        .unwrap()
        .clone();
    assert_eq!(t.charged(), Some("REL-2"));
    assert_eq!(t.outcome_for("REL-2"), Outcome::Fail);
    assert_eq!(t.outcome_for("IDN-1"), Outcome::NotReached);
    t.checks.insert("IDN-1".into(), vec![1, 2]);
    assert_eq!(t.outcome_for("IDN-1"), Outcome::Pass);
    // Before the first step, a failure concerns every rule.
    let ev = t.evidence.as_mut().unwrap();
    (ev.step, ev.rule) = (None, None);
    assert_eq!(t.charged(), None);
    assert_eq!(t.outcome_for("IDN-1"), Outcome::Fail);
    // A pass that the expectations say fails is charged to the rule they name.
    t.evidence = None;
    t.verdict = Verdict::Pass;
    t.expectation = Some(ExpectationNote {
        outcome: Class::Fail,
        step: Some(3),
        rule: Some("REL-2".into()),
        reason: "REL-2: silent".into(),
        held: false,
    });
    assert_eq!(t.outcome_for("REL-2"), Outcome::Unexpected);
    assert_eq!(t.outcome_for("IDN-1"), Outcome::Pass);
}

#[test]
fn a_cell_of_trials_that_never_reached_its_rule_is_not_judged() {
    let c = Counts {
        not_reached: 2,
        not_applicable: 1,
        ..Counts::default()
    };
    assert_eq!((c.applicable(), c.worst()), (0, Some(Outcome::NotReached)));
    assert_eq!(c.to_string(), "1 n/a, 2 not reached");
    let c = Counts {
        pass: 1,
        not_reached: 1,
        ..Counts::default()
    };
    assert_eq!((c.applicable(), c.worst()), (1, Some(Outcome::Pass)));
}

#[test]
fn an_expectation_that_no_longer_holds_is_a_problem() {
    let mut t = sample().trials[0].clone();
    assert_eq!(t.outcome(), Outcome::Pass);
    t.expectation = Some(ExpectationNote {
        outcome: Class::Fail,
        step: None,
        rule: None,
        reason: "r".into(),
        held: false,
    });
    assert_eq!(t.outcome(), Outcome::Unexpected);
    let mut c = Counts::default();
    c.add(t.outcome());
    assert_eq!((c.unexpected, c.worst()), (1, Some(Outcome::Fail)));
}

#[test]
fn the_json_round_trips_and_has_the_documented_shape() {
    let r = sample();
    let text = json(&r);
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);

    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], 2);
    for key in [
        "lockspec_version",
        "environment",
        "implementations",
        "rules",
        "matrix",
        "trials",
        "interop",
        "totals",
    ] {
        assert!(v.get(key).is_some(), "no `{key}`");
    }
    assert_eq!(v["environment"]["filesystem"], "tmpfs");
    assert_eq!(v["environment"]["date"], "2024-05-01T12:00:00Z");
    let cell = &v["matrix"][0]["cells"][1];
    assert_eq!(cell["implementation"], "b");
    assert_eq!(cell["not_reached"], 1, "counts are flattened into the cell");
    assert_eq!(cell["expected_fail"], 1);
    let verdicts: Vec<&str> = v["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect();
    assert!(verdicts.contains(&"not_applicable"), "{verdicts:?}");
    let failed = v["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test"] == "b::release::unheld")
        .unwrap();
    assert_eq!(failed["evidence"]["step"], 3, "steps count from 1");
    assert_eq!(failed["evidence"]["rule"], "REL-2");
    assert_eq!(failed["checks"]["IDN-1"], serde_json::json!([1, 4]));
    assert_eq!(failed["checks"]["REL-2"], serde_json::json!([2, 3]));
    assert_eq!(failed["evidence"]["stderr"][0]["process"], "p1");
    assert!(
        failed.get("second").is_none(),
        "only interop trials have `second`"
    );
    assert_eq!(v["interop"]["trials"][1]["second"], "b");
}

#[test]
fn a_report_from_an_older_writer_without_optional_parts_reads() {
    let mut v: Value = serde_json::from_str(&json(&sample())).unwrap();
    v["interop"] = Value::Null;
    v["extra_field_of_a_later_version"] = Value::Bool(true);
    let r: Report = serde_json::from_value(v).unwrap();
    assert!(r.interop.is_none());
}

#[test]
fn html_escapes_everything_it_shows() {
    assert_eq!(
        escape_html(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    let mut rec = recorder();
    let s = scenario("release::unheld", &["REL-2"]);
    let hostile = "</pre><script>alert(1)</script>";
    let mut r = trial_report(run::Verdict::Fail(failure(hostile)), "<b>lib</b>");
    r.stderr = vec![("p1".into(), format!("Traceback\n{hostile}"))];
    record(&mut rec, "a", None, &s, &r, None);
    let page = html(&rec.finish(None));
    assert!(!page.contains("<script"), "raw markup leaked into the page");
    assert!(!page.contains("<b>lib"));
    assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;b&gt;lib&lt;/b&gt;"));
}

#[test]
fn the_html_page_is_self_contained_with_evidence_for_failing_cells() {
    let page = html(&sample());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    for external in ["<script", "<link", "src=", "http://", "https://", "@import"] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    assert!(page.contains("<style>"));
    // b's IDN-1 cell (row 0, column 1) links to its evidence, which is in <details>.
    assert!(page.contains("<a href=\"#c0-1\">"));
    assert!(page.contains("<details class=\"cell\" id=\"c0-1\">"));
    assert!(
        page.contains("<details class=\"cell\" id=\"i0-1\">"),
        "interop evidence"
    );
    assert!(
        !page.contains("id=\"c0-0\""),
        "a passing cell has no evidence"
    );
    for text in [
        "b::release::unheld",
        "released after 0.1 ms",
        "step 1: open",
        "line two",
        "cargo xtask conformance --exact --filter b::release::unheld",
        "IDN-1: per-process record locks",
        "tmpfs",
        "Test OS 1, kernel 6.0.0 (x86_64)",
        "2024-05-01T12:00:00Z",
        "1.2.3",
    ] {
        assert!(page.contains(text), "the page does not show {text:?}");
    }
    // One opening tag per closing tag for the elements the writer nests.
    for tag in ["details", "table", "tr", "dl", "div", "pre"] {
        let open =
            page.matches(&format!("<{tag}>")).count() + page.matches(&format!("<{tag} ")).count();
        let close = page.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "unbalanced <{tag}>");
    }
}

#[test]
fn the_markdown_has_the_environment_the_matrix_and_the_failures() {
    let md = markdown(&sample());
    assert!(md.starts_with("# lockspec conformance report\n"));
    assert!(md.contains("| lock files on | tmpfs (the system's temporary directory) |"));
    assert!(md.contains("| rule | title | a | b |"));
    assert!(md.contains("| IDN-1 | Two objects exclude each other | ✅ 2/2 | 🟧 0/1 |"));
    assert!(md.contains("| REL-2 | Releasing an unheld lock is an error | ✅ 1/1 | ❌ 0/1 |"));
    assert!(md.contains("| CBK-1 | A wait calls the callback once | ✅ 1/1 | ➖ n/a |"));
    assert!(
        md.contains("| **a** | ✅ 1/1 | ❌ 0/1 |"),
        "interop row of a"
    );
    assert!(md.contains("## Failures"));
    assert!(
        !md.contains("`a+b::interop::blocks`"),
        "two implementations that do not exclude each other are in the matrix, not the failures"
    );
    assert!(md.contains("`b::release::unheld`"));
    assert!(md.contains("expected: not_held"));
    assert!(md.contains("rerun: `cargo xtask conformance --exact --filter b::release::unheld`"));
    assert!(md.contains("- **fail** `b::release::unheld` — REL-2 Releasing an unheld lock"));
    assert!(md.contains("## Expected failures"));
    assert!(md.contains(
        "- `b::identity::two` — fail at step 3 (IDN-1): IDN-1: per-process record locks"
    ));
    assert!(md.contains("## Not applicable\n\n- **b**: `callback::once` — no callback"));
    for line in md.lines().filter(|l| l.starts_with('|')) {
        assert!(line.ends_with('|'), "a table row is cut: {line}");
    }
}

#[test]
fn the_terminal_table_has_one_line_per_rule() {
    let r = sample();
    let table = terminal::table(&r, false);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + r.rules.len());
    assert!(lines[1].starts_with("IDN-1"));
    assert!(lines[1].contains("pass 2/2"));
    assert!(lines[1].contains("xfail 1/2"));
    assert!(lines[2].contains("FAIL 1/1"));
    assert!(!table.contains('\x1b'), "no colour unless asked");
    assert!(terminal::table(&r, true).contains("\x1b[31m"));
    let interop = terminal::interop_table(&r, false);
    assert_eq!(interop.lines().count(), 2 + r.implementations.len());
    assert!(terminal::summary(&r).contains("3 passed, 1 failed"));
}

#[test]
fn machine_paths_are_removed() {
    let sep = std::path::MAIN_SEPARATOR;
    let base = Path::new("/base");
    let root = Path::new("/root");
    let r = Redactor::new(base, root);
    let trial = format!("/base{sep}lockspec-Ab3dE9{sep}x.lock");
    assert_eq!(
        r.apply(&format!("cannot open {trial}: denied")),
        format!("cannot open {{dir}}{sep}x.lock: denied")
    );
    let script = format!("/root{sep}adapters{sep}b.py");
    assert_eq!(
        r.apply(&format!("File \"{script}\", line 3")),
        format!("File \"adapters{sep}b.py\", line 3")
    );
    assert_eq!(r.apply("/rooted/other"), "/rooted/other");
}

#[test]
fn crate_sources_in_backtraces_lose_the_cache_path() {
    let sep = std::path::MAIN_SEPARATOR;
    let mut r = Redactor::new(Path::new("/base"), Path::new("/root"));
    r.crate_caches = vec![format!("/cargo{sep}registry{sep}src{sep}")];
    r.homes = vec![format!("/home/someone{sep}")];
    let line = format!(
        "panicked at /cargo{sep}registry{sep}src{sep}index-0123abcd{sep}fslock-0.2.1{sep}src{sep}unix.rs:7:5"
    );
    assert_eq!(
        r.apply(&line),
        format!("panicked at fslock-0.2.1{sep}src{sep}unix.rs:7:5")
    );
    assert_eq!(
        r.apply(&format!("/home/someone{sep}.local{sep}x")),
        format!("~{sep}.local{sep}x")
    );
}

#[test]
fn long_stderr_is_cut_to_its_last_lines() {
    let text: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let tail = tail_of(&text.join("\n"));
    assert_eq!(tail.lines().count(), STDERR_LINES);
    assert!(tail.ends_with("line 99"));
    let wide = "é".repeat(5000);
    let cut = tail_of(&wide);
    assert!(cut.len() <= STDERR_BYTES + "…".len() + 1);
    assert!(cut.starts_with('…'));
}

#[test]
fn the_terminal_labels_each_judgement_and_explains_a_broken_expectation() {
    let s = scenario("identity::two", &["IDN-1"]);
    let expected = crate::expectations::Expected {
        outcome: Class::Fail,
        step: Some(3),
        rule: Some("IDN-1".into()),
        reason: "IDN-1: per-process record locks".into(),
    };
    let test = |expected: Option<crate::expectations::Expected>| Test {
        name: "a::identity::two".into(),
        players: vec![Implementation::new("a", "worker", &[])],
        scenario: s.clone(),
        expected,
        rerun: "cargo xtask conformance --impl a --exact --filter a::identity::two".into(),
    };
    let failed = run::Verdict::Fail(Failure {
        rule: Some("IDN-1".into()),
        ..failure("acquired after 0.1 ms")
    });
    let skipped = run::Verdict::Skip("no callback".into());
    for (verdict, expected, label) in [
        (run::Verdict::Pass, None, "PASS "),
        (run::Verdict::Pass, Some(expected.clone()), "XPASS"),
        (failed.clone(), Some(expected.clone()), "XFAIL"),
        (failed.clone(), None, "FAIL "),
        (skipped.clone(), None, "N/A  "),
        (skipped, Some(expected.clone()), "XSKIP"),
    ] {
        let (t, r) = (test(expected), trial_report(verdict, "liba"));
        let j = judge::judge(&t, &r);
        let line = terminal::progress(1, 9, &t, &j, r.elapsed, false);
        assert_eq!(line, format!("[  1/9] {label} a::identity::two (0.01 s)"));
        assert!(terminal::progress(1, 9, &t, &j, r.elapsed, true).contains("\x1b["));
    }
    let (t, r) = (
        test(Some(expected)),
        trial_report(run::Verdict::Pass, "liba"),
    );
    let text = terminal::explain(&t, &r, &judge::judge(&t, &r), &HashMap::new());
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "a::identity::two: passed",
            "  the expectations say fail at step 3 (IDN-1) (IDN-1: per-process record locks), \
             but this run shows a pass; if the library changed, review and rerun with --bless"
        ]
    );
}
