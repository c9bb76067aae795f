# The locket peer: locket.lock_file(path, timeout=...) served over the lockspec worker protocol.
# The same file runs locket 1.0.0 and 0.2.0, each in its own virtual environment.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from importlib.metadata import version

import locket
from lockspec_adapter import contended, io_error, release_outcome, serve


class Lock:
    """One lock object: what locket.lock_file returned, and its timeout."""

    def __init__(self, path, timeout):
        self.timeout = timeout
        self.lock = locket.lock_file(path, timeout=timeout)

    def acquire(self):
        try:
            self.lock.acquire()
        except locket.LockError:
            return contended(self.timeout)
        except OSError as error:
            return io_error(error)
        return "acquired"

    def release(self):
        # locket raises LockError("cannot release unlocked lock") for an unheld lock.
        return release_outcome(self.lock.release, not_held=locket.LockError)


def open_lock(path, timeout, callback):
    return Lock(path, timeout)


serve("locket", version("locket"), open_lock)
