//! The workspace's house rules, checked over every Rust file git knows of, as an ordinary test (in
//! the manner of rust-analyzer's `tidy.rs`): each file says what it is for, lints are silenced
//! with `#[expect]` and a reason, platform `cfg`s live in platform modules, the protocol belongs to
//! `protocol/`, and files stay small enough to read. Every exception is named here with its
//! reason, and an exception that is no longer needed is itself a failure.

use std::path::Path;
use std::process::Command;

/// Files longer than this need an entry in [`LONG_FILES`].
const LINE_BUDGET: usize = 800;

/// A file that may break one rule, and why.
struct Exception {
    path: &'static str,
    reason: &'static str,
}

/// Files over [`LINE_BUDGET`] lines.
const LONG_FILES: &[Exception] = &[
    Exception {
        path: "conformance/src/report/mod.rs",
        reason: "the report model of spec/REPORT.md, its counting and building in one place; its \
                 renderers and tests are already beside it",
    },
    Exception {
        path: "conformance/src/stress/checker.rs",
        reason: "one judge of a history, whose bounds read best together; its tests are already \
                 in checker/tests.rs",
    },
    Exception {
        path: "conformance/src/stress/driver.rs",
        reason: "plays a stress mix over the session, kills and replacements included; to be cut \
                 with the engine (issue 17)",
    },
];

/// Files outside platform modules that may use `cfg(unix)`, `cfg(windows)` and the like.
const PLATFORM_CFG: &[Exception] = &[
    Exception {
        path: "peers/src/bin/lockspec-worker-file-lock.rs",
        reason: "file-lock is a Unix library: the worker exists on Unix, elsewhere it says so",
    },
    Exception {
        path: "peers/src/bin/lockspec-worker-named-lock.rs",
        reason: "named-lock takes a lock file's path on Unix only; elsewhere the worker says so",
    },
    Exception {
        path: "peers/src/bin/lockspec-worker-mutants.rs",
        reason: "the mutants are broken flock and fcntl locks, which exist on Unix only",
    },
    Exception {
        path: "peers/src/bin/lockspec-worker-misbehave.rs",
        reason: "two ways of misbehaving that only Unix has (leaving the session, ignoring \
                 SIGTERM), a few lines each",
    },
    Exception {
        path: "peers/tests/harness.rs",
        reason: "tests the runner's handling of Unix signals, so the whole file is Unix only",
    },
    Exception {
        path: "protocol/src/clock.rs",
        reason: "the shared monotonic clock: one short function per OS, which a sys/ directory \
                 would only scatter",
    },
    Exception {
        path: "reference/src/lock/tests.rs",
        reason: "spellings of a lock file through a symbolic link, which tests make on Unix only",
    },
    Exception {
        path: "xtask/src/peers.rs",
        reason: "whether every user may run the Python interpreter is a question of Unix \
                 permission bits",
    },
];

/// Files outside `protocol/` that may build a protocol message with `json!`.
const JSON_MESSAGES: &[Exception] = &[];

/// This file spells out the patterns it looks for, so the rules about content skip it.
const THIS_FILE: &str = "xtask/tests/tidy.rs";

/// A Rust file of the workspace: its path from the root, with `/`, and its text.
struct File {
    path: String,
    text: String,
}

/// Every Rust file that git tracks, or would track (new and not ignored), that exists.
fn files() -> Vec<File> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace");
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .args(["--", "*.rs"])
        .current_dir(root)
        .output()
        .expect("git runs: the tidy test reads the files git knows of");
    assert!(out.status.success(), "git ls-files failed: {out:?}");
    let mut paths: Vec<String> = String::from_utf8(out.stdout)
        .expect("paths are UTF-8")
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    let files: Vec<File> = paths
        .into_iter()
        .filter_map(|path| {
            // A file deleted in the work tree but not yet in the index is gone.
            let text = std::fs::read_to_string(root.join(&path)).ok()?;
            Some(File { path, text })
        })
        .collect();
    assert!(
        files.iter().any(|f| f.path == THIS_FILE),
        "the walk found {} files, but not this one",
        files.len()
    );
    files
}

/// Fails with every problem, one a line, or passes if there are none.
fn report(rule: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{rule}:\n  {}\n",
        problems.join("\n  ")
    );
}

/// The problems of `exceptions` that no longer apply: files that are gone, or that keep the rule.
fn stale(exceptions: &[Exception], files: &[File], breaks: impl Fn(&File) -> bool) -> Vec<String> {
    exceptions
        .iter()
        .filter_map(|e| match files.iter().find(|f| f.path == e.path) {
            None => Some(format!(
                "{}: listed as an exception, but there is no such file",
                e.path
            )),
            Some(f) if !breaks(f) => Some(format!(
                "{}: keeps the rule now; remove its exception ({})",
                e.path, e.reason
            )),
            Some(_) => None,
        })
        .collect()
}

fn is_excepted(exceptions: &[Exception], path: &str) -> bool {
    exceptions.iter().any(|e| e.path == path)
}

#[test]
fn every_file_opens_with_a_line_on_what_it_is_for() {
    let problems: Vec<String> = files()
        .iter()
        .filter(|f| !f.text.starts_with("//!"))
        .map(|f| format!("{}: the first line is not a `//!` comment", f.path))
        .collect();
    report("every .rs file opens with a `//!` line", &problems);
}

#[test]
fn lints_are_expected_with_a_reason_not_allowed() {
    let needles = [concat!("#[", "allow("), concat!("#![", "allow(")];
    let mut problems = Vec::new();
    for f in files().iter().filter(|f| f.path != THIS_FILE) {
        for (n, line) in f.text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                problems.push(format!("{}:{}: {}", f.path, n + 1, line.trim()));
            }
        }
    }
    report(
        "use `#[expect(lint, reason = \"...\")]` instead of `#[allow]`",
        &problems,
    );
}

#[test]
fn platform_cfgs_live_in_platform_modules() {
    let files = files();
    let mut problems = Vec::new();
    for f in files.iter().filter(|f| f.path != THIS_FILE) {
        if is_platform_module(&f.path) || is_excepted(PLATFORM_CFG, &f.path) {
            continue;
        }
        for cfg in platform_cfgs(&f.text) {
            if !cfg.selects_a_platform_module() {
                problems.push(format!("{}:{}: {}", f.path, cfg.line, cfg.attribute));
            }
        }
    }
    problems.extend(stale(PLATFORM_CFG, &files, |f| {
        platform_cfgs(&f.text)
            .iter()
            .any(|cfg| !cfg.selects_a_platform_module())
    }));
    report(
        "`cfg(unix)`, `cfg(windows)` and their kin belong in platform modules (under `sys/`, or \
         `unix.rs`, `windows.rs`, `unsupported.rs`), selected with `#[cfg(..)] mod unix;` or \
         `#[cfg(..)] use unix as imp;`",
        &problems,
    );
}

#[test]
fn the_protocol_version_is_defined_in_protocol_only() {
    let needles = [
        concat!("const ", "PROTOCOL_VERSION"),
        concat!("static ", "PROTOCOL_VERSION"),
    ];
    let mut problems = Vec::new();
    let mut defined = 0;
    for f in files().iter().filter(|f| f.path != THIS_FILE) {
        for (n, line) in f.text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                if f.path.starts_with("protocol/") {
                    defined += 1;
                } else {
                    problems.push(format!("{}:{}: {}", f.path, n + 1, line.trim()));
                }
            }
        }
    }
    assert_eq!(defined, 1, "PROTOCOL_VERSION is defined once, in protocol/");
    report("PROTOCOL_VERSION is defined in protocol/ only", &problems);
}

#[test]
fn protocol_messages_are_built_from_the_protocols_types() {
    let files = files();
    let mut problems = Vec::new();
    for f in files.iter().filter(|f| f.path != THIS_FILE) {
        if f.path.starts_with("protocol/") || is_excepted(JSON_MESSAGES, &f.path) {
            continue;
        }
        for line in json_messages(&f.text) {
            problems.push(format!("{}:{line}", f.path));
        }
    }
    problems.extend(stale(JSON_MESSAGES, &files, |f| {
        !json_messages(&f.text).is_empty()
    }));
    report(
        "no `json!` builds a protocol message outside protocol/: use lockspec_protocol's \
         `Command`, `Reply` and `Event` (and `to_line()`)",
        &problems,
    );
}

#[test]
fn files_stay_within_the_line_budget() {
    let files = files();
    let lines = |f: &File| f.text.lines().count();
    let mut problems: Vec<String> = files
        .iter()
        .filter(|f| lines(f) > LINE_BUDGET && !is_excepted(LONG_FILES, &f.path))
        .map(|f| format!("{}: {} lines", f.path, lines(f)))
        .collect();
    problems.extend(stale(LONG_FILES, &files, |f| lines(f) > LINE_BUDGET));
    report(
        &format!(
            "a file has at most {LINE_BUDGET} lines (split it, or move its tests to a tests.rs \
             beside it)"
        ),
        &problems,
    );
}

/// Whether `path` is a platform module: under a `sys/` directory, or named for its platform.
fn is_platform_module(path: &str) -> bool {
    let mut parts = path.split('/').rev();
    let name = parts.next().unwrap_or_default();
    ["unix.rs", "windows.rs", "unsupported.rs"].contains(&name) || parts.any(|dir| dir == "sys")
}

/// A `cfg` or `cfg_attr` attribute that names `unix` or `windows`.
#[derive(Debug)]
struct PlatformCfg {
    /// Its line, counting from 1.
    line: usize,
    /// The attribute, on one line.
    attribute: String,
    /// The first line of the item it applies to.
    item: String,
}

impl PlatformCfg {
    /// Whether the attribute only selects a platform module: `mod unix;`, `use unix as imp;`.
    fn selects_a_platform_module(&self) -> bool {
        let item = self.item.trim();
        let item = item.strip_prefix("pub ").unwrap_or(item);
        let item = match item.strip_prefix("pub(") {
            Some(rest) => rest.split_once(") ").map_or(item, |(_, rest)| rest),
            None => item,
        };
        let platform = |name: &str| ["unix", "windows", "unsupported", "sys"].contains(&name);
        if let Some(name) = item.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) {
            return platform(name);
        }
        if let Some(used) = item.strip_prefix("use ").and_then(|u| u.strip_suffix(';')) {
            let used = used.strip_prefix("self::").unwrap_or(used);
            let name = used
                .split_once(" as ")
                .map(|(name, _)| name)
                .or_else(|| used.strip_suffix("::*"))
                .unwrap_or(used);
            return platform(name);
        }
        false
    }
}

/// The attributes of `text` whose predicate names `unix` or `windows` (`cfg!` in expressions is
/// not an attribute, and compiles on every platform).
fn platform_cfgs(text: &str) -> Vec<PlatformCfg> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let start = n;
        let trimmed = lines[n].trim_start();
        let is_cfg = ["#[cfg", "#![cfg"].iter().any(|p| trimmed.starts_with(p));
        if !is_cfg {
            n += 1;
            continue;
        }
        // The whole attribute, which may span lines, and what follows it on its last line.
        let mut attribute = String::new();
        let mut depth = 0i32;
        let mut rest = String::new();
        'lines: while n < lines.len() {
            let line = without_strings(lines[n]);
            for (i, c) in line.char_indices() {
                attribute.push(c);
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            rest = line[i + 1..].trim().to_owned();
                            n += 1;
                            break 'lines;
                        }
                    }
                    _ => {}
                }
            }
            attribute.push(' ');
            n += 1;
        }
        let names_a_platform = attribute
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "unix" || word == "windows");
        if !names_a_platform {
            continue;
        }
        let item = if rest.is_empty() {
            lines[n..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("#["))
                .unwrap_or_default()
                .to_owned()
        } else {
            rest
        };
        found.push(PlatformCfg {
            line: start + 1,
            attribute: attribute.split_whitespace().collect::<Vec<_>>().join(" "),
            item,
        });
    }
    found
}

/// `line` with the contents of its string literals removed (`"a\"b"` becomes `""`).
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push(c);
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// The lines (counting from 1) where a `json!` literal builds a protocol message: an object with
/// an `op`, `seq`, `outcome` or `event` key.
fn json_messages(text: &str) -> Vec<usize> {
    let needle = concat!("json", "!(");
    let keys = ["\"op\"", "\"seq\"", "\"outcome\"", "\"event\""];
    let mut found = Vec::new();
    for (start, _) in text.match_indices(needle) {
        // The macro's argument, to its closing parenthesis.
        let mut depth = 0i32;
        let mut end = text.len();
        for (i, c) in text[start + needle.len() - 1..].char_indices() {
            match c {
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + needle.len() + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let argument = &text[start..end];
        if keys.iter().any(|k| argument.contains(&format!("{k}:"))) {
            found.push(text[..start].matches('\n').count() + 1);
        }
    }
    found
}

#[test]
fn the_checks_see_what_they_look_for() {
    let cfgs = platform_cfgs(concat!(
        "#[cfg(unix)]\nmod unix;\n",
        "#[cfg(not(unix))]\npub(crate) use unsupported as imp;\n",
        "#[cfg(any(unix, target_os = \"windows\"))]\n// a comment\nfn f() {}\n",
        "#[cfg_attr(windows, path = \"w.rs\")] mod w;\n",
        "#[cfg(test)]\nmod tests;\n",
        "#[cfg(all(\n    windows,\n    test\n))]\nmod sys;\n",
        "let x = cfg!(unix);\n",
    ));
    let selecting: Vec<(usize, bool)> = cfgs
        .iter()
        .map(|c| (c.line, c.selects_a_platform_module()))
        .collect();
    assert_eq!(
        selecting,
        [(1, true), (3, true), (5, false), (8, false), (11, true)],
        "{cfgs:#?}"
    );
    assert!(is_platform_module("reference/src/sys/mod.rs"));
    assert!(is_platform_module("conformance/src/cleanup/unix.rs"));
    assert!(!is_platform_module("conformance/src/cleanup.rs"));

    let text = concat!(
        "let a = serde_json::json",
        "!([1, 2]);\n",
        "let b = json",
        "!({\"seq\": 0,\n \"op\": \"hello\"});\n",
        "let c = json",
        "!({\"name\": {\"op\": 1}});\n",
    );
    assert_eq!(json_messages(text), [2, 4]);
}
