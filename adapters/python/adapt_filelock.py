# The filelock peer: filelock.FileLock(path, timeout=...) with its defaults, served over the
# lockspec worker protocol. filelock spells "wait forever" as a negative timeout.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from importlib.metadata import version

import filelock
from lockspec_adapter import contended, io_error, release_outcome, serve


class Lock:
    """One filelock.FileLock and its timeout."""

    def __init__(self, path, timeout):
        self.timeout = timeout
        self.lock = filelock.FileLock(path, timeout=-1 if timeout is None else timeout)

    def acquire(self):
        try:
            self.lock.acquire()
        except filelock.Timeout:
            return contended(self.timeout)
        except RuntimeError as error:
            # A thread that holds the lock through another FileLock and acquires without a
            # timeout gets RuntimeError("Deadlock: ...") at once, instead of waiting forever: a
            # lock error of its own kind (the spec leaves this case open, see REE-2).
            if not str(error).startswith("Deadlock"):
                raise
            return ("would_block", str(error))
        except OSError as error:
            return io_error(error)
        return "acquired"

    def release(self):
        # The library reports no "not held" error of its own.
        return release_outcome(self.lock.release)


def open_lock(path, timeout, callback):
    return Lock(path, timeout)


serve("filelock", version("filelock"), open_lock)
