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
mod tests {
    use std::collections::HashSet;
    use std::sync::Condvar;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::{Value, json};

    use super::*;

    /// An in-memory lock table standing in for a library.
    #[derive(Default)]
    struct Table {
        held: Mutex<HashSet<PathBuf>>,
        freed: Condvar,
    }

    struct Fake {
        table: Arc<Table>,
        capabilities: Vec<String>,
    }

    struct FakeLock {
        table: Arc<Table>,
        path: PathBuf,
        timeout: Option<Duration>,
        callback: Option<Callback>,
        holds: AtomicBool,
    }

    impl Backend for Fake {
        fn info(&self) -> Info {
            Info {
                implementation: "fake".into(),
                version: "9.9".into(),
                language: "rust".into(),
                capabilities: self.capabilities.clone(),
            }
        }

        fn open(
            &self,
            path: &Path,
            timeout: Option<Duration>,
            callback: Option<Callback>,
        ) -> Result<Box<dyn LockObject>, Outcome> {
            if path.as_os_str().is_empty() {
                return Err(Outcome::IoError("empty path".into()));
            }
            Ok(Box::new(FakeLock {
                table: Arc::clone(&self.table),
                path: path.to_owned(),
                timeout,
                callback,
                holds: AtomicBool::new(false),
            }))
        }
    }

    impl LockObject for FakeLock {
        fn acquire(&self) -> Outcome {
            let mut held = lock(&self.table.held);
            if self.holds.load(Ordering::SeqCst) {
                return Outcome::Acquired;
            }
            if held.contains(&self.path) {
                if self.timeout == Some(Duration::ZERO) {
                    return Outcome::WouldBlock;
                }
                if let Some(callback) = &self.callback {
                    callback();
                }
                let deadline = self.timeout.map(|t| Instant::now() + t);
                while held.contains(&self.path) {
                    held = match deadline {
                        None => self.table.freed.wait(held).unwrap(),
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                return Outcome::TimedOut;
                            }
                            self.table.freed.wait_timeout(held, left).unwrap().0
                        }
                    };
                }
            }
            held.insert(self.path.clone());
            self.holds.store(true, Ordering::SeqCst);
            Outcome::Acquired
        }

        fn release(&self) -> Outcome {
            let mut held = lock(&self.table.held);
            if !self.holds.swap(false, Ordering::SeqCst) {
                return Outcome::NotHeld;
            }
            held.remove(&self.path);
            self.table.freed.notify_all();
            Outcome::Released
        }
    }

    /// A `Write` whose bytes the test can read while the server writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let bytes = lock(&self.0).clone();
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "partial line: {text:?}"
            );
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    struct Harness {
        server: Server,
        output: Buffer,
        seq: u64,
    }

    impl Harness {
        fn new(capabilities: &[&str]) -> Harness {
            let output = Buffer::default();
            let backend = Fake {
                table: Arc::default(),
                capabilities: capabilities.iter().map(|&c| c.to_owned()).collect(),
            };
            let server = Server::new(
                Box::new(backend),
                Box::new(output.clone()),
                Err(io::Error::other("no child in tests")),
            );
            Harness {
                server,
                output,
                seq: 0,
            }
        }

        /// Sends a command (its `seq` is filled in) and returns its `seq`.
        fn send(&mut self, mut command: Value) -> u64 {
            let seq = self.seq;
            self.seq += 1;
            command["seq"] = json!(seq);
            let command = Command::parse(&command.to_string()).unwrap();
            self.server.dispatch(command);
            seq
        }

        fn reply(&self, seq: u64, within: Duration) -> Option<Value> {
            let deadline = Instant::now() + within;
            loop {
                let found = self.output.lines().into_iter().find(|l| l["seq"] == seq);
                if found.is_some() || Instant::now() > deadline {
                    return found;
                }
                thread::sleep(Duration::from_millis(2));
            }
        }

        /// Sends a command and waits for its reply.
        fn call(&mut self, command: Value) -> Value {
            let seq = self.send(command);
            self.reply(seq, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no reply to {seq}"))
        }

        fn outcome(&mut self, command: Value) -> String {
            self.call(command)["outcome"].as_str().unwrap().to_owned()
        }
    }

    #[test]
    fn hello_answers_its_own_version_whatever_the_runner_speaks() {
        let mut h = Harness::new(&["callback"]);
        let mut reply = h.call(json!({"op": "hello", "protocol": 7}));
        assert!(reply["t_ns"].is_u64());
        reply.as_object_mut().unwrap().remove("t_ns");
        assert_eq!(
            reply,
            json!({"seq": 0, "outcome": "hello", "protocol": PROTOCOL_VERSION, "implementation": "fake",
                "version": "9.9", "language": "rust", "capabilities": ["callback"]})
        );
    }

    #[test]
    fn open_acquire_release_close() {
        let mut h = Harness::new(&[]);
        let open = json!({"op": "open", "handle": "a", "path": "x.lock", "timeout_ms": null});
        assert_eq!(h.outcome(open), "ok");
        assert_eq!(
            h.outcome(json!({"op": "acquire", "handle": "a"})),
            "acquired"
        );
        assert_eq!(
            h.outcome(json!({"op": "release", "handle": "a"})),
            "released"
        );
        assert_eq!(
            h.outcome(json!({"op": "release", "handle": "a"})),
            "not_held"
        );
        assert_eq!(h.outcome(json!({"op": "close", "handle": "a"})), "ok");
        let reply = h.call(json!({"op": "acquire", "handle": "a"}));
        assert_eq!(reply["outcome"], "io_error");
        assert_eq!(reply["detail"], "unknown handle a");
    }

    #[test]
    fn failed_open_replies_the_backends_outcome() {
        let mut h = Harness::new(&[]);
        let reply = h.call(json!({"op": "open", "handle": "a", "path": ""}));
        assert_eq!(reply["outcome"], "io_error");
        assert_eq!(reply["detail"], "empty path");
    }

    #[test]
    fn single_attempt_and_timeout() {
        let mut h = Harness::new(&[]);
        h.call(json!({"op": "open", "handle": "a", "path": "x"}));
        h.call(json!({"op": "open", "handle": "b", "path": "x", "timeout_ms": 0}));
        h.call(json!({"op": "open", "handle": "c", "path": "x", "timeout_ms": 50}));
        assert_eq!(
            h.outcome(json!({"op": "acquire", "handle": "a"})),
            "acquired"
        );
        assert_eq!(
            h.outcome(json!({"op": "acquire", "handle": "b"})),
            "would_block"
        );
        let started = Instant::now();
        assert_eq!(
            h.outcome(json!({"op": "acquire", "handle": "c"})),
            "timed_out"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_blocked_thread_does_not_delay_another() {
        let mut h = Harness::new(&["callback"]);
        h.call(json!({"op": "open", "handle": "a", "path": "x"}));
        h.call(json!({"op": "open", "handle": "b", "path": "x", "callback": true}));
        assert_eq!(
            h.outcome(json!({"op": "acquire", "handle": "a"})),
            "acquired"
        );
        let blocked = h.send(json!({"op": "acquire", "handle": "b", "thread": "t1"}));
        assert_eq!(h.reply(blocked, Duration::from_millis(100)), None);
        // The handle was opened and acquired on `main`; it is released on `t2`.
        let release = json!({"op": "release", "handle": "a", "thread": "t2"});
        assert_eq!(h.outcome(release), "released");
        let reply = h.reply(blocked, Duration::from_secs(5)).unwrap();
        assert_eq!(reply["outcome"], "acquired");

        let lines = h.output.lines();
        let event = lines.iter().position(|l| l["event"] == "callback").unwrap();
        let acquired = lines.iter().position(|l| l["seq"] == blocked).unwrap();
        assert!(
            event < acquired,
            "the event comes before the reply: {lines:?}"
        );
        assert_eq!(lines[event].as_object().unwrap().len(), 3);
        assert_eq!(lines[event]["handle"], "b");
        assert!(lines[event]["t_ns"].is_u64());
        let count = lines.iter().filter(|l| l["event"] == "callback").count();
        assert_eq!(count, 1);
    }

    #[test]
    fn t_ns_grows_from_line_to_line() {
        let mut h = Harness::new(&[]);
        h.call(json!({"op": "hello", "protocol": 1}));
        h.call(json!({"op": "open", "handle": "a", "path": "x"}));
        h.call(json!({"op": "acquire", "handle": "a", "thread": "t1"}));
        let times: Vec<u64> = h
            .output
            .lines()
            .iter()
            .map(|l| l["t_ns"].as_u64().unwrap())
            .collect();
        assert!(times.is_sorted(), "{times:?}");
    }

    #[test]
    fn acquire_and_release_carry_their_times() {
        let mut h = Harness::new(&[]);
        let open = h.call(json!({"op": "open", "handle": "a", "path": "x"}));
        assert_eq!(open.get("start_ns"), None);
        for op in ["acquire", "release"] {
            let reply = h.call(json!({"op": op, "handle": "a"}));
            let start = reply["start_ns"].as_u64().unwrap();
            let end = reply["t_ns"].as_u64().unwrap();
            assert!(start <= end, "{reply}");
        }
    }

    #[test]
    fn times_are_on_the_clock_every_process_shares() {
        // Any reader of the machine's clock (here the test, through `monotonic_ns`) brackets the
        // worker's times; a clock counted from the server's start would be far below them.
        let mut h = Harness::new(&[]);
        h.call(json!({"op": "open", "handle": "a", "path": "x"}));
        let before = crate::monotonic_ns();
        let reply = h.call(json!({"op": "acquire", "handle": "a", "thread": "t1"}));
        let after = crate::monotonic_ns();
        let (start, end) = (
            reply["start_ns"].as_u64().unwrap(),
            reply["t_ns"].as_u64().unwrap(),
        );
        assert!(
            before <= start && start <= end && end <= after,
            "{before} {reply} {after}"
        );
    }

    #[test]
    fn witness_counts_and_sees_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("counter");
        let sentinel = dir.path().join("counter.sentinel");
        let mut h = Harness::new(&[]);
        let mut witness = || h.call(json!({"op": "witness", "path": counter, "thread": "t1"}));

        let first = witness();
        assert_eq!(first["outcome"], "ok");
        assert_eq!(first["value"], 0);
        assert_eq!(first["collision"], false);
        assert!(first["start_ns"].as_u64().unwrap() <= first["t_ns"].as_u64().unwrap());
        assert_eq!(fs::read_to_string(&counter).unwrap(), "1");
        assert!(!sentinel.exists());

        assert_eq!(witness()["value"], 1);

        // Another witness at work.
        fs::write(&sentinel, "").unwrap();
        let collided = witness();
        assert_eq!(collided["value"], 2);
        assert_eq!(collided["collision"], true);
        assert!(sentinel.exists(), "the sentinel of the other witness stays");
        fs::remove_file(&sentinel).unwrap();

        fs::write(&counter, "").unwrap();
        assert_eq!(witness()["value"], 0);
        fs::write(&counter, "41\n").unwrap();
        assert_eq!(witness()["value"], 41);

        fs::write(&counter, "forty-two").unwrap();
        let garbled = witness();
        assert_eq!(garbled["outcome"], "io_error");
        assert!(!sentinel.exists());

        let nowhere = dir.path().join("missing").join("counter");
        let failed = h.call(json!({"op": "witness", "path": nowhere}));
        assert_eq!(failed["outcome"], "io_error");
    }

    #[test]
    fn callback_needs_the_capability() {
        let mut h = Harness::new(&[]);
        let reply = h.call(json!({"op": "open", "handle": "a", "path": "x", "callback": true}));
        assert_eq!(reply["outcome"], "unsupported");
        assert!(reply["detail"].is_string());
    }

    #[test]
    fn plain_files() {
        let mut h = Harness::new(&[]);
        let exists = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-file");
        assert_eq!(
            h.outcome(json!({"op": "file_open", "file": "f", "path": exists})),
            "ok"
        );
        let reply = h.call(json!({"op": "file_open", "file": "g", "path": missing}));
        assert_eq!(reply["outcome"], "io_error");
        assert_eq!(h.outcome(json!({"op": "file_close", "file": "f"})), "ok");
        let reply = h.call(json!({"op": "file_close", "file": "f"}));
        assert_eq!(reply["outcome"], "io_error");
        assert_eq!(reply["detail"], "unknown file f");
    }

    #[test]
    fn spawn_child_without_an_executable_is_an_io_error() {
        let mut h = Harness::new(&[]);
        let reply = h.call(json!({"op": "spawn_child", "child": "c"}));
        assert_eq!(reply["outcome"], "io_error");
        assert_eq!(reply.get("pid"), None);
    }

    #[test]
    fn run_serves_every_line_then_returns() {
        let output = Buffer::default();
        let backend = Fake {
            table: Arc::default(),
            capabilities: Vec::new(),
        };
        let server = Server::new(
            Box::new(backend),
            Box::new(output.clone()),
            Err(io::Error::other("none")),
        );
        let input = concat!(
            r#"{"seq":0,"op":"hello","protocol":1}"#,
            "\n",
            r#"{"seq":1,"op":"open","handle":"a","path":"x.lock","timeout_ms":null}"#,
            "\n",
        );
        let lanes = server.run(input.as_bytes()).unwrap();
        assert!(lanes.finish(Duration::from_secs(5)));
        let lines = output.lines();
        let seqs: Vec<&Value> = lines.iter().map(|l| &l["seq"]).collect();
        assert_eq!(seqs, [&json!(0), &json!(1)]);
        assert_eq!(lines[1]["outcome"], "ok");
    }

    #[test]
    fn run_stops_at_a_line_it_cannot_parse() {
        let backend = Fake {
            table: Arc::default(),
            capabilities: Vec::new(),
        };
        let server = Server::new(
            Box::new(backend),
            Box::new(Buffer::default()),
            Err(io::Error::other("none")),
        );
        let input = "{\"seq\":0,\"op\":\"hello\",\"protocol\":1}\nnot json\n";
        let error = server.run(input.as_bytes()).err().unwrap();
        assert!(
            matches!(error, ServeError::Parse { number: 2, .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("line 2 is not a command"),
            "{error}"
        );
    }
}
