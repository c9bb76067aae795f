# The worker side of the lockspec protocol (spec/PROTOCOL.md) for Python adapters: one thread per
# protocol thread, replies and callback events on stdout, plain files, idle children, the witness.
#
# An adapter module defines `open_lock(path, timeout, callback)`, which returns an object with
# `acquire()` and `release()`, and calls `serve(...)`. Both methods return an outcome: a kind
# ("acquired", "released", "timed_out", "would_block", "not_held", "io_error", "unsupported") or
# a (kind, detail) pair. `timeout` is None (wait forever), 0 (one attempt) or seconds; `callback`
# is None or a function to hand to the library as its contention callback. An exception that
# escapes `open_lock`, `acquire` or `release` is not an outcome: the worker prints it to stderr
# and exits, and the runner reports a crash.
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback

PROTOCOL = 2
# How long the worker waits for commands already received once its input has ended.
EXIT_GRACE = 1.0
# The idle child of spawn_child: the same interpreter, started with subprocess's defaults.
IDLE_CHILD = "import time\nwhile True:\n    time.sleep(3600)\n"


def contended(timeout):
    """The outcome of an acquire that found the lock held for the whole timeout."""
    return "would_block" if timeout == 0 else "timed_out"


def io_error(error):
    """The outcome of an error of the file system."""
    return ("io_error", str(error))


def release_outcome(call, not_held=()):
    """The outcome of a release made by `call()`: `not_held` when it raises one of the library's
    exception types in `not_held` (the library's own "not held" error), `io_error` for an error of
    the file system, else `released`."""
    try:
        call()
    except not_held:
        return "not_held"
    except OSError as error:
        return io_error(error)
    return "released"


class _Worker:
    def __init__(self, implementation, version, capabilities, open_lock):
        self.hello = {"protocol": PROTOCOL, "implementation": implementation, "version": version,
                      "language": "python", "capabilities": list(capabilities)}
        self.open_lock = open_lock
        self.out = threading.Lock()
        self.handles = {}
        self.files = {}
        self.lanes = {}

    def emit(self, message):
        with self.out:
            message.setdefault("t_ns", time.monotonic_ns())
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def reply(self, seq, outcome, **fields):
        kind, detail = (outcome, None) if isinstance(outcome, str) else outcome
        message = {"seq": seq, "outcome": kind}
        if detail:
            message["detail"] = detail
        message.update(fields)
        self.emit(message)

    def timed(self, seq, call):
        start_ns = time.monotonic_ns()
        outcome = call()
        self.reply(seq, outcome, start_ns=start_ns, t_ns=time.monotonic_ns())

    def execute(self, command):
        seq, op = command["seq"], command["op"]
        if op == "hello":
            return self.emit(dict(self.hello, seq=seq, outcome="hello"))
        if op == "open":
            timeout_ms = command.get("timeout_ms")
            timeout = None if timeout_ms is None else timeout_ms / 1000
            handle = command["handle"]
            callback = None
            if command.get("callback"):
                if "callback" not in self.hello["capabilities"]:
                    return self.reply(seq, ("unsupported", "no contention callback"))
                callback = lambda: self.emit({"event": "callback", "handle": handle})
            try:
                self.handles[handle] = self.open_lock(command["path"], timeout, callback)
            except OSError as error:
                return self.reply(seq, io_error(error))
            return self.reply(seq, "ok")
        if op in ("acquire", "release"):
            lock = self.handles[command["handle"]]
            return self.timed(seq, lock.acquire if op == "acquire" else lock.release)
        if op == "close":
            del self.handles[command["handle"]]
            return self.reply(seq, "ok")
        if op == "file_open":
            try:
                self.files[command["file"]] = open(command["path"], "rb")
            except OSError as error:
                return self.reply(seq, io_error(error))
            return self.reply(seq, "ok")
        if op == "file_close":
            self.files.pop(command["file"]).close()
            return self.reply(seq, "ok")
        if op == "spawn_child":
            child = subprocess.Popen([sys.executable, "-I", "-S", "-c", IDLE_CHILD],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            return self.reply(seq, "ok", pid=child.pid)
        if op == "sleep":
            return self.timed(seq, lambda: time.sleep(command["ms"] / 1000) or "ok")
        if op == "witness":
            start_ns = time.monotonic_ns()
            try:
                value, collision = witness(command["path"])
            except (OSError, ValueError) as error:
                return self.reply(seq, io_error(error), start_ns=start_ns)
            return self.reply(seq, "ok", value=value, collision=collision, start_ns=start_ns,
                              t_ns=time.monotonic_ns())
        raise ValueError("unknown op %r" % op)

    def lane(self, commands):
        while True:
            command = commands.get()
            try:
                self.execute(command)
            except BaseException:
                traceback.print_exc()
                sys.stderr.write("lockspec adapter: command %s raised; exiting\n" % command["seq"])
                sys.stderr.flush()
                os._exit(101)
            commands.task_done()

    def run(self):
        for number, line in enumerate(sys.stdin, 1):
            try:
                command = json.loads(line)
                name = command.get("thread") or "main"
                command["seq"], command["op"]
            except (ValueError, KeyError, AttributeError, TypeError) as error:
                sys.stderr.write("lockspec adapter: line %d is not a command (%s): %r\n"
                                 % (number, error, line))
                sys.stderr.flush()
                os._exit(2)
            if name not in self.lanes:
                self.lanes[name] = queue.Queue()
                threading.Thread(target=self.lane, args=(self.lanes[name],), daemon=True).start()
            self.lanes[name].put(command)
        deadline = time.monotonic() + EXIT_GRACE
        while time.monotonic() < deadline and any(q.unfinished_tasks for q in self.lanes.values()):
            time.sleep(0.001)
        os._exit(0)


def witness(path):
    """The data witness of stress runs (spec/PROTOCOL.md): (the number read, collision)."""
    try:
        open(path + ".sentinel", "x").close()
        created = True
    except FileExistsError:
        created = False
    try:
        try:
            with open(path) as counter:
                text = counter.read().strip()
        except FileNotFoundError:
            text = ""
        value = int(text) if text else 0
        with open(path, "w") as counter:
            counter.write(str(value + 1))
    finally:
        if created:
            os.remove(path + ".sentinel")
    return value, not created


def serve(implementation, version, open_lock, capabilities=()):
    """Serves the protocol on stdin and stdout until stdin ends; never returns."""
    _Worker(implementation, version, capabilities, open_lock).run()
