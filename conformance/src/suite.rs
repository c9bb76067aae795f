//! The suite on disk: the rules of `spec/SPEC.md`, the schema, and every scenario file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::locate::locate;
use crate::scenario::{self, LoadError, Scenario, Seg};

/// One rule of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Permanent ID, such as `IDN-1`.
    pub id: String,
    /// Its short title.
    pub title: String,
    /// The scenario IDs its **Tested by** line lists.
    pub tested_by: Vec<String>,
}

/// The spec, the scenarios, and where they came from.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The directory holding `spec/` and `scenarios/`.
    pub root: PathBuf,
    /// The rules, in the order of the spec.
    pub rules: Vec<Rule>,
    /// The scenarios, sorted by ID.
    pub scenarios: Vec<Scenario>,
}

impl Suite {
    /// Rule ID to title.
    pub fn rule_titles(&self) -> HashMap<String, String> {
        self.rules
            .iter()
            .map(|r| (r.id.clone(), r.title.clone()))
            .collect()
    }
}

/// The suite's root as built into this crate: the workspace that contains it, unless
/// `LOCKSPEC_ROOT` names another.
///
/// Under a test runner, the crate's directory is taken from `CARGO_MANIFEST_DIR` at run time when
/// it is set (cargo and nextest set it, and `cargo nextest run --archive-file ... --workspace-remap`
/// points it at the checkout on the machine that runs the archive), else from build time.
pub fn default_root() -> PathBuf {
    if let Some(root) = std::env::var_os("LOCKSPEC_ROOT") {
        return PathBuf::from(root);
    }
    let at_run_time = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| dir.parent().map(Path::to_owned))
        .filter(|root| root.join("spec/SPEC.md").is_file());
    at_run_time.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the crate lives in the workspace")
            .to_owned()
    })
}

/// Reads the rules from the text of `SPEC.md`: headings `### ID — Title` followed, somewhere
/// before the next heading, by a line starting `**Tested by**` that lists scenario IDs in
/// backticks.
pub fn parse_rules(text: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let mut parts = heading.splitn(2, ['—', '–']);
            let id = parts.next().unwrap_or("").trim();
            let title = parts.next().unwrap_or("").trim();
            if is_rule_id(id) {
                rules.push(Rule {
                    id: id.to_owned(),
                    title: title.to_owned(),
                    tested_by: Vec::new(),
                });
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.trim_start().starts_with("**Tested by")
            && let Some(rule) = rules.last_mut()
        {
            rule.tested_by.extend(
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|s| s.contains("::"))
                    .map(str::to_owned),
            );
        }
    }
    rules
}

fn is_rule_id(id: &str) -> bool {
    let Some((area, number)) = id.split_once('-') else {
        return false;
    };
    area.len() == 3
        && area.chars().all(|c| c.is_ascii_uppercase())
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// Loads the suite at `root` as [`load`] does, or says why it cannot: every problem on a line
/// of its own, then that the suite cannot be loaded.
///
/// # Errors
///
/// The problems [`load`] finds, as one message.
pub fn load_or_explain(root: &Path) -> Result<Suite, String> {
    load(root).map_err(|errors| {
        let lines: String = errors.iter().map(|e| format!("{e}\n")).collect();
        format!(
            "{lines}the suite at {} cannot be loaded ({} problem(s))",
            root.display(),
            errors.len()
        )
    })
}

/// Loads the spec's rules, then every scenario under `root/scenarios`, validated against
/// `root/spec/scenario.schema.json` and parsed strictly.
///
/// # Errors
///
/// Returns every problem found, each naming its file (and line and column where there is one):
/// a missing spec, an invalid schema, a bad scenario, two scenarios with the same description,
/// or no scenario at all.
pub fn load(root: &Path) -> Result<Suite, Vec<LoadError>> {
    let spec_path = root.join("spec/SPEC.md");
    let whole = |file: &Path, message: String| {
        vec![LoadError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
        }]
    };
    let spec = fs::read_to_string(&spec_path)
        .map_err(|e| whole(&spec_path, format!("cannot read the spec: {e}")))?;
    let rules = parse_rules(&spec);
    if rules.is_empty() {
        return Err(whole(
            &spec_path,
            "no rules (`### ID — Title` headings) found".into(),
        ));
    }
    let known: HashSet<String> = rules.iter().map(|r| r.id.clone()).collect();

    let schema_path = root.join("spec/scenario.schema.json");
    let schema: Value = fs::read_to_string(&schema_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| whole(&schema_path, format!("cannot read the schema: {e}")))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| whole(&schema_path, format!("not a valid JSON Schema: {e}")))?;

    let dir = root.join("scenarios");
    let mut files = Vec::new();
    collect_json(&dir, &mut files)
        .map_err(|e| whole(&dir, format!("cannot list scenarios: {e}")))?;
    files.sort();
    if files.is_empty() {
        return Err(whole(&dir, "no scenario files (*.json) found".into()));
    }

    let mut errors = Vec::new();
    let mut scenarios = Vec::new();
    for file in files {
        let id = scenario_id(&dir, &file);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(whole(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        match load_one(&id, &file, &text, &known, &validator) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in &scenarios {
        if let Some(first) = seen.insert(s.description.as_str(), &s.file) {
            let (line, column) = locate(
                &fs::read_to_string(&s.file).unwrap_or_default(),
                &[Seg::Key("description".into())],
            )
            .unwrap_or((0, 0));
            errors.push(LoadError {
                file: s.file.clone(),
                line,
                column,
                message: format!(
                    "the description {:?} is already used by {}",
                    s.description,
                    first.display()
                ),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Suite {
        root: root.to_owned(),
        rules,
        scenarios,
    })
}

/// Parses one scenario and validates it against the schema.
///
/// # Errors
///
/// The first problem, with file, line and column.
pub fn load_one(
    id: &str,
    file: &Path,
    text: &str,
    known_rules: &HashSet<String>,
    validator: &jsonschema::Validator,
) -> Result<Scenario, LoadError> {
    let scenario = scenario::parse(id, file, text, known_rules)?;
    let value: Value = serde_json::from_str(text).expect("parsed above");
    if let Some(err) = validator.iter_errors(&value).next() {
        let pointer = err.instance_path.to_string();
        let segs: Vec<Seg> = pointer
            .split('/')
            .skip(1)
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(s.replace("~1", "/").replace("~0", "~")),
            })
            .collect();
        let (line, column) = locate(text, &segs).unwrap_or((0, 0));
        return Err(LoadError {
            file: file.to_owned(),
            line,
            column,
            message: format!("does not match spec/scenario.schema.json at {pointer}: {err}"),
        });
    }
    Ok(scenario)
}

/// `scenarios/identity/two_objects.json` -> `identity::two_objects`.
fn scenario_id(dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(dir).unwrap_or(file).with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("::")
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_their_scenarios_are_read_from_headings() {
        let text = "# Spec\n## Identity\n### IDN-1 — Two objects exclude\nText.\n\n**Tested by:** `identity::a`, `identity::b`\n### Not a rule\n### TMO-12 – Timeouts\n**Tested by**: `timeout::c`\n";
        let rules = parse_rules(text);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id, "IDN-1");
        assert_eq!(rules[0].title, "Two objects exclude");
        assert_eq!(rules[0].tested_by, ["identity::a", "identity::b"]);
        assert_eq!(rules[1].id, "TMO-12");
        assert_eq!(rules[1].tested_by, ["timeout::c"]);
    }

    #[test]
    fn ids_follow_the_directory() {
        let id = scenario_id(Path::new("/s"), Path::new("/s/identity/two_objects.json"));
        assert_eq!(id, "identity::two_objects");
    }
}
