//! Worker processes: starting them, reading what they say, and making sure none outlives a trial.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How to start a worker for one implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implementation {
    /// The name used in test names and reports.
    pub name: String,
    /// The program to run.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Why it cannot run here (such as "not installed"), if so: every trial of it is then an
    /// error verdict carrying this message, and no worker is started.
    pub unavailable: Option<String>,
}

impl Implementation {
    /// An implementation run as `program args...`.
    pub fn new(name: impl Into<String>, program: impl Into<OsString>, args: &[&str]) -> Self {
        Implementation {
            name: name.into(),
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            unavailable: None,
        }
    }

    /// An implementation that cannot run here, for the reason `why` (which should say how to fix
    /// it): its trials are error verdicts with that message.
    pub fn unavailable(name: impl Into<String>, why: impl Into<String>) -> Self {
        Implementation {
            name: name.into(),
            program: OsString::new(),
            args: Vec::new(),
            unavailable: Some(why.into()),
        }
    }

    /// An implementation from a command line typed by a person, split into words by POSIX
    /// shell rules: `'...'` and `"..."` quote, so `python3 "my adapter.py"` is two words. On
    /// Windows a backslash is a path separator, not an escape (`C:\lock\worker.exe`).
    /// Workers run in the trial's temporary directory, so the program and any argument that
    /// names an existing file or directory relative to the current directory are made absolute.
    ///
    /// # Errors
    ///
    /// Returns a message when the command line is empty or a quote is not closed.
    pub fn from_command_line(name: &str, command: &str) -> Result<Implementation, String> {
        let words = split_command_line(command, cfg!(windows))?;
        let mut words = words.iter();
        let program = words.next().ok_or("the worker's command line is empty")?;
        let absolute = |word: &str, is_program: bool| -> OsString {
            let path = Path::new(word);
            let has_separator = word.contains('/') || word.contains(std::path::MAIN_SEPARATOR);
            let candidate = path.is_relative()
                && !word.starts_with('-')
                && (has_separator || !is_program)
                && path.exists();
            match std::path::absolute(path) {
                Ok(abs) if candidate => abs.into_os_string(),
                _ => OsString::from(word),
            }
        };
        Ok(Implementation {
            name: name.to_owned(),
            program: absolute(program, true),
            args: words.map(|w| absolute(w, false)).collect(),
            unavailable: None,
        })
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Splits a worker's command line into words by POSIX shell rules (`shlex`). With
/// `literal_backslashes` (Windows, where `\` separates a path) a backslash stands for itself:
/// it is doubled, outside single quotes, before the split.
fn split_command_line(command: &str, literal_backslashes: bool) -> Result<Vec<String>, String> {
    let escaped = if literal_backslashes {
        let mut doubled = String::with_capacity(command.len());
        let mut single_quoted = false;
        let mut double_quoted = false;
        for c in command.chars() {
            match c {
                '\'' if !double_quoted => single_quoted = !single_quoted,
                '"' if !single_quoted => double_quoted = !double_quoted,
                '\\' if !single_quoted => doubled.push('\\'),
                _ => {}
            }
            doubled.push(c);
        }
        doubled
    } else {
        command.to_owned()
    };
    shlex::split(&escaped).ok_or_else(|| {
        format!("the worker's command line has a quote that is not closed: {command}")
    })
}

/// What a worker's stdout reader saw.
#[derive(Debug)]
pub enum Incoming {
    /// One line, without its newline.
    Line(String),
    /// End of file: the worker closed its stdout (usually by exiting).
    Eof,
    /// Reading failed (not UTF-8, for instance).
    ReadError(String),
}

/// A message from worker number `proc`, stamped when the runner received it.
#[derive(Debug)]
pub struct Msg {
    /// The number the worker was started with (`WorkerProcess::spawn`).
    pub proc: usize,
    /// When the runner received it.
    pub at: Instant,
    /// The same moment on the shared monotonic clock of `lockspec_protocol::now_ns`.
    pub at_ns: u64,
    /// What was received.
    pub incoming: Incoming,
}

/// The last part of a worker's stderr.
#[derive(Debug, Default)]
struct Tail {
    text: String,
    dropped: usize,
}

const TAIL_BYTES: usize = 16 * 1024;

impl Tail {
    fn push(&mut self, chunk: &str) {
        self.text.push_str(chunk);
        if self.text.len() > 2 * TAIL_BYTES {
            let mut cut = self.text.len() - TAIL_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.dropped += cut;
            self.text.drain(..cut);
        }
    }
}

/// One running worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Tail>>,
    /// Processes the worker reported starting (`spawn_child`); see [`WorkerProcess::add_child`].
    pub children: Vec<u32>,
    /// Set once the runner killed it on purpose.
    pub killed: bool,
    /// The value of [`crate::cleanup::TOKEN_ENV`] that the worker and its descendants carry.
    token: String,
    /// The worker in the signal handler's registry; `None` once everything is killed.
    entry: Option<crate::cleanup::WorkerEntry>,
}

impl WorkerProcess {
    /// Starts `imp` in `dir`, with its stdout lines sent to `tx` tagged with `proc`.
    pub fn spawn(
        imp: &Implementation,
        proc: usize,
        dir: &Path,
        tx: Sender<Msg>,
        unprivileged: bool,
    ) -> io::Result<WorkerProcess> {
        let mut cmd = Command::new(&imp.program);
        cmd.args(&imp.args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Whoever starts workers gets them killed on SIGINT, SIGTERM and SIGHUP.
        crate::cleanup::install();
        let token = crate::cleanup::new_token();
        cmd.env(crate::cleanup::TOKEN_ENV, &token);
        crate::sys::prepare(&mut cmd, unprivileged);
        let mut child = cmd.spawn()?;
        // On Windows, in a job object of its own, so that its descendants die with it (see
        // `sys::adopt`).
        crate::sys::adopt(&child);
        crate::cleanup::adopt(child.id());
        let entry = Some(crate::cleanup::WorkerEntry::new(child.id()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(Tail::default()));

        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let incoming = match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => Incoming::Eof,
                    Ok(_) => {
                        if buf.last() != Some(&b'\n') {
                            Incoming::ReadError(format!(
                                "an unterminated line at end of output: {:?}",
                                String::from_utf8_lossy(&buf)
                            ))
                        } else {
                            buf.pop();
                            if buf.last() == Some(&b'\r') {
                                buf.pop();
                            }
                            match String::from_utf8(std::mem::take(&mut buf)) {
                                Ok(line) => Incoming::Line(line),
                                Err(e) => Incoming::ReadError(format!(
                                    "a line that is not UTF-8: {:?}",
                                    String::from_utf8_lossy(e.as_bytes())
                                )),
                            }
                        }
                    }
                    Err(e) => Incoming::ReadError(e.to_string()),
                };
                let end = !matches!(incoming, Incoming::Line(_));
                let msg = Msg {
                    proc,
                    at: Instant::now(),
                    at_ns: lockspec_protocol::now_ns(),
                    incoming,
                };
                if tx.send(msg).is_err() || end {
                    return;
                }
            }
        });
        let sink = Arc::clone(&tail);
        thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = String::from_utf8_lossy(&buf[..n]);
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(&chunk);
            }
        });
        Ok(WorkerProcess {
            stdin: child.stdin.take(),
            child,
            stderr: tail,
            children: Vec::new(),
            killed: false,
            token,
            entry,
        })
    }

    /// The worker's process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Records a process the worker reported starting, to be killed with it.
    pub fn add_child(&mut self, pid: u32) {
        self.children.push(pid);
        if let Some(entry) = &self.entry {
            entry.add_child(pid);
        }
    }

    /// Writes one line to the worker's stdin.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// The exit status, if the worker has exited; waits up to `grace` for it.
    pub fn exit_status(&mut self, grace: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the worker process itself (not its children) and reaps it, so that the operating
    /// system has released whatever it held when this returns.
    pub fn kill(&mut self) -> io::Result<()> {
        self.killed = true;
        // SIGKILL before its stdin closes: a worker that saw the end of its input first could
        // exit on its own and release what it holds, which a killed process does not do.
        let killed = self.child.kill();
        self.stdin = None;
        killed?;
        self.child.wait().map(|_| ())
    }

    /// Kills the worker, its process group, the children it reported and (on Linux) every
    /// process that carries its token, even outside the group; reaps the worker. Once done,
    /// later calls do nothing.
    pub fn kill_all(&mut self) {
        self.killed = true;
        if self.entry.is_none() {
            self.stdin = None;
            return;
        }
        // Killed before its stdin closes, as in `kill`.
        crate::sys::kill_tree(&mut self.child, &self.children);
        let _ = self.child.kill();
        self.stdin = None;
        crate::cleanup::sweep(&[&self.token]);
        // Out of the registry before it is reaped, while its process ID cannot be reused.
        self.entry = None;
        let _ = self.child.wait();
    }

    /// The tail of what the worker wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if tail.dropped > 0 {
            format!("[{} bytes dropped]\n{}", tail.dropped, tail.text)
        } else {
            tail.text.clone()
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Whether this process runs with root privileges (file permissions not enforced).
pub fn is_privileged() -> bool {
    crate::sys::is_privileged()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_on_a_command_line_become_absolute() {
        // The crate's manifest exists relative to the test's working directory (the crate).
        let imp =
            Implementation::from_command_line("x", "./Cargo.toml --flag Cargo.toml python3 nope")
                .unwrap();
        assert!(Path::new(&imp.program).is_absolute());
        assert!(Path::new(&imp.args[1]).is_absolute());
        assert_eq!(imp.args[0], "--flag");
        assert_eq!(imp.args[2], "python3");
        assert_eq!(imp.args[3], "nope");
        assert!(Implementation::from_command_line("x", "  ").is_err());
    }

    #[test]
    fn quoted_words_keep_their_spaces() {
        let imp = Implementation::from_command_line(
            "x",
            r#"python3 "my adapter.py" 'a "b" c' --name=it\ is --empty ''"#,
        )
        .unwrap();
        assert_eq!(imp.program, "python3");
        assert_eq!(
            imp.args,
            ["my adapter.py", r#"a "b" c"#, "--name=it is", "--empty", ""]
        );
        // A quoted relative path is still made absolute.
        let imp = Implementation::from_command_line("x", "python3 'Cargo.toml'").unwrap();
        assert!(Path::new(&imp.args[0]).is_absolute());
    }

    #[test]
    fn a_quote_that_is_not_closed_is_an_error() {
        for line in [r#"python3 "my adapter.py"#, "python3 'x", r#"a "b' c"#] {
            let error = Implementation::from_command_line("x", line).unwrap_err();
            assert!(
                error.contains("quote that is not closed"),
                "{line}: {error}"
            );
        }
        assert!(
            Implementation::from_command_line("x", "''")
                .unwrap()
                .program
                .is_empty()
        );
    }

    #[test]
    fn backslashes_are_literal_where_they_separate_paths() {
        let split = |line, literal| split_command_line(line, literal).unwrap();
        let windows = r#"C:\Python\python.exe "C:\my adapters\a.py" 'C:\x'"#;
        assert_eq!(
            split(windows, true),
            [r"C:\Python\python.exe", r"C:\my adapters\a.py", r"C:\x"]
        );
        assert_eq!(split(windows, false)[0], "C:Pythonpython.exe");
        assert_eq!(split(r"a\ b", false), ["a b"]);
    }
}
