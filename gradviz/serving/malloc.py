"""glibc's malloc, tuned for a server whose sessions train on their own threads: fewer arenas, and
freed pages handed back to the OS after each training."""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's mallopt() parameter behind the MALLOC_ARENA_MAX variable
SERVER_MALLOC_ARENAS = 2
# Streamlit runs each session's script on its own thread, and glibc gives threads their own heaps
# (up to 8 per core): memory that one session's training freed sat in a heap where the next
# session's training did not reuse it, and freed pages stayed resident. Measured with the load
# test's 20 simultaneous sessions (tests/loadtest.py): peak RSS 1153 MB as it was, 1051 MB with the
# arenas capped at 2, 941 MB capped and trimmed after each training; queue times unchanged.


def _libc():
    """This process's C library through ctypes, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = SERVER_MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX would, unless the host set that variable.
    True if the cap was set (False off glibc, which has no mallopt)."""
    libc = _libc()
    if os.environ.get("MALLOC_ARENA_MAX") or libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> None:
    """Give the pages a finished training freed back to the OS (glibc's malloc_trim; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
