//! The harness's own robustness: workers that misbehave in every way a program can (hang, crash,
//! garble, break the protocol, leave processes behind) get the verdict *error*, with a message
//! that says what the worker did, within a bounded time, and leave no process and no directory
//! behind; an interrupted run cleans up too.
//!
//! Every worker gets a unique marker in its arguments, which the processes it starts inherit, so
//! that the process table (`/proc`, or `ps` off Linux) shows anything left behind, including a
//! grandchild that left the process group with `setsid`.
#![cfg(unix)]

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lockspec_conformance::Implementation;
use lockspec_conformance::run::{self, FailKind, Settings, TrialReport, Verdict};
use lockspec_conformance::scenario::{self, Scenario};
use lockspec_conformance::suite;
use lockspec_conformance::timing::{Timing, Window};
use rstest::rstest;

/// The `lockspec-worker-misbehave` binary.
fn misbehave_bin() -> &'static str {
    lockspec_conformance::bin_path!("lockspec-worker-misbehave")
}

/// Two processes, a blocked acquire and its hand-over: every kind of exchange in a few steps.
const SCENARIO: &str = "identity::two_processes";

fn timing() -> Timing {
    Timing::from_env().expect("a valid LOCKSPEC_TIMING_SCALE")
}

/// The longest any misbehaving worker may keep a trial going: the start-up deadline, then a few
/// steps' worth of `prompt` and the overshoot margin. About 19 s at timing scale 1.
fn bound(timing: &Timing) -> Duration {
    timing.startup() + timing.window(Window::Prompt) * 4 + timing.overshoot()
}

/// One scenario of the suite, read on its own so that a problem elsewhere in the suite does not
/// stop these tests.
fn scenario(id: &str) -> Scenario {
    let root = suite::default_root();
    let spec = std::fs::read_to_string(root.join("spec/SPEC.md")).expect("the spec is readable");
    let rules: HashSet<String> = suite::parse_rules(&spec)
        .into_iter()
        .map(|r| r.id)
        .collect();
    let file = root
        .join("scenarios")
        .join(format!("{}.json", id.replace("::", "/")));
    let text = std::fs::read_to_string(&file).expect("the scenario is readable");
    scenario::parse(id, &file, &text, &rules).unwrap_or_else(|e| panic!("{e}"))
}

/// A marker no other process on the machine carries.
fn marker(what: &str) -> String {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "lockspec-harness-{what}-{}-{nanos}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// A live process that carries `marker` in its command line or its environment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    pid: u32,
    /// Whether it leads its own session (it called `setsid`).
    session_leader: bool,
    command: String,
}

/// Every live process (not a zombie) other than this one that carries `marker`.
fn processes_with(marker: &str) -> Vec<Found> {
    if Path::new("/proc/self/cmdline").exists() {
        processes_with_proc(marker)
    } else {
        processes_with_ps(marker)
    }
}

fn processes_with_proc(marker: &str) -> Vec<Found> {
    let own = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let read = |name: &str| std::fs::read(entry.path().join(name)).unwrap_or_default();
        let has = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
        let (cmdline, environ) = (read("cmdline"), read("environ"));
        if !has(&cmdline) && !has(&environ) {
            continue;
        }
        let stat = String::from_utf8_lossy(&read("stat")).into_owned();
        // After the command name in parentheses: state, ppid, pgrp, session.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        if fields.first().is_none_or(|s| *s == "Z" || *s == "X") {
            continue;
        }
        found.push(Found {
            pid,
            session_leader: fields.get(3) == Some(&pid.to_string().as_str()),
            command: String::from_utf8_lossy(&cmdline).replace('\0', " "),
        });
    }
    found
}

fn processes_with_ps(marker: &str) -> Vec<Found> {
    let out = Command::new("ps")
        .args(["-A", "-o", "pid=,sess=,stat=,args="])
        .output()
        .expect("ps runs");
    let own = std::process::id();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let pid: u32 = words.next()?.parse().ok()?;
            let sess = words.next()?;
            let stat = words.next()?;
            (pid != own && !stat.starts_with('Z')).then(|| Found {
                pid,
                session_leader: sess == pid.to_string(),
                command: words.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// Records every process that carries `marker` while `work` runs.
fn watching<T>(marker: &str, work: impl FnOnce() -> T) -> (T, BTreeSet<Found>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                seen.extend(processes_with(marker));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        let result = work();
        stop.store(true, Ordering::Relaxed);
        (result, watcher.join().expect("the watcher does not panic"))
    })
}

/// What one trial against a misbehaving worker left.
struct Outcome {
    report: TrialReport,
    elapsed: Duration,
    seen: BTreeSet<Found>,
}

/// Runs the scenario against the worker in `mode`, in a directory of the test's own, and checks
/// what must hold whatever the worker did: the trial ends within [`bound`], and neither a process
/// nor a trial directory is left.
fn against(mode: &str, scenario_id: &str) -> Outcome {
    against_watched(mode, scenario_id, false)
}

/// [`against`], and with `watch`, a record of the processes that carried the marker meanwhile.
fn against_watched(mode: &str, scenario_id: &str, watch: bool) -> Outcome {
    let timing = timing();
    let marker = marker(mode);
    let imp = Implementation::new(
        format!("misbehave-{mode}"),
        misbehave_bin(),
        &["--mode", mode, "--marker", &marker],
    );
    let scenario = scenario(scenario_id);
    let parent = tempfile::tempdir().unwrap();
    let settings = Settings {
        timing,
        dir: Some(parent.path().to_owned()),
        reference: None,
    };
    let start = Instant::now();
    let trial = || run::run(&imp, &scenario, &settings);
    let (report, seen) = if watch {
        watching(&marker, trial)
    } else {
        (trial(), BTreeSet::new())
    };
    let elapsed = start.elapsed();
    assert!(
        elapsed < bound(&timing),
        "{mode}: the trial took {elapsed:?}, more than {:?}",
        bound(&timing)
    );
    let left = processes_with(&marker);
    assert!(left.is_empty(), "{mode}: processes left behind: {left:#?}");
    let dirs: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(dirs.is_empty(), "{mode}: directories left behind: {dirs:?}");
    Outcome {
        report,
        elapsed,
        seen,
    }
}

#[test]
fn the_well_behaved_mode_passes_so_the_faults_are_what_the_other_tests_see() {
    let outcome = against("good", SCENARIO);
    assert_eq!(
        outcome.report.verdict,
        Verdict::Pass,
        "{:#?}",
        outcome.report
    );
}

#[rstest]
#[case::hang("hang", "did not answer `hello`")]
#[case::hang_after_hello("hang-after-hello", "no reply to `open`")]
#[case::ignore_sigterm("ignore-sigterm", "no reply to `open`")]
#[case::panic("panic", "exit status: 101")]
#[case::abort("abort", "SIGABRT")]
#[case::exit_at_once("exit-at-once", "exit status: 3")]
#[case::not_json("not-json", "not JSON")]
#[case::half_line("half-line", "unterminated line")]
#[case::wrong_seq("wrong-seq", "no command with that seq was sent")]
#[case::answer_twice("answer-twice", "a second time")]
#[case::bad_outcome("bad-outcome", "unknown outcome \"granted\"")]
#[case::future_protocol("future-protocol", "speaks protocol 99, this runner speaks 1 or 2")]
#[case::spawn_child("spawn-child", "still holds its output open")]
fn a_misbehaving_worker_is_an_error_that_says_what_it_did(#[case] mode: &str, #[case] says: &str) {
    let outcome = against(mode, SCENARIO);
    let Verdict::Error(failure) = &outcome.report.verdict else {
        panic!(
            "{mode}: expected an error verdict, got {:#?}",
            outcome.report
        );
    };
    assert!(
        failure.observed.contains(says),
        "{mode}: the message does not say {says:?}: {}",
        failure.observed
    );
}

#[test]
fn a_crashed_worker_is_noticed_at_once_even_when_its_children_hold_its_output() {
    let outcome = against_watched("spawn-child", SCENARIO, true);
    assert!(matches!(outcome.report.verdict, Verdict::Error(_)));
    // The first worker exits at once; the second, the first one's child and its grandchild,
    // which left the session, were running.
    let saw = |mode: &str, leader: bool| {
        outcome
            .seen
            .iter()
            .any(|f| f.command.contains(&format!("--mode {mode} ")) && f.session_leader == leader)
    };
    assert!(
        saw("child", false) && saw("grandchild", true),
        "the fault did not happen as planned: {:#?}",
        outcome.seen
    );
    // Noticed by polling the worker, not at the deadline of the unanswered acquire.
    let prompt = timing().window(Window::Prompt);
    assert!(
        outcome.elapsed < prompt,
        "took {:?}, as long as a reply deadline ({prompt:?})",
        outcome.elapsed
    );
}

#[test]
fn a_flood_on_stderr_neither_blocks_the_worker_nor_fills_the_report() {
    let outcome = against("flood-stderr", SCENARIO);
    // Diagnostics on stderr are the protocol's own channel: noise there is not an error.
    assert_eq!(
        outcome.report.verdict,
        Verdict::Pass,
        "{:#?}",
        outcome.report.timeline
    );
    for (name, tail) in &outcome.report.stderr {
        assert!(tail.len() < 64 * 1024, "{name}: {} bytes kept", tail.len());
        assert!(
            tail.starts_with("[") && tail.contains("bytes dropped]"),
            "{name}: {tail:.200}"
        );
    }
}

#[test]
fn no_reply_to_an_acquire_is_still_the_locks_failure() {
    // The worker answers `hello` and `open`, then nothing: an acquire that never returns is
    // what a deadlocked lock looks like, and the spec judges it.
    let outcome = against("spawn-child-then-hang", "acquire::free_lock_at_once");
    let Verdict::Fail(failure) = &outcome.report.verdict else {
        panic!("expected a failure, got {:#?}", outcome.report.verdict);
    };
    assert_eq!(failure.kind, FailKind::NoReply, "{failure:#?}");
}

/// The timing scale of interrupted runs: long enough that the run is surely still going when
/// the signal comes.
const SLOW: &str = "30";

/// Waits (up to `limit`) until `ready` holds.
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ready()
}

/// Sends `signal` to a process started by `command` once its workers, their child and the
/// grandchild that left the session are all running and a trial directory exists under
/// `dir`; then checks that it died of that signal and left nothing behind.
///
/// With `orphaned`, its stdout and stderr are pipes whose reading ends are closed at once, as
/// when the parent that read them (`cargo xtask`) died first: it must clean up all the same.
fn interrupt(mut command: Command, marker: &str, dir: &Path, signal: libc::c_int, orphaned: bool) {
    let mut child = command
        .stdout(if orphaned {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    if orphaned {
        drop(child.stdout.take());
        drop(child.stderr.take());
    }
    let ready = wait_until(bound(&timing()), || {
        let found = processes_with(marker);
        found.len() >= 4
            && found.iter().any(|f| f.session_leader)
            && std::fs::read_dir(dir).unwrap().flatten().count() > 0
    });
    if !ready {
        let _ = child.kill();
        panic!("the run did not get going: {:#?}", processes_with(marker));
    }
    // SAFETY: a plain system call on a process this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let start = Instant::now();
    let exited = wait_until(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
        panic!("still running 10 s after the signal");
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(signal),
        "{status}, after {:?}; stderr:\n{stderr}",
        start.elapsed()
    );
    assert!(
        orphaned || stderr.contains("interrupted by signal"),
        "{stderr}"
    );
    let left = processes_with(marker);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    let dirs: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert!(dirs.is_empty(), "directories left behind: {dirs:?}");
}

#[rstest]
#[case::sigint(libc::SIGINT, false)]
#[case::sigterm(libc::SIGTERM, false)]
#[case::sighup(libc::SIGHUP, false)]
#[case::sigterm_with_its_output_gone(libc::SIGTERM, true)]
fn an_interrupted_lockspec_leaves_no_process_and_no_directory(
    #[case] signal: libc::c_int,
    #[case] orphaned: bool,
) {
    let marker = marker("interrupted-cli");
    let dir = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut command = Command::new(lockspec_conformance::sibling_bin(
        misbehave_bin(),
        "lockspec",
    ));
    command
        .arg("--out")
        .arg(reports.path())
        .arg("--worker")
        .arg(format!(
            "{} --mode spawn-child-then-hang --marker {marker}",
            misbehave_bin()
        ))
        .args(["--exact", "--filter", &format!("worker::{SCENARIO}")])
        .args(["--timing-scale", SLOW, "--dir"])
        .arg(dir.path());
    interrupt(command, &marker, dir.path(), signal, orphaned);
}

/// The environment variable that makes the next test play the interrupted test binary.
const ROLE: &str = "LOCKSPEC_HARNESS_INTERRUPTED";

#[test]
fn a_test_binary_interrupted_by_sigint_leaves_no_process_and_no_directory() {
    interrupted_test_binary(
        "a_test_binary_interrupted_by_sigint_leaves_no_process_and_no_directory",
        libc::SIGINT,
    );
}

#[test]
fn a_test_binary_interrupted_by_sigterm_leaves_no_process_and_no_directory() {
    interrupted_test_binary(
        "a_test_binary_interrupted_by_sigterm_leaves_no_process_and_no_directory",
        libc::SIGTERM,
    );
}

/// Runs this test binary again, for the test `name` only, as the interrupted side: it runs a
/// trial in-process, as the libtest-mimic harness does, and gets `signal` in the middle.
fn interrupted_test_binary(name: &str, signal: libc::c_int) {
    if let Ok(setup) = std::env::var(ROLE) {
        let (marker, dir) = setup.split_once('\n').expect("marker and directory");
        let imp = Implementation::new(
            "misbehave",
            misbehave_bin(),
            &["--mode", "spawn-child-then-hang", "--marker", marker],
        );
        let settings = Settings {
            timing: Timing::new(SLOW.parse().unwrap()).unwrap(),
            dir: Some(dir.into()),
            reference: None,
        };
        let report = run::run(&imp, &scenario(SCENARIO), &settings);
        panic!("the trial ended before the signal came: {report:#?}");
    }
    let marker = marker("interrupted-test");
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(ROLE, format!("{marker}\n{}", dir.path().display()));
    interrupt(command, &marker, dir.path(), signal, false);
}
