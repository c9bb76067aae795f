//! The expectation files' format, loading and blessing, case by case.

use super::*;
use crate::run::{FailKind, Failure};
use crate::session::BrokenKind;

/// A failure of `kind` at `step`, which checks REL-2.
fn failure(kind: FailKind, step: Option<usize>) -> Failure {
    Failure::fixture(kind, step)
}

fn fail_at(step: usize) -> Verdict {
    Verdict::Fail(failure(FailKind::WrongOutcome, Some(step - 1)))
}

fn expected(outcome: Class, step: Option<usize>) -> Expected {
    Expected {
        outcome,
        step,
        rule: Some("REL-2".into()),
        reason: "REL-2: it is silent".into(),
    }
}

/// A failure at `step` that checks `rule`.
fn fail_of(step: usize, rule: &str) -> Verdict {
    Verdict::Fail(Failure {
        rule: Some(rule.into()),
        ..failure(FailKind::WrongOutcome, Some(step - 1))
    })
}

#[test]
fn classes() {
    assert_eq!(Class::of(&Verdict::Pass), None);
    assert_eq!(Class::of(&Verdict::Skip("x".into())), None);
    assert_eq!(Class::of(&fail_at(2)), Some(Class::Fail));
    let hung = Verdict::Fail(failure(FailKind::NoReply, Some(1)));
    assert_eq!(Class::of(&hung), Some(Class::Timeout));
    let crash = Verdict::Error(failure(FailKind::Broken(BrokenKind::Exited), Some(1)));
    assert_eq!(Class::of(&crash), Some(Class::Crash));
}

#[test]
fn bless_keeps_reasons_and_marks_new_entries() {
    let mut file = Expectations {
        implementation: "x".into(),
        failures: BTreeMap::from([
            ("a::kept".into(), expected(Class::Fail, Some(2))),
            ("a::now_passes".into(), expected(Class::Fail, Some(2))),
            ("a::changed".into(), expected(Class::Crash, Some(2))),
            ("a::skipped".into(), expected(Class::Fail, Some(2))),
            ("a::other_rule".into(), expected(Class::Fail, Some(2))),
            (
                "a::no_rule_yet".into(),
                Expected {
                    rule: None,
                    ..expected(Class::Fail, Some(2))
                },
            ),
        ]),
    };
    let (kept, passes, changed, new, skipped, other_rule, no_rule_yet) = (
        fail_at(3),
        Verdict::Pass,
        fail_at(2),
        fail_at(1),
        Verdict::Skip("n/a".into()),
        fail_of(4, "REL-3"),
        fail_at(2),
    );
    let blessed = file.bless(
        [
            ("a::kept", &kept),
            ("a::now_passes", &passes),
            ("a::changed", &changed),
            ("a::new", &new),
            ("a::skipped", &skipped),
            ("a::other_rule", &other_rule),
            ("a::no_rule_yet", &no_rule_yet),
        ],
        "2030-01-02",
    );
    assert_eq!(
        blessed,
        Blessed {
            kept: 2,
            to_review: 3,
            removed: 1
        }
    );
    assert_eq!(file.failures["a::kept"].reason, "REL-2: it is silent");
    assert_eq!(file.failures["a::kept"].step, Some(3));
    assert_eq!(file.failures["a::kept"].rule.as_deref(), Some("REL-2"));
    assert_eq!(
        file.failures["a::no_rule_yet"],
        expected(Class::Fail, Some(2)),
        "a reason that names the rule is kept, and the rule recorded"
    );
    let other = &file.failures["a::other_rule"];
    assert_eq!(other.rule.as_deref(), Some("REL-3"));
    assert!(
        other.reason.starts_with(UNREVIEWED),
        "a failure charged to another rule needs a new reason"
    );
    assert!(!file.failures.contains_key("a::now_passes"));
    assert_eq!(
        file.failures["a::new"].reason,
        "observed on 2030-01-02, reason not yet reviewed"
    );
    assert_eq!(file.failures["a::changed"].outcome, Class::Fail);
    assert!(file.failures["a::changed"].reason.starts_with(UNREVIEWED));
    assert_eq!(file.failures["a::skipped"], expected(Class::Fail, Some(2)));
    let crash = Verdict::Error(failure(FailKind::Broken(BrokenKind::Exited), Some(4)));
    file.bless([("a::crash", &crash)], "2030-01-02");
    assert_eq!(file.failures["a::crash"].outcome, Class::Crash);
    assert_eq!(
        file.failures["a::crash"].step, None,
        "a crash is expected at any step"
    );
    let again = Expectations::parse(&file.to_text(), Path::new("x.json"), "x").unwrap();
    assert_eq!(again, file);
}

#[test]
fn parse_errors_name_file_line_and_column() {
    let text = "{\n  \"implementation\": \"x\",\n  \"failures\": {\"a::b\": {\"outcome\": \"boom\", \"reason\": \"r\"}}\n}\n";
    let error = Expectations::parse(text, Path::new("e/x.json"), "x").unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with("e/x.json:3:"), "{shown}");
    let error = Expectations::parse(
        "{\"implementation\": \"y\", \"failures\": {}}",
        Path::new("e/x.json"),
        "x",
    )
    .unwrap_err();
    assert!(error.to_string().contains("about \"y\""), "{error}");
    let unknown = "{\"implementation\": \"x\", \"failures\": {}, \"extra\": 1}";
    assert!(Expectations::parse(unknown, Path::new("e/x.json"), "x").is_err());
}

#[test]
fn problems_name_the_entry() {
    let suite = crate::suite::load(&crate::suite::default_root()).expect("the suite loads");
    let entry = |step, reason: &str| Expected {
        outcome: Class::Fail,
        step,
        rule: Some(reason.split(':').next().unwrap_or_default().to_owned()),
        reason: reason.into(),
    };
    let file = Expectations {
        implementation: "x".into(),
        failures: BTreeMap::from([
            ("release::not_held".into(), entry(Some(2), "REL-2: fine")),
            ("release::nothing".into(), entry(None, "REL-2: no such")),
            (
                "release::released_twice".into(),
                entry(Some(99), "REL-3: far"),
            ),
            (
                "release::other_thread_releases".into(),
                Expected {
                    rule: Some("REL-1".into()),
                    ..entry(None, "observed on 2030-01-01, reason not yet reviewed")
                },
            ),
            (
                "identity::two_processes".into(),
                entry(None, "REL-2: wrong rule"),
            ),
            (
                "identity::two_objects_two_threads".into(),
                entry(Some(6), "IDN-1: not the rule of step 6"),
            ),
            (
                "reentrancy::same_object_times_out".into(),
                Expected {
                    rule: Some("TMO-6".into()),
                    ..entry(Some(6), "REE-1: names another rule than its own")
                },
            ),
            (
                "release::non_holding_object_same_process".into(),
                Expected {
                    rule: None,
                    ..entry(Some(4), "REL-4: fine, but no rule")
                },
            ),
        ]),
    };
    let problems = file.problems(&suite);
    assert_eq!(problems.len(), 7, "{problems:#?}");
    for (needle, problem) in [
        ("release::nothing: no such scenario", &problems),
        ("release::released_twice: step 99", &problems),
        (
            "other_thread_releases: the reason is not reviewed",
            &problems,
        ),
        (
            "two_processes: rule REL-2, which the scenario does not cite",
            &problems,
        ),
        (
            "two_objects_two_threads: rule IDN-1, but step 6 checks ACQ-2",
            &problems,
        ),
        (
            "same_object_times_out: the reason does not name the entry's rule TMO-6",
            &problems,
        ),
        ("non_holding_object_same_process: no rule", &problems),
    ] {
        assert!(
            problem.iter().any(|p| p.contains(needle)),
            "{needle}: {problem:#?}"
        );
    }
}

#[test]
fn a_missing_file_expects_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Expectations::load(tmp.path(), "nothing").unwrap();
    assert_eq!(e.implementation, "nothing");
    assert!(e.failures.is_empty());
}
