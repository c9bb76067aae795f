# The portalocker peer: portalocker.Lock(path, timeout=...) served over the lockspec worker
# protocol. portalocker replaces a timeout of None with its default of 5 seconds; its way to wait
# without a bound is a blocking lock (flags without NON_BLOCKING), which this adapter uses for
# "no timeout".
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from importlib.metadata import version

import portalocker
from lockspec_adapter import contended, io_error, release_outcome, serve


class Lock:
    """One portalocker.Lock and its timeout."""

    def __init__(self, path, timeout):
        self.timeout = timeout
        if timeout is None:
            self.lock = portalocker.Lock(path, flags=portalocker.LockFlags.EXCLUSIVE)
        else:
            self.lock = portalocker.Lock(path, timeout=timeout)

    def acquire(self):
        try:
            self.lock.acquire()
        except portalocker.AlreadyLocked:
            return contended(self.timeout)
        except (portalocker.LockException, OSError) as error:
            return io_error(error)
        return "acquired"

    def release(self):
        # The library reports no "not held" error of its own.
        return release_outcome(self.lock.release)


def open_lock(path, timeout, callback):
    return Lock(path, timeout)


serve("portalocker", version("portalocker"), open_lock)
