# The locks peer: locks.Mutex(path, timeout=..., callback=...) served over the lockspec worker
# protocol. Mutex.lock raises the OSError of flock (EWOULDBLOCK) when the timeout expires.
import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from importlib.metadata import version

import locks
from lockspec_adapter import contended, io_error, release_outcome, serve


class Lock:
    """One locks.Mutex and its timeout."""

    def __init__(self, path, timeout, callback):
        self.timeout = timeout
        self.mutex = locks.Mutex(path, timeout=timeout, callback=callback)

    def acquire(self):
        try:
            self.mutex.lock()
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return contended(self.timeout)
            return io_error(error)
        return "acquired"

    def release(self):
        # The library reports no "not held" error of its own.
        return release_outcome(self.mutex.release)


serve("locks", version("locks"), Lock, capabilities=["callback"])
