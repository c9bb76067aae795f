//! The lockspec worker protocol (`spec/PROTOCOL.md`): commands, replies and events as serde types,
//! the protocol versions, the capability names, and the monotonic clock that all processes share.
//!
//! Both sides speak through these types: the worker crate parses [`Command`]s and writes
//! [`Reply`]s and [`Event`]s; the runner, the stress driver and the benchmark write commands and
//! read [`Message`]s. Nothing else in the workspace spells a message as JSON.
//!
//! Every message is one JSON object on one line. Unknown fields are ignored in both directions, so
//! that either side can add optional fields without a new protocol version.

mod clock;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use clock::now_ns;

/// The protocol version this crate speaks.
///
/// Version 2 requires `start_ns` and `t_ns` in every reply to `acquire`, `release` and `witness`,
/// so that the runner can judge order and durations on the workers' clocks.
pub const PROTOCOL_VERSION: u64 = 2;

/// The versions a runner accepts from a worker: version 1 workers are still judged, with the
/// runner's own clock, and reports say so.
pub const SUPPORTED_VERSIONS: [u64; 2] = [1, PROTOCOL_VERSION];

/// The thread a command runs on when it names none.
pub const DEFAULT_THREAD: &str = "main";

/// The capability names a worker may list in its `hello` reply.
pub mod capability {
    /// `open` honours `callback: true`, and each call is reported as a `callback` event.
    pub const CALLBACK: &str = "callback";
    /// Informational: the adapter polls the library's single attempt until the timeout expires.
    pub const TIMEOUT_EMULATED: &str = "timeout_emulated";
    /// The API cannot acquire through an object that holds the lock or is acquiring.
    pub const NO_ACQUIRE_HELD: &str = "no_acquire_held";
    /// The API cannot release through an object that does not hold the lock.
    pub const NO_RELEASE_UNHELD: &str = "no_release_unheld";
    /// The API cannot release on another thread than the one that acquired.
    pub const NO_RELEASE_ANY_THREAD: &str = "no_release_any_thread";
    /// Every capability this version of the protocol defines.
    pub const ALL: [&str; 5] = [
        CALLBACK,
        TIMEOUT_EMULATED,
        NO_ACQUIRE_HELD,
        NO_RELEASE_UNHELD,
        NO_RELEASE_ANY_THREAD,
    ];
}

/// One line from the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The sequence number echoed in the reply.
    pub seq: u64,
    /// The worker thread that runs the command; `None` (absent or `null`) means [`DEFAULT_THREAD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
}

impl Command {
    /// Parses one line.
    ///
    /// # Errors
    ///
    /// Returns the parser's error when the line is not a JSON object with a `seq`, a known `op`
    /// and that op's fields.
    pub fn parse(line: &str) -> serde_json::Result<Command> {
        serde_json::from_str(line)
    }

    /// The line that carries this command, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a command always serialises")
    }

    /// The name of the thread that runs this command.
    pub fn thread(&self) -> &str {
        self.thread.as_deref().unwrap_or(DEFAULT_THREAD)
    }
}

/// The operation of a command and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The handshake.
    Hello {
        /// The runner's protocol version; a worker answers with its own whatever it is.
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child: Option<String>,
    },
    /// The data witness of stress runs: counts through `path`, watching for a second holder.
    Witness { path: PathBuf },
    /// Sleeps `ms` milliseconds on the thread with the language's plain sleep and no lock: how
    /// late it wakes is the noise of this worker's runtime on this machine, now.
    Sleep { ms: u64 },
}

impl Op {
    /// The protocol's name of the operation (`acquire`, `file_open`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Open { .. } => "open",
            Op::Acquire { .. } => "acquire",
            Op::Release { .. } => "release",
            Op::Close { .. } => "close",
            Op::FileOpen { .. } => "file_open",
            Op::FileClose { .. } => "file_close",
            Op::SpawnChild { .. } => "spawn_child",
            Op::Witness { .. } => "witness",
            Op::Sleep { .. } => "sleep",
        }
    }

    /// Whether the operation calls the lock and may wait on it (`acquire`, `release`): no reply
    /// to it is something the lock did, while no reply to any other operation is the worker's
    /// fault. Its reply carries `start_ns` and `t_ns` from version 2 on.
    pub fn calls_lock(&self) -> bool {
        matches!(self, Op::Acquire { .. } | Op::Release { .. })
    }

    /// Whether the reply must carry `start_ns` and `t_ns` in version 2.
    pub fn is_timed(&self) -> bool {
        self.calls_lock() || matches!(self, Op::Witness { .. } | Op::Sleep { .. })
    }
}

/// The outcome of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The reply to `hello`.
    Hello,
    Ok,
    Acquired,
    Released,
    TimedOut,
    WouldBlock,
    NotHeld,
    IoError,
    Unsupported,
}

impl Kind {
    /// Every outcome of an operation (all but `hello`), in the order they are documented.
    pub const OPERATION_OUTCOMES: [Kind; 8] = [
        Kind::Ok,
        Kind::Acquired,
        Kind::Released,
        Kind::TimedOut,
        Kind::WouldBlock,
        Kind::NotHeld,
        Kind::IoError,
        Kind::Unsupported,
    ];

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Ok => "ok",
            Kind::Acquired => "acquired",
            Kind::Released => "released",
            Kind::TimedOut => "timed_out",
            Kind::WouldBlock => "would_block",
            Kind::NotHeld => "not_held",
            Kind::IoError => "io_error",
            Kind::Unsupported => "unsupported",
        }
    }

    /// Parses the protocol's spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        std::iter::once(Kind::Hello)
            .chain(Kind::OPERATION_OUTCOMES)
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker says about itself in its `hello` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the worker speaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u64>,
    /// The library it puts under test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// The library's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The library's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The optional features it declares (see [`capability`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The `seq` of the command answered.
    pub seq: u64,
    /// What happened.
    pub outcome: Kind,
    /// Words for a person, shown in failure reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fields of the reply to `hello`, which sit beside the others.
    #[serde(flatten)]
    pub hello: Hello,
    /// The child's process ID, in the reply to `spawn_child`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The number read by `witness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    /// Whether `witness` found another witness at work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision: Option<bool>,
    /// The shared monotonic clock when the library call began, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    /// The shared monotonic clock when the operation completed, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ns: Option<u64>,
}

impl Reply {
    /// A plain reply with `outcome`, completed now.
    pub fn new(seq: u64, outcome: Kind) -> Reply {
        Reply {
            seq,
            outcome,
            detail: None,
            hello: Hello::default(),
            pid: None,
            value: None,
            collision: None,
            start_ns: None,
            t_ns: Some(now_ns()),
        }
    }

    /// The line that carries this reply, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a reply always serialises")
    }

    /// The library call's start and end on the shared clock, when the reply has both.
    pub fn span(&self) -> Option<Span> {
        match (self.start_ns, self.t_ns) {
            (Some(start_ns), Some(t_ns)) if start_ns <= t_ns => Some(Span { start_ns, t_ns }),
            _ => None,
        }
    }
}

/// A library call's start and end on the shared monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When the call began, in nanoseconds.
    pub start_ns: u64,
    /// When it returned, in nanoseconds.
    pub t_ns: u64,
}

impl Span {
    /// How long the call took.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.t_ns - self.start_ns)
    }
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// One call of a lock object's contention callback.
    Callback,
}

/// One event line: something that happened outside any reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The lock object it happened to.
    pub handle: String,
    /// When, on the shared monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ns: Option<u64>,
}

impl Event {
    /// The line that carries this event, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }
}

/// One line from a worker: a reply (it has a `seq`) or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Reply(Reply),
    Event(Event),
}

/// Why a worker's line is not a message, each a way of breaking the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// Not JSON at all.
    NotJson(String),
    /// JSON, but not an object.
    NotObject,
    /// A `seq` that is not a non-negative integer.
    BadSeq,
    /// A reply whose outcome this protocol does not define.
    UnknownOutcome { seq: u64, outcome: String },
    /// Neither a `seq` nor a known `event`.
    Unrecognised,
    /// A reply or event whose fields are wrong.
    Invalid(String),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::NotJson(e) => write!(f, "a line that is not JSON ({e})"),
            MessageError::NotObject => f.write_str("JSON that is not an object"),
            MessageError::BadSeq => f.write_str("a `seq` that is not an integer"),
            MessageError::UnknownOutcome { seq, outcome } => {
                write!(
                    f,
                    "an answer to seq {seq} with an unknown outcome {outcome:?}"
                )
            }
            MessageError::Unrecognised => {
                f.write_str("a message that is neither a reply (no `seq`) nor a known event")
            }
            MessageError::Invalid(e) => write!(f, "a message with wrong fields ({e})"),
        }
    }
}

impl std::error::Error for MessageError {}

impl Message {
    /// Parses one line from a worker.
    ///
    /// # Errors
    ///
    /// Returns how the line breaks the protocol.
    pub fn parse(line: &str) -> Result<Message, MessageError> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| MessageError::NotJson(e.to_string()))?;
        let object = value.as_object().ok_or(MessageError::NotObject)?;
        if let Some(seq) = object.get("seq") {
            let seq = seq.as_u64().ok_or(MessageError::BadSeq)?;
            let outcome = object.get("outcome").and_then(|o| o.as_str());
            if outcome.and_then(Kind::parse).is_none() {
                return Err(MessageError::UnknownOutcome {
                    seq,
                    outcome: outcome.unwrap_or_default().to_owned(),
                });
            }
            return serde_json::from_value(value)
                .map(Message::Reply)
                .map_err(|e| MessageError::Invalid(e.to_string()));
        }
        if object.get("event").and_then(|e| e.as_str()) == Some("callback") {
            return serde_json::from_value(value)
                .map(Message::Event)
                .map_err(|e| MessageError::Invalid(e.to_string()));
        }
        Err(MessageError::Unrecognised)
    }
}

#[cfg(test)]
mod tests;
