//! The HTML report: one self-contained page (inline CSS, no scripts, no external assets) with the
//! matrices, colour-coded, and the evidence of every failing cell in `<details>`.

use std::fmt::Write as _;

use super::{Counts, Margins, Report, TrialResult, escape_html as e};
use crate::judge::{self, Outcome};

const STYLE: &str = r#"
:root { --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --line: #d1d9e0; --code: #f6f8fa;
  --pass: #d2f4d8; --pass-fg: #0f5323; --fail: #ffd1d1; --fail-fg: #8a1010;
  --error: #ecd9fb; --error-fg: #5b1f8a; --xfail: #ffe6bf; --xfail-fg: #7a4300;
  --na: #eceff2; --na-fg: #59636e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --line: #3d444d; --code: #151b23;
    --pass: #12361d; --pass-fg: #7ee2a0; --fail: #4a1518; --fail-fg: #ffa8a8;
    --error: #33204a; --error-fg: #d7b4ff; --xfail: #45300f; --xfail-fg: #ffcc80;
    --na: #21262d; --na-fg: #9198a1; }
}
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 1.5em 2em 4em; max-width: 1400px; }
h1 { font-size: 1.6em; margin: 0 0 .3em; }
h2 { font-size: 1.25em; margin: 1.8em 0 .5em; padding-bottom: .2em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 1em 0 .3em; }
code, pre { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
code { background: var(--code); padding: .1em .3em; border-radius: 4px; }
pre { background: var(--code); padding: .6em .8em; border-radius: 6px; overflow-x: auto;
  white-space: pre-wrap; word-break: break-all; margin: .3em 0; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid var(--line); padding: .25em .55em; text-align: left; vertical-align: top; }
thead th { background: var(--code); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.summary { font-size: 1.1em; font-weight: 600; padding: .5em .8em; border-radius: 6px; display: inline-block; }
.summary.ok { background: var(--pass); color: var(--pass-fg); }
.summary.bad { background: var(--fail); color: var(--fail-fg); }
td.notes { max-width: 36em; font-size: .92em; }
table.kv th { background: var(--code); font-weight: 600; white-space: nowrap; }
table.matrix td.c { text-align: center; white-space: nowrap; font-variant-numeric: tabular-nums; min-width: 3.6em; }
table.matrix th.rule { white-space: nowrap; }
table.matrix td.title { max-width: 34em; }
table.matrix.rot thead th.impl { writing-mode: vertical-rl; transform: rotate(180deg);
  white-space: nowrap; vertical-align: bottom; text-align: left; padding: .5em .2em; }
td.c a { color: inherit; font-weight: 600; }
.pass { background: var(--pass); color: var(--pass-fg); }
.fail { background: var(--fail); color: var(--fail-fg); }
.error { background: var(--error); color: var(--error-fg); }
.xfail { background: var(--xfail); color: var(--xfail-fg); }
.na, .unreached { background: var(--na); color: var(--na-fg); }
.legend span { display: inline-block; padding: .05em .5em; border-radius: 4px; margin-right: .4em; }
details.cell { border: 1px solid var(--line); border-radius: 6px; margin: .5em 0; padding: 0 .8em; }
details.cell > summary { cursor: pointer; padding: .5em 0; font-weight: 600; }
details.cell[open] > summary { border-bottom: 1px solid var(--line); margin-bottom: .5em; }
.tag { display: inline-block; padding: 0 .45em; border-radius: 4px; font-size: .85em; font-weight: 600; }
.trial { margin: .6em 0 1.2em; }
.trial dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: .4em 0; }
.trial dt { color: var(--muted); }
.trial dd { margin: 0; }
details.more > summary { cursor: pointer; color: var(--muted); }
footer { margin-top: 3em; color: var(--muted); font-size: .9em; }
"#;

/// The HTML report: one page, every text HTML-escaped.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let env = &report.environment;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>lockspec report, {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&env.date)
    );
    let _ = writeln!(out, "<h1>lockspec conformance report</h1>");
    let (class, text) = if judge::failed(report) {
        ("bad", "Not as expected")
    } else {
        ("ok", "Every result as expected")
    };
    let _ = writeln!(
        out,
        "<p class=\"summary {class}\">{text}: {}</p>",
        e(&report.totals.to_string())
    );

    let _ = writeln!(
        out,
        "<h2 id=\"environment\">Environment</h2>\n<table class=\"kv\">"
    );
    let total = report.totals.total() + report.interop.as_ref().map_or(0, |i| i.trials.len());
    for (k, v) in [
        ("date (UTC)", e(&env.date)),
        ("lockspec", e(&report.lockspec_version)),
        ("system", e(&env.system())),
        ("lock files on", e(&env.lock_files())),
        ("timing scale", e(&env.timing_scale.to_string())),
        (
            "margins",
            e(&env
                .margins
                .as_ref()
                .map_or("not calibrated".into(), Margins::line)),
        ),
        (
            "run",
            e(&format!(
                "{total} tests in {:.1} s, {} at a time",
                env.wall_time_s, env.jobs
            )),
        ),
        ("command", format!("<code>{}</code>", e(&env.command))),
    ] {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    let _ = writeln!(out, "</table>");

    implementations(&mut out, report);
    matrix(&mut out, report);
    if report.interop.is_some() {
        interop(&mut out, report);
    }
    evidence(&mut out, report);
    all_tests(&mut out, report);

    let _ = writeln!(
        out,
        "<footer>Written by lockspec {} on {}. The same data is in <code>report.json</code> \
         (format {}).</footer>\n</body>\n</html>",
        e(&report.lockspec_version),
        e(&env.date),
        report.format
    );
    out
}

fn implementations(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "<h2 id=\"implementations\">Implementations</h2>\n<table>\n<thead><tr><th>implementation</th>\
         <th>library</th><th>version</th><th>language</th><th>capabilities</th><th>pass</th>\
         <th>fail</th><th>error</th><th>expected fail</th><th>unexpected</th><th>n/a</th><th>notes</th></tr></thead>\n<tbody>"
    );
    for imp in &report.implementations {
        let c = &imp.totals;
        let unknown = "<span class=\"muted\">?</span>".to_owned();
        let opt = |v: &Option<String>| v.as_deref().map_or(unknown.clone(), e);
        let _ = writeln!(
            out,
            "<tr><th title=\"{}\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"notes\">{}</td></tr>",
            e(&imp.command),
            e(&imp.name),
            opt(&imp.library),
            opt(&imp.version),
            opt(&imp.language),
            e(&imp.capabilities.join(", ")),
            c.pass,
            c.fail,
            c.error,
            c.expected_fail,
            c.unexpected,
            c.not_applicable,
            match (&imp.unavailable, &imp.notes) {
                (Some(u), _) => format!("<strong>not run here</strong>: {}", e(u)),
                (None, Some(n)) => e(n),
                (None, None) => String::new(),
            }
        );
    }
    let _ = writeln!(out, "</tbody>\n</table>");
    let _ = writeln!(
        out,
        "<p>How prompt each was, on its workers' clocks (median / largest, and how many): a \
         waiter's return after the lock was freed, a timed-out acquire's return after its \
         timeout, and a call that had to complete at once.</p>\n<table>\n<thead><tr>\
         <th>implementation</th><th>hand-off</th><th>timeout overshoot</th><th>immediate call</th>\
         </tr></thead>\n<tbody>"
    );
    for imp in &report.implementations {
        let p = &imp.promptness;
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            e(&imp.name),
            e(&p.handoff.cell()),
            e(&p.overshoot.cell()),
            e(&p.call.cell())
        );
    }
    let _ = writeln!(out, "</tbody>\n</table>");
}

fn legend(out: &mut String, report: &Report) {
    if report.any_timeout_emulated() {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", e(super::DAGGER));
    }
    let _ = writeln!(
        out,
        "<p class=\"legend\"><span class=\"pass\">passed</span><span class=\"fail\">failed, or an \
         expectation no longer holds</span><span class=\"error\">the worker broke</span>\
         <span class=\"xfail\">fails, as its expectation file records</span><span class=\"na\">not applicable</span>\
         <span class=\"unreached\">not reached: the scenario failed at a step of another rule first</span>\
         <span class=\"muted\">n/m: scenarios passed of those judged; a failure counts under the \
         rule of the step that failed; a linked cell has evidence below</span></p>"
    );
}

/// One matrix cell: colour, `passed/judged`, the counts as a tooltip, a link to the evidence.
fn cell(counts: &Counts, anchor: Option<&str>) -> String {
    let Some(worst) = counts.worst() else {
        return "<td class=\"c\"></td>".to_owned();
    };
    let text = match worst {
        Outcome::NotApplicable => "n/a".to_owned(),
        Outcome::NotReached => "not reached".to_owned(),
        _ => format!("{}/{}", counts.pass, counts.applicable()),
    };
    let body = match anchor {
        Some(a) => format!("<a href=\"#{a}\">{text}</a>"),
        None => text,
    };
    format!(
        "<td class=\"c {}\" title=\"{}\">{body}</td>",
        css(worst),
        e(&counts.to_string())
    )
}

/// Whether a cell's trials include something to show evidence for.
fn has_evidence(c: &Counts) -> bool {
    c.fail + c.error + c.unexpected + c.expected_fail > 0
}

/// Opens a matrix table: `corner` (the head cells before the implementations), then one column
/// head per implementation, written vertically when there are many.
fn matrix_head(out: &mut String, report: &Report, corner: &str) {
    let rot = if report.implementations.len() > 4 {
        " rot"
    } else {
        ""
    };
    let _ = write!(out, "<table class=\"matrix{rot}\">\n<thead><tr>{corner}");
    for imp in &report.implementations {
        let _ = write!(out, "<th class=\"impl\">{}</th>", e(&imp.column()));
    }
    let _ = writeln!(out, "</tr></thead>\n<tbody>");
}

fn matrix(out: &mut String, report: &Report) {
    let _ = writeln!(out, "<h2 id=\"matrix\">Rules × implementations</h2>");
    legend(out, report);
    matrix_head(out, report, "<th>rule</th><th>title</th>");
    for (r, row) in report.matrix.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><th class=\"rule\">{}</th><td class=\"title\">{}</td>",
            e(&row.rule),
            e(report.rule_title(&row.rule))
        );
        for (i, c) in row.cells.iter().enumerate() {
            let anchor = has_evidence(&c.counts).then(|| format!("c{r}-{i}"));
            out.push_str(&cell(&c.counts, anchor.as_deref()));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</tbody>\n</table>");
}

fn interop(out: &mut String, report: &Report) {
    let Some(interop) = &report.interop else {
        return;
    };
    let _ = writeln!(
        out,
        "<h2 id=\"interop\">Interoperability</h2>\n<p>Two implementations on one lock file \
         (IOP-1). Row: the implementation that holds the lock (the scenario's first process); \
         column: the one that must wait for it. A red cell: the two do not exclude each other on \
         one file, so they must not be mixed; that is a finding about the pair, not a failure of \
         either. Scenarios: {}.</p>",
        interop
            .scenarios
            .iter()
            .map(|s| format!("<code>{}</code>", e(s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    legend(out, report);
    matrix_head(out, report, "<th>holds ↓ · waits →</th>");
    let n = report.implementations.len();
    for (r, first) in report.implementations.iter().enumerate() {
        let _ = write!(out, "<tr><th class=\"rule\">{}</th>", e(&first.name));
        for (i, _) in report.implementations.iter().enumerate() {
            let counts = interop
                .matrix
                .get(r * n + i)
                .map(|c| c.counts)
                .unwrap_or_default();
            let anchor = has_evidence(&counts).then(|| format!("i{r}-{i}"));
            out.push_str(&cell(&counts, anchor.as_deref()));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</tbody>\n</table>");
}

fn evidence(out: &mut String, report: &Report) {
    let mut sections = Vec::new();
    for (r, row) in report.matrix.iter().enumerate() {
        for (i, c) in row.cells.iter().enumerate() {
            if !has_evidence(&c.counts) {
                continue;
            }
            let trials: Vec<&TrialResult> = report
                .trials_of(&row.rule, &c.implementation)
                .filter(|t| {
                    !matches!(
                        t.outcome_for(&row.rule),
                        Outcome::Pass | Outcome::NotApplicable | Outcome::NotReached
                    )
                })
                .collect();
            let heading = format!(
                "{} · {} {}",
                c.implementation,
                row.rule,
                report.rule_title(&row.rule)
            );
            sections.push((format!("c{r}-{i}"), c.counts, heading, trials));
        }
    }
    if let Some(interop) = &report.interop {
        let n = report.implementations.len();
        for (k, pair) in interop.matrix.iter().enumerate() {
            if !has_evidence(&pair.counts) {
                continue;
            }
            let trials: Vec<&TrialResult> = interop
                .trials
                .iter()
                .filter(|t| {
                    t.implementation == pair.first
                        && t.second.as_deref() == Some(pair.second.as_str())
                        && t.is_notable()
                })
                .collect();
            let heading = format!("{} holds, {} waits · IOP-1", pair.first, pair.second);
            sections.push((
                format!("i{}-{}", k / n.max(1), k % n.max(1)),
                pair.counts,
                heading,
                trials,
            ));
        }
    }
    if sections.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2 id=\"evidence\">Evidence</h2>\n<p class=\"muted\">One entry per failing cell; a \
         failure appears under the rule of the step that failed.</p>"
    );
    for (id, counts, heading, trials) in sections {
        let worst = counts.worst().expect("a cell with evidence has trials");
        let _ = writeln!(
            out,
            "<details class=\"cell\" id=\"{id}\"><summary><span class=\"tag {}\">{}</span> {} \
             <span class=\"muted\">({})</span></summary>",
            css(worst),
            e(word(worst)),
            e(&heading),
            e(&counts.to_string())
        );
        for t in trials {
            trial(out, report, t);
        }
        let _ = writeln!(out, "</details>");
    }
}

/// The CSS class of an outcome, which colours it.
fn css(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail | Outcome::Unexpected => "fail",
        Outcome::Error => "error",
        Outcome::NotApplicable => "na",
        Outcome::Expected => "xfail",
        Outcome::NotReached => "unreached",
    }
}

/// An outcome in words.
fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Error => "error",
        Outcome::NotApplicable => "n/a",
        Outcome::Expected => "expected fail",
        Outcome::Unexpected => "unexpected",
        Outcome::NotReached => "not reached",
    }
}

fn outcome_tag(t: &TrialResult) -> String {
    let o = t.outcome();
    format!("<span class=\"tag {}\">{}</span>", css(o), word(o))
}

fn trial(out: &mut String, report: &Report, t: &TrialResult) {
    let _ = writeln!(
        out,
        "<div class=\"trial\"><h3>{} <code>{}</code></h3>\n<p>{}</p>\n<dl>",
        outcome_tag(t),
        e(&t.test),
        e(&t.description)
    );
    let dl = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    let rules: Vec<String> = t
        .rules
        .iter()
        .map(|r| format!("{} {}", e(r), e(report.rule_title(r))))
        .collect();
    dl(out, "rules", rules.join("<br>"));
    if let Some(ev) = &t.evidence {
        let at = match (ev.step, &ev.rule) {
            (Some(s), Some(rule)) => format!(
                "{s} of {}, checking {}: <code>{}</code>",
                ev.steps,
                e(rule),
                e(&ev.summary)
            ),
            (Some(s), None) => format!("{s} of {}: <code>{}</code>", ev.steps, e(&ev.summary)),
            (None, _) => format!("before the first step: {}", e(&ev.summary)),
        };
        dl(out, "step", at);
        dl(out, "expected", e(&ev.expected));
        dl(out, "observed", e(&ev.observed));
    } else if t.verdict == super::Verdict::Pass {
        dl(out, "verdict", "passed".to_owned());
    }
    if let Some(note) = &t.expectation {
        dl(
            out,
            "expectation",
            format!(
                "{} ({}): {}",
                e(&note.describe()),
                if note.held { "held" } else { "does not hold" },
                e(&note.reason)
            ),
        );
    }
    dl(out, "time", format!("{:.1} ms", t.elapsed_ms));
    dl(out, "rerun", format!("<code>{}</code>", e(&t.rerun)));
    let _ = writeln!(out, "</dl>");
    if let Some(ev) = &t.evidence {
        let _ = writeln!(
            out,
            "<details class=\"more\" open><summary>timeline ({} events)</summary><pre>{}</pre></details>",
            ev.timeline.len(),
            e(&ev.timeline.join("\n"))
        );
        let empty: Vec<&str> = ev
            .stderr
            .iter()
            .filter(|s| s.tail.trim().is_empty())
            .map(|s| s.process.as_str())
            .collect();
        for s in ev.stderr.iter().filter(|s| !s.tail.trim().is_empty()) {
            let _ = writeln!(
                out,
                "<details class=\"more\" open><summary>stderr of {} (last part)</summary><pre>{}</pre></details>",
                e(&s.process),
                e(&s.tail)
            );
        }
        if !empty.is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"muted\">stderr empty: {}</p>",
                e(&empty.join(", "))
            );
        }
    }
    let _ = writeln!(out, "</div>");
}

fn all_tests(out: &mut String, report: &Report) {
    let interop = report.interop.iter().flat_map(|i| &i.trials);
    let all: Vec<&TrialResult> = report.trials.iter().chain(interop).collect();
    let _ = writeln!(
        out,
        "<h2 id=\"tests\">All tests</h2>\n<details class=\"more\"><summary>{} tests, with \
         times and the reasons for n/a</summary>\n<table>\n<thead><tr><th>test</th><th>verdict</th>\
         <th>ms</th><th>note</th></tr></thead>\n<tbody>",
        all.len()
    );
    for t in all {
        let note = match (&t.reason, &t.expectation) {
            (Some(r), _) => e(r),
            (None, Some(x)) => e(&x.reason),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{:.1}</td><td>{note}</td></tr>",
            e(&t.test),
            outcome_tag(t),
            t.elapsed_ms
        );
    }
    let _ = writeln!(out, "</tbody>\n</table>\n</details>");
}
