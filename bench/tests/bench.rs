//! The benchmark driver end to end: a quick run against the reference writes every output, with
//! figures for both the reference and the raw-flock baseline; and the baseline worker speaks the
//! protocol crate's version through the session client. It checks shapes, never speeds.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_quick_run_measures_the_reference_and_the_baseline() {
    // The reference's worker is a binary of lockspec-conformance, built beside the benchmark.
    lockspec_conformance::sibling_bin(
        lockspec_conformance::bin_path!("lockspec-bench"),
        "lockspec-worker-reference",
    );
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(lockspec_conformance::bin_path!("lockspec-bench"))
        .args(["--quick", "--impl", "reference", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("raw-flock") && stdout.contains("reference"),
        "{stdout}"
    );
    assert!(stdout.contains("targets (reference):"), "{stdout}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap())
            .unwrap();
    let measured = json["implementations"].as_array().unwrap();
    let names: Vec<&str> = measured
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["raw-flock", "reference"]);
    for m in measured {
        assert!(m["error"].is_null(), "{m}");
        assert!(
            m["uncontended"]["pair_ns"]["p50"].as_f64().unwrap() > 0.0,
            "{m}"
        );
        assert!(
            m["handoff_blocking"]["latency_ns"]["n"].as_u64().unwrap() > 0,
            "{m}"
        );
        // A timeout never fires early.
        assert_eq!(m["timeouts"]["early"], 0, "{m}");
    }
    // The baseline has no timed wait to hand off to; the reference has.
    assert!(measured[0]["handoff_timed"].is_null());
    assert!(measured[1]["handoff_timed"]["latency_ns"]["p50"].is_number());
    assert_eq!(json["targets"].as_array().unwrap().len(), 5);

    for (file, name) in [
        ("bench.md", "reference"),
        ("bench.html", "reference"),
        ("bench-reference.svg", "reference"),
        ("bench-raw-flock.svg", "raw-flock"),
    ] {
        let text = std::fs::read_to_string(out.path().join(file)).unwrap();
        assert!(text.contains(name), "{file}: {text}");
    }
}

#[test]
fn an_unknown_implementation_is_an_error_that_lists_the_known_ones() {
    let output = Command::new(lockspec_conformance::bin_path!("lockspec-bench"))
        .args(["--impl", "no-such-lock"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such-lock") && stderr.contains("reference"),
        "{stderr}"
    );
}

#[test]
fn the_baseline_serves_the_protocol_s_version_with_times() {
    use std::time::{Duration, Instant};

    use lockspec_conformance::process::Implementation;
    use lockspec_conformance::session::{Delivery, Session};
    use lockspec_protocol::{Kind, Op, PROTOCOL_VERSION};

    let dir = tempfile::tempdir().unwrap();
    let baseline = Implementation::new(
        "raw-flock",
        lockspec_conformance::bin_path!("lockspec-bench"),
        &["--serve-raw-flock"],
    );
    let mut session = Session::new(dir.path());
    let w = session.spawn(&baseline, "raw-flock", false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    session.handshake(deadline, &mut Vec::new()).unwrap();
    let hello = session.hello(w).unwrap();
    assert_eq!(hello.protocol, Some(PROTOCOL_VERSION));
    assert_eq!(hello.implementation.as_deref(), Some("raw-flock"));

    let handle = || "h".to_owned();
    let ops = [
        Op::Open {
            handle: handle(),
            path: "raw.lock".into(),
            timeout_ms: None,
            callback: false,
        },
        Op::Acquire { handle: handle() },
        Op::Release { handle: handle() },
    ];
    for (op, expected) in ops
        .into_iter()
        .zip([Kind::Ok, Kind::Acquired, Kind::Released])
    {
        let timed = op.is_timed();
        let seq = session.send(w, None, op).unwrap();
        let Some(Delivery::Reply { reply, .. }) = session.next(deadline).unwrap() else {
            panic!("no reply to seq {seq}");
        };
        assert_eq!((reply.seq, reply.outcome), (seq, expected));
        // Replies to acquire and release carry the worker's times of the call.
        assert!(!timed || reply.span().is_some(), "{reply:?}");
    }
}
