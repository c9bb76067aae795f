//! The peers' own tidy test: the registry of built-in implementations, their pinned versions, the
//! workers' `hello`, and the expectation files agree with each other and with the suite.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lockspec_conformance::expectations::{self, Expectations};
use lockspec_conformance::implementations::{BUILTINS, Language, Locations};
use lockspec_conformance::suite;
use serde_json::Value;

fn root() -> PathBuf {
    suite::default_root()
}

/// Where the Rust workers are: this package's, and the reference's (of lockspec-conformance),
/// built into the same directory.
fn locations() -> Locations {
    let worker = Path::new(lockspec_conformance::bin_path!("lockspec-worker-std"));
    Locations::new(worker.parent().unwrap(), root())
}

/// Every entry names a scenario and step that exist and records the rule that step checks, and
/// its reason is reviewed and names that rule (`Expectations::problems`).
#[test]
fn every_expectation_file_is_true_to_the_suite() {
    let suite = suite::load(&root()).expect("the suite loads");
    let dir = root().join(expectations::DIR);
    let mut problems = Vec::new();
    let mut files = BTreeSet::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if !BUILTINS.iter().any(|b| b.name == name) {
            problems.push(format!(
                "{}: no built-in implementation {name}",
                path.display()
            ));
            continue;
        }
        match Expectations::load(&root(), &name) {
            Ok(file) => problems.extend(file.problems(&suite)),
            Err(e) => problems.push(e.to_string()),
        }
        files.insert(name);
    }
    for b in BUILTINS {
        if !files.contains(b.name) {
            problems.push(format!("{}/{}.json is missing", expectations::DIR, b.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_is_expected_to_fail_nothing() {
    let file = Expectations::load(&root(), "reference").unwrap();
    assert!(file.failures.is_empty(), "{:?}", file.failures);
}

/// The version pinned for `package` in the root Cargo.toml's `[workspace.dependencies]`.
fn cargo_pin(package: &str) -> Option<String> {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let prefix = format!("{package} = \"=");
    manifest
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.trim_end_matches('"').to_owned())
}

/// The version pinned for `package` in the Python peer `peer`'s requirements file.
fn python_pin(peer: &str, package: &str) -> Option<String> {
    let file = root()
        .join("adapters/python/requirements")
        .join(format!("{peer}.txt"));
    let text = fs::read_to_string(&file).unwrap_or_default();
    let prefix = format!("{package}==");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(str::to_owned)
}

/// The version pinned for `package` in the Node peers' package.json.
fn node_pin(package: &str) -> Option<String> {
    let text = fs::read_to_string(root().join("adapters/node/package.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["dependencies"][package]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn the_registry_names_the_pinned_versions() {
    for b in BUILTINS {
        let pinned = match (b.language, b.package) {
            (Language::Rust, "lockspec-reference" | "std") => continue,
            (Language::Rust, package) => cargo_pin(package),
            (Language::Python, package) => python_pin(b.name, package),
            (Language::Node, package) => node_pin(package),
        };
        assert_eq!(
            pinned.as_deref(),
            Some(b.version),
            "{}: the registry says {} {}, the pin says {pinned:?}",
            b.name,
            b.package,
            b.version
        );
    }
}

/// Starts `program`, sends `hello` and returns the reply.
fn hello(program: &Path) -> Value {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"seq": 0, "op": "hello", "protocol": 1}}"#).unwrap();
    drop(stdin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{} exited with {status}",
        program.display()
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn every_rust_peer_says_who_it_is() {
    let at = locations();
    for b in BUILTINS
        .iter()
        .filter(|b| b.language == Language::Rust && b.exists_here())
    {
        let imp = b.resolve(&at).unwrap_or_else(|e| panic!("{e}"));
        let reply = hello(Path::new(&imp.program));
        assert_eq!(reply["implementation"], b.name, "{reply}");
        assert_eq!(reply["version"], b.version, "{reply}");
        assert_eq!(reply["language"], "rust", "{reply}");
        let capabilities: Vec<&str> = reply["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            capabilities.contains(&"timeout_emulated"),
            b.timeout_emulated,
            "{}: {capabilities:?}",
            b.name
        );
    }
}

#[test]
fn api_uses_hold_unless_declared_absent() {
    use lockspec_conformance::scenario::Requirement;
    for (req, absent) in [
        (Requirement::AcquireHeld, "no_acquire_held"),
        (Requirement::ReleaseUnheld, "no_release_unheld"),
        (Requirement::ReleaseAnyThread, "no_release_any_thread"),
    ] {
        assert!(req.met_by(&[]), "{req:?}");
        assert!(req.met_by(&["callback", "timeout_emulated"]), "{req:?}");
        assert!(!req.met_by(&[absent]), "{req:?}");
        assert!(req.unmet().contains(absent));
    }
    assert!(!Requirement::Callback.met_by(&[]));
    assert!(Requirement::Callback.met_by(&["callback"]));
}

/// The first ```python block of spec/ADAPTERS.md.
fn guide_adapter() -> String {
    let guide = fs::read_to_string(root().join("spec/ADAPTERS.md")).unwrap();
    let start = guide
        .find("```python\n")
        .expect("the guide shows a Python adapter")
        + 10;
    let end = start + guide[start..].find("```").unwrap();
    guide[start..end].to_owned()
}

#[test]
fn the_guide_adapter_passes() {
    use lockspec_conformance::plan::{self, Rerun, Selection};
    use lockspec_conformance::run::{Settings, Verdict};
    use lockspec_conformance::timing::Timing;
    use lockspec_conformance::{Implementation, runner};

    let python = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("python3"))
                .find(|p| p.is_file())
        })
        .expect("the guide's adapter needs python3 on the PATH");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("my_adapter.py");
    fs::write(&script, guide_adapter()).unwrap();
    let imp = Implementation::new("guide", &python, &[script.to_str().unwrap()]);
    let settings = Settings {
        timing: Timing::from_env().unwrap(),
        dir: None,
        reference: Some(Implementation::new(
            "reference",
            lockspec_conformance::sibling_bin(
                lockspec_conformance::bin_path!("lockspec-worker-mutants"),
                "lockspec-worker-reference",
            ),
            &[],
        )),
    };
    let suite = suite::load(&root()).expect("the suite loads");
    let chosen = [
        "identity::two_objects_two_threads",
        "reentrancy::shared_object_two_threads",
        "release::not_held",
        "paths::path_is_a_directory",
        "inheritance::child_after_release",
    ];
    let rerun = Rerun::default();
    let mut tests = plan::plan(&suite, &Selection::all(vec![imp]), &BTreeMap::new(), &rerun);
    tests.retain(|t| chosen.contains(&t.scenario.id.as_str()));
    assert_eq!(tests.len(), chosen.len(), "{chosen:?}");
    let results = runner::run(&tests, &settings, tests.len(), |_| {});
    for (t, r) in tests.iter().zip(&results) {
        assert_eq!(r.verdict, Verdict::Pass, "{}", t.scenario.id);
    }
}
