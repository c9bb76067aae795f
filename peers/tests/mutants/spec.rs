//! The MUSTs of `spec/SPEC.md` as the mutants' catalogue quotes them: each rule's text (its
//! statement, before its rationale), the place of every MUST and MUST NOT in it, and the checks
//! that the catalogue quotes the rules faithfully and breaks every one of them.

use std::path::Path;

use libtest_mimic::Failed;
use lockspec_conformance::Suite;
use lockspec_peers::mutants::CATALOGUE;

/// A rule of the spec and its statement, with whitespace collapsed.
pub struct Rule {
    pub id: String,
    pub text: String,
}

/// The rules of `root/spec/SPEC.md`, in order.
pub fn rules(root: &Path) -> Result<Vec<Rule>, Failed> {
    let spec = std::fs::read_to_string(root.join("spec/SPEC.md"))
        .map_err(|e| format!("cannot read spec/SPEC.md: {e}"))?;
    Ok(parse(&spec).0)
}

/// The rules of the spec's text, and the lines outside any rule's statement that say MUST,
/// outside the section that defines the word.
fn parse(spec: &str) -> (Vec<Rule>, Vec<String>) {
    let mut rules: Vec<Rule> = Vec::new();
    let mut stray = Vec::new();
    let mut section = "";
    let mut in_statement = false;
    for line in spec.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let id = heading.split([' ', '—']).next().unwrap_or_default();
            in_statement = id.contains('-');
            if in_statement {
                rules.push(Rule {
                    id: id.to_owned(),
                    text: String::new(),
                });
            }
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading;
            in_statement = false;
            continue;
        }
        if line.starts_with("**Rationale:**") {
            in_statement = false;
        }
        match rules.last_mut() {
            Some(rule) if in_statement => {
                for word in line.split_whitespace() {
                    if !rule.text.is_empty() {
                        rule.text.push(' ');
                    }
                    rule.text.push_str(word);
                }
            }
            _ if section != "Conventions" && !musts(line).is_empty() => {
                stray.push(line.to_owned());
            }
            _ => {}
        }
    }
    (rules, stray)
}

/// Where each MUST (and MUST NOT) of `text` begins.
pub fn musts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    text.match_indices("MUST")
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = i == 0 || !word(bytes[i - 1]);
            let after = bytes.get(i + 4).is_none_or(|&c| !word(c));
            before && after
        })
        .collect()
}

/// The sentence of `text` around the `clause` that starts at `at`, with the clause in bold.
pub fn sentence_at(text: &str, at: usize, clause: &str) -> String {
    // A sentence ends at a full stop followed by a space and a capital letter.
    let ends: Vec<usize> = text
        .match_indices(". ")
        .map(|(i, _)| i + 1)
        .filter(|&i| {
            text[i..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_uppercase())
        })
        .collect();
    let start = ends.iter().copied().filter(|&e| e <= at).max().unwrap_or(0);
    let end = ends
        .iter()
        .copied()
        .find(|&e| e >= at + clause.len())
        .unwrap_or(text.len());
    let end_of_clause = at + clause.len();
    format!(
        "{}**{}**{}",
        text[start..at].trim_start(),
        clause,
        &text[end_of_clause..end]
    )
}

/// Every clause of the catalogue occurs once in its rule's statement and holds one MUST.
pub fn clauses_quote_their_rules(suite: &Suite) -> Result<(), Failed> {
    let rules = rules(&suite.root)?;
    let mut problems = Vec::new();
    for mutant in CATALOGUE {
        for b in mutant.breaks {
            let Some(rule) = rules.iter().find(|r| r.id == b.rule) else {
                problems.push(format!("{}: no rule {}", mutant.name, b.rule));
                continue;
            };
            let found = rule.text.matches(b.clause).count();
            if found != 1 {
                problems.push(format!(
                    "{}: {:?} occurs {found} times in {}, not once: {}",
                    mutant.name, b.clause, b.rule, rule.text
                ));
            }
            let n = musts(b.clause).len();
            if n != 1 {
                problems.push(format!(
                    "{}: {:?} holds {n} MUSTs, not one",
                    mutant.name, b.clause
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// Every MUST and MUST NOT of every rule is broken by some mutant, and no MUST is stated outside
/// the rules.
pub fn every_must_is_broken(suite: &Suite) -> Result<(), Failed> {
    let spec = std::fs::read_to_string(suite.root.join("spec/SPEC.md"))
        .map_err(|e| format!("cannot read spec/SPEC.md: {e}"))?;
    let (rules, stray) = parse(&spec);
    let mut problems: Vec<String> = stray
        .iter()
        .map(|line| format!("a MUST outside the statement of a rule: {line}"))
        .collect();
    for rule in &rules {
        for must in musts(&rule.text) {
            let broken = CATALOGUE.iter().any(|m| {
                m.breaks.iter().any(|b| {
                    b.rule == rule.id
                        && rule
                            .text
                            .match_indices(b.clause)
                            .any(|(at, _)| (at..at + b.clause.len()).contains(&must))
                })
            });
            if !broken {
                let end = (must + 60).min(rule.text.len());
                let end = (end..=rule.text.len())
                    .find(|&i| rule.text.is_char_boundary(i))
                    .unwrap_or(rule.text.len());
                problems.push(format!(
                    "{}: no mutant breaks \"{}...\"",
                    rule.id,
                    &rule.text[must..end]
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
