//! The server: reads commands, runs each on its protocol thread, writes replies and events.
//!
//! The reading thread only parses and queues. Every protocol thread name gets a real OS thread
//! (a *lane*) with its own FIFO queue on first use, so a blocked acquire on one lane never delays
//! another. Lock objects and plain files live in maps shared by all lanes; a lane takes what it
//! needs out of a map and lets go of the map's mutex before it calls into the library.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{self, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{Backend, CAPABILITY_CALLBACK, Callback, IDLE_CHILD_FLAG, Info, LockObject, Outcome};
use lockspec_protocol::{
    Command, Event, EventKind, Hello, Kind, Op, PROTOCOL_VERSION, Reply, now_ns,
};

/// A worker's server: the lanes it started and the state they share.
pub(crate) struct Server {
    shared: Arc<Shared>,
    lanes: HashMap<String, Lane>,
}

/// The state every lane shares.
struct Shared {
    backend: Box<dyn Backend>,
    info: Info,
    handles: Mutex<HashMap<String, Arc<dyn LockObject>>>,
    files: Mutex<HashMap<String, File>>,
    output: Arc<Output>,
    /// The executable that `spawn_child` starts, or why there is none.
    child_exe: Result<PathBuf, String>,
}

/// The single writer of replies and events: one line per message, flushed at once.
struct Output {
    sink: Mutex<Box<dyn Write + Send>>,
}

/// What the reply to a command says besides its `seq`.
#[derive(Debug)]
struct Answer {
    outcome: Outcome,
    /// The child's process ID, for `spawn_child`.
    pid: Option<u32>,
    /// The number read and whether there was a collision, for `witness`.
    witnessed: Option<(u64, bool)>,
    /// When the library call began, for `acquire`, `release` and `witness`.
    start_ns: Option<u64>,
    /// When the operation completed.
    t_ns: u64,
}

impl Answer {
    /// An answer for an operation that has just completed.
    fn now(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            pid: None,
            witnessed: None,
            start_ns: None,
            t_ns: now_ns(),
        }
    }

    /// An answer with the times of the call that produced it.
    fn timed<T>(call: impl FnOnce() -> T) -> (T, Answer) {
        let start_ns = now_ns();
        let result = call();
        let mut answer = Answer::now(Outcome::Ok);
        answer.start_ns = Some(start_ns);
        (result, answer)
    }
}

/// One protocol thread: its queue and the OS thread that drains it.
struct Lane {
    queue: Sender<Command>,
    thread: JoinHandle<()>,
}

/// The lanes still running when the input ends.
pub(crate) struct Lanes(Vec<Lane>);

/// Why the server stopped before the end of its input.
#[derive(Debug)]
pub(crate) enum ServeError {
    /// The input could not be read (or was not UTF-8).
    Read(io::Error),
    /// A line is not a command this protocol knows.
    Parse {
        /// The line's number, from 1.
        number: usize,
        text: String,
        error: serde_json::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Read(error) => write!(f, "cannot read commands: {error}"),
            ServeError::Parse {
                number,
                text,
                error,
            } => write!(f, "line {number} is not a command ({error}): {text:?}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Read(error) => Some(error),
            ServeError::Parse { error, .. } => Some(error),
        }
    }
}

impl Server {
    /// A server for `backend` that writes to `sink` and starts `child_exe` for `spawn_child`.
    pub(crate) fn new(
        backend: Box<dyn Backend>,
        sink: Box<dyn Write + Send>,
        child_exe: io::Result<PathBuf>,
    ) -> Server {
        let info = backend.info();
        let output = Arc::new(Output {
            sink: Mutex::new(sink),
        });
        Server {
            shared: Arc::new(Shared {
                backend,
                info,
                handles: Mutex::default(),
                files: Mutex::default(),
                output,
                child_exe: child_exe.map_err(|e| e.to_string()),
            }),
            lanes: HashMap::new(),
        }
    }

    /// Serves every line of `input`, then returns the lanes, which may still be running commands.
    ///
    /// # Errors
    ///
    /// Stops at the first line that cannot be read or parsed; commands already queued keep running.
    pub(crate) fn run(mut self, input: impl BufRead) -> Result<Lanes, ServeError> {
        for (index, line) in input.lines().enumerate() {
            let text = line.map_err(ServeError::Read)?;
            let command = Command::parse(&text).map_err(|error| ServeError::Parse {
                number: index + 1,
                text,
                error,
            })?;
            self.dispatch(command);
        }
        Ok(Lanes(self.lanes.into_values().collect()))
    }

    /// Queues `command` on its lane, starting the lane on first use.
    pub(crate) fn dispatch(&mut self, command: Command) {
        let name = command.thread();
        if !self.lanes.contains_key(name) {
            let lane = Lane::start(name, Arc::clone(&self.shared));
            self.lanes.insert(name.to_owned(), lane);
        }
        if let Err(mpsc::SendError(command)) = self.lanes[name].queue.send(command) {
            // A lane only stops early when a command panicked, and then the process exits.
            eprintln!("lockspec-worker: thread {:?} is gone", command.thread());
        }
    }
}

impl Lanes {
    /// Lets every lane run the commands already queued, then waits until all have stopped or
    /// `grace` has passed; returns whether all have stopped.
    ///
    /// A lane blocked in an acquire that waits forever never stops, hence the bound.
    pub(crate) fn finish(self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let threads: Vec<JoinHandle<()>> = self.0.into_iter().map(|lane| lane.thread).collect();
        loop {
            if threads.iter().all(JoinHandle::is_finished) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Lane {
    /// Starts the OS thread of the protocol thread `name`.
    fn start(name: &str, shared: Arc<Shared>) -> Lane {
        let (queue, commands) = mpsc::channel::<Command>();
        let thread = thread::Builder::new()
            .name(format!("lane {name}"))
            .spawn(move || {
                for command in commands {
                    let run = std::panic::AssertUnwindSafe(|| shared.execute(command));
                    if std::panic::catch_unwind(run).is_err() {
                        // The command will never be answered; exiting tells the runner at once.
                        eprintln!("lockspec-worker: a command panicked; exiting");
                        process::exit(101);
                    }
                }
            })
            .expect("cannot start a worker thread");
        Lane { queue, thread }
    }
}

impl Shared {
    /// Runs one command and writes its reply.
    fn execute(&self, command: Command) {
        let seq = command.seq;
        let answer = match command.op {
            Op::Hello { .. } => {
                self.output.hello(seq, &self.info);
                return;
            }
            Op::Acquire { handle } => self.call(&handle, |object| object.acquire()),
            Op::Release { handle } => self.call(&handle, |object| object.release()),
            Op::Witness { path } => {
                let (result, mut answer) = Answer::timed(|| witness(&path));
                match result {
                    Ok(witnessed) => answer.witnessed = Some(witnessed),
                    Err(error) => {
                        let detail = format!("witness on {} failed: {error}", path.display());
                        answer.outcome = Outcome::IoError(detail);
                    }
                }
                answer
            }
            Op::Sleep { ms } => {
                let ((), answer) = Answer::timed(|| thread::sleep(Duration::from_millis(ms)));
                answer
            }
            Op::SpawnChild { .. } => match self.spawn_child() {
                Ok(pid) => Answer {
                    pid: Some(pid),
                    ..Answer::now(Outcome::Ok)
                },
                Err(outcome) => Answer::now(outcome),
            },
            Op::Open {
                handle,
                path,
                timeout_ms,
                callback,
            } => {
                let timeout = timeout_ms.map(Duration::from_millis);
                Answer::now(self.open(handle, &path, timeout, callback))
            }
            Op::Close { handle } => Answer::now(self.close(&handle)),
            Op::FileOpen { file, path } => Answer::now(self.file_open(file, &path)),
            Op::FileClose { file } => Answer::now(self.file_close(&file)),
        };
        self.output.reply(seq, &answer);
    }

    /// Calls the lock object bound to `handle`, timing the call.
    fn call(&self, handle: &str, call: impl FnOnce(&dyn LockObject) -> Outcome) -> Answer {
        match self.handle(handle) {
            Ok(object) => {
                let (outcome, answer) = Answer::timed(|| call(&*object));
                Answer { outcome, ..answer }
            }
            Err(outcome) => Answer::now(outcome),
        }
    }

    /// Drops the lock object bound to `handle`.
    fn close(&self, handle: &str) -> Outcome {
        let object = lock(&self.handles).remove(handle);
        match object {
            Some(object) => {
                drop(object);
                Outcome::Ok
            }
            None => unknown("handle", handle),
        }
    }

    /// Opens a plain read-only handle on `path` and binds it to `file`.
    fn file_open(&self, file: String, path: &Path) -> Outcome {
        match File::open(path) {
            Ok(opened) => {
                let previous = lock(&self.files).insert(file, opened);
                drop(previous);
                Outcome::Ok
            }
            Err(error) => Outcome::IoError(format!("cannot open {}: {error}", path.display())),
        }
    }

    /// Closes the plain handle bound to `file`.
    fn file_close(&self, file: &str) -> Outcome {
        let closed = lock(&self.files).remove(file);
        match closed {
            Some(closed) => {
                drop(closed);
                Outcome::Ok
            }
            None => unknown("file", file),
        }
    }

    /// Creates a lock object and binds it to `handle`.
    fn open(
        &self,
        handle: String,
        path: &Path,
        timeout: Option<Duration>,
        callback: bool,
    ) -> Outcome {
        let callback = if callback {
            if !self
                .info
                .capabilities
                .iter()
                .any(|c| c == CAPABILITY_CALLBACK)
            {
                return Outcome::Unsupported(format!(
                    "{} has no contention callback",
                    self.info.implementation
                ));
            }
            let output = Arc::clone(&self.output);
            let name = handle.clone();
            Some(Box::new(move || output.callback(&name)) as Callback)
        } else {
            None
        };
        match self.backend.open(path, timeout, callback) {
            Ok(object) => {
                let previous = lock(&self.handles).insert(handle, Arc::from(object));
                drop(previous);
                Outcome::Ok
            }
            Err(outcome) => outcome,
        }
    }

    /// The lock object bound to `name`, taken out of the map so that the map is free again.
    fn handle(&self, name: &str) -> Result<Arc<dyn LockObject>, Outcome> {
        let object = lock(&self.handles).get(name).cloned();
        object.ok_or_else(|| unknown("handle", name))
    }

    /// Starts an idle child with the process API's defaults, so that it inherits what the library
    /// leaks, and returns its process ID.
    fn spawn_child(&self) -> Result<u32, Outcome> {
        let exe = self
            .child_exe
            .as_ref()
            .map_err(|e| Outcome::IoError(format!("cannot find the worker's executable: {e}")))?;
        let child = process::Command::new(exe)
            .arg(IDLE_CHILD_FLAG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Outcome::IoError(format!("cannot start {}: {e}", exe.display())))?;
        // Dropping a `Child` neither waits for it nor kills it; the runner kills it by its ID.
        Ok(child.id())
    }
}

/// The reply to a command that names something never opened: a bug of the runner.
fn unknown(what: &str, name: &str) -> Outcome {
    eprintln!("lockspec-worker: the runner named an unknown {what} {name:?}");
    Outcome::IoError(format!("unknown {what} {name}"))
}

/// The data witness: creates `PATH.sentinel` exclusively (an existing one is a collision), adds
/// one to the decimal number in `PATH` (missing or empty: 0), and removes the sentinel it created.
/// Returns the number read and whether there was a collision.
fn witness(path: &Path) -> io::Result<(u64, bool)> {
    let mut sentinel = path.as_os_str().to_owned();
    sentinel.push(".sentinel");
    let sentinel = PathBuf::from(sentinel);
    let created = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&sentinel)
    {
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => false,
        Err(error) => return Err(error),
    };
    let counted = count(path);
    if created {
        fs::remove_file(&sentinel)?;
    }
    Ok((counted?, !created))
}

/// Reads the decimal number in `path` (missing or empty: 0), writes back one more, and returns
/// the number read.
fn count(path: &Path) -> io::Result<u64> {
    let value: u64 = match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => 0,
        Ok(text) => text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a decimal integer: {text:?}"),
            )
        })?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(error),
    };
    let next = value.checked_add(1).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "the counter is at its maximum")
    })?;
    fs::write(path, next.to_string())?;
    Ok(value)
}

/// Locks a map; a panic elsewhere exits the process, so a poisoned map is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Output {
    /// Writes the reply to `seq`.
    fn reply(&self, seq: u64, answer: &Answer) {
        self.emit(
            &Reply {
                detail: answer.outcome.detail().map(str::to_owned),
                pid: answer.pid,
                value: answer.witnessed.map(|(value, _)| value),
                collision: answer.witnessed.map(|(_, collision)| collision),
                start_ns: answer.start_ns,
                t_ns: Some(answer.t_ns),
                ..Reply::new(seq, answer.outcome.kind())
            }
            .to_line(),
        );
    }

    /// Writes the reply to `hello`: always this crate's protocol version, whatever the runner's.
    fn hello(&self, seq: u64, info: &Info) {
        self.emit(
            &Reply {
                hello: Hello {
                    protocol: Some(PROTOCOL_VERSION),
                    implementation: Some(info.implementation.clone()),
                    version: Some(info.version.clone()),
                    language: Some(info.language.clone()),
                    capabilities: info.capabilities.clone(),
                },
                ..Reply::new(seq, Kind::Hello)
            }
            .to_line(),
        );
    }

    /// Writes one `callback` event for `handle`.
    fn callback(&self, handle: &str) {
        self.emit(
            &Event {
                event: EventKind::Callback,
                handle: handle.to_owned(),
                t_ns: Some(now_ns()),
            }
            .to_line(),
        );
    }

    /// Writes one message as one line and flushes it.
    fn emit(&self, line: &str) {
        let line = format!("{line}\n");
        let mut sink = lock(&self.sink);
        if let Err(error) = sink.write_all(line.as_bytes()).and_then(|()| sink.flush()) {
            eprintln!("lockspec-worker: cannot write to the runner: {error}");
        }
    }
}

#[cfg(test)]
mod tests;
