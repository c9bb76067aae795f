//! The one protocol client: starts workers, sends typed commands, delivers typed replies and
//! events, and says how a worker broke the protocol. The trial engine, the stress driver and the
//! benchmark all speak to workers through a [`Session`].
//!
//! A session owns its workers: dropping it kills every one of them with everything they started.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use lockspec_protocol::{
    Command, Event, Hello, Message, Op, PROTOCOL_VERSION, Reply, SUPPORTED_VERSIONS,
};

use crate::process::{Implementation, Incoming, Msg, WorkerProcess};

/// How often a wait for messages checks that the workers are still running.
const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// How long the output of a worker that has exited may take to arrive.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// How a worker broke the protocol, or could not be driven at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenKind {
    /// It could not be started.
    Spawn,
    /// Its stdin could not be written.
    Write,
    /// It wrote something that is not a message of the protocol.
    NotAMessage,
    /// It answered a `seq` that was not sent, or was already answered.
    UnexpectedSeq,
    /// It speaks a protocol version this runner does not.
    Version,
    /// A version 2 reply to a timed operation without its `start_ns` and `t_ns`.
    MissingTimes,
    /// It exited, or closed its output, without being told to.
    Exited,
    /// It did not answer `hello` in time.
    NoHello,
    /// It did not answer a command that never waits for a lock.
    Stuck,
    /// It wrote an event outside the operation it belongs to.
    StrayEvent,
}

/// A worker that broke the protocol: what kind of break, which worker, and the words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The kind of break, decided where it was seen.
    pub kind: BrokenKind,
    /// The worker's index in its session, when one worker is to blame.
    pub worker: Option<usize>,
    /// What happened, naming the worker.
    pub message: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Broken {}

/// A command sent and not yet answered.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The operation's name (`acquire`, ...).
    pub op: &'static str,
    /// Whether the lock may rightly make it wait ([`Op::calls_lock`]).
    pub calls_lock: bool,
    /// Whether its reply must carry times in version 2 ([`Op::is_timed`]).
    pub timed: bool,
    /// The lock object it concerns, for `open`, `acquire`, `release` and `close`.
    pub handle: Option<String>,
    /// When the runner wrote it.
    pub at: Instant,
    /// The same moment on the shared monotonic clock.
    pub at_ns: u64,
}

/// One message from a worker, with when the runner received it.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The reply to a command that the session sent.
    Reply {
        worker: usize,
        reply: Box<Reply>,
        /// The command it answers.
        sent: Sent,
        at: Instant,
        at_ns: u64,
    },
    /// An event.
    Event {
        worker: usize,
        event: Event,
        at: Instant,
        at_ns: u64,
    },
}

/// One worker of a session.
#[derive(Debug)]
struct Worker {
    name: String,
    process: WorkerProcess,
    next_seq: u64,
    outstanding: HashMap<u64, Sent>,
    hello: Option<Hello>,
}

/// A set of workers in one directory, driven over the protocol.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    workers: Vec<Worker>,
}

impl Session {
    /// A session whose workers run in `dir`.
    pub fn new(dir: &Path) -> Session {
        let (tx, rx) = mpsc::channel();
        Session {
            dir: dir.to_owned(),
            tx,
            rx,
            workers: Vec::new(),
        }
    }

    /// Starts a worker of `imp`, called `name` in messages, and returns its index.
    ///
    /// # Errors
    ///
    /// [`BrokenKind::Spawn`] when the program cannot be started; the source error is in the
    /// message.
    pub fn spawn(
        &mut self,
        imp: &Implementation,
        name: impl Into<String>,
        unprivileged: bool,
    ) -> Result<usize, (Broken, std::io::Error)> {
        let index = self.workers.len();
        let name = name.into();
        match WorkerProcess::spawn(imp, index, &self.dir, self.tx.clone(), unprivileged) {
            Ok(process) => {
                self.workers.push(Worker {
                    name,
                    process,
                    next_seq: 0,
                    outstanding: HashMap::new(),
                    hello: None,
                });
                Ok(index)
            }
            Err(error) => Err((
                Broken {
                    kind: BrokenKind::Spawn,
                    worker: None,
                    message: format!("cannot start the worker `{}`: {error}", imp.command_line()),
                },
                error,
            )),
        }
    }

    /// The number of workers started.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether no worker was started.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The name of worker `w`.
    pub fn name(&self, w: usize) -> &str {
        &self.workers[w].name
    }

    /// The process ID of worker `w`, to watch it from outside (its CPU time, its threads).
    pub fn pid(&self, w: usize) -> u32 {
        self.workers[w].process.id()
    }

    /// What worker `w` said in its `hello` reply, once it answered.
    pub fn hello(&self, w: usize) -> Option<&Hello> {
        self.workers[w].hello.as_ref()
    }

    /// The protocol version worker `w` speaks, once it answered `hello`.
    pub fn version(&self, w: usize) -> Option<u64> {
        self.hello(w).and_then(|h| h.protocol)
    }

    /// Whether worker `w` times its lock calls (version 2 or later), so that verdicts may be
    /// judged on its clock.
    pub fn timed(&self, w: usize) -> bool {
        self.version(w).is_some_and(|v| v >= 2)
    }

    /// The command `seq` of worker `w`, while it is unanswered.
    pub fn sent(&self, w: usize, seq: u64) -> Option<&Sent> {
        self.workers[w].outstanding.get(&seq)
    }

    /// How many commands of worker `w` are unanswered.
    pub fn unanswered(&self, w: usize) -> usize {
        self.workers[w].outstanding.len()
    }

    /// Whether worker `w` was killed on purpose.
    pub fn killed(&self, w: usize) -> bool {
        self.workers[w].process.killed
    }

    /// The last part of what worker `w` wrote to stderr.
    pub fn stderr_tail(&self, w: usize) -> String {
        self.workers[w].process.stderr_tail()
    }

    /// Records a process that worker `w` reported starting, to be killed with it.
    pub fn add_child(&mut self, w: usize, pid: u32) {
        self.workers[w].process.add_child(pid);
    }

    /// Sends `op` to worker `w` on `thread` (`None`: the default thread) and returns its `seq`.
    ///
    /// # Errors
    ///
    /// [`BrokenKind::Write`] when the worker's stdin cannot be written.
    pub fn send(&mut self, w: usize, thread: Option<&str>, op: Op) -> Result<u64, Broken> {
        let worker = &mut self.workers[w];
        let seq = worker.next_seq;
        worker.next_seq += 1;
        let sent = Sent {
            op: op.name(),
            calls_lock: op.calls_lock(),
            timed: op.is_timed(),
            handle: match &op {
                Op::Open { handle, .. }
                | Op::Acquire { handle }
                | Op::Release { handle }
                | Op::Close { handle } => Some(handle.clone()),
                _ => None,
            },
            at: Instant::now(),
            at_ns: lockspec_protocol::now_ns(),
        };
        let command = Command {
            seq,
            thread: thread.map(str::to_owned),
            op,
        };
        if let Err(e) = worker.process.send(&command.to_line()) {
            let status = worker.process.exit_status(Duration::from_millis(200));
            return Err(Broken {
                kind: BrokenKind::Write,
                worker: Some(w),
                message: format!(
                    "cannot write to worker {} ({e}); {}",
                    worker.name,
                    describe_exit(status)
                ),
            });
        }
        worker.outstanding.insert(seq, sent);
        Ok(seq)
    }

    /// Sends `hello` to every worker that has not answered it, and waits until `deadline` for
    /// their replies; events and other replies that arrive meanwhile are returned to the caller
    /// in `other`.
    ///
    /// # Errors
    ///
    /// [`BrokenKind::NoHello`] for the first worker that did not answer in time, or whatever
    /// break [`Session::next`] saw.
    pub fn handshake(
        &mut self,
        deadline: Instant,
        other: &mut Vec<Delivery>,
    ) -> Result<(), Broken> {
        let waiting: Vec<usize> = (0..self.workers.len())
            .filter(|&w| self.workers[w].hello.is_none())
            .collect();
        for &w in &waiting {
            self.send(
                w,
                None,
                Op::Hello {
                    protocol: Some(PROTOCOL_VERSION),
                },
            )?;
        }
        while let Some(&w) = waiting.iter().find(|&&w| self.workers[w].hello.is_none()) {
            match self.next(deadline)? {
                Some(delivery) => {
                    if !matches!(&delivery, Delivery::Reply { sent, .. } if sent.op == "hello") {
                        other.push(delivery);
                    }
                }
                None => {
                    return Err(Broken {
                        kind: BrokenKind::NoHello,
                        worker: Some(w),
                        message: format!("worker {} did not answer `hello` in time", self.name(w)),
                    });
                }
            }
        }
        Ok(())
    }

    /// The next message from any worker, waiting until `deadline`; `None` when none came by
    /// then. Messages of workers killed on purpose are dropped.
    ///
    /// # Errors
    ///
    /// How a worker broke the protocol: a line that is not a message, a reply to a `seq` not
    /// awaiting one, a version this runner does not speak, a version 2 reply without its times,
    /// or an exit that the session did not cause.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<Delivery>, Broken> {
        loop {
            let now = Instant::now();
            let msg = match self.rx.try_recv() {
                Ok(msg) => msg,
                Err(_) if now >= deadline => return Ok(None),
                Err(_) => match self.rx.recv_timeout((deadline - now).min(LIVENESS_POLL)) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        self.check_alive()?;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the session keeps a sender")
                    }
                },
            };
            if let Some(delivery) = self.receive(msg)? {
                return Ok(Some(delivery));
            }
        }
    }

    /// The next message that has already arrived, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Session::next`].
    pub fn try_next(&mut self) -> Result<Option<Delivery>, Broken> {
        while let Ok(msg) = self.rx.try_recv() {
            if let Some(delivery) = self.receive(msg)? {
                return Ok(Some(delivery));
            }
        }
        Ok(None)
    }

    /// Kills worker `w` (not its children) and reaps it, so that the system has released whatever
    /// it held when this returns; its unanswered commands are forgotten.
    ///
    /// # Errors
    ///
    /// The system's error when the process cannot be killed.
    pub fn kill(&mut self, w: usize) -> std::io::Result<()> {
        let worker = &mut self.workers[w];
        worker.outstanding.clear();
        worker.process.kill()
    }

    /// Kills worker `w` with everything it started, and reaps it.
    pub fn kill_tree(&mut self, w: usize) {
        let worker = &mut self.workers[w];
        worker.outstanding.clear();
        worker.process.kill_all();
    }

    /// Kills every worker with everything it started.
    pub fn kill_all(&mut self) {
        for worker in &mut self.workers {
            worker.process.kill_all();
        }
    }

    fn broken(&self, w: usize, kind: BrokenKind, message: String) -> Broken {
        Broken {
            kind,
            worker: Some(w),
            message,
        }
    }

    /// Turns one raw message into a delivery, or says how it breaks the protocol.
    fn receive(&mut self, msg: Msg) -> Result<Option<Delivery>, Broken> {
        let w = msg.proc;
        let name = self.workers[w].name.clone();
        if self.workers[w].process.killed {
            // What a worker wrote before it was killed answers nothing any more.
            return Ok(None);
        }
        let line = match msg.incoming {
            Incoming::Line(line) => line,
            Incoming::Eof | Incoming::ReadError(_) => {
                let status = self.workers[w].process.exit_status(EXIT_GRACE);
                let why = match msg.incoming {
                    Incoming::ReadError(e) => format!("worker {name} wrote {e}"),
                    _ => format!("worker {name} closed its output"),
                };
                return Err(self.broken(
                    w,
                    BrokenKind::Exited,
                    format!(
                        "{why}; {} (with {} command(s) unanswered)",
                        describe_exit(status),
                        self.unanswered(w)
                    ),
                ));
            }
        };
        let message = Message::parse(&line).map_err(|e| {
            self.broken(
                w,
                BrokenKind::NotAMessage,
                format!("worker {name} wrote {e}: {line:?}"),
            )
        })?;
        let reply = match message {
            Message::Event(event) => {
                return Ok(Some(Delivery::Event {
                    worker: w,
                    event,
                    at: msg.at,
                    at_ns: msg.at_ns,
                }));
            }
            Message::Reply(reply) => reply,
        };
        let seq = reply.seq;
        let Some(sent) = self.workers[w].outstanding.remove(&seq) else {
            let why = if seq < self.workers[w].next_seq {
                "a second time"
            } else {
                "but no command with that seq was sent"
            };
            return Err(self.broken(
                w,
                BrokenKind::UnexpectedSeq,
                format!("worker {name} answered seq {seq} {why}: {line:?}"),
            ));
        };
        if sent.op == "hello" {
            let version = reply.hello.protocol;
            if !version.is_some_and(|v| SUPPORTED_VERSIONS.contains(&v)) {
                return Err(self.broken(
                    w,
                    BrokenKind::Version,
                    format!(
                        "worker {name} speaks protocol {}, this runner speaks {}",
                        version.map_or("(none given)".into(), |v| v.to_string()),
                        SUPPORTED_VERSIONS.map(|v| v.to_string()).join(" or ")
                    ),
                ));
            }
            self.workers[w].hello = Some(reply.hello.clone());
        } else if sent.timed && self.timed(w) && reply.span().is_none() {
            return Err(self.broken(
                w,
                BrokenKind::MissingTimes,
                format!(
                    "worker {name} speaks protocol 2 but answered `{}` without `start_ns` and `t_ns` (start no later than end): {line:?}",
                    sent.op
                ),
            ));
        }
        Ok(Some(Delivery::Reply {
            worker: w,
            reply: Box::new(reply),
            sent,
            at: msg.at,
            at_ns: msg.at_ns,
        }))
    }

    /// Fails when a worker that the session did not kill has exited, even if a process it
    /// started still holds its output open, so that no end of file arrives.
    fn check_alive(&mut self) -> Result<(), Broken> {
        for w in 0..self.workers.len() {
            if self.workers[w].process.killed {
                continue;
            }
            let Some(status) = self.workers[w].process.exit_status(Duration::ZERO) else {
                continue;
            };
            // Its last lines and its end of file may still be on their way, and say more.
            let grace = Instant::now() + EXIT_GRACE;
            while let Ok(msg) = self
                .rx
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
            {
                if msg.proc == w {
                    self.receive(msg)?;
                }
            }
            return Err(self.broken(
                w,
                BrokenKind::Exited,
                format!(
                    "worker {} exited ({status}) with {} command(s) unanswered, and a process it started still holds its output open",
                    self.workers[w].name,
                    self.unanswered(w)
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// How a worker's exit reads in a message.
pub fn describe_exit(status: Option<std::process::ExitStatus>) -> String {
    match status {
        Some(s) => format!("it exited with {s}"),
        None => "it is still running".into(),
    }
}
