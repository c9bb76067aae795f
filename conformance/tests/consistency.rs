//! The suite's own tidy test: the spec, the schema and the scenarios agree with each other.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::Path;

use lockspec_conformance::scenario;
use lockspec_conformance::suite::{self, Suite};
use rstest::rstest;

fn load() -> Suite {
    match suite::load(&suite::default_root()) {
        Ok(s) => s,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("the suite does not load:\n{}", list.join("\n"));
        }
    }
}

#[test]
fn every_scenario_validates_and_cites_only_known_rules() {
    // `suite::load` validates each file against the schema, parses it strictly, and checks
    // its rules, processes, handles and expectations.
    let suite = load();
    assert!(
        suite.scenarios.len() >= 20,
        "only {} scenarios",
        suite.scenarios.len()
    );
}

#[test]
fn every_rule_is_tested_and_its_tested_by_line_is_true() {
    let suite = load();
    let mut citing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &suite.scenarios {
        for r in &s.rules {
            citing.entry(r.as_str()).or_default().insert(s.id.as_str());
        }
    }
    let mut problems = Vec::new();
    for rule in &suite.rules {
        let actual = citing.get(rule.id.as_str()).cloned().unwrap_or_default();
        if actual.is_empty() {
            problems.push(format!("{} is tested by no scenario", rule.id));
        }
        let listed: BTreeSet<&str> = rule.tested_by.iter().map(String::as_str).collect();
        if listed != actual {
            problems.push(format!(
                "{}: SPEC.md says it is tested by {listed:?}, but the scenarios citing it are {actual:?}",
                rule.id
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rule_ids_are_unique() {
    let suite = load();
    let mut seen = HashSet::new();
    for r in &suite.rules {
        assert!(seen.insert(&r.id), "rule {} is defined twice", r.id);
    }
}

/// The spec's areas: directory under `scenarios/` and the prefix of its rules' IDs.
const AREAS: &[(&str, &str)] = &[
    ("identity", "IDN"),
    ("acquire", "ACQ"),
    ("timeout", "TMO"),
    ("reentrancy", "REE"),
    ("release", "REL"),
    ("death", "DTH"),
    ("file", "FIL"),
    ("inheritance", "INH"),
    ("paths", "PTH"),
    ("callback", "CBK"),
    ("interop", "IOP"),
    ("stress", "STR"),
];

#[test]
fn scenario_directories_follow_the_spec_areas() {
    let suite = load();
    for rule in &suite.rules {
        let prefix = rule.id.split('-').next().unwrap();
        assert!(
            AREAS.iter().any(|(_, p)| *p == prefix),
            "rule {} belongs to no known area",
            rule.id
        );
    }
    for s in &suite.scenarios {
        let area = s.id.split("::").next().unwrap();
        let Some((_, prefix)) = AREAS.iter().find(|(a, _)| *a == area) else {
            panic!("{}: `{area}` is not an area of the spec", s.file.display());
        };
        assert!(
            s.rules.iter().any(|r| r.starts_with(&format!("{prefix}-"))),
            "{} is in {area}/ but cites no {prefix} rule: {:?}",
            s.file.display(),
            s.rules
        );
    }
}

/// A scenario that loads, and that the cases below break one way each.
const GOOD: &str = include_str!("fixtures/good_scenario.json");

/// A copy of the spec with one extra scenario file, loaded as a whole suite.
fn load_with(text: &str) -> Result<Suite, Vec<scenario::LoadError>> {
    let root = suite::default_root();
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("spec")).unwrap();
    for f in ["SPEC.md", "scenario.schema.json"] {
        fs::copy(root.join("spec").join(f), tmp.path().join("spec").join(f)).unwrap();
    }
    let dir = tmp.path().join("scenarios/identity");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("bad.json"), text).unwrap();
    suite::load(tmp.path())
}

#[test]
fn the_good_example_loads() {
    let suite = load_with(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(suite.scenarios.len(), 1);
    assert_eq!(suite.scenarios[0].id, "identity::bad");
}

#[test]
fn a_step_may_check_another_rule_the_scenario_cites() {
    let text = GOOD
        .replacen(r#"["IDN-2"]"#, r#"["IDN-2", "ACQ-2"]"#, 1)
        .replacen(
            r#""expect": ["acquired"]"#,
            r#""expect": ["acquired"], "rule": "ACQ-2""#,
            1,
        );
    let suite = load_with(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let s = &suite.scenarios[0];
    assert_eq!(s.steps_checking("ACQ-2").collect::<Vec<_>>(), [5]);
    assert_eq!(s.rule_of(0), "IDN-2");
}

#[test]
fn a_step_names_a_rule_only_where_it_checks_another_than_the_primary() {
    let suite = load();
    let root = suite::default_root();
    let mut problems = Vec::new();
    for s in &suite.scenarios {
        let text = fs::read_to_string(&s.file).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (i, step) in value["steps"].as_array().unwrap().iter().enumerate() {
            if step.get("rule").and_then(|r| r.as_str()) == Some(s.primary()) {
                problems.push(format!(
                    "{}: step {} names the primary rule {}; leave it out",
                    s.file.strip_prefix(&root).unwrap_or(&s.file).display(),
                    i + 1,
                    s.primary()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[rstest]
#[case::syntax(r#""rules": ["IDN-2"],"#, r#""rules": ["IDN-2"]"#, 4)]
#[case::unknown_field(r#""processes""#, r#""procs""#, 4)]
#[case::unknown_op(r#""op": "release""#, r#""op": "unlock""#, 10)]
#[case::unknown_rule(r#"["IDN-2"]"#, r#"["IDN-999"]"#, 3)]
#[case::unknown_process(
    r#""process": "p2", "handle": "a", "path""#,
    r#""process": "p9", "handle": "a", "path""#,
    8
)]
#[case::unknown_handle(
    r#""process": "p1", "handle": "a", "expect": "released""#,
    r#""process": "p1", "handle": "z", "expect": "released""#,
    10
)]
#[case::unknown_kind(r#""expect": "acquired"}"#, r#""expect": "aquired"}"#, 7)]
#[case::unknown_timeout(r#""timeout": "short""#, r#""timeout": "brief""#, 8)]
#[case::impossible_expectation(r#""expect": ["acquired"]"#, r#""expect": "blocks""#, 11)]
#[case::step_on_a_blocked_thread(
    r#"{"op": "release", "process": "p1""#,
    r#"{"op": "release", "process": "p2""#,
    10
)]
#[case::step_rule_not_cited(r#""expect": "blocks"}"#, r#""expect": "blocks", "rule": "IDN-1"}"#, 9)]
#[case::rule_checked_by_no_step(r#"["IDN-2"]"#, r#"["IDN-2", "IDN-1"]"#, 3)]
fn a_malformed_scenario_is_rejected_with_file_line_and_column(
    #[case] from: &str,
    #[case] to: &str,
    #[case] line: usize,
) {
    assert!(GOOD.contains(from), "the case does not apply: {from}");
    let text = GOOD.replacen(from, to, 1);
    let errors = load_with(&text).expect_err("the malformed scenario must be rejected");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.file.ends_with(Path::new("identity/bad.json")), "{e}");
    assert_eq!(e.line, line, "{e}");
    assert!(e.column > 0, "{e}");
    assert!(!e.message.is_empty());
}

#[rstest]
#[case::unknown_field(r#""processes""#, r#""procs""#)]
#[case::unknown_op(r#""op": "release""#, r#""op": "unlock""#)]
#[case::unknown_kind(r#""expect": "acquired"}"#, r#""expect": "aquired"}"#)]
#[case::unknown_timeout(r#""timeout": "short""#, r#""timeout": "brief""#)]
#[case::empty_expect(r#""expect": ["acquired"]"#, r#""expect": []"#)]
#[case::bad_rule_id(r#"["IDN-2"]"#, r#"["identity"]"#)]
#[case::bad_step_rule(r#""expect": "blocks"}"#, r#""expect": "blocks", "rule": "identity"}"#)]
fn the_schema_rejects_what_the_parser_rejects(#[case] from: &str, #[case] to: &str) {
    let root = suite::default_root();
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("spec/scenario.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let good: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    assert!(
        validator.is_valid(&good),
        "the schema rejects the good example"
    );
    let bad: serde_json::Value = serde_json::from_str(&GOOD.replacen(from, to, 1)).unwrap();
    assert!(!validator.is_valid(&bad), "the schema accepts {to}");
}
