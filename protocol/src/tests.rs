//! The wire format, line by line: what parses, what is refused, and what each message looks like.

use rstest::rstest;
use serde_json::{Value, json};

use super::*;

fn open(timeout_ms: Option<u64>, callback: bool) -> Op {
    Op::Open {
        handle: "a".into(),
        path: "x.lock".into(),
        timeout_ms,
        callback,
    }
}

#[rstest]
#[case::hello(r#"{"seq":0,"op":"hello","protocol":1}"#, 0, None, Op::Hello { protocol: Some(1) })]
#[case::hello_other_version(r#"{"seq":0,"op":"hello","protocol":7}"#, 0, None, Op::Hello { protocol: Some(7) })]
#[case::open_forever(
    r#"{"seq":1,"op":"open","handle":"a","path":"x.lock","timeout_ms":null}"#,
    1,
    None,
    open(None, false)
)]
#[case::open_timeout_absent(
    r#"{"seq":1,"op":"open","handle":"a","path":"x.lock"}"#,
    1,
    None,
    open(None, false)
)]
#[case::open_zero(
    r#"{"seq":1,"op":"open","handle":"a","path":"x.lock","timeout_ms":0,"callback":true}"#,
    1,
    None,
    open(Some(0), true)
)]
#[case::open_on_thread(
    r#"{"seq":1,"op":"open","thread":"t1","handle":"a","path":"x.lock","timeout_ms":300,"callback":false}"#,
    1, Some("t1"), open(Some(300), false)
)]
#[case::acquire(r#"{"seq":2,"op":"acquire","handle":"a","thread":"t1"}"#, 2, Some("t1"), Op::Acquire { handle: "a".into() })]
#[case::release_null_thread(
    r#"{"seq":3,"op":"release","handle":"a","thread":null}"#,
    3, None, Op::Release { handle: "a".into() }
)]
#[case::close(r#"{"seq":4,"op":"close","handle":"a"}"#, 4, None, Op::Close { handle: "a".into() })]
#[case::file_open(
    r#"{"seq":5,"op":"file_open","file":"f","path":"x.lock"}"#,
    5, None, Op::FileOpen { file: "f".into(), path: "x.lock".into() }
)]
#[case::file_close(r#"{"seq":6,"op":"file_close","file":"f"}"#, 6, None, Op::FileClose { file: "f".into() })]
#[case::spawn_child(
    r#"{"seq":7,"op":"spawn_child","child":"c","thread":"main"}"#,
    7, Some("main"), Op::SpawnChild { child: Some("c".into()) }
)]
#[case::witness(
    r#"{"seq":9,"op":"witness","path":"counter","thread":"t3"}"#,
    9, Some("t3"), Op::Witness { path: "counter".into() }
)]
#[case::sleep(r#"{"seq":10,"op":"sleep","ms":5,"thread":"noise"}"#, 10, Some("noise"), Op::Sleep { ms: 5 })]
#[case::unknown_fields_ignored(
    r#"{"seq":8,"op":"acquire","handle":"a","future":{"x":[1]},"deadline_ms":5}"#,
    8, None, Op::Acquire { handle: "a".into() }
)]
fn parses(#[case] line: &str, #[case] seq: u64, #[case] thread: Option<&str>, #[case] op: Op) {
    let command = Command::parse(line).unwrap();
    assert_eq!(command.seq, seq);
    assert_eq!(command.thread.as_deref(), thread);
    assert_eq!(command.thread(), thread.unwrap_or(DEFAULT_THREAD));
    assert_eq!(command.op, op);
    // What the runner writes, the worker reads back unchanged.
    assert_eq!(Command::parse(&command.to_line()).unwrap(), command);
}

#[rstest]
#[case::not_json("acquire a")]
#[case::empty("")]
#[case::not_an_object("[1, 2]")]
#[case::no_seq(r#"{"op":"acquire","handle":"a"}"#)]
#[case::seq_not_integer(r#"{"seq":"1","op":"acquire","handle":"a"}"#)]
#[case::negative_seq(r#"{"seq":-1,"op":"acquire","handle":"a"}"#)]
#[case::no_op(r#"{"seq":1,"handle":"a"}"#)]
#[case::unknown_op(r#"{"seq":1,"op":"frobnicate","handle":"a"}"#)]
#[case::missing_handle(r#"{"seq":1,"op":"acquire"}"#)]
#[case::missing_path(r#"{"seq":1,"op":"open","handle":"a"}"#)]
#[case::witness_without_path(r#"{"seq":1,"op":"witness"}"#)]
#[case::negative_timeout(r#"{"seq":1,"op":"open","handle":"a","path":"x","timeout_ms":-5}"#)]
#[case::fractional_timeout(r#"{"seq":1,"op":"open","handle":"a","path":"x","timeout_ms":1.5}"#)]
#[case::thread_not_string(r#"{"seq":1,"op":"acquire","handle":"a","thread":3}"#)]
fn rejects(#[case] line: &str) {
    assert!(Command::parse(line).is_err(), "{line} parsed");
}

#[test]
fn commands_on_the_wire() {
    let command = Command {
        seq: 3,
        thread: None,
        op: open(None, false),
    };
    let value: Value = serde_json::from_str(&command.to_line()).unwrap();
    // A wait without end is written as null, not left out.
    assert_eq!(
        value,
        json!({"seq": 3, "op": "open", "handle": "a", "path": "x.lock", "timeout_ms": null,
            "callback": false})
    );
    let command = Command {
        seq: 4,
        thread: Some("t1".into()),
        op: Op::Acquire { handle: "a".into() },
    };
    assert_eq!(
        command.to_line(),
        r#"{"seq":4,"thread":"t1","op":"acquire","handle":"a"}"#
    );
}

fn value(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

#[test]
fn plain_reply_has_no_optional_fields() {
    let reply = Reply {
        t_ns: Some(42),
        ..Reply::new(3, Kind::Acquired)
    };
    assert_eq!(
        value(&reply.to_line()),
        json!({"seq": 3, "outcome": "acquired", "t_ns": 42})
    );
}

#[test]
fn hello_reply_is_flat() {
    let reply = Reply {
        hello: Hello {
            protocol: Some(PROTOCOL_VERSION),
            implementation: Some("reference".into()),
            version: Some("0.1.0".into()),
            language: Some("rust".into()),
            capabilities: vec![capability::CALLBACK.into()],
        },
        t_ns: Some(1),
        ..Reply::new(0, Kind::Hello)
    };
    assert_eq!(
        value(&reply.to_line()),
        json!({"seq": 0, "outcome": "hello", "protocol": PROTOCOL_VERSION,
            "implementation": "reference", "version": "0.1.0", "language": "rust",
            "capabilities": ["callback"], "t_ns": 1})
    );
    assert_eq!(Message::parse(&reply.to_line()), Ok(Message::Reply(reply)));
}

#[test]
fn witness_reply_with_times() {
    let reply = Reply {
        value: Some(0),
        collision: Some(false),
        start_ns: Some(10),
        t_ns: Some(12),
        ..Reply::new(5, Kind::Ok)
    };
    assert_eq!(
        reply.span(),
        Some(Span {
            start_ns: 10,
            t_ns: 12
        })
    );
    assert_eq!(Message::parse(&reply.to_line()), Ok(Message::Reply(reply)));
}

#[test]
fn event_line() {
    let event = Event {
        event: EventKind::Callback,
        handle: "a".into(),
        t_ns: Some(5),
    };
    assert_eq!(
        event.to_line(),
        r#"{"event":"callback","handle":"a","t_ns":5}"#
    );
    assert_eq!(Message::parse(&event.to_line()), Ok(Message::Event(event)));
}

#[rstest]
#[case::minimal_v1_reply(r#"{"seq":1,"outcome":"released"}"#)]
#[case::unknown_field(r#"{"seq":1,"outcome":"ok","future":[1,2]}"#)]
#[case::python_hello(
    r#"{"seq":0,"outcome":"hello","protocol":1,"implementation":"x","version":"1","language":"python","capabilities":[],"t_ns":5}"#
)]
fn reads_replies(#[case] line: &str) {
    assert!(
        matches!(Message::parse(line), Ok(Message::Reply(_))),
        "{line}"
    );
}

#[rstest]
#[case::not_json("hello", "not JSON")]
#[case::array("[1]", "not an object")]
#[case::seq_string(r#"{"seq":"1","outcome":"ok"}"#, "not an integer")]
#[case::unknown_outcome(r#"{"seq":1,"outcome":"maybe"}"#, "unknown outcome \"maybe\"")]
#[case::no_outcome(r#"{"seq":1}"#, "unknown outcome \"\"")]
#[case::neither(r#"{"hello":1}"#, "neither a reply")]
#[case::unknown_event(r#"{"event":"tick","handle":"a"}"#, "neither a reply")]
#[case::bad_pid(r#"{"seq":1,"outcome":"ok","pid":"x"}"#, "wrong fields")]
fn refuses_broken_lines(#[case] line: &str, #[case] says: &str) {
    let error = Message::parse(line).unwrap_err();
    assert!(error.to_string().contains(says), "{line}: {error}");
}

#[test]
fn spans_need_both_times_in_order() {
    let mut reply = Reply::new(1, Kind::Acquired);
    reply.start_ns = None;
    assert_eq!(reply.span(), None);
    reply.start_ns = Some(u64::MAX);
    assert_eq!(reply.span(), None);
    reply.start_ns = Some(0);
    assert!(reply.span().is_some());
}

/// `spec/PROTOCOL.md` and these types say the same: its title gives the version, its table
/// every operation, and it names every outcome and capability.
#[test]
fn the_spec_describes_these_types() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/PROTOCOL.md"))
        .expect("spec/PROTOCOL.md beside the crate");
    let title = spec.lines().next().unwrap_or_default();
    assert!(
        title.ends_with(&format!("version {PROTOCOL_VERSION}")),
        "PROTOCOL.md's title {title:?} names another version than {PROTOCOL_VERSION}"
    );
    let ops: Vec<&str> = spec
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let every_op = [
        Op::Hello { protocol: None },
        open(None, false),
        Op::Acquire {
            handle: String::new(),
        },
        Op::Release {
            handle: String::new(),
        },
        Op::Close {
            handle: String::new(),
        },
        Op::FileOpen {
            file: String::new(),
            path: PathBuf::new(),
        },
        Op::FileClose {
            file: String::new(),
        },
        Op::SpawnChild { child: None },
        Op::Witness {
            path: PathBuf::new(),
        },
        Op::Sleep { ms: 0 },
    ];
    for op in &every_op {
        assert!(
            ops.contains(&op.name()),
            "PROTOCOL.md's table lacks `{}`",
            op.name()
        );
    }
    for kind in std::iter::once(Kind::Hello).chain(Kind::OPERATION_OUTCOMES) {
        assert!(
            spec.contains(&format!("`{kind}`")),
            "PROTOCOL.md never names `{kind}`"
        );
    }
    for name in capability::ALL {
        assert!(
            spec.contains(&format!("| `{name}` |")),
            "PROTOCOL.md does not define `{name}`"
        );
    }
}
