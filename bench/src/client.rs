//! The benchmark's side of the worker protocol: one worker process, commands by `seq`, and
//! replies with the worker's own `start_ns` and `t_ns`. The benchmark asks for no contention
//! callbacks, so events are read and ignored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use lockspec_conformance::process::{Implementation, Incoming, Msg, WorkerProcess};
use serde_json::{Value, json};

/// How long a worker gets to answer `hello`.
const STARTUP: Duration = Duration::from_secs(20);

/// The protocol version the benchmark speaks.
const PROTOCOL_VERSION: u64 = 1;

/// One running worker.
pub struct Worker {
    process: WorkerProcess,
    rx: Receiver<Msg>,
    next_seq: u64,
    /// Replies received but not yet asked for, by `seq`.
    replies: HashMap<u64, Value>,
    /// The worker's reply to `hello`.
    pub hello: Value,
    /// The worker's role (`holder`, `waiter`), for messages.
    name: &'static str,
}

/// A reply to `acquire` or `release`: its outcome and the worker's times of the library call.
#[derive(Debug, Clone)]
pub struct Timed {
    pub outcome: String,
    pub start_ns: u64,
    pub t_ns: u64,
}

impl Timed {
    /// How long the library call took.
    pub fn duration_ns(&self) -> u64 {
        self.t_ns.saturating_sub(self.start_ns)
    }
}

impl Worker {
    /// Starts a worker for `imp` in `dir`, called `role` in messages, and shakes hands.
    ///
    /// # Errors
    ///
    /// When the implementation is unavailable, the process cannot start, or it does not answer
    /// `hello` with protocol version 1.
    pub fn start(imp: &Implementation, dir: &Path, role: &'static str) -> Result<Worker, String> {
        if let Some(why) = &imp.unavailable {
            return Err(why.clone());
        }
        let (tx, rx) = mpsc::channel();
        let process = WorkerProcess::spawn(imp, 0, dir, tx, false)
            .map_err(|e| format!("cannot start `{}`: {e}", imp.command_line()))?;
        let mut worker = Worker {
            process,
            rx,
            next_seq: 0,
            replies: HashMap::new(),
            hello: Value::Null,
            name: role,
        };
        let hello = worker.call(
            json!({"op": "hello", "protocol": PROTOCOL_VERSION}),
            STARTUP,
        )?;
        if hello["protocol"] != PROTOCOL_VERSION {
            return Err(format!(
                "the {role} speaks protocol {}, the benchmark {PROTOCOL_VERSION}",
                hello["protocol"]
            ));
        }
        worker.hello = hello;
        Ok(worker)
    }

    /// The worker's process ID.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Sends `command` (its `seq` is filled in) and returns the `seq`.
    ///
    /// # Errors
    ///
    /// When the worker's stdin is closed.
    pub fn send(&mut self, mut command: Value) -> Result<u64, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        command["seq"] = json!(seq);
        self.process
            .send(&command.to_string())
            .map_err(|e| format!("the {} cannot be sent {command}: {e}", self.name))?;
        Ok(seq)
    }

    /// The reply to `seq`, waiting up to `within`.
    ///
    /// # Errors
    ///
    /// When no reply comes in time, or the worker breaks the protocol or exits.
    pub fn reply(&mut self, seq: u64, within: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(reply) = self.replies.remove(&seq) {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.receive(left)? {
                return Err(format!(
                    "the {} did not answer command {seq} within {within:?}",
                    self.name
                ));
            }
        }
    }

    /// The reply to `seq` if it has already arrived.
    ///
    /// # Errors
    ///
    /// When the worker breaks the protocol or exits.
    pub fn reply_now(&mut self, seq: u64) -> Result<Option<Value>, String> {
        while self.receive(Duration::ZERO)? {}
        Ok(self.replies.remove(&seq))
    }

    /// Sends `command` and waits up to `within` for its reply.
    ///
    /// # Errors
    ///
    /// As [`Worker::send`] and [`Worker::reply`].
    pub fn call(&mut self, command: Value, within: Duration) -> Result<Value, String> {
        let seq = self.send(command)?;
        self.reply(seq, within)
    }

    /// Sends `command` and expects the outcome `expected`.
    ///
    /// # Errors
    ///
    /// As [`Worker::call`], and when the outcome is another.
    pub fn expect(
        &mut self,
        command: Value,
        expected: &str,
        within: Duration,
    ) -> Result<Value, String> {
        let shown = command.to_string();
        let reply = self.call(command, within)?;
        if reply["outcome"] == expected {
            Ok(reply)
        } else {
            Err(format!(
                "the {} answered {shown} with {reply}, expected {expected}",
                self.name
            ))
        }
    }

    /// Receives one message, waiting up to `within`; `Ok(false)` when none came.
    fn receive(&mut self, within: Duration) -> Result<bool, String> {
        let msg = match self.rx.recv_timeout(within) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => return Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("the {}'s output is gone", self.name));
            }
        };
        let line = match msg.incoming {
            Incoming::Line(line) => line,
            Incoming::Eof => {
                return Err(format!(
                    "the {} exited; its stderr:\n{}",
                    self.name,
                    self.process.stderr_tail()
                ));
            }
            Incoming::ReadError(error) => {
                return Err(format!(
                    "the {} wrote something unreadable: {error}",
                    self.name
                ));
            }
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| {
            format!(
                "the {} wrote a line that is not JSON ({e}): {line:?}",
                self.name
            )
        })?;
        if let Some(seq) = value["seq"].as_u64() {
            self.replies.insert(seq, value);
        } else if value["event"].is_null() {
            return Err(format!(
                "the {} wrote neither a reply nor an event: {line}",
                self.name
            ));
        }
        Ok(true)
    }
}

/// The outcome and times of a reply to `acquire` or `release`.
///
/// # Errors
///
/// When the reply lacks `start_ns` or `t_ns`: the benchmark needs the worker's own times.
pub fn timed(reply: &Value) -> Result<Timed, String> {
    let field = |key: &str| {
        reply[key].as_u64().ok_or_else(|| {
            format!(
                "the reply {reply} has no `{key}`; the benchmark needs the times that \
                 spec/PROTOCOL.md asks of replies to acquire and release"
            )
        })
    };
    Ok(Timed {
        outcome: reply["outcome"].as_str().unwrap_or_default().to_owned(),
        start_ns: field("start_ns")?,
        t_ns: field("t_ns")?,
    })
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.process.kill_all();
    }
}
