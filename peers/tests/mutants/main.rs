//! The harness's self-test: deliberately broken locks must each fail a step that checks the rule
//! they break, and every MUST and MUST NOT of the spec must be broken by some mutant. A suite that
//! passes a broken lock proves nothing.
//!
//! One test per mutant of `lockspec_peers::mutants::CATALOGUE` (`mutant::NAME`): every scenario
//! it names must fail it at a step of the rule it breaks. `model::unbroken_passes_every_scenario`
//! checks that the model lock the newer mutants are built on passes the whole suite without its
//! flaw, so that each of them differs from a conforming lock by one bug. The `catalogue::` tests
//! check the catalogue against `spec/SPEC.md` and the scenarios, and that `docs/mutants.md` is the
//! table rendered from it (`LOCKSPEC_BLESS=1` rewrites it).

mod spec;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use libtest_mimic::{Arguments, Failed, Trial};
use lockspec_conformance::run::{self, Settings, TrialReport, Verdict};
use lockspec_conformance::scenario::Scenario;
use lockspec_conformance::timing::Timing;
use lockspec_conformance::{Implementation, Suite, suite};
use lockspec_peers::mutants::{CATALOGUE, Mutant};

/// The environment variable that makes `catalogue::table_is_up_to_date` rewrite the table.
const BLESS: &str = "LOCKSPEC_BLESS";

/// Where the table lives, from the workspace root.
const TABLE: &str = "docs/mutants.md";

/// How many scenarios one test plays at once.
const JOBS: usize = 8;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("catalogue::clauses_quote_their_rules", || {
            spec::clauses_quote_their_rules(&load()?)
        }),
        Trial::test("catalogue::every_must_is_broken_by_a_mutant", || {
            spec::every_must_is_broken(&load()?)
        }),
        Trial::test("catalogue::scenarios_check_the_rules_they_reject", || {
            scenarios_check_the_rules(&load()?)
        }),
        Trial::test("catalogue::table_is_up_to_date", || {
            table_is_up_to_date(&load()?)
        }),
        Trial::test("model::unbroken_passes_every_scenario", || {
            unbroken_passes(&load()?)
        }),
    ];
    trials.extend(CATALOGUE.iter().map(|mutant| {
        Trial::test(format!("mutant::{}", mutant.name), move || {
            rejected(&load()?, mutant)
        })
    }));
    libtest_mimic::run(&args, trials).exit_code()
}

fn load() -> Result<Suite, Failed> {
    suite::load(&suite::default_root()).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("the suite does not load:\n{}", list.join("\n")).into()
    })
}

fn settings() -> Result<Settings, Failed> {
    Ok(Settings {
        timing: Timing::from_env()?,
        dir: None,
        reference: Some(Implementation::new(
            "reference",
            lockspec_conformance::sibling_bin(
                lockspec_conformance::bin_path!("lockspec-worker-mutants"),
                "lockspec-worker-reference",
            ),
            &[],
        )),
    })
}

/// The worker serving `args` (`--mutant NAME` or `--unbroken`) as the implementation `name`.
fn worker(name: &str, args: &[&str]) -> Implementation {
    Implementation::new(
        name,
        lockspec_conformance::bin_path!("lockspec-worker-mutants"),
        args,
    )
}

/// Plays `scenarios` against `imp`, [`JOBS`] at a time, and returns their reports in order.
fn play(imp: &Implementation, scenarios: &[&Scenario]) -> Result<Vec<TrialReport>, Failed> {
    let settings = settings()?;
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..JOBS.min(scenarios.len()) {
            scope.spawn(|| {
                while let Some(s) = scenarios.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let report = run::run(imp, s, &settings);
                    let i = scenarios.iter().position(|t| t.id == s.id).unwrap_or(0);
                    reports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, report));
                }
            });
        }
    });
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

fn scenario<'a>(suite: &'a Suite, id: &str) -> Result<&'a Scenario, Failed> {
    suite
        .scenarios
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| format!("no scenario {id}").into())
}

/// What a person needs to see of a trial that went the wrong way.
fn evidence(id: &str, report: &TrialReport) -> String {
    let mut out = format!("{id}: {:?}\n", report.verdict);
    for line in &report.timeline {
        let _ = writeln!(out, "    {line}");
    }
    for (name, tail) in &report.stderr {
        if !tail.trim().is_empty() {
            let _ = writeln!(out, "  stderr of {name}:\n{tail}");
        }
    }
    out
}

/// Every scenario the mutant names fails it at a step of the rule it names them for.
fn rejected(suite: &Suite, mutant: &Mutant) -> Result<(), Failed> {
    let mut plays: Vec<(&str, &Scenario)> = Vec::new();
    for b in mutant.breaks {
        for id in b.caught_by {
            plays.push((b.rule, scenario(suite, id)?));
        }
    }
    let imp = worker(
        &format!("mutant-{}", mutant.name),
        &["--mutant", mutant.name],
    );
    let scenarios: Vec<&Scenario> = plays.iter().map(|(_, s)| *s).collect();
    let reports = play(&imp, &scenarios)?;
    let mut problems = String::new();
    for ((rule, s), report) in plays.iter().zip(&reports) {
        let right = matches!(&report.verdict, Verdict::Fail(f) if f.rule.as_deref() == Some(rule));
        if !right {
            let _ = writeln!(
                problems,
                "mutant {} ({}) was not failed at a step of {rule} by {}:\n{}",
                mutant.name,
                mutant.bug,
                s.id,
                evidence(&s.id, report)
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into())
    }
}

/// The model lock without a flaw passes every scenario (or is skipped where the machine cannot
/// play one), so that each mutant built on it breaks the spec by its flaw alone.
fn unbroken_passes(suite: &Suite) -> Result<(), Failed> {
    let imp = worker("model-unbroken", &["--unbroken"]);
    let scenarios: Vec<&Scenario> = suite.scenarios.iter().collect();
    let reports = play(&imp, &scenarios)?;
    let wrong: Vec<String> = scenarios
        .iter()
        .zip(&reports)
        .filter(|(_, r)| !matches!(r.verdict, Verdict::Pass | Verdict::Skip(_)))
        .map(|(s, r)| evidence(&s.id, r))
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("the unbroken model failed:\n{}", wrong.join("\n")).into())
    }
}

/// Every scenario a mutant names exists, cites the rule and has a step that checks it.
fn scenarios_check_the_rules(suite: &Suite) -> Result<(), Failed> {
    let mut problems = Vec::new();
    for mutant in CATALOGUE {
        if mutant.breaks.is_empty() {
            problems.push(format!("{} breaks nothing", mutant.name));
        }
        for b in mutant.breaks {
            if b.caught_by.is_empty() {
                problems.push(format!(
                    "{}: no scenario rejects it for {}",
                    mutant.name, b.rule
                ));
            }
            for id in b.caught_by {
                match suite.scenarios.iter().find(|s| s.id == *id) {
                    None => problems.push(format!("{}: no scenario {id}", mutant.name)),
                    Some(s) if s.steps_checking(b.rule).next().is_none() => problems.push(format!(
                        "{}: no step of {id} checks {}",
                        mutant.name, b.rule
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// `docs/mutants.md` is the table rendered from the catalogue and the spec.
fn table_is_up_to_date(suite: &Suite) -> Result<(), Failed> {
    let path = suite.root.join(TABLE);
    let rendered = render(suite)?;
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        std::fs::write(&path, &rendered).map_err(|e| format!("cannot write {TABLE}: {e}"))?;
        return Ok(());
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == rendered {
        Ok(())
    } else {
        Err(format!(
            "{TABLE} is not the table of the catalogue; rewrite it: {BLESS}=1 cargo nextest run -p \
             lockspec-peers --test mutants -E 'test(=catalogue::table_is_up_to_date)'"
        )
        .into())
    }
}

/// The table: one row per sentence a mutant breaks, in the order of the spec.
fn render(suite: &Suite) -> Result<String, Failed> {
    let rules = spec::rules(&suite.root)?;
    let mut rows: Vec<(usize, usize, String)> = Vec::new();
    for (order, mutant) in CATALOGUE.iter().enumerate() {
        for b in mutant.breaks {
            let (index, rule) = rules
                .iter()
                .enumerate()
                .find(|(_, r)| r.id == b.rule)
                .ok_or_else(|| format!("{}: no rule {}", mutant.name, b.rule))?;
            let at = rule.text.find(b.clause).ok_or_else(|| {
                format!("{}: {} does not say {:?}", mutant.name, b.rule, b.clause)
            })?;
            let sentence = spec::sentence_at(&rule.text, at, b.clause);
            let others: Vec<&str> = mutant
                .breaks
                .iter()
                .map(|o| o.rule)
                .filter(|r| *r != b.rule)
                .collect();
            let also = if others.is_empty() {
                String::new()
            } else {
                format!(" (also breaks {})", others.join(", "))
            };
            let scenarios: Vec<String> = b.caught_by.iter().map(|s| format!("`{s}`")).collect();
            rows.push((
                index,
                at * CATALOGUE.len() + order,
                format!(
                    "| {} | {} | `{}` | {}{also} | {} |",
                    b.rule,
                    cell(&sentence),
                    mutant.name,
                    cell(mutant.bug),
                    scenarios.join(", ")
                ),
            ));
        }
    }
    rows.sort_by_key(|(rule, at, _)| (*rule, *at));
    let musts: usize = rules.iter().map(|r| spec::musts(&r.text).len()).sum();
    let scenarios: BTreeSet<&str> = CATALOGUE
        .iter()
        .flat_map(|m| m.breaks.iter().flat_map(|b| b.caught_by.iter().copied()))
        .collect();
    let model = CATALOGUE.iter().filter(|m| m.built_on_the_model()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Mutants: every MUST of the spec, broken on purpose\n"
    );
    let _ = writeln!(
        out,
        "<!-- Generated by peers/tests/mutants/main.rs from peers/src/mutants/catalogue.rs and \
         spec/SPEC.md; do not edit. Regenerate: {BLESS}=1 cargo nextest run -p lockspec-peers \
         --test mutants -E 'test(=catalogue::table_is_up_to_date)' -->\n"
    );
    let _ = writeln!(
        out,
        "Each row is a sentence of [SPEC.md](../spec/SPEC.md) with the words that one of its MUSTs \
         or MUST NOTs governs in bold, a deliberately broken lock (a *mutant*: \
         `lockspec-worker-mutants --mutant NAME`) whose bug breaks them, and the scenarios that \
         must each fail that mutant at a step of that rule. `cargo nextest run -p lockspec-peers \
         --test mutants` plays them, and checks that every MUST and MUST NOT of the rules is \
         broken by some mutant. Most mutants are the model lock of \
         `peers/src/mutants/unix/model.rs`, which passes every scenario, with one flaw switched on: \
         they break the spec by that flaw alone.\n"
    );
    let _ = writeln!(
        out,
        "REE-2, REL-3 and REL-4 single out a case of IDN-1 and REL-2 (the holding thread, a \
         second release, a holder in the same process): their mutants break the general sentence \
         in that case too. A child that keeps its parent's lock after a release keeps it after \
         the parent's death as well, so INH-1's mutant also breaks INH-2.\n"
    );
    let _ = writeln!(
        out,
        "{musts} MUSTs and MUST NOTs in {} rules; {} mutants, {model} of them the model lock with \
         one flaw; {} scenarios reject them.\n",
        rules
            .iter()
            .filter(|r| !spec::musts(&r.text).is_empty())
            .count(),
        CATALOGUE.len(),
        scenarios.len()
    );
    let _ = writeln!(out, "| Rule | Sentence | Mutant | Its bug | Rejected by |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for (_, _, row) in rows {
        let _ = writeln!(out, "{row}");
    }
    Ok(out)
}

/// Text for a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
