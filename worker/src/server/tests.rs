//! Tests of the server: each command through `Server::dispatch` on a fake backend, and
//! `Server::run` on whole lines.

use std::collections::HashSet;
use std::sync::Condvar;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

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

    /// Sends a command (its `seq` is filled in), through its line, and returns its `seq`.
    fn send(&mut self, command: impl Into<Sent>) -> u64 {
        let Sent(thread, op) = command.into();
        let seq = self.seq;
        self.seq += 1;
        let command = Command {
            seq,
            thread: thread.map(str::to_owned),
            op,
        };
        let command = Command::parse(&command.to_line()).unwrap();
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
    fn call(&mut self, command: impl Into<Sent>) -> Value {
        let seq = self.send(command);
        self.reply(seq, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no reply to {seq}"))
    }

    fn outcome(&mut self, command: impl Into<Sent>) -> String {
        self.call(command)["outcome"].as_str().unwrap().to_owned()
    }
}

/// An operation and the worker thread that runs it (`None`: the main thread).
struct Sent(Option<&'static str>, Op);

impl From<Op> for Sent {
    fn from(op: Op) -> Sent {
        Sent(None, op)
    }
}

/// `op` on the worker thread `thread`.
fn on(thread: &'static str, op: Op) -> Sent {
    Sent(Some(thread), op)
}

fn hello(protocol: u64) -> Op {
    Op::Hello {
        protocol: Some(protocol),
    }
}

/// `open` that waits forever, without the callback.
fn open(handle: &str, path: impl Into<PathBuf>) -> Op {
    open_with(handle, path, None, false)
}

fn open_with(
    handle: &str,
    path: impl Into<PathBuf>,
    timeout_ms: Option<u64>,
    callback: bool,
) -> Op {
    Op::Open {
        handle: handle.to_owned(),
        path: path.into(),
        timeout_ms,
        callback,
    }
}

fn acquire(handle: &str) -> Op {
    Op::Acquire {
        handle: handle.to_owned(),
    }
}

fn release(handle: &str) -> Op {
    Op::Release {
        handle: handle.to_owned(),
    }
}

fn close(handle: &str) -> Op {
    Op::Close {
        handle: handle.to_owned(),
    }
}

fn witness(path: &Path) -> Op {
    Op::Witness {
        path: path.to_owned(),
    }
}

fn file_open(file: &str, path: &str) -> Op {
    Op::FileOpen {
        file: file.to_owned(),
        path: path.into(),
    }
}

fn file_close(file: &str) -> Op {
    Op::FileClose {
        file: file.to_owned(),
    }
}

fn spawn_child(child: &str) -> Op {
    Op::SpawnChild {
        child: Some(child.to_owned()),
    }
}

/// The line that carries `op` as command `seq`, with its newline.
fn line(seq: u64, op: Op) -> String {
    let command = Command {
        seq,
        thread: None,
        op,
    };
    command.to_line() + "\n"
}

#[test]
fn hello_answers_its_own_version_whatever_the_runner_speaks() {
    let mut h = Harness::new(&["callback"]);
    let reply = h.call(hello(7));
    assert!(reply["t_ns"].is_u64());
    assert_eq!(reply["seq"], 0);
    assert_eq!(reply["outcome"], "hello");
    assert_eq!(reply["protocol"], PROTOCOL_VERSION);
    assert_eq!(reply["implementation"], "fake");
    assert_eq!(reply["version"], "9.9");
    assert_eq!(reply["language"], "rust");
    assert_eq!(reply["capabilities"], Value::from(vec!["callback"]));
    assert_eq!(reply.as_object().unwrap().len(), 8, "{reply}");
}

#[test]
fn open_acquire_release_close() {
    let mut h = Harness::new(&[]);
    let open = open("a", "x.lock");
    assert_eq!(h.outcome(open), "ok");
    assert_eq!(h.outcome(acquire("a")), "acquired");
    assert_eq!(h.outcome(release("a")), "released");
    assert_eq!(h.outcome(release("a")), "not_held");
    assert_eq!(h.outcome(close("a")), "ok");
    let reply = h.call(acquire("a"));
    assert_eq!(reply["outcome"], "io_error");
    assert_eq!(reply["detail"], "unknown handle a");
}

#[test]
fn failed_open_replies_the_backends_outcome() {
    let mut h = Harness::new(&[]);
    let reply = h.call(open("a", ""));
    assert_eq!(reply["outcome"], "io_error");
    assert_eq!(reply["detail"], "empty path");
}

#[test]
fn single_attempt_and_timeout() {
    let mut h = Harness::new(&[]);
    h.call(open("a", "x"));
    h.call(open_with("b", "x", Some(0), false));
    h.call(open_with("c", "x", Some(50), false));
    assert_eq!(h.outcome(acquire("a")), "acquired");
    assert_eq!(h.outcome(acquire("b")), "would_block");
    let started = Instant::now();
    assert_eq!(h.outcome(acquire("c")), "timed_out");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn a_blocked_thread_does_not_delay_another() {
    let mut h = Harness::new(&["callback"]);
    h.call(open("a", "x"));
    h.call(open_with("b", "x", None, true));
    assert_eq!(h.outcome(acquire("a")), "acquired");
    let blocked = h.send(on("t1", acquire("b")));
    assert_eq!(h.reply(blocked, Duration::from_millis(100)), None);
    // The handle was opened and acquired on `main`; it is released on `t2`.
    let release = on("t2", release("a"));
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
    h.call(hello(1));
    h.call(open("a", "x"));
    h.call(on("t1", acquire("a")));
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
    let open = h.call(open("a", "x"));
    assert_eq!(open.get("start_ns"), None);
    for op in [acquire("a"), release("a")] {
        let reply = h.call(op);
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
    h.call(open("a", "x"));
    let before = crate::monotonic_ns();
    let reply = h.call(on("t1", acquire("a")));
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
    let mut count = || h.call(on("t1", witness(&counter)));

    let first = count();
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["value"], 0);
    assert_eq!(first["collision"], false);
    assert!(first["start_ns"].as_u64().unwrap() <= first["t_ns"].as_u64().unwrap());
    assert_eq!(fs::read_to_string(&counter).unwrap(), "1");
    assert!(!sentinel.exists());

    assert_eq!(count()["value"], 1);

    // Another witness at work.
    fs::write(&sentinel, "").unwrap();
    let collided = count();
    assert_eq!(collided["value"], 2);
    assert_eq!(collided["collision"], true);
    assert!(sentinel.exists(), "the sentinel of the other witness stays");
    fs::remove_file(&sentinel).unwrap();

    fs::write(&counter, "").unwrap();
    assert_eq!(count()["value"], 0);
    fs::write(&counter, "41\n").unwrap();
    assert_eq!(count()["value"], 41);

    fs::write(&counter, "forty-two").unwrap();
    let garbled = count();
    assert_eq!(garbled["outcome"], "io_error");
    assert!(!sentinel.exists());

    let nowhere = dir.path().join("missing").join("counter");
    let failed = h.call(witness(&nowhere));
    assert_eq!(failed["outcome"], "io_error");
}

#[test]
fn callback_needs_the_capability() {
    let mut h = Harness::new(&[]);
    let reply = h.call(open_with("a", "x", None, true));
    assert_eq!(reply["outcome"], "unsupported");
    assert!(reply["detail"].is_string());
}

#[test]
fn plain_files() {
    let mut h = Harness::new(&[]);
    let exists = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-file");
    assert_eq!(h.outcome(file_open("f", exists)), "ok");
    let reply = h.call(file_open("g", missing));
    assert_eq!(reply["outcome"], "io_error");
    assert_eq!(h.outcome(file_close("f")), "ok");
    let reply = h.call(file_close("f"));
    assert_eq!(reply["outcome"], "io_error");
    assert_eq!(reply["detail"], "unknown file f");
}

#[test]
fn spawn_child_without_an_executable_is_an_io_error() {
    let mut h = Harness::new(&[]);
    let reply = h.call(spawn_child("c"));
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
    let input = line(0, hello(1)) + &line(1, open("a", "x.lock"));
    let lanes = server.run(input.as_bytes()).unwrap();
    assert!(lanes.finish(Duration::from_secs(5)));
    let lines = output.lines();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1]);
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
    let input = line(0, hello(1)) + "not json\n";
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
