//! The messages of the protocol: commands parsed from the runner, replies and events written back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub(crate) const PROTOCOL_VERSION: u64 = 1;

/// The thread a command runs on when it names none.
pub(crate) const DEFAULT_THREAD: &str = "main";

/// One line from the runner.
///
/// Unknown fields are ignored, as the protocol requires, so that the runner can add optional fields
/// without a new protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Command {
    /// The sequence number echoed in the reply.
    pub(crate) seq: u64,
    /// The worker thread that runs the command; `None` (absent or `null`) means [`DEFAULT_THREAD`].
    #[serde(default)]
    pub(crate) thread: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub(crate) op: Op,
}

impl Command {
    /// Parses one line.
    ///
    /// # Errors
    ///
    /// Returns the parser's error when the line is not a JSON object with a `seq`, a known `op`
    /// and that op's fields.
    pub(crate) fn parse(line: &str) -> serde_json::Result<Command> {
        serde_json::from_str(line)
    }

    /// The name of the thread that runs this command.
    pub(crate) fn thread(&self) -> &str {
        self.thread.as_deref().unwrap_or(DEFAULT_THREAD)
    }
}

/// The operation of a command and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// The handshake.
    Hello {
        /// The runner's protocol version; this crate answers with its own whatever it is.
        #[serde(default)]
        protocol: Option<u64>,
    },
    /// Creates a lock object bound to `handle`.
    Open {
        handle: String,
        path: PathBuf,
        /// `None` waits forever, `Some(0)` makes one attempt.
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// Whether to report the contention callback as events.
        #[serde(default)]
        callback: bool,
    },
    /// Acquires with the object's timeout.
    Acquire { handle: String },
    /// Releases.
    Release { handle: String },
    /// Drops the lock object.
    Close { handle: String },
    /// Opens a plain read-only handle on a file.
    FileOpen { file: String, path: PathBuf },
    /// Closes a plain handle.
    FileClose { file: String },
    /// Starts an idle child process.
    SpawnChild {
        /// The runner's name for the child; the worker does not need it.
        #[serde(default)]
        child: Option<String>,
    },
    /// The data witness of stress runs: counts through `path`, watching for a second holder.
    Witness { path: PathBuf },
}

/// The fields that only the reply to `hello` has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HelloFields<'a> {
    pub(crate) protocol: u64,
    pub(crate) implementation: &'a str,
    pub(crate) version: &'a str,
    pub(crate) language: &'a str,
    pub(crate) capabilities: &'a [String],
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Reply<'a> {
    pub(crate) seq: u64,
    pub(crate) outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) hello: Option<HelloFields<'a>>,
    /// The child's process ID, in the reply to `spawn_child`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    /// The number read by `witness`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<u64>,
    /// Whether `witness` found another witness at work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) collision: Option<bool>,
    /// The machine's monotonic clock when the library call began, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_ns: Option<u64>,
    /// The machine's monotonic clock when the operation completed, in nanoseconds.
    pub(crate) t_ns: u64,
}

/// One event line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event<'a> {
    /// The kind of event: only `callback` exists.
    pub(crate) event: &'a str,
    pub(crate) handle: &'a str,
    pub(crate) t_ns: u64,
}

#[cfg(test)]
mod tests {
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

    fn to_value(value: &impl Serialize) -> Value {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn plain_reply_has_no_optional_fields() {
        let reply = Reply {
            seq: 3,
            outcome: "acquired",
            detail: None,
            hello: None,
            pid: None,
            value: None,
            collision: None,
            start_ns: None,
            t_ns: 42,
        };
        assert_eq!(
            to_value(&reply),
            json!({"seq": 3, "outcome": "acquired", "t_ns": 42})
        );
    }

    #[test]
    fn reply_with_detail_and_pid() {
        let reply = Reply {
            seq: 9,
            outcome: "ok",
            detail: Some("started"),
            hello: None,
            pid: Some(1234),
            value: None,
            collision: None,
            start_ns: None,
            t_ns: 7,
        };
        assert_eq!(
            to_value(&reply),
            json!({"seq": 9, "outcome": "ok", "detail": "started", "pid": 1234, "t_ns": 7})
        );
    }

    #[test]
    fn hello_reply_is_flat() {
        let capabilities = vec!["callback".to_owned()];
        let reply = Reply {
            seq: 0,
            outcome: "hello",
            detail: None,
            hello: Some(HelloFields {
                protocol: PROTOCOL_VERSION,
                implementation: "reference",
                version: "0.1.0",
                language: "rust",
                capabilities: &capabilities,
            }),
            pid: None,
            value: None,
            collision: None,
            start_ns: None,
            t_ns: 1,
        };
        assert_eq!(
            to_value(&reply),
            json!({"seq": 0, "outcome": "hello", "protocol": 1, "implementation": "reference",
                "version": "0.1.0", "language": "rust", "capabilities": ["callback"], "t_ns": 1})
        );
    }

    #[test]
    fn witness_reply_with_times() {
        let reply = Reply {
            seq: 5,
            outcome: "ok",
            detail: None,
            hello: None,
            pid: None,
            value: Some(0),
            collision: Some(false),
            start_ns: Some(10),
            t_ns: 12,
        };
        assert_eq!(
            to_value(&reply),
            json!({"seq": 5, "outcome": "ok", "value": 0, "collision": false, "start_ns": 10,
                "t_ns": 12})
        );
    }

    #[test]
    fn event_line() {
        let event = Event {
            event: "callback",
            handle: "a",
            t_ns: 5,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"callback","handle":"a","t_ns":5}"#
        );
    }
}
