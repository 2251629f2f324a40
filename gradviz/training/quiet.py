"""TensorFlow's C++ start-up lines (oneDNN notices, CPU features) kept off stderr when asked: the
CLI asks, unless --verbose. Native code writes them during the import, before any Python logging
setting (or TF_CPP_MIN_LOG_LEVEL, which they ignore) can stop them, so file descriptor 2 itself is
pointed at /dev/null for the import and restored after it. No TensorFlow here."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

QUIET_ENV = "GRADVIZ_QUIET_TENSORFLOW"


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """While inside, nothing written to file descriptor 2 shows, if QUIET_ENV is set; else a no-op."""
    if not os.environ.get(QUIET_ENV):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
