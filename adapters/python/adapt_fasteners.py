# The fasteners peer: fasteners.InterProcessLock(path) served over the lockspec worker protocol.
# Its acquire takes the timeout per call and returns False when it expires; a zero timeout is
# acquire(blocking=False), a single attempt.
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from importlib.metadata import version

import fasteners
from lockspec_adapter import contended, io_error, release_outcome, serve


class Lock:
    """One fasteners.InterProcessLock and its timeout."""

    def __init__(self, path, timeout):
        self.timeout = timeout
        self.lock = fasteners.InterProcessLock(path)

    def acquire(self):
        try:
            if self.timeout == 0:
                acquired = self.lock.acquire(blocking=False)
            else:
                acquired = self.lock.acquire(timeout=self.timeout)
        except OSError as error:
            return io_error(error)
        return "acquired" if acquired else contended(self.timeout)

    def release(self):
        # fasteners raises ThreadError("Unable to release an unaquired lock").
        return release_outcome(self.lock.release, not_held=threading.ThreadError)


def open_lock(path, timeout, callback):
    return Lock(path, timeout)


serve("fasteners", version("fasteners"), open_lock)
