//! `lockspec-worker-misbehave`: a worker that breaks the protocol on purpose, for the harness's
//! own tests (`tests/harness.rs`); the runner must blame the worker, promptly, and leave no
//! process behind.
//!
//! Usage: `lockspec-worker-misbehave --mode MODE [--marker WORD] [--touch FILE]`. `--marker` is
//! ignored except that every process this worker starts gets it too, so that a test can find them
//! all in the process table. `--touch` creates FILE first thing, so that a test can tell whether a
//! worker was started at all. With `--mode good` it is a correct, single-threaded worker over the reference
//! lock (enough for scenarios that use one thread per process); every other mode is that worker
//! with one fault. It speaks protocol version 1, without call times, so that the runner's way of
//! judging version 1 workers stays tested too.
//!
//! | mode | fault |
//! | --- | --- |
//! | `hang` | never reads, never answers, not even `hello` |
//! | `hang-after-hello` | answers `hello`, then reads and ignores every command |
//! | `ignore-sigterm` | ignores SIGTERM, SIGINT and SIGHUP, then behaves as `hang-after-hello` |
//! | `panic` | panics at the first `acquire` |
//! | `abort` | aborts (SIGABRT, no core file) at the first `acquire` |
//! | `exit-at-once` | exits with status 3 before reading anything |
//! | `not-json` | answers the first command after `hello` with a line that is not JSON |
//! | `half-line` | answers the first command after `hello` with half a line, then exits |
//! | `wrong-seq` | answers every command after `hello` with its `seq` plus 1000 |
//! | `answer-twice` | writes every reply twice |
//! | `bad-outcome` | answers every command after `hello` with the outcome `granted` |
//! | `future-protocol` | answers `hello` with a protocol version no runner speaks (99) |
//! | `flood-stderr` | writes 8 MiB to stderr first, then behaves (stderr is for diagnostics) |
//! | `spawn-child` | at the first `open`, starts a child that starts a grandchild that calls `setsid`, both sleeping forever and holding stdout open; exits with status 4 at the first `acquire` |
//! | `spawn-child-then-hang` | starts the same child at the first `open`, then answers nothing after that `open` |

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use lockspec_protocol::{Command as Wire, Hello, Kind, Op, Reply};
use lockspec_reference::{Error, FileLock};

/// The protocol version of `spec/PROTOCOL.md` that this worker speaks (when it behaves).
const PROTOCOL: u64 = 1;

/// The version the `future-protocol` mode claims.
const FUTURE_PROTOCOL: u64 = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    Hang,
    HangAfterHello,
    IgnoreSigterm,
    Panic,
    Abort,
    ExitAtOnce,
    NotJson,
    HalfLine,
    WrongSeq,
    AnswerTwice,
    BadOutcome,
    FutureProtocol,
    FloodStderr,
    SpawnChild,
    SpawnChildThenHang,
    /// Internal: the child of `spawn-child`.
    Child,
    /// Internal: the grandchild of `spawn-child`.
    Grandchild,
}

impl Mode {
    fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "good" => Mode::Good,
            "hang" => Mode::Hang,
            "hang-after-hello" => Mode::HangAfterHello,
            "ignore-sigterm" => Mode::IgnoreSigterm,
            "panic" => Mode::Panic,
            "abort" => Mode::Abort,
            "exit-at-once" => Mode::ExitAtOnce,
            "not-json" => Mode::NotJson,
            "half-line" => Mode::HalfLine,
            "wrong-seq" => Mode::WrongSeq,
            "answer-twice" => Mode::AnswerTwice,
            "bad-outcome" => Mode::BadOutcome,
            "future-protocol" => Mode::FutureProtocol,
            "flood-stderr" => Mode::FloodStderr,
            "spawn-child" => Mode::SpawnChild,
            "spawn-child-then-hang" => Mode::SpawnChildThenHang,
            "child" => Mode::Child,
            "grandchild" => Mode::Grandchild,
            _ => return None,
        })
    }
}

const USAGE: &str = "usage: lockspec-worker-misbehave --mode MODE [--marker WORD] [--touch FILE]";

fn main() {
    let mut mode = None;
    let mut marker = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--mode", Some(name)) => match Mode::parse(&name) {
                Some(m) => mode = Some(m),
                None => fail(&format!("unknown mode {name:?}")),
            },
            ("--marker", Some(word)) => marker = word,
            ("--touch", Some(path)) => {
                if let Err(e) = File::create(&path) {
                    fail(&format!("cannot create {path}: {e}"));
                }
            }
            _ => fail(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(mode) = mode else {
        fail("--mode is required")
    };
    Worker {
        mode,
        marker,
        out: std::io::stdout(),
        handles: HashMap::new(),
        files: HashMap::new(),
    }
    .run()
}

fn fail(message: &str) -> ! {
    eprintln!("lockspec-worker-misbehave: {message}\n{USAGE}");
    std::process::exit(2)
}

/// Sleeps until killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::park();
    }
}

struct Worker {
    mode: Mode,
    marker: String,
    out: std::io::Stdout,
    handles: HashMap<String, FileLock>,
    files: HashMap<String, File>,
}

impl Worker {
    fn run(mut self) -> ! {
        match self.mode {
            Mode::Hang => sleep_forever(),
            Mode::ExitAtOnce => std::process::exit(3),
            Mode::Child => {
                self.start(Mode::Grandchild);
                sleep_forever()
            }
            Mode::Grandchild => {
                sys::leave_session();
                sleep_forever()
            }
            Mode::IgnoreSigterm => sys::ignore_termination(),
            Mode::FloodStderr => {
                let chunk = "lockspec-worker-misbehave: a line of noise on stderr\n".repeat(1024);
                let mut stderr = std::io::stderr().lock();
                let mut written = 0;
                while written < 8 << 20 {
                    let _ = stderr.write_all(chunk.as_bytes());
                    written += chunk.len();
                }
            }
            _ => {}
        }
        let stdin = std::io::stdin().lock();
        for line in stdin.lines() {
            let Ok(line) = line else {
                fail("cannot read stdin")
            };
            let Ok(command) = Wire::parse(&line) else {
                fail(&format!("not a command: {line:?}"))
            };
            self.serve(command);
        }
        std::process::exit(0)
    }

    fn serve(&mut self, command: Wire) {
        let seq = command.seq;
        let op = command.op.name();
        if op == "hello" {
            let protocol = if self.mode == Mode::FutureProtocol {
                FUTURE_PROTOCOL
            } else {
                PROTOCOL
            };
            let hello = Hello {
                protocol: Some(protocol),
                implementation: Some("misbehave".into()),
                version: Some("0.1.0".into()),
                language: Some("rust".into()),
                capabilities: Vec::new(),
            };
            return self.write(&Reply {
                hello,
                ..v1_reply(seq, Kind::Hello)
            });
        }
        match self.mode {
            Mode::HangAfterHello | Mode::IgnoreSigterm => return,
            Mode::NotJson => self.write_raw("this is not JSON\n"),
            Mode::HalfLine => {
                self.write_raw(&format!("{{\"seq\": {seq}, \"outc"));
                std::process::exit(0)
            }
            Mode::Panic if op == "acquire" => panic!("misbehaving on purpose at {op} (seq {seq})"),
            Mode::Abort if op == "acquire" => {
                sys::no_core_file();
                std::process::abort()
            }
            Mode::SpawnChild if op == "acquire" => std::process::exit(4),
            Mode::SpawnChildThenHang if !self.handles.is_empty() => return,
            Mode::SpawnChild | Mode::SpawnChildThenHang
                if op == "open" && self.handles.is_empty() =>
            {
                self.start(Mode::Child);
            }
            _ => {}
        }
        let (outcome, detail) = match command.op {
            Op::Open {
                handle,
                path,
                timeout_ms,
                ..
            } => match FileLock::open(&path) {
                Ok(lock) => {
                    let timeout = timeout_ms.map(Duration::from_millis);
                    self.handles.insert(handle, lock.with_timeout(timeout));
                    (Kind::Ok, None)
                }
                Err(e) => outcome(&e),
            },
            Op::Acquire { handle } => match self.handles.get(&handle) {
                Some(lock) => lock
                    .acquire()
                    .map_or_else(|e| outcome(&e), |()| (Kind::Acquired, None)),
                None => (Kind::IoError, Some("unknown handle".to_owned())),
            },
            Op::Release { handle } => match self.handles.get(&handle) {
                Some(lock) => lock
                    .release()
                    .map_or_else(|e| outcome(&e), |()| (Kind::Released, None)),
                None => (Kind::IoError, Some("unknown handle".to_owned())),
            },
            Op::Close { handle } => {
                self.handles.remove(&handle);
                (Kind::Ok, None)
            }
            Op::FileOpen { file, path } => match File::open(path) {
                Ok(f) => {
                    self.files.insert(file, f);
                    (Kind::Ok, None)
                }
                Err(e) => (Kind::IoError, Some(e.to_string())),
            },
            Op::FileClose { file } => {
                self.files.remove(&file);
                (Kind::Ok, None)
            }
            Op::SpawnChild { .. } => {
                let pid = self.start(Mode::Child);
                return self.write(&Reply {
                    pid: Some(pid),
                    ..v1_reply(seq, Kind::Ok)
                });
            }
            _ => (Kind::Unsupported, Some(format!("no op {op:?} here"))),
        };
        let seq = if self.mode == Mode::WrongSeq {
            seq + 1000
        } else {
            seq
        };
        let reply = Reply {
            detail,
            ..v1_reply(seq, outcome)
        };
        if self.mode == Mode::BadOutcome {
            // An outcome the protocol does not have cannot be built from its types.
            let line = reply.to_line().replacen(
                &format!("\"outcome\":\"{}\"", outcome.as_str()),
                "\"outcome\":\"granted\"",
                1,
            );
            return self.write_line(&line);
        }
        self.write(&reply);
    }

    /// Starts this program in `mode` with the same marker, stdout inherited, and returns its ID.
    fn start(&self, mode: Mode) -> u32 {
        let name = match mode {
            Mode::Child => "child",
            _ => "grandchild",
        };
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no executable: {e}")));
        Command::new(exe)
            .args(["--mode", name, "--marker", &self.marker])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start a {name}: {e}")))
            .id()
    }

    fn write(&mut self, reply: &Reply) {
        self.write_line(&reply.to_line());
    }

    fn write_line(&mut self, line: &str) {
        let line = format!("{line}\n");
        if self.mode == Mode::AnswerTwice {
            self.write_raw(&line.repeat(2));
        } else {
            self.write_raw(&line);
        }
    }

    fn write_raw(&mut self, text: &str) {
        let mut out = self.out.lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(1);
        }
    }
}

/// A reply as a version 1 worker writes it: no times.
fn v1_reply(seq: u64, outcome: Kind) -> Reply {
    Reply {
        t_ns: None,
        ..Reply::new(seq, outcome)
    }
}

/// The protocol's outcome for an error of the reference lock.
fn outcome(error: &Error) -> (Kind, Option<String>) {
    match error {
        Error::TimedOut { timeout, .. } if timeout.is_zero() => (Kind::WouldBlock, None),
        Error::TimedOut { .. } => (Kind::TimedOut, None),
        Error::NotHeld { .. } => (Kind::NotHeld, None),
        _ => (Kind::IoError, Some(error.to_string())),
    }
}

#[cfg(unix)]
mod sys {
    /// Leaves the process group and the session of the worker, as a daemon would.
    pub fn leave_session() {
        // SAFETY: setsid has no memory effects.
        unsafe {
            libc::setsid();
        }
    }

    /// Ignores the signals that ask a process to end.
    pub fn ignore_termination() {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: setting a signal's disposition to SIG_IGN.
            unsafe {
                libc::signal(signal, libc::SIG_IGN);
            }
        }
    }

    /// Keeps an abort from leaving a core file in the trial's directory.
    pub fn no_core_file() {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
        }
    }
}

#[cfg(not(unix))]
mod sys {
    pub fn leave_session() {}

    pub fn ignore_termination() {}

    pub fn no_core_file() {}
}
