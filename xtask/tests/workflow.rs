//! Checks `.github/workflows/ci.yml`, which cannot run here: that it is valid YAML, that every job
//! is well formed, and that it runs what CI promises (docs/ci.md) on Linux, Windows and macOS.

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

const OSES: [&str; 3] = ["ubuntu-latest", "windows-latest", "macos-latest"];

/// The workspace root: at run time from cargo or nextest (which remap it for archives), else
/// where this was built.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn workflow() -> Yaml {
    let text = read(".github/workflows/ci.yml");
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!(".github/workflows/ci.yml is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "ci.yml holds exactly one YAML document");
    docs.remove(0)
}

fn job<'a>(workflow: &'a Yaml, name: &str) -> &'a Yaml {
    let job = &workflow["jobs"][name];
    assert!(job.is_hash(), "ci.yml has no job `{name}`");
    job
}

/// The `run` scripts of a job's steps, in order.
fn runs(job: &Yaml) -> Vec<&str> {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect()
}

/// The `uses` actions of a job's steps, in order.
fn uses(job: &Yaml) -> Vec<&str> {
    steps(job)
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .collect()
}

fn steps(job: &Yaml) -> &[Yaml] {
    job["steps"].as_vec().map_or(&[], Vec::as_slice)
}

/// The strings of `job.strategy.matrix.KEY`.
fn matrix<'a>(job: &'a Yaml, key: &str) -> Vec<&'a str> {
    job["strategy"]["matrix"][key]
        .as_vec()
        .map(|v| v.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

fn has_run(job: &Yaml, command: &str) -> bool {
    runs(job).iter().any(|r| r.contains(command))
}

#[test]
fn the_workflow_has_a_name_triggers_and_jobs() {
    let w = workflow();
    assert_eq!(w["name"].as_str(), Some("CI"));
    // YAML 1.2 reads `on` as a string key, as GitHub does.
    let on = &w["on"];
    assert!(on["pull_request"].is_null() || on["pull_request"].is_hash());
    assert!(on["push"].is_hash(), "CI runs on pushes");
    let jobs = w["jobs"].as_hash().expect("jobs is a mapping");
    let names: Vec<&str> = jobs.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(
        names,
        ["test", "build-tests", "stress", "windows-under-wine"],
        "the jobs, in order"
    );
}

#[test]
fn every_job_is_well_formed() {
    let w = workflow();
    let jobs = w["jobs"].as_hash().expect("jobs is a mapping");
    for (name, job) in jobs {
        let name = name.as_str().expect("job names are strings");
        assert!(
            job["runs-on"].as_str().is_some(),
            "job {name} says where it runs"
        );
        assert!(
            job["timeout-minutes"]
                .as_i64()
                .is_some_and(|t| t > 0 && t <= 90),
            "job {name} has a timeout"
        );
        let steps = steps(job);
        assert!(!steps.is_empty(), "job {name} has steps");
        assert_eq!(
            uses(job).first(),
            Some(&"actions/checkout@v4"),
            "job {name} checks out the repository first"
        );
        for (i, step) in steps.iter().enumerate() {
            let (run, action) = (step["run"].as_str(), step["uses"].as_str());
            assert!(
                run.is_some() != action.is_some(),
                "step {} of job {name} has exactly one of `run` and `uses`",
                i + 1
            );
            if let Some(action) = action {
                assert!(
                    action.contains('@'),
                    "step {} of job {name} pins the version of {action}",
                    i + 1
                );
            }
        }
        if let Some(needs) = job["needs"].as_str() {
            assert!(
                jobs.contains_key(&Yaml::String(needs.to_owned())),
                "job {name} needs {needs}"
            );
        }
    }
}

#[test]
fn the_test_job_runs_fmt_clippy_tests_and_conformance_on_three_systems() {
    let w = workflow();
    let test = job(&w, "test");
    assert_eq!(matrix(test, "os"), OSES);
    assert_eq!(test["runs-on"].as_str(), Some("${{ matrix.os }}"));
    assert_eq!(test["strategy"]["fail-fast"].as_bool(), Some(false));
    let runs = runs(test);
    let order = [
        "cargo fmt --all -- --check",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
        "cargo xtask test --profile ci",
        "cargo xtask peers",
        "cargo xtask conformance --impl all",
        "GITHUB_STEP_SUMMARY",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|command| {
            runs.iter()
                .position(|r| r.contains(command))
                .unwrap_or_else(|| panic!("the test job does not run `{command}`"))
        })
        .collect();
    assert!(
        positions.is_sorted(),
        "the test job runs {order:?} in this order"
    );
    assert!(has_run(test, "target/lockspec/report.md"));
    let uploads: Vec<&Yaml> = steps(test)
        .iter()
        .filter(|s| s["uses"].as_str() == Some("actions/upload-artifact@v4"))
        .collect();
    let paths: String = uploads
        .iter()
        .filter_map(|s| s["with"]["path"].as_str())
        .collect();
    for file in [
        "target/lockspec/report.html",
        "target/lockspec/report.json",
        "target/nextest/ci/junit.xml",
    ] {
        assert!(paths.contains(file), "the test job uploads {file}");
    }
}

#[test]
fn the_stress_tests_run_in_shards_from_an_archive() {
    let w = workflow();
    let build = job(&w, "build-tests");
    assert_eq!(matrix(build, "os"), OSES);
    assert!(has_run(build, "cargo nextest archive --workspace"));

    let stress = job(&w, "stress");
    assert_eq!(stress["needs"].as_str(), Some("build-tests"));
    assert_eq!(matrix(stress, "os"), OSES);
    let shards: Vec<i64> = stress["strategy"]["matrix"]["shard"]
        .as_vec()
        .expect("the stress job has a shard matrix")
        .iter()
        .filter_map(Yaml::as_i64)
        .collect();
    let count = i64::try_from(shards.len()).expect("a few shards");
    assert_eq!(shards, (1..=count).collect::<Vec<_>>(), "shards are 1..=N");
    let partition = format!("--partition count:${{{{ matrix.shard }}}}/{count}");
    assert!(
        has_run(stress, &partition),
        "the stress job runs `{partition}`"
    );
    assert!(has_run(stress, "--archive-file"));
    assert!(has_run(stress, "--profile ci-stress"));
}

#[test]
fn the_windows_lane_runs_under_wine_on_linux() {
    let w = workflow();
    let lane = job(&w, "windows-under-wine");
    assert_eq!(lane["runs-on"].as_str(), Some("ubuntu-latest"));
    assert!(has_run(lane, "x86_64-pc-windows-gnu"));
    assert!(has_run(lane, "gcc-mingw-w64-x86-64 wine64"));
    assert!(has_run(lane, "cargo xtask conformance --target windows"));
}

#[test]
fn the_nextest_profiles_that_ci_names_exist() {
    let config = read(".config/nextest.toml");
    for section in ["[profile.ci]", "[profile.ci.junit]", "[profile.ci-stress]"] {
        assert!(
            config.lines().any(|l| l.trim() == section),
            ".config/nextest.toml has no {section}"
        );
    }
}
